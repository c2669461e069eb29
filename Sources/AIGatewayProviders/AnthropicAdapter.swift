import AIGatewayAPI

/// Anthropic Messages (`/v1/messages`): the OpenAI request becomes a Messages request (system
/// messages to the top-level `system`, same-role turns merged, tool results in the user turn
/// after the call, `max_tokens` always sent), and answers and streams come back as OpenAI's.
public struct AnthropicAdapter: ProviderAdapter {
    /// `max_tokens` when the client gives none (Anthropic requires one).
    public static let defaultMaxTokens = 4096
    public static let defaultVersion = "2023-06-01"

    public init() {}

    public var provider: String { "anthropic" }

    // MARK: Request

    public func makeRequest(_ input: AttemptInput) -> Result<UpstreamRequest, AttemptRefusal> {
        guard let model = input.model else {
            return .failure(.unsupported("model", "anthropic needs a model: set one on the entry or in the request"))
        }
        let conversation: ChatConversation
        switch input.chat.conversation() {
        case .success(let c): conversation = c
        case .failure(let invalid): return .failure(.unsupported("messages", invalid.description))
        }
        let body: [UInt8]
        var dropped: [String]
        switch Self.body(conversation, model: model, stream: input.chat.stream, prefill: input.prefill, capacity: input.chat.bytes.count + 256) {
        case .success(let (b, d)):
            body = b
            dropped = d
        case .failure(let refusal):
            return .failure(refusal)
        }
        dropped.append(contentsOf: conversation.tuningParameters)
        var headers: [UpstreamTarget.HeaderField] = [.init(name: "content-type", value: "application/json")]
        if input.chat.stream { headers.append(.init(name: "accept", value: "text/event-stream")) }
        var versioned = false
        for s in input.target.staticHeaders {
            headers.append(s)
            if HeaderName.equal(s.name, "anthropic-version") { versioned = true }
        }
        if !versioned { headers.append(.init(name: "anthropic-version", value: Self.defaultVersion)) }
        var request = UpstreamRequest(path: input.target.path, headers: headers, body: .bytes(body))
        request.dropped = dropped
        return .success(request)
    }

    /// One content block of a Messages turn.
    enum Block {
        case text(String)
        case imageBase64(mediaType: String, data: String)
        case imageURL(String)
        case toolUse(id: String, name: String, input: JSONValue)
        case toolResult(id: String, content: String)

        var isToolResult: Bool {
            if case .toolResult = self { return true }
            return false
        }

