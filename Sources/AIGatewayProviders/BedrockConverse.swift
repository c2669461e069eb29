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

    /// The conversation's names: declared tools first, then those its history calls.
    public init(_ conversation: ChatConversation) {
        self.init(names: conversation.toolNames)
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
        var names = BedrockToolNames(conversation)
        var system: [JSONValue] = []
        var turns: [(role: String, content: [JSONValue])] = []
        var historyHasToolBlocks = false

        func append(_ role: String, _ blocks: [JSONValue]) {
            guard !blocks.isEmpty else { return }
            // Converse wants user and assistant turns to alternate: same-role neighbours merge.
            if let last = turns.last, last.role == role {
                turns[turns.count - 1].content += blocks
            } else {
                turns.append((role, blocks))
            }
        }

        for (i, m) in conversation.messages.enumerated() {
            switch m.role {
            case .system, .developer:
                let text = m.text
                if !text.isEmpty { system.append(.object(["text": .string(text)])) }
            case .user:
                var blocks: [JSONValue] = []
                for (k, part) in m.content.enumerated() {
                    switch part {
                    case .text(let t):
                        if !t.isEmpty { blocks.append(.object(["text": .string(t)])) }
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
                        blocks.append(.object(["image": .object(["format": .string(format), "source": .object(["bytes": .string(data)])])]))
                    case .other(let type, _):
                        return .failure(.unsupported("messages[\(i)].content[\(k)].type", "Bedrock Converse cannot carry a \(type) content part"))
                    }
                }
                append("user", blocks)
            case .assistant:
                var blocks: [JSONValue] = []
                let text = m.text
                if !text.isEmpty { blocks.append(.object(["text": .string(text)])) }
                for call in m.toolCalls {
                    guard let input = call.argumentsObject else {
                        return .failure(AttemptRefusal(
                            parameter: "messages[\(i)].tool_calls",
                            reason: "the arguments of tool call \(call.id) are not a JSON object, which Bedrock requires"))
                    }
                    historyHasToolBlocks = true
                    blocks.append(.object([
                        "toolUse": .object(["toolUseId": .string(call.id), "name": .string(names.bedrockName(call.name)), "input": input])
                    ]))
                }
                append("assistant", blocks)
            case .tool:
                historyHasToolBlocks = true
                var result: [String: JSONValue] = [
                    "toolUseId": .string(m.toolCallID ?? ""),
                    "content": .array([.object(["text": .string(m.text)])]),
                ]
                if m.text.isEmpty { result["content"] = .array([.object(["text": .string(" ")])]) }
                append("user", [.object(["toolResult": .object(result)])])
            }
        }
        if let prefill, !prefill.isEmpty {
            append("assistant", [.object(["text": .string(prefill)])])
        }

        var body: [String: JSONValue] = [
            "messages": .array(turns.map { .object(["role": .string($0.role), "content": .array($0.content)]) })
        ]
        if !system.isEmpty { body["system"] = .array(system) }

        var inference: [String: JSONValue] = ["maxTokens": .int(conversation.maxTokens ?? defaultMaxTokens)]
        if let t = conversation.temperature { inference["temperature"] = number(t) }
        if let p = conversation.topP { inference["topP"] = number(p) }
        if !conversation.stop.isEmpty { inference["stopSequences"] = .array(conversation.stop.map { .string($0) }) }
        body["inferenceConfig"] = .object(inference)

        var specs: [JSONValue] = []
        var declared: Set<String> = []
        for tool in conversation.tools {
            let name = names.bedrockName(tool.name)
            guard declared.insert(name).inserted else { continue }
            var spec: [String: JSONValue] = [
                "name": .string(name),
                "inputSchema": .object(["json": tool.parameters ?? .object(["type": .string("object"), "properties": .object([:])])]),
            ]
            if let d = tool.description, !d.isEmpty { spec["description"] = .string(d) }
            specs.append(.object(["toolSpec": .object(spec)]))
        }
        if specs.isEmpty && historyHasToolBlocks {
            // Converse rejects tool blocks without a toolConfig: declare the tools the history used.
            for call in conversation.messages.flatMap(\.toolCalls) {
                let name = names.bedrockName(call.name)
                guard declared.insert(name).inserted else { continue }
                specs.append(.object(["toolSpec": .object([
                    "name": .string(name),
                    "inputSchema": .object(["json": .object(["type": .string("object"), "properties": .object([:])])]),
                ])]))
            }
        }
        if !specs.isEmpty {
            var config: [String: JSONValue] = ["tools": .array(specs)]
            switch conversation.toolChoice {
            case .auto?: config["toolChoice"] = .object(["auto": .object([:])])
            case .required?: config["toolChoice"] = .object(["any": .object([:])])
            case .function(let n)?: config["toolChoice"] = .object(["tool": .object(["name": .string(names.bedrockName(n))])])
            // Converse has no "none": the choice is left to the model (its default, auto).
            case .none?, nil: break
            }
            body["toolConfig"] = .object(config)
        }
        if let g = guardrail {
            body["guardrailConfig"] = .object([
                "guardrailIdentifier": .string(g.identifier), "guardrailVersion": .string(g.version), "trace": .string("enabled"),
            ])
        }
        return .success(Array(JSONValue.object(body).canonicalJSON().utf8))
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

    /// A complete Converse answer as an OpenAI `chat.completion`.
    ///
    /// - Parameters:
    ///   - id: the `x-amzn-RequestId` header (Converse has no id in its body), else a gateway id.
    ///   - model: the model the request asked for (the body does not name it).
    public static func completion(_ body: [UInt8], id: String, model: String, created: Int, names: BedrockToolNames) -> ResponseTranslation {
        guard let answer = try? Answer(body), answer.hasContent else { return .failed(.malformedResponse) }
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 256)
        JSONBytes.append("{\"id\":", to: &out)
        JSONBytes.appendString(id, to: &out)
        JSONBytes.append(",\"object\":\"chat.completion\",\"created\":", to: &out)
        JSONBytes.appendInt(created, to: &out)
        JSONBytes.append(",\"model\":", to: &out)
        JSONBytes.appendString(model, to: &out)
        // The message's members in sorted order, as before (content, reasoning_content, role, tool_calls).
        JSONBytes.append(",\"choices\":[{\"index\":0,\"message\":{\"content\":", to: &out)
        if answer.text.isEmpty && !answer.calls.isEmpty { JSONBytes.append("null", to: &out) } else { JSONBytes.appendString(answer.text, to: &out) }
        if !answer.reasoning.isEmpty {
            JSONBytes.append(",\"reasoning_content\":", to: &out)
            JSONBytes.appendString(answer.reasoning, to: &out)
        }
        JSONBytes.append(",\"role\":\"assistant\"", to: &out)
        if !answer.calls.isEmpty {
            JSONBytes.append(",\"tool_calls\":[", to: &out)
            for (k, call) in answer.calls.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                JSONBytes.append("{\"function\":{\"arguments\":", to: &out)
                JSONBytes.appendString(call.input.canonicalJSON(), to: &out)
                JSONBytes.append(",\"name\":", to: &out)
                JSONBytes.appendString(names.clientName(call.name), to: &out)
                JSONBytes.append("},\"id\":", to: &out)
                JSONBytes.appendString(call.id, to: &out)
                JSONBytes.append(",\"type\":\"function\"}", to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        JSONBytes.append("},\"logprobs\":null,\"finish_reason\":", to: &out)
        JSONBytes.appendString(finishReason(answer.stopReason), to: &out)
        JSONBytes.append("}]", to: &out)
        let u = usage(answer.usage)
        if let u {
            JSONBytes.append(",\"usage\":", to: &out)
            out.append(contentsOf: u.openAIJSON.utf8)
        }
        out.append(UInt8(ascii: "}"))
        return .translated(body: out, usage: u)
    }

    /// What a complete Converse answer says, read in one pass over its bytes.
    struct Answer {
        /// `output.message.content` is an array.
        var hasContent = false
        var text = ""
        var reasoning = ""
        var calls: [(id: String, name: String, input: JSONValue)] = []
        var stopReason: String?
        var usage: JSONValue?

        private init() {}

        init(_ bytes: [UInt8]) throws(JSONCursor.Failure) {
            self = try JSONCursor.read(bytes) { (c: inout JSONCursor) throws(JSONCursor.Failure) -> Answer in
                var a = Answer()
                try c.enterObject()
                while let k = try c.nextKey() {
                    if c.key(k, is: "output") {
                        (a.hasContent, a.text, a.reasoning, a.calls) = (false, "", "", [])
                        try Self.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                            guard c.key(k, is: "message") else {
                                try c.skipValue()
                                return
                            }
                            (a.hasContent, a.text, a.reasoning, a.calls) = (false, "", "", [])
                            try Self.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                                guard c.key(k, is: "content") else {
                                    try c.skipValue()
                                    return
                                }
                                (a.hasContent, a.text, a.reasoning, a.calls) = (c.peek() == UInt8(ascii: "["), "", "", [])
                                guard a.hasContent else {
                                    try c.skipValue()
                                    return
                                }
                                try c.enterArray()
                                while try c.nextElement() { try a.block(&c) }
                            }
                        }
                    } else if c.key(k, is: "stopReason") {
                        a.stopReason = try c.stringIfAny()
                    } else if c.key(k, is: "usage") {
                        a.usage = try c.value()
                    } else {
                        try c.skipValue()
                    }
                }
                try c.end()
                return a
            }
        }

        /// One content block: text, a tool use, or reasoning text (in that order of precedence).
        private mutating func block(_ c: inout JSONCursor) throws(JSONCursor.Failure) {
            var text: String?
            var use: (id: String?, name: String?, input: JSONValue?)?
            var reasoning: String?
            try Self.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                if c.key(k, is: "text") {
                    text = try c.stringIfAny()
                } else if c.key(k, is: "toolUse") {
                    use = nil
                    guard c.peek() == UInt8(ascii: "{") else {
                        try c.skipValue()
                        return
                    }
                    var u: (id: String?, name: String?, input: JSONValue?) = (nil, nil, nil)
                    try Self.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                        if c.key(k, is: "toolUseId") {
                            u.id = try c.stringIfAny()
                        } else if c.key(k, is: "name") {
                            u.name = try c.stringIfAny()
                        } else if c.key(k, is: "input") {
                            u.input = try c.value()
                        } else {
                            try c.skipValue()
                        }
                    }
                    use = u
                } else if c.key(k, is: "reasoningContent") {
                    reasoning = nil
                    try Self.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                        guard c.key(k, is: "reasoningText") else {
                            try c.skipValue()
                            return
                        }
                        reasoning = try BedrockStreamTranslator.Payload.member("text", of: &c)
                    }
                } else {
                    try c.skipValue()
                }
            }
            if let text {
                self.text += text
            } else if let use {
                calls.append((use.id ?? "", use.name ?? "", use.input ?? .object([:])))
            } else if let reasoning {
                self.reasoning += reasoning
            }
        }

        static func members(
            of c: inout JSONCursor, _ member: (inout JSONCursor, JSONCursor.Key) throws(JSONCursor.Failure) -> Void
        ) throws(JSONCursor.Failure) {
            try StreamPayload.members(of: &c, member)
        }
    }
}
