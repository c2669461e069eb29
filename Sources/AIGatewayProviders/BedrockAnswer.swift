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
        var text = Spans()
        /// The reasoning blocks' `reasoningText.text` strings, in order.
        var reasoning = Spans()
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
            text = Spans()
            reasoning = Spans()
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
            var arguments: [String] = []
            arguments.reserveCapacity(calls.count)
            for call in calls {
                guard let range = call.input else {
                    arguments.append("{}")
                    continue
                }
                // The scanner checked the value (its depth included): this cannot fail.
                guard let input = try? JSONParser.parse(UnsafeRawBufferPointer(rebasing: raw[range])) else { return .failed(.malformedResponse) }
                arguments.append(input.canonicalJSON())
            }
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
                    Spans(call.id).write(raw, to: &out)
                    JSONBytes.append(",\"type\":\"function\"}", to: &out)
                }
                out.append(UInt8(ascii: "]"))
            }
            JSONBytes.append("},\"logprobs\":null,\"finish_reason\":", to: &out)
            Self.appendFinishReason(stopReason, s, to: &out)
            JSONBytes.append("}]", to: &out)
            let u = usage.tokenUsage
            if let u {
                JSONBytes.append(",\"usage\":", to: &out)
                JSONBytes.appendUsage(u, to: &out)
            }
            out.append(UInt8(ascii: "}"))
            return .translated(body: out, usage: u)
        }

        /// `finishReason(stopReason)` as a JSON string: the usual reasons compared in place, the
        /// others decoded and mapped.
        static func appendFinishReason(_ stop: Text?, _ s: JSONScanner, to out: inout [UInt8]) {
            if let stop, !stop.escaped {
                if s.text(stop, is: "end_turn") { return JSONBytes.append("\"stop\"", to: &out) }
                if s.text(stop, is: "tool_use") { return JSONBytes.append("\"tool_calls\"", to: &out) }
                if s.text(stop, is: "max_tokens") { return JSONBytes.append("\"length\"", to: &out) }
            }
            JSONBytes.appendString(BedrockConverse.finishReason(stop.map(s.string)), to: &out)
        }

    }

    /// Strings written as one JSON string (the message's text, its reasoning): the concatenation
    /// of spans of the body. The first is kept inline, as an answer mostly has one text block (no
    /// array to allocate and free per answer).
    struct Spans {
        private var first: JSONScanner.Text?
        private var more: [JSONScanner.Text] = []

        init(_ first: JSONScanner.Text? = nil) {
            self.first = first
        }

        mutating func append(_ span: JSONScanner.Text) {
            if first == nil { first = span } else { more.append(span) }
        }

        /// The concatenation is empty: a span's contents are empty exactly when its string is
        /// (an escape never is).
        var isEmpty: Bool { (first?.range.isEmpty ?? true) && more.allSatisfy { $0.range.isEmpty } }

        /// Appends the concatenation as one JSON string literal, escaped as `JSONBytes.appendString` escapes.
        func write(_ raw: UnsafeRawBufferPointer, to out: inout [UInt8]) {
            out.append(UInt8(ascii: "\""))
            if let first { Self.append(first, raw, to: &out) }
            for span in more { Self.append(span, raw, to: &out) }
            out.append(UInt8(ascii: "\""))
        }

        private static func append(_ span: JSONScanner.Text, _ raw: UnsafeRawBufferPointer, to out: inout [UInt8]) {
            if span.escaped {
                var decoded = JSONLexer.string(raw, contents: span.range, escaped: true)
                decoded.withUTF8 { JSONBytes.appendEscaped($0, to: &out) }
            } else {
                // Checked UTF-8 without a quote, backslash or control byte: escaping leaves it as is.
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[span.range]))
            }
        }
    }
}

extension JSONScanner {
    /// Enters the object at the scanner when the value is one, true when it has members to
    /// read; any other value is skipped (false).
    mutating func enterObjectIfAny() throws(Invalid) -> Bool {
        guard peek() == UInt8(ascii: "{") else {
            try skipValue()
            return false
        }
        return try enterObject()
    }
}

extension UsageCounts {
    /// Reads the object at the scanner, as `init(_:input:output:cacheRead:cacheWrite:)` reads it at a cursor.
    init(
        _ s: inout JSONScanner, input: StaticString, output: StaticString, cacheRead: StaticString, cacheWrite: StaticString
    ) throws(JSONScanner.Invalid) {
        self.init()
        guard s.peek() == UInt8(ascii: "{") else {
            try s.skipValue()
            return
        }
        present = true
        guard try s.enterObject() else { return }
        repeat {
            let k = try s.key()
            if s.text(k, is: input) {
                hasInput = true
                self.input = try s.intValue()
            } else if s.text(k, is: output) {
                self.output = try s.intValue()
            } else if s.text(k, is: cacheRead) {
                self.cacheRead = try s.intValue()
            } else if s.text(k, is: cacheWrite) {
                self.cacheWrite = try s.intValue()
            } else {
                try s.skipValue()
            }
        } while try s.nextMember()
    }
}
