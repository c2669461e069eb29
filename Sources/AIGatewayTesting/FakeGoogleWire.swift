import AIGatewayAPI
import NIOHTTP1

/// The fake provider's Gemini API and Vertex AI endpoints: routes, keys, request validation as
/// strict as the real APIs on what the gateway's translation must get right, and the answers.
///
/// - Gemini API: `POST /{version}/models/{model}:generateContent` and
///   `:streamGenerateContent?alt=sse`; key in `x-goog-api-key` (or `?key=`). A wrong key is
///   400 `INVALID_ARGUMENT` with reason `API_KEY_INVALID`, no key 403 `PERMISSION_DENIED`.
/// - Vertex AI: `POST /{version}/projects/{p}/locations/{l}/publishers/google/models/{model}:…`;
///   `Authorization: Bearer`; a wrong or missing token is 401 `UNAUTHENTICATED`. Errors inside a
///   Vertex stream are array-wrapped (`[{"error": …}]`), as Vertex sends them.
enum FakeGoogleWire {
    /// The fake's Gemini API and Vertex AI endpoints (`FakeProviderHandler.nativeAPIs`).
    struct API: FakeNativeAPI {
        func matches(method: HTTPMethod, path: String) -> Bool {
            method == .POST && FakeGoogleWire.route(path: path, query: "") != nil
        }

        func read(_ request: FakeHTTPRequest, provider: FakeProvider) -> FakeNativeRead {
            guard let route = FakeGoogleWire.route(path: request.path, query: request.query) else {
                return FakeNativeRead(model: nil, stream: false, outcome: .reject(.notFound(method: "POST", path: request.path)))
            }
            let wrapped = route.flavor == .vertex && route.stream
            func reject(_ e: GoogleError) -> FakeNativeRead {
                FakeNativeRead(model: route.model, stream: route.stream, outcome: .reject(e.providerError(wrapped: wrapped)))
            }
            var headers: [(name: String, value: String)] = []
            for (name, value) in request.head.headers { headers.append((name, value)) }
            if let e = FakeGoogleWire.authorize(route.flavor, headers: headers, query: request.query, requiredKey: provider.configuration.requiredKey) {
                return reject(e)
            }
            if route.stream && FakeGoogleWire.queryValue(request.query, "alt") != "sse" {
                return reject(.invalid("This fake streams with alt=sse only (without it the real API answers a JSON array)."))
            }
            let bytes = request.body.map { Array($0.readableBytesView) } ?? []
            guard let body = try? JSONParser.parse(bytes) else {
                return reject(.invalid("Invalid JSON payload received. Unexpected token."))
            }
            if let e = FakeGoogleWire.validate(body, flavor: route.flavor) { return reject(e) }
            let promptTokens = FakeGoogleWire.promptWords(body)
            var prefill: String?
            if let last = body["contents"]?.arrayValue?.last, last["role"]?.stringValue == "model" {
                prefill = (last["parts"]?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }.joined()
            }
            let tools = (body["tools"]?.arrayValue ?? []).flatMap { $0["functionDeclarations"]?.arrayValue ?? [] }
            let format = Format(
                flavor: route.flavor,
                answer: Answer(responseID: provider.nextResponseID(), model: route.model, promptTokens: promptTokens))
            let flavor = route.flavor
            return FakeNativeRead(
                model: route.model, stream: route.stream,
                outcome: .answer(
                    FakeNativeRequest(
                        promptTokens: promptTokens, prefill: prefill, toolNames: tools.compactMap { $0["name"]?.stringValue }, format: format,
                        errorForFault: { fault, model, promptTokens in
                            FakeGoogleWire.error(for: fault, flavor: flavor, model: model, promptTokens: promptTokens).providerError(wrapped: wrapped)
                        })))
        }
    }

    /// Answers, stream events and errors in Gemini's format.
    struct Format: FakeAnswerFormat {
        var flavor: Flavor
        var answer: Answer

        var streamContentType: String { "text/event-stream" }

