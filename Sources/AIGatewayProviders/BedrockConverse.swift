import AIGatewayAPI

/// Tool names as Bedrock accepts them (`[a-zA-Z0-9_-]{1,64}`), and the way back to the client's.
///
/// Built from the request alone (declared tools, then names in the history, in order), so the
/// request and its answer derive the same mapping without carrying state between them.
public struct BedrockToolNames: Sendable, Hashable {
    /// Client name → Bedrock name.
    public private(set) var toBedrock: [String: String] = [:]
    /// Bedrock name → client name.
    public private(set) var toClient: [String: String] = [:]

    public init() {}

    public init(names: [String]) {
        for n in names { _ = bedrockName(n) }
    }

    /// The conversation's names: declared tools first, then those its history calls (as
    /// `conversation.toolNames` lists them, without building the list).
    public init(_ conversation: ChatConversation) {
        for tool in conversation.tools { _ = bedrockName(tool.name) }
        for m in conversation.messages {
            for call in m.toolCalls { _ = bedrockName(call.name) }
        }
    }

    /// The Bedrock name of `name`, made unique: invalid characters become `_`, the name is cut
    /// to 64 characters, and a clash gets a numeric suffix.
    public mutating func bedrockName(_ name: String) -> String {
        if let known = toBedrock[name] { return known }
        var base = String(String.UnicodeScalarView(name.unicodeScalars.map { s in
            (s.isASCII && (s.properties.isAlphabetic || ("0"..."9").contains(s) || s == "_" || s == "-")) ? s : "_"
        }).prefix(64))
        if base.isEmpty { base = "tool" }
        var candidate = base
        var n = 2
        while toClient[candidate] != nil {
            let suffix = "_\(n)"
            candidate = String(base.prefix(64 - suffix.count)) + suffix
            n += 1
        }
        toBedrock[name] = candidate
        toClient[candidate] = name
        return candidate
    }

    /// The client's name for a name Bedrock answered with (unknown names pass unchanged).
    public func clientName(_ bedrock: String) -> String { toClient[bedrock] ?? bedrock }

    static let hintPrefix = "bedrock-tool:"

    /// The renamed tools, as request hints for the answer's translators.
    public var hints: [String: String] {
        var out: [String: String] = [:]
        for (bedrock, client) in toClient where bedrock != client { out[Self.hintPrefix + bedrock] = client }
        return out
    }

    /// The way back, from the hints the request left.
    public init(hints: [String: String]) {
        guard !hints.isEmpty else { return }
        for (key, client) in hints where key.hasPrefix(Self.hintPrefix) {
            let bedrock = String(key.dropFirst(Self.hintPrefix.count))
            toClient[bedrock] = client
            toBedrock[client] = bedrock
        }
    }
}

/// Bedrock's Converse API (`POST /model/{modelId}/converse` and `/converse-stream`): the request
/// built from an OpenAI conversation, and the complete answer read back.
public enum BedrockConverse {
    /// `inferenceConfig.maxTokens` when the client gives no `max_completion_tokens` / `max_tokens`
    /// (the same default as Anthropic's `max_tokens`).
    public static let defaultMaxTokens = 4096

    /// Image formats Converse takes, by media type.
    static let imageFormats = ["image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp"]

    /// The Converse request body for `conversation`, or why this candidate cannot carry it.
    ///
    /// - Parameters:
    ///   - guardrail: the Backend's `guardrail`, sent as `guardrailConfig`.
    ///   - prefill: assistant text already streamed (continuation): the last assistant turn.
    public static func requestBody(
        _ conversation: ChatConversation, guardrail: BedrockProvider.Guardrail?, prefill: String? = nil
    ) -> Result<[UInt8], AttemptRefusal> {
        request(conversation, guardrail: guardrail, prefill: prefill).map { $0.body }
    }

