import AIGatewayAPI
import Foundation
import NIOHTTP1

/// The deterministic answer: words cycled to the requested token count.
enum AnswerText {
    static let words: [String] = [
        "Kubernetes", "is", "an", "open-source", "system", "for", "automating", "deployment,", "scaling,", "and",
        "management", "of", "containerized", "applications.", "It", "groups", "containers", "that", "make", "up",
        "an", "application", "into", "logical", "units", "for", "easy", "management", "and", "discovery.",
    ]

    /// Content tokens: the first is the bare word, later ones are " word".
    static func tokens(count: Int) -> [String] {
        guard count > 0 else { return [] }
        var result: [String] = []
        result.reserveCapacity(count)
        for i in 0..<count {
            let word = words[i % words.count]
            result.append(i == 0 ? word : " " + word)
        }
        return result
    }

    /// The tokens still to send when the answer so far is `prefill`, or nil if `prefill` is not a prefix
    /// of the full answer. A prefill ending inside a token yields the rest of that token first.
    static func remainder(of tokens: [String], after prefill: String) -> [String]? {
        var consumed = Substring(prefill)
        for (index, token) in tokens.enumerated() {
            if consumed.isEmpty { return Array(tokens[index...]) }
            if consumed.hasPrefix(token) {
                consumed = consumed.dropFirst(token.count)
            } else if token.hasPrefix(consumed) {
                return [String(token.dropFirst(consumed.count))] + tokens[(index + 1)...]
            } else {
                return nil
            }
        }
        return consumed.isEmpty ? [] : nil
    }
}

/// The parts of a chat completion request the fake looks at.
struct ChatRequest: Decodable {
    struct StreamOptions: Decodable {
        var include_usage: Bool?
    }

    struct Message: Decodable {
        var role: String?
        var content: Content?
    }

    /// Only string content counts for prompt tokens and prefill; anything else is kept opaque.
    enum Content: Decodable {
        case text(String)
        case other

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) {
                self = .text(text)
            } else {
                self = .other
            }
        }

        var text: String? {
            if case .text(let text) = self { return text }
            return nil
        }
    }

    struct Tool: Decodable {
        struct Function: Decodable {
            var name: String?
        }
        var function: Function?
    }

    var model: String?
    var stream: Bool?
    var stream_options: StreamOptions?
    var messages: [Message]?
    var tools: [Tool]?

    var toolNames: [String] { (tools ?? []).compactMap { $0.function?.name } }

    /// Whitespace-separated words across all messages' string content.
    var promptWordCount: Int {
        var count = 0
        for message in messages ?? [] {
            guard let text = message.content?.text else { continue }
            var inWord = false
            for scalar in text.unicodeScalars {
                if scalar.properties.isWhitespace {
                    inWord = false
                } else if !inWord {
                    inWord = true
                    count += 1
                }
            }
        }
        return count
    }

    /// True when the last message has role `assistant`.
    var endsWithAssistant: Bool {
        messages?.last?.role == "assistant"
    }
}

enum JSONText {
    /// `value` as a JSON string literal, quotes included.
    static func quoted(_ value: String) -> String { JSONValue.quoted(value) }

    static func quotedOrNull(_ value: String?) -> String {
        value.map(quoted) ?? "null"
    }
}

/// An error response in OpenAI's shape.
struct ProviderError {
    var status: Int
    var message: String
    var type: String
    var code: String?
    var extraHeaders: [(String, String)] = []
    /// A body in another API's shape; nil writes OpenAI's.
    var rawBody: String?

    var body: String {
        rawBody ?? "{\"error\":{\"message\":\(JSONText.quoted(message)),\"type\":\(JSONText.quoted(type)),\"param\":null,\"code\":\(JSONText.quotedOrNull(code))}}"
    }

    static func missingModel() -> ProviderError {
        ProviderError(status: 400, message: "you must provide a model parameter", type: "invalid_request_error", code: nil)
    }