        func write(to s: inout [UInt8]) {
            switch self {
            case .text(let t):
                JSONBytes.append("{\"type\":\"text\",\"text\":", to: &s)
                JSONBytes.appendString(t, to: &s)
            case .imageBase64(let mediaType, let data):
                JSONBytes.append("{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":", to: &s)
                JSONBytes.appendString(mediaType, to: &s)
                JSONBytes.append(",\"data\":", to: &s)
                JSONBytes.appendString(data, to: &s)
                s.append(UInt8(ascii: "}"))
            case .imageURL(let url):
                JSONBytes.append("{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":", to: &s)
                JSONBytes.appendString(url, to: &s)
                s.append(UInt8(ascii: "}"))
            case .toolUse(let id, let name, let input):
                JSONBytes.append("{\"type\":\"tool_use\",\"id\":", to: &s)
                JSONBytes.appendString(id, to: &s)
                JSONBytes.append(",\"name\":", to: &s)
                JSONBytes.appendString(name, to: &s)
                JSONBytes.append(",\"input\":", to: &s)
                JSONBytes.appendValue(input, to: &s)
            case .toolResult(let id, let content):
                JSONBytes.append("{\"type\":\"tool_result\",\"tool_use_id\":", to: &s)
                JSONBytes.appendString(id, to: &s)
                JSONBytes.append(",\"content\":", to: &s)
                JSONBytes.appendString(content, to: &s)
            }
            s.append(UInt8(ascii: "}"))
        }
    }

    /// The Messages request body, and the OpenAI parameters left out.
    static func body(
        _ c: ChatConversation, model: String, stream: Bool, prefill: String?, capacity: Int = 512
    ) -> Result<([UInt8], [String]), AttemptRefusal> {
        if let n = c.n, n > 1 { return .failure(.unsupported("n", "anthropic answers with one choice only (n=\(n))")) }
        if c.logprobs || c.topLogprobs != nil { return .failure(.unsupported("logprobs", "anthropic does not return log probabilities")) }
        switch c.responseFormat {
        case .jsonObject?, .jsonSchema?:
            return .failure(.unsupported("response_format", "anthropic cannot guarantee a \(c.responseFormat!.type) answer"))
        case .text?, nil:
            break
        }
        var dropped: [String] = []
        // System and developer messages, in order, joined.
        var system: [String] = []
        var turns: [(role: String, blocks: [Block])] = []
        turns.reserveCapacity(c.messages.count)
        func add(_ role: String, _ blocks: [Block]) {
            guard !blocks.isEmpty else { return }
            if let last = turns.last, last.role == role {
                turns[turns.count - 1].blocks.append(contentsOf: blocks)
            } else {
                turns.append((role, blocks))
            }
        }
        for (i, m) in c.messages.enumerated() {
            switch m.role {
            case .system, .developer:
                let t = m.text
                if !t.isEmpty { system.append(t) }
            case .user:
                switch Self.contentBlocks(m.content, at: "messages[\(i)]") {
                case .success(let blocks): add("user", blocks)
                case .failure(let r): return .failure(r)
                }
            case .assistant:
                var blocks: [Block] = []
                let t = m.text
                if !t.isEmpty { blocks.append(.text(t)) }
                for call in m.toolCalls {
                    guard let input = call.argumentsObject else {
                        return .failure(.unsupported("messages", "messages[\(i)]: the arguments of tool call \(call.id) are not a JSON object"))
                    }
                    blocks.append(.toolUse(id: call.id, name: call.name, input: input))
                }
                add("assistant", blocks)
            case .tool:
                // Tool results go in the user turn right after the call; parallel results merge into it.
                add("user", [.toolResult(id: m.toolCallID ?? "", content: m.text)])
            }
        }
        if var prefill {
            // Anthropic rejects a final assistant turn that ends in white space; the model writes it.
            while let l = prefill.last, l.isWhitespace { prefill.removeLast() }
            if !prefill.isEmpty { add("assistant", [.text(prefill)]) }
        }
        // Within a user turn, tool results come first (Anthropic's placement rule).
        for k in turns.indices where turns[k].role == "user" && turns[k].blocks.contains(where: \.isToolResult) {
            turns[k].blocks = turns[k].blocks.filter(\.isToolResult) + turns[k].blocks.filter { !$0.isToolResult }
        }

        var s: [UInt8] = []
        s.reserveCapacity(capacity)
        JSONBytes.append("{\"model\":", to: &s)
        JSONBytes.appendString(model, to: &s)
        if !system.isEmpty {
            JSONBytes.append(",\"system\":", to: &s)
            JSONBytes.appendString(system.joined(separator: "\n"), to: &s)
        }
        JSONBytes.append(",\"messages\":[", to: &s)
        for (k, turn) in turns.enumerated() {
            if k > 0 { s.append(UInt8(ascii: ",")) }
            JSONBytes.append("{\"role\":", to: &s)
            JSONBytes.appendString(turn.role, to: &s)
            JSONBytes.append(",\"content\":[", to: &s)
            for (j, block) in turn.blocks.enumerated() {
                if j > 0 { s.append(UInt8(ascii: ",")) }
                block.write(to: &s)
            }
            JSONBytes.append("]}", to: &s)
        }
        JSONBytes.append("],\"max_tokens\":", to: &s)
        JSONBytes.appendInt(c.maxTokens ?? defaultMaxTokens, to: &s)
        if stream { JSONBytes.append(",\"stream\":true", to: &s) }
        if !c.stop.isEmpty {
            JSONBytes.append(",\"stop_sequences\":", to: &s)
            JSONBytes.appendValue(.array(c.stop.map(JSONValue.string)), to: &s)
        }
        if let t = c.temperature {
            // Anthropic takes 0...1; OpenAI's 0...2 is clamped.
            JSONBytes.append(",\"temperature\":", to: &s)
            JSONBytes.appendValue(.double(min(max(t, 0), 1)), to: &s)
            if t > 1 { dropped.append("temperature>1 (clamped to 1)") }
        }
        if let p = c.topP {
            JSONBytes.append(",\"top_p\":", to: &s)
            JSONBytes.appendValue(.double(p), to: &s)
        }
        if let u = c.user {
            JSONBytes.append(",\"metadata\":{\"user_id\":", to: &s)
            JSONBytes.appendString(u, to: &s)
            s.append(UInt8(ascii: "}"))
        }
        if c.reasoningEffort != nil { dropped.append("reasoning_effort") }
        if !c.tools.isEmpty {
            JSONBytes.append(",\"tools\":[", to: &s)
            for (k, t) in c.tools.enumerated() {
                if k > 0 { s.append(UInt8(ascii: ",")) }
                JSONBytes.append("{\"name\":", to: &s)
                JSONBytes.appendString(t.name, to: &s)
                if let d = t.description {
                    JSONBytes.append(",\"description\":", to: &s)
                    JSONBytes.appendString(d, to: &s)
                }
                JSONBytes.append(",\"input_schema\":", to: &s)
                JSONBytes.appendValue(t.parameters ?? .object(["type": .string("object"), "properties": .object([:])]), to: &s)
                s.append(UInt8(ascii: "}"))
            }
            s.append(UInt8(ascii: "]"))
            var choice: [String: JSONValue]?
            switch c.toolChoice {
            case nil, .auto?: choice = c.parallelToolCalls == false ? ["type": .string("auto")] : nil
            case .required?: choice = ["type": .string("any")]
            case .none?: choice = ["type": .string("none")]
            case .function(let name)?: choice = ["type": .string("tool"), "name": .string(name)]
            }
            if c.parallelToolCalls == false, choice != nil, choice?["type"] != .string("none") {
                choice?["disable_parallel_tool_use"] = .bool(true)
            }
            if let choice {
                JSONBytes.append(",\"tool_choice\":", to: &s)
                JSONBytes.appendValue(.object(choice), to: &s)
            }
        } else if c.toolChoice != nil || c.parallelToolCalls != nil {
            dropped.append(c.toolChoice != nil ? "tool_choice (no tools)" : "parallel_tool_calls (no tools)")
        }
        s.append(UInt8(ascii: "}"))
        return .success((s, dropped))
    }

    static func contentBlocks(_ parts: [ContentPart], at: String) -> Result<[Block], AttemptRefusal> {
        var blocks: [Block] = []
        for p in parts {
            switch p {
            case .text(let t):
                if !t.isEmpty { blocks.append(.text(t)) }
            case .image(let url, _):
                if let (mediaType, data) = ContentPart.dataURL(url) {
                    blocks.append(.imageBase64(mediaType: mediaType, data: data))
                } else if url.hasPrefix("https://") || url.hasPrefix("http://") {
                    blocks.append(.imageURL(url))
                } else {
                    return .failure(.unsupported("messages", "\(at): an image must be a data: URL or an http(s) URL"))
                }
            case .other(let type, _):
                return .failure(.unsupported("messages", "\(at): anthropic takes no '\(type)' content"))
            }
        }
        return .success(blocks)
    }

    public func authorize(_ request: inout UpstreamRequest, credential: ProviderCredential, target: UpstreamTarget, now: Double) -> Result<Void, AttemptRefusal> {
        guard let token = credential.token?.value else { return .failure(AttemptRefusal(reason: "anthropic takes an API key, not AWS credentials")) }
        if token.hasPrefix("sk-ant-oat") && HeaderName.equal(target.authHeaderName, "x-api-key") {
            // OAuth access tokens are bearer tokens.
            request.setHeader("authorization", "Bearer " + token)
        } else {
            request.setHeader(target.authHeaderName, target.authPrefix + token)
        }
        return .success(())
    }

    // MARK: Answers

    static func finishReason(_ stop: String?) -> String {
        switch stop {
        case "max_tokens", "model_context_window_exceeded": "length"
        case "tool_use": "tool_calls"
        case "refusal": "content_filter"
        default: "stop"
        }
    }

    /// Messages `usage` at the cursor (`usage(_:)`'s members, read in place).
    static func usageCounts(_ c: inout JSONCursor) throws(JSONCursor.Failure) -> UsageCounts {
        try UsageCounts(&c, input: "input_tokens", output: "output_tokens", cacheRead: "cache_read_input_tokens", cacheWrite: "cache_creation_input_tokens")
    }

    static func usage(_ u: JSONValue?) -> TokenUsage? {
        guard let u, case .object = u else { return nil }
        let cacheRead = u["cache_read_input_tokens"]?.intValue
        let cacheWrite = u["cache_creation_input_tokens"]?.intValue
        // OpenAI's prompt tokens include cached ones; Anthropic counts them apart.
        let input = (u["input_tokens"]?.intValue ?? 0) + (cacheRead ?? 0) + (cacheWrite ?? 0)
        return TokenUsage(input: input, output: u["output_tokens"]?.intValue ?? 0, cachedInput: cacheRead, cacheCreationInput: cacheWrite)
    }

    public func translateResponse(_ response: ProviderResponse, context: TranslationContext) -> ResponseTranslation {
        Self.completion(response.body, context: context)
    }

    public func makeStreamTranslator(_ context: TranslationContext) -> any StreamTranslator {
        AnthropicStreamTranslator(context)
    }

    // MARK: Errors

    public func classifyError(_ response: ProviderResponse, now: Double) -> ProviderFailure {
        let v = try? JSONParser.parse(response.body)
        let error = v?["error"]
        let type = error?["type"]?.stringValue
        let message = error?["message"]?.stringValue ?? ""
        if response.status == 429 {
            if Self.isSpendLimit(error, message: message) { return .quotaExhausted(status: 429) }
            let hint = [RetryAfter.parse(headers: response.headers, now: now), RetryAfter.anthropicReset(headers: response.headers, now: now)].compactMap { $0 }.max()
            return .rateLimited(status: 429, retryAfter: hint)
        }
        return Self.failure(forType: type, message: message, status: response.status)
    }

    static func isSpendLimit(_ error: JSONValue?, message: String) -> Bool {
        let code = error?["details"]?["error_code"]?.stringValue ?? ""
        let m = message.lowercased()
        return code == "enforced_spend_limit_reached" || m.contains("spend limit") || m.contains("credit balance")
    }

    /// The failure an Anthropic error type means (`status` nil: reported inside a stream).
    static func failure(forType type: String?, message: String, status: Int?) -> ProviderFailure {
        let m = message.lowercased()
        switch type {
        case "overloaded_error": return .overloaded(status: status ?? 529)
        case "api_error": return .overloaded(status: status ?? 500)
        case "rate_limit_error":
            if isSpendLimit(nil, message: message) { return .quotaExhausted(status: status ?? 429) }
            return .rateLimited(status: status ?? 429, retryAfter: nil)
        case "authentication_error", "permission_error", "not_found_error": return .misconfigured(status: status ?? 401)
        case "request_too_large": return .contextLengthExceeded(status: status ?? 413)
        case "billing_error": return .quotaExhausted(status: status ?? 402)
        case "invalid_request_error":
            let s = status ?? 400
            if m.contains("prompt is too long") || m.contains("exceed context limit") || m.contains("context window") { return .contextLengthExceeded(status: s) }
            if m.contains("credit balance") { return .quotaExhausted(status: s) }
            if m.contains("final assistant content") || m.contains("prefill") { return .prefillRejected(status: s) }
            return .invalidRequest(status: s)
        default:
            guard let status else { return .overloaded(status: 500) }
            return .byStatus(status)
        }
    }

    public func clientErrorBody(_ response: ProviderResponse) -> [UInt8]? {
        guard let v = try? JSONParser.parse(response.body), let error = v["error"], case .object = error else { return nil }
        let type = error["type"]?.stringValue ?? "api_error"
        let message = error["message"]?.stringValue ?? "anthropic answered \(response.status)"
        var code: JSONValue = .null
        if case .contextLengthExceeded = Self.failure(forType: type, message: message, status: response.status) { code = .string("context_length_exceeded") }
        return Array(JSONValue.object(["error": .object(["message": .string(message), "type": .string(type), "param": .null, "code": code])]).canonicalJSON().utf8)
    }
}

/// Anthropic's stream events → OpenAI chunks.
public struct AnthropicStreamTranslator: StreamTranslator {
    private var parser = SSEParser()
    private var writer: ChunkWriter
    /// Content block index → OpenAI tool-call index, and whether the call streamed any arguments.
    private var tools: [Int: (index: Int, hasArguments: Bool)] = [:]
    private var usage = TokenUsage(input: 0, output: 0)
    private var sawUsage = false
    private var ended = false

