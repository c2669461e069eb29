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
        guard let value = try? JSONParser.parse(body), case .object = value,
            let content = value["output"]?["message"]?["content"]?.arrayValue
        else {
            return .failed(.malformedResponse)
        }
        var text = ""
        var reasoning = ""
        var calls: [JSONValue] = []
        for block in content {
            if let t = block["text"]?.stringValue {
                text += t
            } else if let use = block["toolUse"], case .object = use {
                let input = use["input"] ?? .object([:])
                calls.append(.object([
                    "id": .string(use["toolUseId"]?.stringValue ?? ""), "type": .string("function"),
                    "function": .object([
                        "name": .string(names.clientName(use["name"]?.stringValue ?? "")),
                        "arguments": .string(input.canonicalJSON()),
                    ]),
                ]))
            } else if let r = block["reasoningContent"]?["reasoningText"]?["text"]?.stringValue {
                reasoning += r
            }
        }
        var message: [String: JSONValue] = ["role": .string("assistant"), "content": text.isEmpty && !calls.isEmpty ? .null : .string(text)]
        if !calls.isEmpty { message["tool_calls"] = .array(calls) }
        if !reasoning.isEmpty { message["reasoning_content"] = .string(reasoning) }
        var out = "{\"id\":\(JSONValue.quoted(id)),\"object\":\"chat.completion\",\"created\":\(created),\"model\":\(JSONValue.quoted(model)),"
        out += "\"choices\":[{\"index\":0,\"message\":\(JSONValue.object(message).canonicalJSON()),\"logprobs\":null,"
        out += "\"finish_reason\":\(JSONValue.quoted(finishReason(value["stopReason"]?.stringValue)))}]"
        let u = usage(value["usage"])
        if let u { out += ",\"usage\":\(u.openAIJSON)" }
        out += "}"
        return .translated(body: Array(out.utf8), usage: u)
    }
}
