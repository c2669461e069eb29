import AIGatewayAPI
import AIGatewayProviders
import Foundation
import NIOHTTP1

/// Amazon Bedrock's Converse API (`POST /model/{modelId}/converse` and `/converse-stream`), as strict
/// as the real one where the gateway could go wrong: the SigV4 signature is verified (the access key
/// `FakeProviderConfiguration.awsAccessKeyID`, the secret the fake's required key; 403
/// `InvalidSignatureException` otherwise), roles alternate starting with `user`, content blocks are
/// well formed and never empty, tool blocks need a `toolConfig`, every `toolResult` answers a
/// `toolUse` of the previous turn, unknown fields are refused, and `inferenceConfig` is checked.
struct BedrockFakeAPI: FakeNativeAPI {
    func matches(method: HTTPMethod, path: String) -> Bool {
        method == .POST && path.hasPrefix("/model/") && (path.hasSuffix("/converse") || path.hasSuffix("/converse-stream"))
    }

    static func modelID(path: String) -> String? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[1] == "model", !parts[2].isEmpty else { return nil }
        return percentDecoded(parts[2])
    }

    /// A path segment with `%XX` decoded (`+` stays `+`, as in a path); nil when a `%` is not
    /// followed by two hex digits or the result is not UTF-8, as Foundation's
    /// `removingPercentEncoding` (which cost the fake an eighth of its CPU per Bedrock request).
    static func percentDecoded(_ segment: Substring) -> String? {
        guard segment.utf8.contains(UInt8(ascii: "%")) else { return String(segment) }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(segment.utf8.count)
        var it = segment.utf8.makeIterator()
        while let c = it.next() {
            guard c == UInt8(ascii: "%") else {
                out.append(c)
                continue
            }
            guard let h = it.next().flatMap(hex), let l = it.next().flatMap(hex) else { return nil }
            out.append(h << 4 | l)
        }
        return String(validating: out, as: UTF8.self)
    }

    func read(_ request: FakeHTTPRequest, provider: FakeProvider) -> FakeNativeRead {
        let model = Self.modelID(path: request.path)
        let stream = request.path.hasSuffix("/converse-stream")
        func reject(_ status: Int, _ type: String, _ message: String) -> FakeNativeRead {
            FakeNativeRead(model: model, stream: stream, outcome: .reject(BedrockFakeErrors.error(status, type, message)))
        }
        if let secret = provider.configuration.requiredKey {
            let headers = request.head.headers.map { (name: $0.name, value: $0.value) }
            let body = request.body.map { Array($0.readableBytesView) } ?? []
            let access = provider.configuration.awsAccessKeyID
            var unknownKey = false
            let problem = SigV4.verify(method: request.head.method.rawValue, path: request.path, query: request.query, headers: headers, body: body) { id in
                if id == access { return secret }
                unknownKey = true
                return nil
            }
            if problem == nil, let token = request.header("x-amz-security-token"), !token.hasPrefix(FakeSTS.sessionTokenPrefix) {
                return reject(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
            }
            if let problem {
                if problem == "Missing Authentication Token" { return reject(403, "MissingAuthenticationTokenException", problem) }
                if unknownKey { return reject(403, "UnrecognizedClientException", "The security token included in the request is invalid.") }
                return reject(403, "InvalidSignatureException", problem)
            }
        }
        guard let model else { return reject(400, "ValidationException", "The provided model identifier is invalid.") }
        guard let body = request.json() as? [String: Any] else {
            return reject(400, "SerializationException", "The request body is not a JSON object.")
        }
        for key in body.keys where !Self.knownFields.contains(key) {
            return reject(400, "ValidationException", "Malformed input request: extraneous key [\(key)] is not permitted, please reformat your input and try again.")
        }
        var words = 0
        if let system = body["system"] {
            guard let blocks = system as? [[String: Any]] else { return reject(400, "ValidationException", "system: must be a list of blocks") }
            for b in blocks {
                guard let t = b["text"] as? String, !t.isEmpty else { return reject(400, "ValidationException", "system: a block needs a non-empty text") }
                words += Self.words(t)
            }
        }
        if let inference = body["inferenceConfig"] {
            guard let c = inference as? [String: Any] else { return reject(400, "ValidationException", "inferenceConfig: must be an object") }
            for key in c.keys where !["maxTokens", "temperature", "topP", "stopSequences"].contains(key) {
                return reject(400, "ValidationException", "inferenceConfig: extraneous key [\(key)] is not permitted")
            }
            if let m = c["maxTokens"], !((m as? Int).map { $0 >= 1 } ?? false) {
                return reject(400, "ValidationException", "inferenceConfig.maxTokens: must be an integer of at least 1")
            }
            if let t = c["temperature"], !((t as? Double).map { (0...1).contains($0) } ?? false) {
                return reject(400, "ValidationException", "inferenceConfig.temperature: must be between 0 and 1")
            }
            if let s = c["stopSequences"], !(s is [String]) { return reject(400, "ValidationException", "inferenceConfig.stopSequences: must be a list of strings") }
        }
        var toolNames: [String] = []
        let toolConfig = body["toolConfig"] as? [String: Any]
        if body["toolConfig"] != nil {
            guard let tools = toolConfig?["tools"] as? [[String: Any]], !tools.isEmpty else {
                return reject(400, "ValidationException", "toolConfig.tools: must have at least one tool")
            }
            for (k, t) in tools.enumerated() {
                guard let spec = t["toolSpec"] as? [String: Any], let name = spec["name"] as? String,
                    (spec["inputSchema"] as? [String: Any])?["json"] is [String: Any]
                else {
                    return reject(400, "ValidationException", "toolConfig.tools.\(k): a toolSpec needs a name and inputSchema.json")
                }
                guard Self.validToolName(name) else {
                    return reject(400, "ValidationException", "toolConfig.tools.\(k).toolSpec.name: must match [a-zA-Z0-9_-]{1,64}")
                }
                toolNames.append(name)
            }
            if let choice = toolConfig?["toolChoice"] {
                guard let c = choice as? [String: Any], c.count == 1, let key = c.keys.first, ["auto", "any", "tool"].contains(key) else {
                    return reject(400, "ValidationException", "toolConfig.toolChoice: must be one of auto, any, tool")
                }
                if key == "tool", let name = (c["tool"] as? [String: Any])?["name"] as? String, !toolNames.contains(name) {
                    return reject(400, "ValidationException", "toolConfig.toolChoice.tool.name: \(name) is not a declared tool")
                }
            }
        }
        guard let messages = body["messages"] as? [[String: Any]], !messages.isEmpty else {
            return reject(400, "ValidationException", "messages: at least one message is required")
        }
        var previousRole: String?
        var pendingToolUses: Set<String> = []
        var prefill: String?
        var sawToolBlock = false
        for (i, m) in messages.enumerated() {
            guard let role = m["role"] as? String, role == "user" || role == "assistant" else {
                return reject(400, "ValidationException", "messages.\(i).role: must be user or assistant")
            }
            if i == 0, role != "user" { return reject(400, "ValidationException", "A conversation must start with a user message. Try again with a conversation that starts with a user message.") }
            if role == previousRole {
                return reject(400, "ValidationException", "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.")
            }
            previousRole = role
            guard let blocks = m["content"] as? [[String: Any]], !blocks.isEmpty else {
                return reject(400, "ValidationException", "messages.\(i).content: must be a non-empty list of blocks")
            }
            var uses: Set<String> = []
            var text = ""
            for (k, b) in blocks.enumerated() {
                let at = "messages.\(i).content.\(k)"
                guard b.count == 1, let kind = b.keys.first else { return reject(400, "ValidationException", "\(at): a block has exactly one member") }
                switch kind {
                case "text":
                    guard let t = b["text"] as? String, !t.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || role == "user" && t == " " else {
                        return reject(400, "ValidationException", "\(at).text: The text field in the ContentBlock object is blank. Add text to the text field, and try again.")
                    }
                    words += Self.words(t)
                    text += t
                case "image":
                    guard role == "user", let image = b["image"] as? [String: Any], let format = image["format"] as? String,
                        ["png", "jpeg", "gif", "webp"].contains(format), let source = image["source"] as? [String: Any], let bytes = source["bytes"] as? String,
                        Data(base64Encoded: bytes) != nil
                    else {
                        return reject(400, "ValidationException", "\(at).image: needs format png/jpeg/gif/webp and source.bytes (base64)")
                    }
                case "toolUse":
                    sawToolBlock = true
                    guard role == "assistant", let use = b["toolUse"] as? [String: Any], let id = use["toolUseId"] as? String, let name = use["name"] as? String,
                        use["input"] is [String: Any], Self.validToolName(name)
                    else {
                        return reject(400, "ValidationException", "\(at).toolUse: needs toolUseId, a valid name and an input object")
                    }
                    uses.insert(id)
                case "toolResult":
                    sawToolBlock = true
                    guard role == "user", let result = b["toolResult"] as? [String: Any], let id = result["toolUseId"] as? String,
                        let content = result["content"] as? [[String: Any]], !content.isEmpty
                    else {
                        return reject(400, "ValidationException", "\(at).toolResult: needs toolUseId and a non-empty content list")
                    }
                    guard pendingToolUses.contains(id) else {
                        return reject(400, "ValidationException", "\(at): The toolUseId \(id) does not match a toolUse block of the previous turn.")
                    }
                    pendingToolUses.remove(id)
                default:
                    return reject(400, "ValidationException", "\(at): unknown content block \(kind)")
                }
            }
            if role == "user" {
                if !pendingToolUses.isEmpty {
                    return reject(400, "ValidationException", "messages.\(i): Expected toolResult blocks for the toolUse ids \(pendingToolUses.sorted().joined(separator: ", ")).")
                }
            } else {
                pendingToolUses = uses
            }
            if i == messages.count - 1, role == "assistant" {
                if !uses.isEmpty { return reject(400, "ValidationException", "messages.\(i): the final assistant message cannot contain toolUse blocks") }
                prefill = text
            }
        }
        if sawToolBlock && toolConfig == nil {
            return reject(400, "ValidationException", "The toolConfig field must be defined when using toolUse and toolResult content blocks.")
        }
        if let g = body["guardrailConfig"] {
            guard let c = g as? [String: Any], c["guardrailIdentifier"] is String, c["guardrailVersion"] is String else {
                return reject(400, "ValidationException", "guardrailConfig: needs guardrailIdentifier and guardrailVersion")
            }
        }
        let format = BedrockAnswerFormat(requestID: "fake-req-\(provider.nextResponseID())", promptTokens: words)
        return FakeNativeRead(
            model: model, stream: stream,
            outcome: .answer(
                FakeNativeRequest(
                    promptTokens: words, prefill: prefill, toolNames: toolNames, format: format,
                    errorForFault: { fault, model, promptTokens in BedrockFakeErrors.forFault(fault, model: model, promptTokens: promptTokens) })))
    }

    static let knownFields: Set<String> = [
        "messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig", "additionalModelRequestFields", "additionalModelResponseFieldPaths",
        "promptVariables", "requestMetadata", "performanceConfig",
    ]

    static func validToolName(_ name: String) -> Bool {
        (1...64).contains(name.count) && name.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == "-") }
    }

    static func words(_ s: String) -> Int { s.split(whereSeparator: { $0.isWhitespace }).count }
}

