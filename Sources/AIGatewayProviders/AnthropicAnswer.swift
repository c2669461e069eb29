import AIGatewayAPI

extension AnthropicAdapter {
    /// A complete Messages answer as an OpenAI `chat.completion`, or the failure it reports.
    ///
    /// Read in one pass with `JSONScanner` as Bedrock's answer is (`BedrockConverse.completion`):
    /// anything `JSONParser` refuses, or an answer without a `content` array, is a malformed
    /// response; the strings stay in the body until they are written.
    static func completion(_ body: [UInt8], context: TranslationContext) -> ResponseTranslation {
        body.withUnsafeBytes { raw in
            var s = JSONScanner(raw)
            guard let answer = try? Answer(&s) else { return .failed(.malformedResponse) }
            if let type = answer.type, s.text(type, is: "error") {
                return .failed(failure(forType: answer.errorType.map(s.string), message: answer.errorMessage.map(s.string) ?? "", status: nil))
            }
            guard answer.hasContent else { return .failed(.malformedResponse) }
            return answer.completion(raw, scanner: s, context: context)
        }
    }

    /// What a complete Messages answer says: the strings as spans of the body. A member given
    /// twice counts as in a parsed object (the last one); a new `content` starts the content afresh.
    struct Answer {
        typealias Text = JSONScanner.Text

        /// A `tool_use` block: its id and name when they are strings, where its input is.
        struct Call {
            var id: Text?
            var name: Text?
            var input: Range<Int>?
        }

        var type: Text?
        var id: Text?
        var model: Text?
        var stopReason: Text?
        var usage = UsageCounts()
        var errorType: Text?
        var errorMessage: Text?
        /// `content` is an array (an answer has one, an error has none).
        var hasContent = false
        var text = JSONSpans()
        var reasoning = JSONSpans()
        var calls: [Call] = []

        init(_ s: inout JSONScanner) throws(JSONScanner.Invalid) {
            guard s.peek() == UInt8(ascii: "{") else { throw JSONScanner.Invalid() }
            if try s.enterObject() {
                repeat {
                    let k = try s.key()
                    if s.text(k, is: "type") {
                        type = try s.stringValue()
                    } else if s.text(k, is: "id") {
                        id = try s.stringValue()
                    } else if s.text(k, is: "model") {
                        model = try s.stringValue()
                    } else if s.text(k, is: "stop_reason") {
                        stopReason = try s.stringValue()
                    } else if s.text(k, is: "usage") {
                        usage = try UsageCounts(
                            &s, input: "input_tokens", output: "output_tokens", cacheRead: "cache_read_input_tokens", cacheWrite: "cache_creation_input_tokens")
                    } else if s.text(k, is: "content") {
                        (hasContent, text, reasoning, calls) = (s.peek() == UInt8(ascii: "["), JSONSpans(), JSONSpans(), [])
                        guard hasContent else {
                            try s.skipValue()
                            continue
                        }
                        if try s.enterArray() {
                            repeat { try block(&s) } while try s.nextElement()
                        }
                    } else if s.text(k, is: "error") {
                        guard try s.enterObjectIfAny() else { continue }
                        repeat {
                            let k = try s.key()
                            if s.text(k, is: "type") {
                                errorType = try s.stringValue()
                            } else if s.text(k, is: "message") {
                                errorMessage = try s.stringValue()
                            } else {
                                try s.skipValue()
                            }
                        } while try s.nextMember()
                    } else {
                        try s.skipValue()
                    }
                } while try s.nextMember()
            }
            s.skipWhitespace()
            guard s.atEnd else { throw JSONScanner.Invalid() }
        }

        /// One content block: its text, thinking or tool call added (by its `type`).
        private mutating func block(_ s: inout JSONScanner) throws(JSONScanner.Invalid) {
            var type: Text?
            var text: Text?
            var thinking: Text?
            var call = Call()
            guard try s.enterObjectIfAny() else { return }
            repeat {
                let k = try s.key()
                if s.text(k, is: "type") {
                    type = try s.stringValue()
                } else if s.text(k, is: "text") {
                    text = try s.stringValue()
                } else if s.text(k, is: "thinking") {
                    thinking = try s.stringValue()
                } else if s.text(k, is: "id") {
                    call.id = try s.stringValue()
                } else if s.text(k, is: "name") {
                    call.name = try s.stringValue()
                } else if s.text(k, is: "input") {
                    call.input = try s.skipValueRange()
                } else {
                    try s.skipValue()
                }
            } while try s.nextMember()
            guard let type else { return }
            if s.text(type, is: "text") {
                if let text { self.text.append(text) }
            } else if s.text(type, is: "thinking") {
                if let thinking { reasoning.append(thinking) }
            } else if s.text(type, is: "tool_use") {
                calls.append(call)
            }
        }

        /// The OpenAI answer (`scanner` is the one that read this answer from `raw`).
        func completion(_ raw: UnsafeRawBufferPointer, scanner s: JSONScanner, context: TranslationContext) -> ResponseTranslation {
            // Tool inputs are written as their canonical JSON (sorted keys): parsed whole.
            guard let arguments = JSONSpans.canonicalArguments(calls.lazy.map(\.input), in: raw) else { return .failed(.malformedResponse) }
            let usage = self.usage.tokenUsage
            var out: [UInt8] = []
            out.reserveCapacity(raw.count + context.fallbackID.utf8.count + context.model.utf8.count + 256)
            JSONBytes.append("{\"id\":", to: &out)
            if let id { JSONSpans(id).write(raw, to: &out) } else { JSONBytes.appendString(context.fallbackID, to: &out) }
            JSONBytes.append(",\"object\":\"chat.completion\",\"created\":", to: &out)
            JSONBytes.appendInt(context.created, to: &out)
            JSONBytes.append(",\"model\":", to: &out)
            if let model { JSONSpans(model).write(raw, to: &out) } else { JSONBytes.appendString(context.model, to: &out) }
            JSONBytes.append(",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":", to: &out)
            if text.isEmpty && !calls.isEmpty { JSONBytes.append("null", to: &out) } else { text.write(raw, to: &out) }
            if !reasoning.isEmpty {
                JSONBytes.append(",\"reasoning_content\":", to: &out)
                reasoning.write(raw, to: &out)
            }
            if !calls.isEmpty {
                JSONBytes.append(",\"tool_calls\":[", to: &out)
                for (k, call) in calls.enumerated() {
                    if k > 0 { out.append(UInt8(ascii: ",")) }
                    JSONBytes.append("{\"id\":", to: &out)
                    JSONSpans(call.id).write(raw, to: &out)
                    JSONBytes.append(",\"type\":\"function\",\"function\":{\"name\":", to: &out)
                    JSONSpans(call.name).write(raw, to: &out)
                    JSONBytes.append(",\"arguments\":", to: &out)
                    JSONBytes.appendString(arguments[k], to: &out)
                    JSONBytes.append("}}", to: &out)
                }
                out.append(UInt8(ascii: "]"))
            }
            JSONBytes.append(",\"refusal\":null},\"logprobs\":null,\"finish_reason\":", to: &out)
            JSONSpans.appendFinishReason(stopReason, s, map: AnthropicAdapter.finishReason, to: &out)
            out.append(UInt8(ascii: "}"))
            out.append(UInt8(ascii: "]"))
            if let usage {
                JSONBytes.append(",\"usage\":", to: &out)
                JSONBytes.appendUsage(usage, to: &out)
            }
            out.append(UInt8(ascii: "}"))
            return .translated(body: out, usage: usage)
        }
    }
}
