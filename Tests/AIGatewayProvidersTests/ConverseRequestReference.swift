import AIGatewayAPI
@testable import AIGatewayProviders

/// `BedrockConverse.requestBody` as it was before the turns were written as they are read (each
/// turn's blocks collected first, the tool names derived again for the hints), kept verbatim as
/// the reference the differential test compares the current request with, byte for byte.
enum ConverseRequestReference {
    typealias Block = BedrockConverse.Block
    static let imageFormats = BedrockConverse.imageFormats
    static let defaultMaxTokens = BedrockConverse.defaultMaxTokens
    static func number(_ d: Double) -> JSONValue { BedrockConverse.number(d) }

    /// The reference's body and hints (as `BedrockAdapter.makeRequest` derived them).
    static func request(
        _ conversation: ChatConversation, guardrail: BedrockProvider.Guardrail?, prefill: String? = nil
    ) -> Result<(body: [UInt8], hints: [String: String]), AttemptRefusal> {
        requestBody(conversation, guardrail: guardrail, prefill: prefill).map { ($0, BedrockToolNames(names: conversation.toolNames).hints) }
    }

    /// The Converse request body for `conversation`, or why this candidate cannot carry it.
    ///
    /// - Parameters:
    ///   - guardrail: the Backend's `guardrail`, sent as `guardrailConfig`.
    ///   - prefill: assistant text already streamed (continuation): the last assistant turn.
    static func requestBody(
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
        var names = BedrockToolNames(names: conversation.toolNames)
        var system: [String] = []
        var turns: [(role: String, content: [Block])] = []
        turns.reserveCapacity(conversation.messages.count)
        var historyHasToolBlocks = false

        func append(_ role: String, _ blocks: [Block]) {
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
                if !text.isEmpty { system.append(text) }
            case .user:
                var blocks: [Block] = []
                for (k, part) in m.content.enumerated() {
                    switch part {
                    case .text(let t):
                        if !t.isEmpty { blocks.append(.text(t)) }
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
                        blocks.append(.image(format: format, data: data))
                    case .other(let type, _):
                        return .failure(.unsupported("messages[\(i)].content[\(k)].type", "Bedrock Converse cannot carry a \(type) content part"))
                    }
                }
                append("user", blocks)
            case .assistant:
                var blocks: [Block] = []
                let text = m.text
                if !text.isEmpty { blocks.append(.text(text)) }
                for call in m.toolCalls {
                    guard let input = call.argumentsObject else {
                        return .failure(AttemptRefusal(
                            parameter: "messages[\(i)].tool_calls",
                            reason: "the arguments of tool call \(call.id) are not a JSON object, which Bedrock requires"))
                    }
                    historyHasToolBlocks = true
                    blocks.append(.toolUse(id: call.id, name: names.bedrockName(call.name), input: input))
                }
                append("assistant", blocks)
            case .tool:
                historyHasToolBlocks = true
                // Converse refuses a blank text block.
                append("user", [.toolResult(id: m.toolCallID ?? "", text: m.text.isEmpty ? " " : m.text)])
            }
        }
        if let prefill, !prefill.isEmpty {
            append("assistant", [.text(prefill)])
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

        // Members in sorted order at every level (the text `canonicalJSON` gave before).
        var s: [UInt8] = []
        s.reserveCapacity(conversation.messages.count * 64 + 256)
        s.append(UInt8(ascii: "{"))
        if let g = guardrail {
            JSONBytes.append("\"guardrailConfig\":{\"guardrailIdentifier\":", to: &s)
            JSONBytes.appendString(g.identifier, to: &s)
            JSONBytes.append(",\"guardrailVersion\":", to: &s)
            JSONBytes.appendString(g.version, to: &s)
            JSONBytes.append(",\"trace\":\"enabled\"},", to: &s)
        }
        JSONBytes.append("\"inferenceConfig\":{\"maxTokens\":", to: &s)
        JSONBytes.appendInt(conversation.maxTokens ?? defaultMaxTokens, to: &s)
        if !conversation.stop.isEmpty {
            JSONBytes.append(",\"stopSequences\":", to: &s)
            JSONBytes.appendValue(.array(conversation.stop.map { .string($0) }), to: &s)
        }
        if let t = conversation.temperature {
            JSONBytes.append(",\"temperature\":", to: &s)
            JSONBytes.appendValue(number(t), to: &s)
        }
        if let p = conversation.topP {
            JSONBytes.append(",\"topP\":", to: &s)
            JSONBytes.appendValue(number(p), to: &s)
        }
        JSONBytes.append("},\"messages\":[", to: &s)
        for (k, turn) in turns.enumerated() {
            if k > 0 { s.append(UInt8(ascii: ",")) }
            JSONBytes.append("{\"content\":[", to: &s)
            for (j, block) in turn.content.enumerated() {
                if j > 0 { s.append(UInt8(ascii: ",")) }
                block.write(to: &s)
            }
            JSONBytes.append("],\"role\":", to: &s)
            JSONBytes.appendString(turn.role, to: &s)
            s.append(UInt8(ascii: "}"))
        }
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
        return .success(s)
    }

}