/// Bedrock's errors: `{"message":…}` with the type in `x-amzn-ErrorType`.
enum BedrockFakeErrors {
    static func error(_ status: Int, _ type: String, _ message: String) -> ProviderError {
        var e = ProviderError(status: status, message: message, type: type, code: nil)
        e.rawBody = "{\"message\":\(JSONText.quoted(message))}"
        e.extraHeaders.append(("x-amzn-ErrorType", "\(type):http://internal.amazon.com/coral/com.amazon.bedrock/"))
        e.extraHeaders.append(("x-amzn-RequestId", "fake-error-request"))
        return e
    }

    static func forFault(_ fault: FaultSpec, model: String, promptTokens: Int) -> ProviderError {
        var e: ProviderError
        switch fault.behavior {
        case .contextLength: e = error(400, "ValidationException", "Input is too long for requested model.")
        case .contentFilter: e = error(400, "ValidationException", "The request was blocked by a content filter (fake).")
        case .unauthorized: e = error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        case .modelNotFound: e = error(404, "ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier \(model).")
        case .badRequest: e = error(400, "ValidationException", "Malformed input request: rejected by the fake provider (bad-request fault).")
        case .noPrefill: e = error(400, "ValidationException", "This model doesn't support assistant message prefill. The conversation must end with a user message.")
        case .status(let s):
            switch s {
            case 429: e = error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
            case 403: e = error(403, "AccessDeniedException", "You don't have access to the model with the specified model ID.")
            case 404: e = error(404, "ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier \(model).")
            case 408: e = error(408, "ModelTimeoutException", "Model has timed out in processing the request.")
            case 424: e = error(424, "ModelErrorException", "The model failed to process the request.")
            case 503: e = error(503, "ServiceUnavailableException", "Bedrock is unable to process your request.")
            case 500...599: e = error(s, "InternalServerException", "The server encountered an error processing your request.")
            default: e = error(s, "ValidationException", "The request was rejected by the fake provider (status \(s)).")
            }
        default:
            e = error(503, "ServiceUnavailableException", "Bedrock is unable to process your request.")
        }
        if let seconds = fault.retryAfterSeconds { e.extraHeaders.append(("retry-after", String(seconds))) }
        return e
    }
}