    /// The start of a request body, up to the opening of `messages` (members in sorted order):
    /// `{`, `guardrailConfig` (when the Backend has one), `inferenceConfig`, `"messages":[`.
    /// Both writers of the body take it from here (`request`, `textRequestBody`).
    static func writeOpening(
        guardrail: BedrockProvider.Guardrail?, maxTokens: Int?, stop: [String], temperature: Double?, topP: Double?, to s: inout [UInt8]
    ) {
        s.append(UInt8(ascii: "{"))
        if let g = guardrail {
            JSONBytes.append("\"guardrailConfig\":{\"guardrailIdentifier\":", to: &s)
            JSONBytes.appendString(g.identifier, to: &s)
            JSONBytes.append(",\"guardrailVersion\":", to: &s)
            JSONBytes.appendString(g.version, to: &s)
            JSONBytes.append(",\"trace\":\"enabled\"},", to: &s)
        }
        JSONBytes.append("\"inferenceConfig\":{\"maxTokens\":", to: &s)
        JSONBytes.appendInt(maxTokens ?? defaultMaxTokens, to: &s)
        if !stop.isEmpty {
            JSONBytes.append(",\"stopSequences\":", to: &s)
            JSONBytes.appendValue(.array(stop.map { .string($0) }), to: &s)
        }
        if let t = temperature {
            JSONBytes.append(",\"temperature\":", to: &s)
            JSONBytes.appendValue(number(t), to: &s)
        }
        if let p = topP {
            JSONBytes.append(",\"topP\":", to: &s)
            JSONBytes.appendValue(number(p), to: &s)
        }
        JSONBytes.append("},\"messages\":[", to: &s)
    }