    static func malformedJSON(_ detail: String) -> ProviderError {
        ProviderError(
            status: 400,
            message:
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.) \(detail)",
            type: "invalid_request_error",
            code: nil
        )
    }

    static func invalidAPIKey(provided: Bool) -> ProviderError {
        ProviderError(
            status: 401,
            message: provided
                ? "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
                : "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            type: "invalid_request_error",
            code: "invalid_api_key"
        )
    }

    static func notFound(method: String, path: String) -> ProviderError {
        ProviderError(status: 404, message: "Invalid URL (\(method) \(path))", type: "invalid_request_error", code: nil)
    }

    static func noPrefill() -> ProviderError {
        ProviderError(
            status: 400,
            message:
                "Assistant message prefill is not supported by this model: the last message must have role 'user' (or 'tool'), not 'assistant'.",
            type: "invalid_request_error",
            code: "invalid_request_error"
        )
    }

    /// The error an error-status fault produces.
    static func forFault(_ fault: FaultSpec, model: String, promptTokens: Int) -> ProviderError {
        var error: ProviderError
        switch fault.behavior {
        case .contextLength:
            error = ProviderError(
                status: 400,
                message:
                    "This model's maximum context length is 8192 tokens. However, your messages resulted in \(max(promptTokens, 8193)) tokens. Please reduce the length of the messages.",
                type: "invalid_request_error",
                code: "context_length_exceeded"
            )
        case .contentFilter:
            error = ProviderError(
                status: 400,
                message:
                    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
                type: "invalid_request_error",
                code: "content_filter"
            )
        case .unauthorized:
            error = .invalidAPIKey(provided: true)
        case .modelNotFound:
            error = ProviderError(
                status: 404,
                message: "The model `\(model)` does not exist or you do not have access to it.",
                type: "invalid_request_error",
                code: "model_not_found"
            )
        case .badRequest:
            error = ProviderError(
                status: 400,
                message: "Invalid value for 'messages': the request was rejected by the fake provider (bad-request fault).",
                type: "invalid_request_error",
                code: "invalid_request_error"
            )
        case .status(let status):
            error = Self.forStatus(status, model: model)
        case .noPrefill:
            error = .noPrefill()
        default:
            error = Self.forStatus(500, model: model)
        }
        if let code = fault.errorCode { error.code = code }
        if let seconds = fault.retryAfterSeconds { error.extraHeaders.append(("retry-after", String(seconds))) }
        if let reset = fault.rateLimitReset { error.extraHeaders.append(("x-ratelimit-reset-requests", reset)) }
        return error
    }

    static func forStatus(_ status: Int, model: String) -> ProviderError {
        switch status {
        case 429:
            return ProviderError(
                status: 429,
                message:
                    "Rate limit reached for \(model) on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again later.",
                type: "requests",
                code: "rate_limit_exceeded"
            )
        case 401:
            return .invalidAPIKey(provided: true)
        case 403:
            return ProviderError(status: 403, message: "You are not allowed to access this model.", type: "permission_error", code: nil)
        case 404:
            return ProviderError(
                status: 404,
                message: "The model `\(model)` does not exist or you do not have access to it.",
                type: "invalid_request_error",
                code: nil
            )
        case 503:
            return ProviderError(status: 503, message: "The server is overloaded or not ready yet.", type: "server_error", code: nil)
        case 500...599:
            return ProviderError(
                status: status,
                message: "The server had an error while processing your request. Sorry about that!",
                type: "server_error",
                code: nil
            )
        default:
            return ProviderError(
                status: status,
                message: "The request was rejected by the fake provider (status \(status)).",
                type: "invalid_request_error",
                code: nil
            )
        }
    }
}

/// Builds the JSON of answers for one response.
struct AnswerWire {
    var id: String
    var model: String
    var created: Int
    var promptTokens: Int
    var includeUsageInStream: Bool

