import AIGatewayAPI

extension BedrockConverse {
    /// A complete Converse answer as an OpenAI `chat.completion`.
    ///
    /// The answer is read in one pass with `JSONScanner` (as strict as `JSONParser`; anything it
    /// refuses, or an answer without a `content` array, is a malformed response) and its strings
    /// stay in the body until they are written: a string without escapes is copied as it is (its
    /// bytes are then exactly what decoding and escaping it again would give), one with escapes is
    /// decoded and escaped the way `JSONBytes.appendString` escapes.
    ///
    /// - Parameters:
    ///   - id: the `x-amzn-RequestId` header (Converse has no id in its body), else a gateway id.
    ///   - model: the model the request asked for (the body does not name it).
    public static func completion(_ body: [UInt8], id: String, model: String, created: Int, names: BedrockToolNames) -> ResponseTranslation {
        body.withUnsafeBytes { raw in
            var s = JSONScanner(raw)
            guard let answer = try? Answer(&s), answer.hasContent else { return .failed(.malformedResponse) }
            return answer.completion(raw, scanner: s, id: id, model: model, created: created, names: names)
        }
    }

    /// What a complete Converse answer says: the strings as spans of the body.
    ///
    /// A member given twice counts as in a parsed object (the last one), and a new `output`,
    /// `message` or `content` starts the content afresh, as `JSONValue` lookups would have it.
    struct Answer {
        typealias Text = JSONScanner.Text

        /// A `toolUse` block: its id and name when they are strings, where its input is.
        struct Call {
            var id: Text?
            var name: Text?
            var input: Range<Int>?
        }

        /// `output.message.content` is an array.
        var hasContent = false
        /// The text blocks' strings, in order (the message's text is their concatenation).
        var text = JSONSpans()
        /// The reasoning blocks' `reasoningText.text` strings, in order.
        var reasoning = JSONSpans()
        var calls: [Call] = []
        var stopReason: Text?
        var usage = UsageCounts()

        init(_ s: inout JSONScanner) throws(JSONScanner.Invalid) {
            guard s.peek() == UInt8(ascii: "{") else { throw JSONScanner.Invalid() }
            if try s.enterObject() {
                repeat {
                    let k = try s.key()
                    if s.text(k, is: "output") {
                        try output(&s)
                    } else if s.text(k, is: "stopReason") {
                        stopReason = try s.stringValue()
                    } else if s.text(k, is: "usage") {
                        usage = try UsageCounts(&s, input: "inputTokens", output: "outputTokens", cacheRead: "cacheReadInputTokens", cacheWrite: "cacheWriteInputTokens")
                    } else {
                        try s.skipValue()
                    }
                } while try s.nextMember()
            }
            s.skipWhitespace()
            guard s.atEnd else { throw JSONScanner.Invalid() }
        }

        private mutating func resetContent() {
            hasContent = false
            text = JSONSpans()
            reasoning = JSONSpans()
            calls = []
        }

        /// `output`: an object whose `message` is an object whose `content` is the blocks.
        private mutating func output(_ s: inout JSONScanner) throws(JSONScanner.Invalid) {
            resetContent()
            guard try s.enterObjectIfAny() else { return }
            repeat {
                guard s.text(try s.key(), is: "message") else {
                    try s.skipValue()
                    continue
                }
                resetContent()
                guard try s.enterObjectIfAny() else { continue }
                repeat {
                    guard s.text(try s.key(), is: "content") else {
                        try s.skipValue()
                        continue
                    }
                    resetContent()
                    guard s.peek() == UInt8(ascii: "[") else {
                        try s.skipValue()
                        continue
                    }
                    hasContent = true
                    if try s.enterArray() {
                        repeat { try block(&s) } while try s.nextElement()
                    }
                } while try s.nextMember()
            } while try s.nextMember()
        }