    /// `requestBody`, and the tool names derived from the conversation (whose hints the request
    /// carries for the answer), derived once.
    static func request(
        _ conversation: ChatConversation, guardrail: BedrockProvider.Guardrail?, prefill: String? = nil
    ) -> Result<(body: [UInt8], names: BedrockToolNames), AttemptRefusal> {
        if let n = conversation.n, n > 1 {
            return .failure(.unsupported("n", "Bedrock Converse returns one choice; n=\(n) cannot be honoured"))
        }
        if conversation.logprobs || conversation.topLogprobs != nil {
            return .failure(.unsupported("logprobs", "Bedrock Converse does not return log probabilities"))
        }
        switch conversation.responseFormat {
        case .jsonObject?, .jsonSchema?:
            return .failure(.unsupported("response_format", "Bedrock Converse has no JSON response mode this gateway sends"))
        case .text?, nil:
            break
        }
        // The conversation's own names; a `tool_choice` naming an undeclared tool adds one below
        // that the hints do not carry.
        let derived = BedrockToolNames(conversation)
        var names = derived

        // Members in sorted order at every level (the text `canonicalJSON` gave before).
        var s: [UInt8] = []
        s.reserveCapacity(conversation.messages.count * 64 + 256)
        writeOpening(
            guardrail: guardrail, maxTokens: conversation.maxTokens, stop: conversation.stop, temperature: conversation.temperature,
            topP: conversation.topP, to: &s)

        // The turns are written as the messages are read (no block lists to collect and free).
        var turns = TurnWriter()
        var system: [String] = []
        var historyHasToolBlocks = false
        for (i, m) in conversation.messages.enumerated() {
            switch m.role {
            case .system, .developer:
                let text = m.text
                if !text.isEmpty { system.append(text) }
            case .user:
                for (k, part) in m.content.enumerated() {
                    switch part {
                    case .text(let t):
                        if !t.isEmpty { turns.add(.user, .text(t), to: &s) }
                    case .image(let url, _):
                        guard let (mediaType, data) = ContentPart.dataURL(url) else {
                            return .failure(.unsupported(
                                "messages[\(i)].content[\(k)].image_url",
                                "Bedrock takes images only as data: URLs (base64); an http(s) image URL cannot be sent"))
                        }
                        guard let format = imageFormats[mediaType.lowercased()] else {
                            return .failure(.unsupported(
                                "messages[\(i)].content[\(k)].image_url", "Bedrock takes png, jpeg, gif or webp images, not \(mediaType)"))
                        }
                        turns.add(.user, .image(format: format, data: data), to: &s)
                    case .other(let type, _):
                        return .failure(.unsupported("messages[\(i)].content[\(k)].type", "Bedrock Converse cannot carry a \(type) content part"))
                    }
                }
            case .assistant:
                let text = m.text
                if !text.isEmpty { turns.add(.assistant, .text(text), to: &s) }
                for call in m.toolCalls {
                    guard let input = call.argumentsObject else {
                        return .failure(AttemptRefusal(
                            parameter: "messages[\(i)].tool_calls",
                            reason: "the arguments of tool call \(call.id) are not a JSON object, which Bedrock requires"))
                    }
                    historyHasToolBlocks = true
                    turns.add(.assistant, .toolUse(id: call.id, name: names.bedrockName(call.name), input: input), to: &s)
                }
            case .tool:
                historyHasToolBlocks = true
                // Converse refuses a blank text block.
                let text = m.text
                turns.add(.user, .toolResult(id: m.toolCallID ?? "", text: text.isEmpty ? " " : text), to: &s)
            }
        }
        if let prefill, !prefill.isEmpty {
            turns.add(.assistant, .text(prefill), to: &s)
        }
        turns.close(to: &s)
        s.append(UInt8(ascii: "]"))
        if !system.isEmpty {
            JSONBytes.append(",\"system\":[", to: &s)
            for (k, text) in system.enumerated() {
                if k > 0 { s.append(UInt8(ascii: ",")) }
                JSONBytes.append("{\"text\":", to: &s)
                JSONBytes.appendString(text, to: &s)
                s.append(UInt8(ascii: "}"))
            }
            s.append(UInt8(ascii: "]"))
        }

        var specs: [(name: String, description: String?, schema: JSONValue?)] = []
        var declared: Set<String> = []
        for tool in conversation.tools {
            let name = names.bedrockName(tool.name)
            guard declared.insert(name).inserted else { continue }
            specs.append((name, tool.description.flatMap { $0.isEmpty ? nil : $0 }, tool.parameters))
        }
        if specs.isEmpty && historyHasToolBlocks {
            // Converse rejects tool blocks without a toolConfig: declare the tools the history used.
            for call in conversation.messages.flatMap(\.toolCalls) {
                let name = names.bedrockName(call.name)
                guard declared.insert(name).inserted else { continue }
                specs.append((name, nil, nil))
            }
        }

        if !specs.isEmpty {
            JSONBytes.append(",\"toolConfig\":{", to: &s)
            switch conversation.toolChoice {
            case .auto?: JSONBytes.append("\"toolChoice\":{\"auto\":{}},", to: &s)
            case .required?: JSONBytes.append("\"toolChoice\":{\"any\":{}},", to: &s)
            case .function(let n)?:
                JSONBytes.append("\"toolChoice\":{\"tool\":{\"name\":", to: &s)
                JSONBytes.appendString(names.bedrockName(n), to: &s)
                JSONBytes.append("}},", to: &s)
            // Converse has no "none": the choice is left to the model (its default, auto).
            case .none?, nil: break
            }
            JSONBytes.append("\"tools\":[", to: &s)
            for (k, spec) in specs.enumerated() {
                if k > 0 { s.append(UInt8(ascii: ",")) }
                JSONBytes.append("{\"toolSpec\":{", to: &s)
                if let d = spec.description {
                    JSONBytes.append("\"description\":", to: &s)
                    JSONBytes.appendString(d, to: &s)
                    s.append(UInt8(ascii: ","))
                }
                JSONBytes.append("\"inputSchema\":{\"json\":", to: &s)
                if let schema = spec.schema {
                    JSONBytes.appendValue(schema, to: &s)
                } else {
                    JSONBytes.append("{\"properties\":{},\"type\":\"object\"}", to: &s)
                }
                JSONBytes.append("},\"name\":", to: &s)
                JSONBytes.appendString(spec.name, to: &s)
                JSONBytes.append("}}", to: &s)
            }
            JSONBytes.append("]}", to: &s)
        }
        s.append(UInt8(ascii: "}"))
        return .success((s, derived))
    }

    /// One content block of a Converse turn.
    enum Block {
        case text(String)
        case image(format: String, data: String)
        case toolUse(id: String, name: String, input: JSONValue)
        case toolResult(id: String, text: String)

