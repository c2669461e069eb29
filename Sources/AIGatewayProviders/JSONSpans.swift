import AIGatewayAPI

/// Strings of a provider's answer written as one JSON string (a message's text, its reasoning,
/// an id): the concatenation of spans of the body a `JSONScanner` read. The first is kept inline,
/// as an answer mostly has one text block (no array to allocate and free per answer).
struct JSONSpans {
    private var first: JSONScanner.Text?
    private var more: [JSONScanner.Text] = []

    init(_ first: JSONScanner.Text? = nil) {
        self.first = first
    }

    mutating func append(_ span: JSONScanner.Text) {
        if first == nil { first = span } else { more.append(span) }
    }

    /// The concatenation is empty: a span's contents are empty exactly when its string is (an
    /// escape never is).
    var isEmpty: Bool { (first?.range.isEmpty ?? true) && more.allSatisfy { $0.range.isEmpty } }

    /// Appends the concatenation as one JSON string literal, escaped as `JSONBytes.appendString`
    /// escapes: a span without escapes is copied as it is (checked UTF-8 without a quote,
    /// backslash or control byte, which escaping leaves as is), one with escapes is decoded and
    /// escaped again.
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
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[span.range]))
        }
    }

    /// Each tool call's input (the range of its JSON value in `raw`; nil: none sent, `{}`) as its
    /// canonical JSON text (sorted keys), what OpenAI's `arguments` carries; nil when one does not
    /// parse (the scanner checked it, depth included, so it cannot fail).
    static func canonicalArguments(_ inputs: some Collection<Range<Int>?>, in raw: UnsafeRawBufferPointer) -> [String]? {
        var arguments: [String] = []
        arguments.reserveCapacity(inputs.count)
        for input in inputs {
            guard let range = input else {
                arguments.append("{}")
                continue
            }
            guard let value = try? JSONParser.parse(UnsafeRawBufferPointer(rebasing: raw[range])) else { return nil }
            arguments.append(value.canonicalJSON())
        }
        return arguments
    }

    /// `map(stopReason)` as a JSON string (an OpenAI finish reason): the stop reasons Anthropic
    /// and Bedrock share and answer most (`end_turn`, `tool_use`, `max_tokens`) compared in
    /// place, the others decoded and mapped.
    static func appendFinishReason(_ stop: JSONScanner.Text?, _ s: JSONScanner, map: (String?) -> String, to out: inout [UInt8]) {
        if let stop, !stop.escaped {
            if s.text(stop, is: "end_turn") { return JSONBytes.append("\"stop\"", to: &out) }
            if s.text(stop, is: "tool_use") { return JSONBytes.append("\"tool_calls\"", to: &out) }
            if s.text(stop, is: "max_tokens") { return JSONBytes.append("\"length\"", to: &out) }
        }
        JSONBytes.appendString(map(stop.map(s.string)), to: &out)
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
