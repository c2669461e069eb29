import AIGatewayAPI
import Foundation
import NIOHTTP1

/// Anthropic Messages (`POST /v1/messages`), as strict as the real API: `x-api-key` and
/// `anthropic-version` required, `model` and `max_tokens` required, roles `user`/`assistant` only
/// and alternating, the first one `user`, no empty text block, every `tool_use` answered by a
/// `tool_result` at the start of the very next (user) message and no `tool_result` without its call,
/// no final assistant text ending in white space.
struct AnthropicFakeAPI: FakeNativeAPI {
    static let versions: Set<String> = ["2023-06-01", "2023-01-01"]

    func matches(method: HTTPMethod, path: String) -> Bool {
        method == .POST && path == "/v1/messages"
    }

    func read(_ request: FakeHTTPRequest, provider: FakeProvider) -> FakeNativeRead {
        let json = request.json() as? [String: Any]
        let model = (json?["model"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        let stream = json?["stream"] as? Bool ?? false
        func reject(_ status: Int, _ type: String, _ message: String) -> FakeNativeRead {
            FakeNativeRead(model: model, stream: stream, outcome: .reject(AnthropicErrors.error(status, type, message)))
        }
        if let required = provider.configuration.requiredKey {
            guard let key = request.header("x-api-key") else { return reject(401, "authentication_error", "x-api-key header is required") }
            guard key == required else { return reject(401, "authentication_error", "invalid x-api-key") }
        }
        guard let version = request.header("anthropic-version") else { return reject(400, "invalid_request_error", "anthropic-version: header is required") }
        guard Self.versions.contains(version) else { return reject(400, "invalid_request_error", "anthropic-version: invalid version \(version)") }
        guard let body = json else { return reject(400, "invalid_request_error", "The request body is not valid JSON.") }
        guard let model else { return reject(400, "invalid_request_error", "model: Field required") }
        guard let maxTokens = body["max_tokens"] as? Int else { return reject(400, "invalid_request_error", "max_tokens: Field required") }
        guard maxTokens >= 1 else { return reject(400, "invalid_request_error", "max_tokens: Input should be greater than or equal to 1") }
        if let t = body["temperature"] as? Double, !(0...1).contains(t) { return reject(400, "invalid_request_error", "temperature: range: 0..1") }
        for key in body.keys where !Self.knownFields.contains(key) {
            return reject(400, "invalid_request_error", "\(key): Extra inputs are not permitted")
        }
        var words = 0
        switch body["system"] {
        case nil: break
        case let s as String: words += AnthropicErrors.words(s)
        case let blocks as [[String: Any]]:
            for b in blocks { words += AnthropicErrors.words(b["text"] as? String ?? "") }
        default: return reject(400, "invalid_request_error", "system: Input should be a valid string or list")
        }
        guard let messages = body["messages"] as? [[String: Any]], !messages.isEmpty else {
            return reject(400, "invalid_request_error", "messages: at least one message is required")
        }
        var previousRole: String?
        var pendingToolUses: [String] = []
        var prefill: String?
        for (i, m) in messages.enumerated() {
            guard let role = m["role"] as? String, role == "user" || role == "assistant" else {
                return reject(400, "invalid_request_error", "messages.\(i).role: Input should be 'user' or 'assistant'")
            }
            if i == 0, role != "user" { return reject(400, "invalid_request_error", "messages: first message must use the \"user\" role") }
            if role == previousRole {
                return reject(400, "invalid_request_error", "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"\(role)\" roles in a row")
            }
            previousRole = role
            var blocks: [[String: Any]]
            switch m["content"] {
            case let s as String:
                if s.isEmpty, !(role == "assistant" && i == messages.count - 1) {
                    return reject(400, "invalid_request_error", "messages.\(i): all messages must have non-empty content except for the optional final assistant message")
                }
                blocks = [["type": "text", "text": s]]
            case let list as [[String: Any]]:
                blocks = list
            default:
                return reject(400, "invalid_request_error", "messages.\(i).content: Input should be a valid string or list")
            }
            if blocks.isEmpty { return reject(400, "invalid_request_error", "messages.\(i): all messages must have non-empty content") }
            var answered: Set<String> = []
            var seenOther = false
            var uses: [String] = []
            for (k, b) in blocks.enumerated() {
                let at = "messages.\(i).content.\(k)"
                switch b["type"] as? String {
                case "text":
                    guard let t = b["text"] as? String else { return reject(400, "invalid_request_error", "\(at).text: Field required") }
                    if t.isEmpty { return reject(400, "invalid_request_error", "\(at): text content blocks must be non-empty") }
                    words += AnthropicErrors.words(t)
                    seenOther = true
                case "image":
                    guard role == "user", let source = b["source"] as? [String: Any], let type = source["type"] as? String, type == "base64" || type == "url" else {
                        return reject(400, "invalid_request_error", "\(at).source: invalid image source")
                    }
                    seenOther = true
                case "tool_use":
                    guard role == "assistant", let id = b["id"] as? String, b["name"] is String, b["input"] is [String: Any] else {
                        return reject(400, "invalid_request_error", "\(at): invalid tool_use block")
                    }
                    uses.append(id)
                case "tool_result":
                    guard role == "user", let id = b["tool_use_id"] as? String else {
                        return reject(400, "invalid_request_error", "\(at): tool_result blocks are only allowed in user messages")
                    }
                    if seenOther {
                        return reject(400, "invalid_request_error", "\(at): tool_result blocks must come first in the user message, before any other content")
                    }
                    guard pendingToolUses.contains(id) else {
                        return reject(
                            400, "invalid_request_error",
                            "messages.\(i).content.\(k): unexpected `tool_use_id` found in `tool_result` blocks: \(id). Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
                    }
                    answered.insert(id)
                default:
                    return reject(400, "invalid_request_error", "\(at).type: unknown content block type")
                }
            }
            if role == "user" {
                let missing = pendingToolUses.filter { !answered.contains($0) }
                if !missing.isEmpty {
                    return reject(
                        400, "invalid_request_error",
                        "messages.\(i - 1): `tool_use` ids were found without `tool_result` blocks immediately after: \(missing.joined(separator: ", ")). Each `tool_use` block must have a corresponding `tool_result` block in the next message.")
                }
                pendingToolUses = []
            } else {
                pendingToolUses = uses
            }
            if i == messages.count - 1, role == "assistant" {
                let text = blocks.compactMap { $0["type"] as? String == "text" ? $0["text"] as? String : nil }.joined()
                if let last = text.unicodeScalars.last, last.properties.isWhitespace {
                    return reject(400, "invalid_request_error", "messages: final assistant content cannot end with trailing whitespace")
                }
                if !uses.isEmpty {
                    return reject(400, "invalid_request_error", "messages.\(i): the final assistant message cannot contain tool_use blocks")
                }
                prefill = text
            }
        }
        var toolNames: [String] = []
        if let tools = body["tools"] {
            guard let list = tools as? [[String: Any]] else { return reject(400, "invalid_request_error", "tools: Input should be a valid list") }
            for (k, t) in list.enumerated() {
                guard let name = t["name"] as? String, t["input_schema"] is [String: Any] else {
                    return reject(400, "invalid_request_error", "tools.\(k): name and input_schema are required")
                }
                toolNames.append(name)
            }
        }
        if let choice = body["tool_choice"] {
            guard let c = choice as? [String: Any], let type = c["type"] as? String, ["auto", "any", "tool", "none"].contains(type) else {
                return reject(400, "invalid_request_error", "tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'")
            }
            if type == "tool", !(c["name"] is String) { return reject(400, "invalid_request_error", "tool_choice.tool.name: Field required") }
        }
        let format = AnthropicAnswerFormat(id: "msg_fake_\(provider.nextResponseID())", model: model, promptTokens: words)
        return FakeNativeRead(
            model: model, stream: stream,
            outcome: .answer(
                FakeNativeRequest(
                    promptTokens: words, prefill: prefill, toolNames: toolNames, format: format,
                    errorForFault: { fault, model, promptTokens in AnthropicErrors.forFault(fault, model: model, promptTokens: promptTokens) })))
    }

    static let knownFields: Set<String> = [
        "model", "messages", "max_tokens", "system", "stream", "stop_sequences", "temperature", "top_p", "top_k", "tools", "tool_choice", "metadata",
        "thinking", "service_tier", "container", "mcp_servers",
    ]
}

/// Anthropic's error bodies and headers.
enum AnthropicErrors {
    static func error(_ status: Int, _ type: String, _ message: String, details: String? = nil) -> ProviderError {
        var body = "{\"type\":\"error\",\"error\":{\"type\":\(JSONText.quoted(type)),\"message\":\(JSONText.quoted(message))"
        if let details { body += ",\"details\":{\"error_code\":\(JSONText.quoted(details))}" }
        body += "},\"request_id\":\"req_fake\"}"
        var e = ProviderError(status: status, message: message, type: type, code: nil)
        e.rawBody = body
        e.extraHeaders.append(("request-id", "req_fake"))
        return e
    }

    static func words(_ s: String) -> Int {
        s.split(whereSeparator: { $0.isWhitespace }).count
    }

    static func forFault(_ fault: FaultSpec, model: String, promptTokens: Int) -> ProviderError {
        var e: ProviderError
        switch fault.behavior {
        case .contextLength:
            e = error(400, "invalid_request_error", "prompt is too long: \(max(promptTokens, 200_001)) tokens > 200000 maximum")
        case .contentFilter:
            e = error(400, "invalid_request_error", "Output blocked by content filtering policy")
        case .unauthorized:
            e = error(401, "authentication_error", "invalid x-api-key")
        case .modelNotFound:
            e = error(404, "not_found_error", "model: \(model)")
        case .badRequest:
            e = error(400, "invalid_request_error", "messages: the request was rejected by the fake provider (bad-request fault)")
        case .noPrefill:
            e = error(400, "invalid_request_error", "This model does not support assistant message prefill. The conversation must end with a user message.")
        case .status(let s):
            switch s {
            case 429:
                e = fault.errorCode.map { error(429, "rate_limit_error", "You have reached your specified API usage limits (spend limit).", details: $0) }
                    ?? error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit")
            case 401: e = error(401, "authentication_error", "invalid x-api-key")
            case 403: e = error(403, "permission_error", "Your API key does not have permission to use the specified resource.")
            case 404: e = error(404, "not_found_error", "model: \(model)")
            case 413: e = error(413, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
            case 529: e = error(529, "overloaded_error", "Overloaded")
            case 500...599: e = error(s, "api_error", "Internal server error")
            default: e = error(s, "invalid_request_error", "The request was rejected by the fake provider (status \(s)).")
            }
        default:
            // `stream-error` without a stream, and anything else that must fail: overloaded.
            e = error(529, "overloaded_error", "Overloaded")
        }
        if let seconds = fault.retryAfterSeconds { e.extraHeaders.append(("retry-after", String(seconds))) }
        if let reset = fault.rateLimitReset, let d = RateLimitReset.seconds(reset) {
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            e.extraHeaders.append(("anthropic-ratelimit-requests-reset", f.string(from: Date().addingTimeInterval(d))))
        }
        return e
    }
}

/// Reads the fault language's reset durations (`2s`, `500ms`, `1m0s`).
enum RateLimitReset {
    static func seconds(_ text: String) -> Double? {
        var total = 0.0
        var number = ""
        var rest = Substring(text)
        while let c = rest.first {
            if c.isNumber || c == "." {
                number.append(c)
                rest = rest.dropFirst()
                continue
            }
            guard let n = Double(number) else { return nil }
            if rest.hasPrefix("ms") {
                total += n / 1000
                rest = rest.dropFirst(2)
            } else {
                switch c {
                case "h": total += n * 3600
                case "m": total += n * 60
                case "s": total += n
                default: return nil
                }
                rest = rest.dropFirst()
            }
            number = ""
        }
        return number.isEmpty ? total : nil
    }
}

/// Anthropic's answers: a Messages object, or the stream's named events.
struct AnthropicAnswerFormat: FakeAnswerFormat {
    var id: String
    var model: String
    var promptTokens: Int

    var streamContentType: String { "text/event-stream" }

    private func event(_ name: String, _ data: String) -> String { "event: \(name)\ndata: \(data)\n\n" }

    private var usageStart: String { "{\"input_tokens\":\(promptTokens),\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}" }

    func completion(_ content: FakeAnswerContent) -> [UInt8] {
        let blocks: String
        let stop: String
        var output = content.tokens.count
        switch content.kind {
        case .text:
            blocks = "[{\"type\":\"text\",\"text\":\(JSONText.quoted(content.tokens.joined()))}]"
            stop = "end_turn"
        case .toolCall(let id, let name, let fragments):
            blocks = "[{\"type\":\"tool_use\",\"id\":\(JSONText.quoted(id)),\"name\":\(JSONText.quoted(name)),\"input\":\(fragments.joined())}]"
            stop = "tool_use"
            output = fragments.count
        case .blocked:
            blocks = "[]"
            stop = "refusal"
        }
        let body =
            "{\"id\":\(JSONText.quoted(id)),\"type\":\"message\",\"role\":\"assistant\",\"model\":\(JSONText.quoted(model)),\"content\":\(blocks),\"stop_reason\":\"\(stop)\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":\(promptTokens),\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":\(output)}}"
        return Array(body.utf8)
    }

    func streamStart(_ content: FakeAnswerContent) -> [UInt8] {
        var s = event(
            "message_start",
            "{\"type\":\"message_start\",\"message\":{\"id\":\(JSONText.quoted(id)),\"type\":\"message\",\"role\":\"assistant\",\"model\":\(JSONText.quoted(model)),\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":\(usageStart)}}")
        if case .text = content.kind {
            s += event("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")
        }
        s += event("ping", "{\"type\": \"ping\"}")
        return Array(s.utf8)
    }

    func textEvent(_ token: String, index: Int) -> [UInt8] {
        Array(event("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\(JSONText.quoted(token))}}").utf8)
    }

    func toolCallEvents(id: String, name: String, fragments: [String]) -> [UInt8] {
        var s = event(
            "content_block_start",
            "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\(JSONText.quoted(id)),\"name\":\(JSONText.quoted(name)),\"input\":{}}}")
        s += event("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}")
        for f in fragments {
            s += event("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\(JSONText.quoted(f))}}")
        }
        s += event("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}")
        return Array(s.utf8)
    }

    func streamEnd(_ content: FakeAnswerContent, sentTokens: Int, done: Bool) -> [UInt8] {
        var s = ""
        let stop: String
        var output = sentTokens
        switch content.kind {
        case .text:
            s += event("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}")
            stop = "end_turn"
        case .toolCall(_, _, let fragments):
            stop = "tool_use"
            output = fragments.count
        case .blocked:
            stop = "refusal"
        }
        s += event(
            "message_delta",
            "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"\(stop)\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":\(output)}}")
        if done { s += event("message_stop", "{\"type\":\"message_stop\"}") }
        return Array(s.utf8)
    }

    var malformedEvent: [UInt8] { Array("event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\n\n".utf8) }

    func streamErrorEvent() -> [UInt8] {
        Array(event("error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}").utf8)
    }
}