    func usage(completionTokens: Int) -> String {
        "{\"prompt_tokens\":\(promptTokens),\"completion_tokens\":\(completionTokens),\"total_tokens\":\(promptTokens + completionTokens)}"
    }

    func completion(tokens: [String]) -> String {
        let content = JSONText.quoted(tokens.joined())
        return
            "{\"id\":\(JSONText.quoted(id)),\"object\":\"chat.completion\",\"created\":\(created),\"model\":\(JSONText.quoted(model)),\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\(content),\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":\(usage(completionTokens: tokens.count))}"
    }

    private var chunkPrefix: String {
        "data: {\"id\":\(JSONText.quoted(id)),\"object\":\"chat.completion.chunk\",\"created\":\(created),\"model\":\(JSONText.quoted(model)),\"choices\":["
    }

    private var chunkSuffix: String {
        includeUsageInStream ? "],\"usage\":null}\n\n" : "]}\n\n"
    }

    func choiceEvent(delta: String, finishReason: String?) -> String {
        chunkPrefix + "{\"index\":0,\"delta\":\(delta),\"logprobs\":null,\"finish_reason\":\(JSONText.quotedOrNull(finishReason))}"
            + chunkSuffix
    }

    func roleEvent() -> String {
        choiceEvent(delta: "{\"role\":\"assistant\",\"content\":\"\"}", finishReason: nil)
    }

    func tokenEvent(_ token: String) -> String {
        choiceEvent(delta: "{\"content\":\(JSONText.quoted(token))}", finishReason: nil)
    }

    func finishEvent(_ reason: String = "stop") -> String {
        choiceEvent(delta: "{}", finishReason: reason)
    }

    func usageEvent(completionTokens: Int) -> String {
        chunkPrefix + "],\"usage\":\(usage(completionTokens: completionTokens))}\n\n"
    }

    static let malformedEvent = "data: {\"choices\": [\n\n"
    static let doneEvent = "data: [DONE]\n\n"
}

/// The arguments of the `tool-call` fault's call, in the fragments a stream sends them in.
enum FakeToolCall {
    static let argumentFragments = ["{\"location\":", " \"Paris\",", " \"unit\": \"celsius\"}"]
    static var arguments: String { argumentFragments.joined() }
}

extension AnswerWire: FakeAnswerFormat {
    var streamContentType: String { "text/event-stream" }

    func completion(_ content: FakeAnswerContent) -> [UInt8] {
        let message: String
        let finish: String
        switch content.kind {
        case .text:
            return Array(completion(tokens: content.tokens).utf8)
        case .toolCall(let id, let name, let fragments):
            message =
                "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\(JSONText.quoted(id)),\"type\":\"function\",\"function\":{\"name\":\(JSONText.quoted(name)),\"arguments\":\(JSONText.quoted(fragments.joined()))}}]}"
            finish = "tool_calls"
        case .blocked:
            message = "{\"role\":\"assistant\",\"content\":null,\"refusal\":\"I can't help with that.\"}"
            finish = "content_filter"
        }
        let body =
            "{\"id\":\(JSONText.quoted(id)),\"object\":\"chat.completion\",\"created\":\(created),\"model\":\(JSONText.quoted(model)),\"choices\":[{\"index\":0,\"message\":\(message),\"logprobs\":null,\"finish_reason\":\"\(finish)\"}],\"usage\":\(usage(completionTokens: 1))}"
        return Array(body.utf8)
    }

    func streamStart(_ content: FakeAnswerContent) -> [UInt8] { Array(roleEvent().utf8) }

    func textEvent(_ token: String, index: Int) -> [UInt8] { Array(tokenEvent(token).utf8) }