        func completion(_ content: FakeAnswerContent) -> [UInt8] {
            switch content.kind {
            case .text: Array(answer.complete(tokens: content.tokens, call: nil).utf8)
            case .toolCall(_, let name, let fragments): Array(answer.complete(tokens: [], call: (name, Self.arguments(fragments))).utf8)
            case .blocked: Array(answer.blocked().utf8)
            }
        }

        /// Gemini sends nothing before the first part.
        func streamStart(_ content: FakeAnswerContent) -> [UInt8] { [] }

        func textEvent(_ token: String, index: Int) -> [UInt8] {
            Array(answer.tokenEvent(token, index: index, last: false).utf8)
        }

        /// Gemini sends a function call whole, in one event.
        func toolCallEvents(id: String, name: String, fragments: [String]) -> [UInt8] {
            Array(answer.callEvent((name, Self.arguments(fragments))).utf8)
        }

        func streamEnd(_ content: FakeAnswerContent, sentTokens: Int, done: Bool) -> [UInt8] {
            // `no-done`: the body ends without the event that carries the finish reason.
            guard done else { return [] }
            switch content.kind {
            case .text: return Array(answer.stopEvent(completion: sentTokens).utf8)
            case .toolCall: return Array(answer.stopEvent(completion: 5).utf8)
            case .blocked: return Array(answer.blockedEvent().utf8)
            }
        }

        var malformedEvent: [UInt8] { Array(Answer.malformedEvent.utf8) }

        func streamErrorEvent() -> [UInt8] { Array(FakeGoogleWire.streamErrorEvent(flavor).utf8) }

        static func arguments(_ fragments: [String]) -> JSONValue {
            (try? JSONParser.parse(Array(fragments.joined().utf8))) ?? .object([:])
        }
    }

    enum Flavor: Sendable, Hashable {
        case gemini
        case vertex
    }

    struct Route: Sendable, Hashable {
        var flavor: Flavor
        var model: String
        var stream: Bool
    }