    public init(_ context: TranslationContext) {
        writer = ChunkWriter(id: context.fallbackID, model: context.model, created: context.created, clientWantsUsage: context.clientWantsUsage, continuation: context.continuation)
    }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [StreamEvent] {
        let events: [SSEEvent]
        do {
            events = try parser.feed(bytes)
        } catch {
            return [StreamEvent(.fault(StreamFault(.malformedResponse, message: "a stream event exceeded \(parser.maxEventBytes) bytes")))]
        }
        var out: [StreamEvent] = []
        for e in events { translate(e, into: &out) }
        return out
    }

    public mutating func finish() -> [StreamEvent] {
        var out: [StreamEvent] = []
        if let e = parser.finish() { translate(e, into: &out) }
        return out
    }

    private mutating func translate(_ event: SSEEvent, into out: inout [StreamEvent]) {
        guard !ended, var data = event.data else { return }
        guard let v = data.withUTF8({ try? StreamPayload(UnsafeRawBufferPointer($0)) }) else {
            out.append(StreamEvent(.malformed))
            return
        }
        switch v.type ?? event.name {
        case "message_start":
            if let id = v.messageID { writer.id = id }
            if let model = v.messageModel { writer.model = model }
            if let u = v.usage.tokenUsage {
                usage = u
                sawUsage = true
            }
            if let r = writer.role() { out.append(r) }
        case "content_block_start":
            let index = v.index ?? 0
            switch v.blockType {
            case "tool_use":
                let (k, events) = writer.startToolCall(id: v.blockID ?? "", name: v.blockName ?? "")
                tools[index] = (k, false)
                out += events
            case "text":
                writer.text(v.text ?? "", into: &out)
            default:
                break
            }
        case "content_block_delta":
            let index = v.index ?? 0
            switch v.deltaType {
            case "text_delta":
                writer.text(v.text ?? "", into: &out)
            case "input_json_delta":
                if let tool = tools[index], let fragment = v.partialJSON, !fragment.isEmpty {
                    tools[index]?.hasArguments = true
                    out += writer.toolArguments(index: tool.index, fragment)
                }
            case "thinking_delta":
                out += writer.reasoning(v.thinking ?? "")
            default:
                break
            }
        case "content_block_stop":
            let index = v.index ?? 0
            if let tool = tools[index], !tool.hasArguments {
                tools[index]?.hasArguments = true
                out += writer.toolArguments(index: tool.index, "{}")
            }
        case "message_delta":
            if v.usage.present {
                let u = v.usage
                if let o = u.output { usage.output = o }
                if u.hasInput, let full = u.tokenUsage {
                    usage.input = full.input
                    usage.cachedInput = full.cachedInput ?? usage.cachedInput
                    usage.cacheCreationInput = full.cacheCreationInput ?? usage.cacheCreationInput
                }
                sawUsage = true
            }
            if let stop = v.stopReason {
                out += writer.finish(AnthropicAdapter.finishReason(stop))
            }
        case "message_stop":
            out += writer.finish("stop")
            if sawUsage { out.append(writer.usage(usage)) }
            out.append(writer.done())
            ended = true
        case "error":
            let message = v.errorMessage ?? "anthropic reported an error inside the stream"
            out.append(StreamEvent(.fault(StreamFault(AnthropicAdapter.failure(forType: v.errorType, message: message, status: nil), message: message))))
            ended = true
        default:
            // `ping` and event types added later: nothing for the client.
            break
        }
    }
}

/// The members of one Anthropic stream event the translation reads, in one pass over its bytes
/// (every event type's; the rest is checked and skipped). `usage` is `message.usage` in
/// `message_start` and the top-level `usage` in `message_delta`.
struct StreamPayload {
    var type: String?
    var index: Int?
    var messageID: String?
    var messageModel: String?
    var usage = UsageCounts()
    var blockType: String?
    var blockID: String?
    var blockName: String?
    var deltaType: String?
    /// `content_block.text` or `delta.text`.
    var text: String?
    var partialJSON: String?
    var thinking: String?
    var stopReason: String?
    var errorType: String?
    var errorMessage: String?