    func toolCallEvents(id: String, name: String, fragments: [String]) -> [UInt8] {
        var s = choiceEvent(
            delta: "{\"tool_calls\":[{\"index\":0,\"id\":\(JSONText.quoted(id)),\"type\":\"function\",\"function\":{\"name\":\(JSONText.quoted(name)),\"arguments\":\"\"}}]}",
            finishReason: nil)
        for f in fragments {
            s += choiceEvent(delta: "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\(JSONText.quoted(f))}}]}", finishReason: nil)
        }
        return Array(s.utf8)
    }

    func streamEnd(_ content: FakeAnswerContent, sentTokens: Int, done: Bool) -> [UInt8] {
        var s: String
        switch content.kind {
        case .text: s = finishEvent()
        case .toolCall: s = finishEvent("tool_calls")
        case .blocked: s = finishEvent("content_filter")
        }
        if includeUsageInStream {
            if case .text = content.kind {
                s += usageEvent(completionTokens: sentTokens)
            } else {
                s += usageEvent(completionTokens: 1)
            }
        }
        if done { s += Self.doneEvent }
        return Array(s.utf8)
    }

    var malformedEvent: [UInt8] { Array(Self.malformedEvent.utf8) }

    func streamErrorEvent() -> [UInt8] {
        Array("data: {\"error\":{\"message\":\"The server is overloaded or not ready yet.\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n".utf8)
    }
}

/// OpenAI Chat Completions (`/v1/chat/completions`, `/chat/completions`) and Azure OpenAI
/// (`/openai/deployments/<deployment>/chat/completions`).
struct OpenAIFakeAPI: FakeNativeAPI {
    func matches(method: HTTPMethod, path: String) -> Bool {
        method == .POST
            && (path == "/v1/chat/completions" || path == "/chat/completions" || FakeProviderHandler.azureDeployment(path: path) != nil)
    }

    func read(_ request: FakeHTTPRequest, provider: FakeProvider) -> FakeNativeRead {
        let azureDeployment = FakeProviderHandler.azureDeployment(path: request.path)
        var parsed: ChatRequest?
        var parseProblem: String?
        if let body = request.body, body.readableBytes > 0 {
            do {
                parsed = try JSONDecoder().decode(ChatRequest.self, from: Data(body.readableBytesView))
            } catch {
                parseProblem = FakeProviderHandler.describe(decodingError: error)
            }
        } else {
            parseProblem = "The request body is empty."
        }
        let model = azureDeployment ?? parsed?.model.flatMap { $0.isEmpty ? nil : $0 }
        let stream = parsed?.stream ?? false
        func reject(_ e: ProviderError) -> FakeNativeRead { FakeNativeRead(model: model, stream: stream, outcome: .reject(e)) }

        if let requiredKey = provider.configuration.requiredKey {
            let authorization = request.header("authorization")
            let apiKey = request.header("api-key")
            let bearer = authorization.flatMap { value -> String? in
                guard value.count > 7, value.prefix(7).lowercased() == "bearer " else { return nil }
                return String(value.dropFirst(7)).trimmingWhitespace()
            }
            guard bearer == requiredKey || apiKey == requiredKey else {
                return reject(.invalidAPIKey(provided: authorization != nil || apiKey != nil))
            }
        }
        guard let chat = parsed else { return reject(.malformedJSON(parseProblem ?? "")) }
        guard let model else { return reject(.missingModel()) }
        let wire = AnswerWire(
            id: provider.nextResponseID(), model: model, created: Int(Date().timeIntervalSince1970), promptTokens: chat.promptWordCount,
            includeUsageInStream: chat.stream_options?.include_usage ?? false)
        let prefill = chat.endsWithAssistant ? (chat.messages?.last?.content?.text ?? "") : nil
        return FakeNativeRead(
            model: model, stream: stream,
            outcome: .answer(
                FakeNativeRequest(
                    promptTokens: chat.promptWordCount, prefill: prefill, toolNames: chat.toolNames, format: wire,
                    errorForFault: { fault, model, promptTokens in ProviderError.forFault(fault, model: model, promptTokens: promptTokens) })))
    }
}