/// Bedrock's answers: a Converse object, or ConverseStream's event-stream frames.
struct BedrockAnswerFormat: FakeAnswerFormat {
    var requestID: String
    var promptTokens: Int

    var streamContentType: String { "application/vnd.amazon.eventstream" }
    var responseHeaders: [(String, String)] { [("x-amzn-RequestId", requestID)] }

    static let blockedText = "Sorry, the model cannot answer this question (guardrail)."

    func usage(_ output: Int) -> String {
        "{\"inputTokens\":\(promptTokens),\"outputTokens\":\(output),\"totalTokens\":\(promptTokens + output)}"
    }

    func completion(_ content: FakeAnswerContent) -> [UInt8] {
        let blocks: String
        let stop: String
        let output: Int
        switch content.kind {
        case .text:
            blocks = "{\"text\":\(JSONText.quoted(content.tokens.joined()))}"
            stop = "end_turn"
            output = content.tokens.count
        case .toolCall(let id, let name, let fragments):
            blocks = "{\"toolUse\":{\"toolUseId\":\(JSONText.quoted(id)),\"name\":\(JSONText.quoted(name)),\"input\":\(fragments.joined())}}"
            stop = "tool_use"
            output = 1
        case .blocked:
            blocks = "{\"text\":\(JSONText.quoted(Self.blockedText))}"
            stop = "guardrail_intervened"
            output = 1
        }
        return Array(
            "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[\(blocks)]}},\"stopReason\":\"\(stop)\",\"usage\":\(usage(output)),\"metrics\":{\"latencyMs\":1}}"
                .utf8)
    }