        /// The block's JSON, members in sorted order.
        func write(to s: inout [UInt8]) {
            switch self {
            case .text(let t):
                JSONBytes.append("{\"text\":", to: &s)
                JSONBytes.appendString(t, to: &s)
            case .image(let format, let data):
                JSONBytes.append("{\"image\":{\"format\":", to: &s)
                JSONBytes.appendString(format, to: &s)
                JSONBytes.append(",\"source\":{\"bytes\":", to: &s)
                JSONBytes.appendString(data, to: &s)
                JSONBytes.append("}}", to: &s)
            case .toolUse(let id, let name, let input):
                JSONBytes.append("{\"toolUse\":{\"input\":", to: &s)
                JSONBytes.appendValue(input, to: &s)
                JSONBytes.append(",\"name\":", to: &s)
                JSONBytes.appendString(name, to: &s)
                JSONBytes.append(",\"toolUseId\":", to: &s)
                JSONBytes.appendString(id, to: &s)
                s.append(UInt8(ascii: "}"))
            case .toolResult(let id, let text):
                JSONBytes.append("{\"toolResult\":{\"content\":[{\"text\":", to: &s)
                JSONBytes.appendString(text, to: &s)
                JSONBytes.append("}],\"toolUseId\":", to: &s)
                JSONBytes.appendString(id, to: &s)
                s.append(UInt8(ascii: "}"))
            }
            s.append(UInt8(ascii: "}"))
        }
    }

    /// Writes the `messages` array's turns as blocks come: Converse wants user and assistant turns
    /// to alternate, so a block of the open turn's role joins it and another role opens a new turn.
    struct TurnWriter {
        enum Role {
            case user, assistant
        }

        private var open: Role?

        mutating func add(_ role: Role, _ block: Block, to s: inout [UInt8]) {
            begin(role, to: &s)
            block.write(to: &s)
        }

        /// Makes room for a block of `role`: a comma in the open turn of that role, else the
        /// open turn closed and a new one opened. The caller writes the block next.
        mutating func begin(_ role: Role, to s: inout [UInt8]) {
            if open == role {
                s.append(UInt8(ascii: ","))
            } else {
                close(to: &s)
                if open != nil { s.append(UInt8(ascii: ",")) }
                JSONBytes.append("{\"content\":[", to: &s)
                open = role
            }
        }

        /// Ends the open turn (its role after its content: members in sorted order).
        mutating func close(to s: inout [UInt8]) {
            switch open {
            case .user?: JSONBytes.append("],\"role\":\"user\"}", to: &s)
            case .assistant?: JSONBytes.append("],\"role\":\"assistant\"}", to: &s)
            case nil: break
            }
        }
    }

    static func number(_ d: Double) -> JSONValue {
        d.rounded() == d && abs(d) < 1e15 ? .int(Int(d)) : .double(d)
    }

    /// OpenAI's `finish_reason` for a Converse `stopReason`.
    public static func finishReason(_ stopReason: String?) -> String {
        switch stopReason {
        case "max_tokens", "model_context_window_exceeded": "length"
        case "tool_use": "tool_calls"
        case "guardrail_intervened", "content_filtered": "content_filter"
        default: "stop"  // end_turn, stop_sequence, and anything new
        }
    }

    /// Converse `usage` as token counts: input includes the cache reads and writes, which
    /// Bedrock counts apart from `inputTokens`.
    public static func usage(_ u: JSONValue?) -> TokenUsage? {
        guard let u, case .object = u else { return nil }
        let read = u["cacheReadInputTokens"]?.intValue
        let write = u["cacheWriteInputTokens"]?.intValue
        return TokenUsage(
            input: (u["inputTokens"]?.intValue ?? 0) + (read ?? 0) + (write ?? 0), output: u["outputTokens"]?.intValue ?? 0,
            cachedInput: read, cacheCreationInput: write)
    }

    /// Converse `usage` at the cursor (`usage(_:)`'s members, read in place).
    static func usageCounts(_ c: inout JSONCursor) throws(JSONCursor.Failure) -> UsageCounts {
        try UsageCounts(&c, input: "inputTokens", output: "outputTokens", cacheRead: "cacheReadInputTokens", cacheWrite: "cacheWriteInputTokens")
    }
}