        /// One content block: text, a tool use, or reasoning text (in that order of precedence;
        /// anything else, or a block that is no object, adds nothing).
        private mutating func block(_ s: inout JSONScanner) throws(JSONScanner.Invalid) {
            var text: Text?
            var use: Call?
            var reasoning: Text?
            guard try s.enterObjectIfAny() else { return }
            repeat {
                let k = try s.key()
                if s.text(k, is: "text") {
                    text = try s.stringValue()
                } else if s.text(k, is: "toolUse") {
                    use = nil
                    guard s.peek() == UInt8(ascii: "{") else {
                        try s.skipValue()
                        continue
                    }
                    var call = Call()
                    if try s.enterObject() {
                        repeat {
                            let k = try s.key()
                            if s.text(k, is: "toolUseId") {
                                call.id = try s.stringValue()
                            } else if s.text(k, is: "name") {
                                call.name = try s.stringValue()
                            } else if s.text(k, is: "input") {
                                call.input = try s.skipValueRange()
                            } else {
                                try s.skipValue()
                            }
                        } while try s.nextMember()
                    }
                    use = call
                } else if s.text(k, is: "reasoningContent") {
                    reasoning = nil
                    guard try s.enterObjectIfAny() else { continue }
                    repeat {
                        guard s.text(try s.key(), is: "reasoningText") else {
                            try s.skipValue()
                            continue
                        }
                        // `reasoningText.text` when it is an object, else nothing.
                        reasoning = nil
                        guard try s.enterObjectIfAny() else { continue }
                        repeat {
                            if s.text(try s.key(), is: "text") { reasoning = try s.stringValue() } else { try s.skipValue() }
                        } while try s.nextMember()
                    } while try s.nextMember()
                } else {
                    try s.skipValue()
                }
            } while try s.nextMember()
            if let text {
                self.text.append(text)
            } else if let use {
                calls.append(use)
            } else if let reasoning {
                self.reasoning.append(reasoning)
            }
        }

        /// The OpenAI answer (`scanner` is the one that read this answer from `raw`).
        func completion(
            _ raw: UnsafeRawBufferPointer, scanner s: JSONScanner, id: String, model: String, created: Int, names: BedrockToolNames
        ) -> ResponseTranslation {
            // Tool inputs are written as their canonical JSON (sorted keys): parsed whole.
            guard let arguments = JSONSpans.canonicalArguments(calls.lazy.map(\.input), in: raw) else { return .failed(.malformedResponse) }
            var out: [UInt8] = []
            out.reserveCapacity(raw.count + id.utf8.count + model.utf8.count + 256)
            JSONBytes.append("{\"id\":", to: &out)
            JSONBytes.appendString(id, to: &out)
            JSONBytes.append(",\"object\":\"chat.completion\",\"created\":", to: &out)
            JSONBytes.appendInt(created, to: &out)
            JSONBytes.append(",\"model\":", to: &out)
            JSONBytes.appendString(model, to: &out)
            // The message's members in sorted order, as before (content, reasoning_content, role, tool_calls).
            JSONBytes.append(",\"choices\":[{\"index\":0,\"message\":{\"content\":", to: &out)
            if !calls.isEmpty && text.isEmpty {
                JSONBytes.append("null", to: &out)
            } else {
                text.write(raw, to: &out)
            }
            if !reasoning.isEmpty {
                JSONBytes.append(",\"reasoning_content\":", to: &out)
                reasoning.write(raw, to: &out)
            }
            JSONBytes.append(",\"role\":\"assistant\"", to: &out)
            if !calls.isEmpty {
                JSONBytes.append(",\"tool_calls\":[", to: &out)
                for (k, call) in calls.enumerated() {
                    if k > 0 { out.append(UInt8(ascii: ",")) }
                    JSONBytes.append("{\"function\":{\"arguments\":", to: &out)
                    JSONBytes.appendString(arguments[k], to: &out)
                    JSONBytes.append(",\"name\":", to: &out)
                    JSONBytes.appendString(names.clientName(call.name.map(s.string) ?? ""), to: &out)
                    JSONBytes.append("},\"id\":", to: &out)
                    JSONSpans(call.id).write(raw, to: &out)
                    JSONBytes.append(",\"type\":\"function\"}", to: &out)
                }
                out.append(UInt8(ascii: "]"))
            }
            JSONBytes.append("},\"logprobs\":null,\"finish_reason\":", to: &out)
            JSONSpans.appendFinishReason(stopReason, s, map: BedrockConverse.finishReason, to: &out)
            JSONBytes.append("}]", to: &out)
            let u = usage.tokenUsage
            if let u {
                JSONBytes.append(",\"usage\":", to: &out)
                JSONBytes.appendUsage(u, to: &out)
            }
            out.append(UInt8(ascii: "}"))
            return .translated(body: out, usage: u)
        }
    }
}