    private init() {}

    init(_ bytes: UnsafeRawBufferPointer) throws(JSONCursor.Failure) {
        var p = StreamPayload()
        var c = JSONCursor(bytes)
        try c.enterObject()
        while let k = try c.nextKey() {
            if c.key(k, is: "type") {
                p.type = try c.stringIfAny()
            } else if c.key(k, is: "index") {
                p.index = try c.intIfAny()
            } else if c.key(k, is: "delta") {
                try JSONCursor.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                    if c.key(k, is: "type") {
                        p.deltaType = try c.stringIfAny()
                    } else if c.key(k, is: "text") {
                        p.text = try c.stringIfAny()
                    } else if c.key(k, is: "partial_json") {
                        p.partialJSON = try c.stringIfAny()
                    } else if c.key(k, is: "thinking") {
                        p.thinking = try c.stringIfAny()
                    } else if c.key(k, is: "stop_reason") {
                        p.stopReason = try c.stringIfAny()
                    } else {
                        try c.skipValue()
                    }
                }
            } else if c.key(k, is: "content_block") {
                try JSONCursor.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                    if c.key(k, is: "type") {
                        p.blockType = try c.stringIfAny()
                    } else if c.key(k, is: "text") {
                        p.text = try c.stringIfAny()
                    } else if c.key(k, is: "id") {
                        p.blockID = try c.stringIfAny()
                    } else if c.key(k, is: "name") {
                        p.blockName = try c.stringIfAny()
                    } else {
                        try c.skipValue()
                    }
                }
            } else if c.key(k, is: "message") {
                try JSONCursor.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                    if c.key(k, is: "id") {
                        p.messageID = try c.stringIfAny()
                    } else if c.key(k, is: "model") {
                        p.messageModel = try c.stringIfAny()
                    } else if c.key(k, is: "usage") {
                        p.usage = try AnthropicAdapter.usageCounts(&c)
                    } else {
                        try c.skipValue()
                    }
                }
            } else if c.key(k, is: "usage") {
                p.usage = try AnthropicAdapter.usageCounts(&c)
            } else if c.key(k, is: "error") {
                try JSONCursor.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                    if c.key(k, is: "type") {
                        p.errorType = try c.stringIfAny()
                    } else if c.key(k, is: "message") {
                        p.errorMessage = try c.stringIfAny()
                    } else {
                        try c.skipValue()
                    }
                }
            } else {
                try c.skipValue()
            }
        }
        try c.end()
        self = p
    }
}
