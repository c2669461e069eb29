import AIGatewayAPI

extension ChatRequest.Facts {
    /// Reads a client's chat body in one pass (`JSONCursor`): checks the whole document as
    /// strictly as `JSONParser` does, and keeps only what the gateway reads (`model`, `stream`,
    /// `stream_options.include_usage`, whether `messages` is empty) and where the members it
    /// rewrites sit. No dictionary, no `JSONValue`: it runs for every request.
    ///
    /// Nil when the body is anything `ChatRequest.check` would refuse (not JSON, not an object, a
    /// member of the wrong type): the caller then checks it the slow way, which words the error
    /// exactly as before. Where it reads, it finds what `check` finds (the differential test
    /// compares the two on many bodies).
    init?(reading bytes: [UInt8]) {
        guard let facts = try? JSONCursor.read(bytes, { (c: inout JSONCursor) throws(JSONCursor.Failure) in try Self.read(&c) }) else {
            return nil
        }
        self = facts
    }

    /// The type of a member's value, as far as the checks care (the last value sent counts).
    private enum Kind {
        case absent, null, string, boolean, other
    }

    /// Thrown where `check` would throw; only a signal to fall back, never shown.
    private static func refuse(_ c: JSONCursor) -> JSONCursor.Failure { c.fail("left to the parser") }

    private static func read(_ c: inout JSONCursor) throws(JSONCursor.Failure) -> Self {
        guard c.peek() == UInt8(ascii: "{") else { throw refuse(c) }
        var facts = Self()
        var model = Kind.absent, stream = Kind.absent
        try c.enterObject()
        while let k = try c.nextKey() {
            facts.hasMembers = true
            // The cursor is on the value (whitespace skipped): its first byte says its type, and
            // skipping it checks it.
            let start = c.offset
            let first = c.peek()
            if c.key(k, is: "model") {
                if first == UInt8(ascii: "\"") {
                    model = .string
                    facts.model = try c.string()
                } else {
                    model = first == UInt8(ascii: "n") ? .null : .other
                    facts.model = nil
                    try c.skipValue()
                }
                facts.modelSpan = start..<c.offset
            } else if c.key(k, is: "stream") {
                switch first {
                case UInt8(ascii: "t"), UInt8(ascii: "f"): stream = .boolean
                case UInt8(ascii: "n"): stream = .null
                default: stream = .other
                }
                facts.stream = first == UInt8(ascii: "t")
                try c.skipValue()
            } else if c.key(k, is: "stream_options") {
                facts.includeUsage = try includeUsage(&c)
                facts.streamOptionsSpan = start..<c.offset
            } else if c.key(k, is: "messages") {
                facts.messagesSpan = try c.skipValue()
            } else {
                try c.skipValue()
            }
        }
        try c.end()
        // `check`'s checks, in its order.
        if model == .other || stream == .other { throw refuse(c) }
        if let span = facts.messagesSpan {
            guard c.bytes[span.lowerBound] == UInt8(ascii: "[") else { throw refuse(c) }
            facts.messagesEmpty = isEmptyArray(c.bytes, span)
        }
        return facts
    }

    /// Reads `stream_options`: whether it is an object whose (last) `include_usage` is `true`.
    private static func includeUsage(_ c: inout JSONCursor) throws(JSONCursor.Failure) -> Bool {
        var include = false
        try JSONCursor.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
            if c.key(k, is: "include_usage") { include = c.peek() == UInt8(ascii: "t") }
            try c.skipValue()
        }
        return include
    }

    /// Whether the array at `span` (checked JSON, opening with `[`) has no element.
    static func isEmptyArray(_ bytes: UnsafeRawBufferPointer, _ span: Range<Int>) -> Bool {
        var i = span.lowerBound + 1
        while i < span.upperBound {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            case let b: return b == UInt8(ascii: "]")
            }
        }
        return false
    }
}