    func frame(_ type: String, _ json: String) -> [UInt8] {
        EventStreamEncoder.encode(.event(type, json: json))
    }

    func streamStart(_ content: FakeAnswerContent) -> [UInt8] {
        var out = frame("messageStart", "{\"role\":\"assistant\",\"p\":\"abcdefgh\"}")
        if case .blocked = content.kind {
            out += frame("contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\(JSONText.quoted(Self.blockedText))}}")
        }
        return out
    }

    func textEvent(_ token: String, index: Int) -> [UInt8] {
        frame("contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\(JSONText.quoted(token))},\"p\":\"xyz\"}")
    }

    func toolCallEvents(id: String, name: String, fragments: [String]) -> [UInt8] {
        var out = frame("contentBlockStart", "{\"contentBlockIndex\":0,\"start\":{\"toolUse\":{\"toolUseId\":\(JSONText.quoted(id)),\"name\":\(JSONText.quoted(name))}}}")
        for f in fragments {
            out += frame("contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"toolUse\":{\"input\":\(JSONText.quoted(f))}}}")
        }
        return out + frame("contentBlockStop", "{\"contentBlockIndex\":0}")
    }

    func streamEnd(_ content: FakeAnswerContent, sentTokens: Int, done: Bool) -> [UInt8] {
        guard done else { return [] }
        var out: [UInt8] = []
        let stop: String
        let output: Int
        switch content.kind {
        case .text:
            out += frame("contentBlockStop", "{\"contentBlockIndex\":0}")
            stop = "end_turn"
            output = sentTokens
        case .toolCall:
            stop = "tool_use"
            output = 1
        case .blocked:
            out += frame("contentBlockStop", "{\"contentBlockIndex\":0}")
            stop = "guardrail_intervened"
            output = 1
        }
        out += frame("messageStop", "{\"stopReason\":\"\(stop)\"}")
        out += frame("metadata", "{\"usage\":\(usage(output)),\"metrics\":{\"latencyMs\":1}}")
        return out
    }

    /// A well-framed event whose payload is not JSON.
    var malformedEvent: [UInt8] { frame("contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":") }

    func streamErrorEvent() -> [UInt8] {
        EventStreamEncoder.encode(.exception("modelStreamErrorException", json: "{\"message\":\"The model stream failed (fake).\",\"originalStatusCode\":500}"))
    }
}