    /// The route of `path` (without its query), or nil when it is not a Gemini or Vertex path.
    static func route(path: String, query: String) -> Route? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        // "", version, "models", "model:method"
        let flavor: Flavor
        let last: String
        if segments.count == 4, segments[0].isEmpty, segments[2] == "models" {
            flavor = .gemini
            last = segments[3]
        } else if segments.count == 10, segments[0].isEmpty, segments[2] == "projects", segments[4] == "locations",
            segments[6] == "publishers", segments[8] == "models"
        {
            flavor = .vertex
            last = segments[9]
        } else {
            return nil
        }
        guard let colon = last.lastIndex(of: ":") else { return nil }
        let model = String(last[..<colon])
        let method = last[last.index(after: colon)...]
        guard !model.isEmpty else { return nil }
        switch method {
        case "generateContent": return Route(flavor: flavor, model: model, stream: false)
        case "streamGenerateContent": return Route(flavor: flavor, model: model, stream: true)
        default: return nil
        }
    }

    /// An error in Google's shape.
    struct GoogleError: Sendable, Hashable {
        var status: Int
        var code: String
        var message: String
        var reason: String?
        var retryDelaySeconds: Int?

        func body(wrapped: Bool = false) -> String {
            var details: [String] = []
            if let reason {
                details.append(
                    "{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\(JSONValue.quoted(reason)),\"domain\":\"googleapis.com\"}")
            }
            if let retryDelaySeconds {
                details.append("{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"\(retryDelaySeconds)s\"}")
            }
            let error =
                "{\"error\":{\"code\":\(status),\"message\":\(JSONValue.quoted(message)),\"status\":\(JSONValue.quoted(code))"
                + (details.isEmpty ? "" : ",\"details\":[\(details.joined(separator: ","))]") + "}}"
            return wrapped ? "[\(error)]" : error
        }

        /// As the fake handler sends it: the native body, the status, no extra header (Google
        /// gives no `Retry-After`: the delay is `RetryInfo` in the body).
        func providerError(wrapped: Bool) -> ProviderError {
            ProviderError(status: status, message: message, type: code, code: reason, rawBody: body(wrapped: wrapped))
        }

        static func invalid(_ message: String) -> GoogleError {
            GoogleError(status: 400, code: "INVALID_ARGUMENT", message: message)
        }

        static func unknownField(_ name: String, at path: String) -> GoogleError {
            invalid("Invalid JSON payload received. Unknown name \"\(name)\" at '\(path)': Cannot find field.")
        }
    }

    /// The key check: nil when the request may pass.
    static func authorize(_ flavor: Flavor, headers: [(name: String, value: String)], query: String, requiredKey: String?) -> GoogleError? {
        guard let requiredKey else { return nil }
        func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name }?.value }
        switch flavor {
        case .gemini:
            let key = header("x-goog-api-key") ?? queryValue(query, "key")
            if key == requiredKey { return nil }
            if key == nil {
                return GoogleError(
                    status: 403, code: "PERMISSION_DENIED",
                    message: "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.")
            }
            return GoogleError(status: 400, code: "INVALID_ARGUMENT", message: "API key not valid. Please pass a valid API key.", reason: "API_KEY_INVALID")
        case .vertex:
            if let auth = header("authorization"), auth.lowercased().hasPrefix("bearer "), auth.dropFirst(7) == requiredKey { return nil }
            return GoogleError(
                status: 401, code: "UNAUTHENTICATED",
                message:
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                reason: "ACCESS_TOKEN_TYPE_UNSUPPORTED")
        }
    }

    static func queryValue(_ query: String, _ name: String) -> String? {
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.first == Substring(name) { return kv.count > 1 ? String(kv[1]) : "" }
        }
        return nil
    }

    // MARK: Validation

    static let topLevel: Set<String> = [
        "contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings", "cachedContent", "labels",
    ]
    static let partFields: Set<String> = [
        "text", "inlineData", "fileData", "functionCall", "functionResponse", "thought", "thoughtSignature", "executableCode",
        "codeExecutionResult", "videoMetadata",
    ]
    static let dataFields: Set<String> = ["text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult"]
    static let generationFields: Set<String> = [
        "maxOutputTokens", "temperature", "topP", "topK", "stopSequences", "candidateCount", "seed", "presencePenalty",
        "frequencyPenalty", "responseMimeType", "responseSchema", "responseJsonSchema", "thinkingConfig", "responseLogprobs", "logprobs",
        "responseModalities", "mediaResolution",
    ]
    /// The keywords of Gemini's `Schema` (an OpenAPI 3.0 subset).
    static let schemaFields: Set<String> = [
        "type", "format", "title", "description", "nullable", "enum", "items", "minItems", "maxItems", "properties", "required",
        "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "propertyOrdering", "default",
        "minimum", "maximum",
    ]
    static let schemaTypes: Set<String> = ["STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"]

    /// Checks a `generateContent` body the way the real API does; nil when it would be accepted.
    static func validate(_ body: JSONValue, flavor: Flavor) -> GoogleError? {
        guard case .object(let request) = body else { return .invalid("Invalid JSON payload received. Expected an object.") }
        for key in request.keys.sorted() where !topLevel.contains(key) {
            return .invalid("Invalid JSON payload received. Unknown name \"\(key)\": Cannot find field.")
        }
        guard let contents = request["contents"]?.arrayValue, !contents.isEmpty else {
            return .invalid("* GenerateContentRequest.contents: contents is not specified")
        }
        // Calls of the previous model turn, to match function responses against.
        var previousCalls: [String] = []
        for (i, content) in contents.enumerated() {
            let at = "contents[\(i)]"
            let role = content["role"]?.stringValue ?? "user"
            guard role == "user" || role == "model" else {
                return .invalid("Please use a valid role: user, model.")
            }
            guard let parts = content["parts"]?.arrayValue, !parts.isEmpty else {
                return .invalid("* GenerateContentRequest.\(at).parts: contents.parts must not be empty.")
            }
            var calls: [String] = []
            var responses: [String] = []
            for (k, part) in parts.enumerated() {
                guard case .object(let p) = part else { return .invalid("* GenerateContentRequest.\(at).parts[\(k)]: must be an object") }
                for key in p.keys.sorted() where !partFields.contains(key) {
                    return .unknownField(key, at: "\(at).parts[\(k)]")
                }
                let data = p.keys.filter { dataFields.contains($0) }
                guard data.count == 1 else {
                    return .invalid("* GenerateContentRequest.\(at).parts[\(k)].data: required oneof field 'data' must have one initialized field")
                }
                if let text = p["text"] {
                    guard let t = text.stringValue, !t.isEmpty else {
                        return .invalid("Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again.")
                    }
                }
                if let call = p["functionCall"] {
                    guard role == "model" else { return .invalid("* GenerateContentRequest.\(at): a function call must come from the model") }
                    guard let name = call["name"]?.stringValue, !name.isEmpty else {
                        return .invalid("* GenerateContentRequest.\(at).parts[\(k)].function_call.name: Name cannot be empty.")
                    }
                    if flavor == .vertex, call["id"] != nil { return .unknownField("id", at: "\(at).parts[\(k)].function_call") }
                    calls.append(name)
                }
                if let response = p["functionResponse"] {
                    guard let name = response["name"]?.stringValue, !name.isEmpty else {
                        return .invalid("* GenerateContentRequest.\(at).parts[\(k)].function_response.name: Name cannot be empty.")
                    }
                    guard case .object? = response["response"] else {
                        return .invalid("* GenerateContentRequest.\(at).parts[\(k)].function_response.response: must be an object")
                    }
                    responses.append(name)
                }
            }
            if !responses.isEmpty {
                guard role == "user", responses.count == parts.count, !previousCalls.isEmpty else {
                    return .invalid(
                        "Please ensure that function response turn comes immediately after a function call turn.")
                }
                guard responses == previousCalls else {
                    return .invalid(
                        "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.")
                }
            } else if !previousCalls.isEmpty {
                return .invalid("Please ensure that function call turn comes immediately after a user turn or after a function response turn.")
            }
            previousCalls = calls
        }
        if let system = request["systemInstruction"] {
            guard let parts = system["parts"]?.arrayValue, !parts.isEmpty else {
                return .invalid("* GenerateContentRequest.system_instruction.parts: contents.parts must not be empty.")
            }
            for part in parts where (part["text"]?.stringValue ?? "").isEmpty {
                return .invalid("Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again.")
            }
        }
        for (t, tool) in (request["tools"]?.arrayValue ?? []).enumerated() {
            for (d, decl) in (tool["functionDeclarations"]?.arrayValue ?? []).enumerated() {
                let at = "tools[\(t)].function_declarations[\(d)]"
                guard let name = decl["name"]?.stringValue, !name.isEmpty, name.count <= 64 else {
                    return .invalid("* GenerateContentRequest.\(at).name: Invalid function name.")
                }
                if let params = decl["parameters"] {
                    if let e = validateSchema(params, at: "\(at).parameters") { return e }
                }
            }
        }
        if let mode = request["toolConfig"]?["functionCallingConfig"]?["mode"]?.stringValue, !["AUTO", "ANY", "NONE", "VALIDATED"].contains(mode) {
            return .invalid("Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), \"\(mode)\"")
        }
        if let config = request["generationConfig"] {
            guard case .object(let g) = config else { return .invalid("generation_config must be an object") }
            for key in g.keys.sorted() where !generationFields.contains(key) {
                return .unknownField(key, at: "generation_config")
            }
            if let schema = g["responseSchema"], let e = validateSchema(schema, at: "generation_config.response_schema") { return e }
        }
        return nil
    }

    static func validateSchema(_ schema: JSONValue, at path: String) -> GoogleError? {
        guard case .object(let s) = schema else { return .invalid("* GenerateContentRequest.\(path): must be an object") }
        for key in s.keys.sorted() where !schemaFields.contains(key) {
            return .unknownField(key, at: path)
        }
        if let type = s["type"] {
            guard let t = type.stringValue, schemaTypes.contains(t.uppercased()) else {
                return .invalid("Invalid value at '\(path).type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type), \(type.canonicalJSON())")
            }
        }
        if s["type"]?.stringValue?.uppercased() == "OBJECT", (s["properties"]?.objectValue ?? [:]).isEmpty {
            return .invalid("* GenerateContentRequest.\(path).properties: should be non-empty for OBJECT type")
        }
        if let e = s["enum"], !(e.arrayValue?.allSatisfy { $0.stringValue != nil } ?? false) {
            return .invalid("Invalid value at '\(path).enum': enum values must be strings")
        }
        if let items = s["items"], let e = validateSchema(items, at: "\(path).items") { return e }
        for (name, property) in s["properties"]?.objectValue ?? [:] {
            if let e = validateSchema(property, at: "\(path).properties[\(name)].value") { return e }
        }
        for (k, option) in (s["anyOf"]?.arrayValue ?? []).enumerated() {
            if let e = validateSchema(option, at: "\(path).any_of[\(k)]") { return e }
        }
        return nil
    }

    // MARK: Reading the request

    /// Whitespace-separated words of the text parts of all turns and the system instruction.
    static func promptWords(_ body: JSONValue) -> Int {
        var parts: [JSONValue] = body["systemInstruction"]?["parts"]?.arrayValue ?? []
        for content in body["contents"]?.arrayValue ?? [] { parts += content["parts"]?.arrayValue ?? [] }
        var count = 0
        for part in parts {
            guard let text = part["text"]?.stringValue else { continue }
            count += text.split(whereSeparator: { $0.isWhitespace }).count
        }
        return count
    }

    // MARK: Answers

    /// Builds the JSON of one answer.
    struct Answer {
        var responseID: String
        var model: String
        var promptTokens: Int

        func usage(_ completion: Int) -> String {
            "{\"promptTokenCount\":\(promptTokens),\"candidatesTokenCount\":\(completion),\"totalTokenCount\":\(promptTokens + completion)}"
        }

        private func response(parts: String?, finish: String?, completion: Int) -> String {
            var candidate = "{"
            if let parts { candidate += "\"content\":{\"parts\":[\(parts)],\"role\":\"model\"}," }
            if let finish { candidate += "\"finishReason\":\"\(finish)\"," }
            candidate += "\"index\":0}"
            return "{\"candidates\":[\(candidate)],\"usageMetadata\":\(usage(completion)),\"modelVersion\":\(JSONValue.quoted(model)),\"responseId\":\(JSONValue.quoted(responseID))}"
        }

        static func textPart(_ text: String) -> String { "{\"text\":\(JSONValue.quoted(text))}" }

        static func callPart(_ call: (name: String, args: JSONValue)) -> String {
            "{\"functionCall\":{\"name\":\(JSONValue.quoted(call.name)),\"args\":\(call.args.canonicalJSON())}}"
        }

        /// A whole answer: the text, or a function call.
        func complete(tokens: [String], call: (name: String, args: JSONValue)?) -> String {
            if let call { return response(parts: Self.callPart(call), finish: "STOP", completion: 5) }
            return response(parts: Self.textPart(tokens.joined()), finish: "STOP", completion: tokens.count)
        }

        /// A blocked prompt: HTTP 200, no candidates.
        func blocked() -> String {
            "{\"promptFeedback\":{\"blockReason\":\"SAFETY\",\"safetyRatings\":[{\"category\":\"HARM_CATEGORY_DANGEROUS_CONTENT\",\"probability\":\"HIGH\",\"blocked\":true}]},\"usageMetadata\":{\"promptTokenCount\":\(promptTokens),\"totalTokenCount\":\(promptTokens)},\"modelVersion\":\(JSONValue.quoted(model)),\"responseId\":\(JSONValue.quoted(responseID))}"
        }

        /// One stream event carrying token `index` (usage so far; the last one carries STOP).
        func tokenEvent(_ token: String, index: Int, last: Bool) -> String {
            "data: " + response(parts: Self.textPart(token), finish: last ? "STOP" : nil, completion: index + 1) + "\r\n\r\n"
        }

        /// A streamed function call: whole (the finish follows in `stopEvent`).
        func callEvent(_ call: (name: String, args: JSONValue)) -> String {
            "data: " + response(parts: Self.callPart(call), finish: nil, completion: 5) + "\r\n\r\n"
        }

        /// The last event: STOP and the final usage, with an empty text part as Gemini sends it.
        func stopEvent(completion: Int) -> String {
            "data: " + response(parts: "{\"text\":\"\"}", finish: "STOP", completion: completion) + "\r\n\r\n"
        }

        func blockedEvent() -> String { "data: " + blocked() + "\r\n\r\n" }

        static let malformedEvent = "data: {\"candidates\": [\r\n\r\n"
    }

    /// The error an in-stream error fault sends (Vertex array-wraps it).
    static func streamErrorEvent(_ flavor: Flavor) -> String {
        let error = GoogleError(status: 503, code: "UNAVAILABLE", message: "The model is overloaded. Please try again later.")
        return "data: " + error.body(wrapped: flavor == .vertex) + "\r\n\r\n"
    }

    /// The error of an error-status fault, in Google's shape.
    static func error(for fault: FaultSpec, flavor: Flavor, model: String, promptTokens: Int) -> GoogleError {
        switch fault.behavior {
        case .contextLength:
            return .invalid("The input token count (\(max(promptTokens, 1_048_577))) exceeds the maximum number of tokens allowed (1048576).")
        case .unauthorized:
            return authorize(flavor, headers: [("x-goog-api-key", "wrong")], query: "", requiredKey: "right")!
        case .modelNotFound:
            return GoogleError(status: 404, code: "NOT_FOUND", message: "models/\(model) is not found for API version v1beta, or is not supported for generateContent.")
        case .badRequest:
            return .invalid("* GenerateContentRequest.contents: rejected by the fake provider (bad-request fault)")
        case .contentFilter:
            return .invalid("The request was blocked by the fake provider (content-filter fault; `blocked` is Gemini's own safety block).")
        case .noPrefill:
            return .invalid("Please ensure that the last turn is a user turn or a function response turn (no-prefill fault).")
        case .streamError:
            return GoogleError(status: 503, code: "UNAVAILABLE", message: "The model is overloaded. Please try again later.")
        case .status(let status):
            switch status {
            case 429:
                return GoogleError(
                    status: 429, code: "RESOURCE_EXHAUSTED",
                    message: "You exceeded your current quota, please check your plan and billing details.",
                    retryDelaySeconds: fault.retryAfterSeconds)
            case 400: return .invalid("Request contains an invalid argument.")
            case 401: return authorize(.vertex, headers: [], query: "", requiredKey: "right")!
            case 403: return GoogleError(status: 403, code: "PERMISSION_DENIED", message: "Permission denied on resource project fake.")
            case 404: return GoogleError(status: 404, code: "NOT_FOUND", message: "Requested entity was not found.")
            case 500: return GoogleError(status: 500, code: "INTERNAL", message: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting")
            case 503: return GoogleError(status: 503, code: "UNAVAILABLE", message: "The model is overloaded. Please try again later.")
            case 504: return GoogleError(status: 504, code: "DEADLINE_EXCEEDED", message: "Deadline expired before operation could complete.")
            default: return GoogleError(status: status, code: status >= 500 ? "UNAVAILABLE" : "INVALID_ARGUMENT", message: "Rejected by the fake provider (status \(status)).")
            }
        default:
            return GoogleError(status: 500, code: "INTERNAL", message: "An internal error has occurred.")
        }
    }
}
