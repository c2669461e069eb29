import AIGatewayAPI

/// A strict JSON reader that walks a document in place and builds only what its caller asks
/// for: the translators read a provider's answer or stream event member by member (a string
/// here, an integer there) instead of building the whole `JSONValue` tree and looking members up.
///
/// It accepts exactly what `JSONParser` accepts (RFC 8259, nesting up to
/// `JSONParser.maximumDepth`, numbers within a double's range, valid UTF-8, paired surrogates):
/// whatever a caller skips is still checked, and `end()` refuses trailing data. Its tokens
/// (strings, numbers, literals) are read by `JSONLexer`, as `JSONParser`'s are.
public struct JSONCursor {
    public struct Failure: Error, Sendable, Hashable {
        public var offset: Int
        public var reason: String

        init(_ failure: JSONLexer.Failure) {
            offset = failure.offset
            reason = String(describing: failure.reason)
        }

        init(offset: Int, reason: String) {
            self.offset = offset
            self.reason = reason
        }
    }

    /// A member name as written (between the quotes), compared without being decoded.
    public struct Key {
        public var range: Range<Int>
        /// Holds a backslash escape (compared after decoding).
        public var escaped: Bool
    }

    private var lex: JSONLexer
    private var depth = 0

    public var bytes: UnsafeRawBufferPointer { lex.bytes }
    public var offset: Int { lex.offset }

    public init(_ bytes: UnsafeRawBufferPointer) {
        lex = JSONLexer(bytes)
    }

    /// Runs `body` on a cursor over `array`'s bytes.
    public static func read<R>(_ array: [UInt8], _ body: (inout JSONCursor) throws(Failure) -> R) throws(Failure) -> R {
        let result: Result<R, Failure> = array.withUnsafeBytes { raw in
            var c = JSONCursor(raw)
            return Result { () throws(Failure) in try body(&c) }
        }
        return try result.get()
    }

    func fail(_ reason: String) -> Failure { Failure(offset: offset, reason: reason) }

    mutating func skipWhitespace() { lex.skipWhitespace() }

    /// The next significant byte (nil at the end).
    public mutating func peek() -> UInt8? {
        skipWhitespace()
        return offset < bytes.count ? bytes[offset] : nil
    }

    /// Checks that nothing but white space follows.
    public mutating func end() throws(Failure) {
        skipWhitespace()
        if offset != bytes.count { throw fail("unexpected data after the top-level value") }
    }

    // MARK: Objects and arrays

    /// Enters an object (`{`); then `nextKey` until it returns nil.
    public mutating func enterObject() throws(Failure) {
        guard peek() == UInt8(ascii: "{") else { throw fail("expected an object") }
        try enter()
        lex.offset += 1
        skipWhitespace()
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "}") {
            // Empty: the first nextKey sees the brace.
            return
        }
        guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
        pendingFirst = true
    }

    private var pendingFirst = false

    /// The next member's name, the cursor left on its value; nil (and the object left) at `}`.
    public mutating func nextKey() throws(Failure) -> Key? {
        skipWhitespace()
        guard offset < bytes.count else { throw fail("unexpected end of input in object") }
        if pendingFirst {
            pendingFirst = false
        } else if bytes[offset] == UInt8(ascii: "}") {
            lex.offset += 1
            depth -= 1
            return nil
        } else if bytes[offset] == UInt8(ascii: ",") {
            lex.offset += 1
            skipWhitespace()
        } else {
            throw fail("expected ',' or '}'")
        }
        guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
        let start = offset + 1
        let escaped = try skipString()
        let key = Key(range: start..<(offset - 1), escaped: escaped)
        skipWhitespace()
        guard offset < bytes.count, bytes[offset] == UInt8(ascii: ":") else { throw fail("expected ':'") }
        lex.offset += 1
        skipWhitespace()
        return key
    }

    /// Whether `key` is `name`.
    public func key(_ key: Key, is name: StaticString) -> Bool {
        JSONLexer.string(bytes, contents: key.range, escaped: key.escaped, is: name)
    }

    /// Enters an array (`[`); then `nextElement` until it returns false.
    public mutating func enterArray() throws(Failure) {
        guard peek() == UInt8(ascii: "[") else { throw fail("expected an array") }
        try enter()
        lex.offset += 1
        skipWhitespace()
        firstElement = true
    }

    private var firstElement = false

    /// True with the cursor on the next element; false (and the array left) at `]`.
    public mutating func nextElement() throws(Failure) -> Bool {
        skipWhitespace()
        guard offset < bytes.count else { throw fail("unexpected end of input in array") }
        if bytes[offset] == UInt8(ascii: "]") {
            // `[]`, or after the last element (`[1]`); `[1,]` is caught below.
            lex.offset += 1
            depth -= 1
            firstElement = false
            return false
        }
        if firstElement {
            firstElement = false
            return true
        }
        guard bytes[offset] == UInt8(ascii: ",") else { throw fail("expected ',' or ']'") }
        lex.offset += 1
        skipWhitespace()
        guard offset < bytes.count, bytes[offset] != UInt8(ascii: "]") else { throw fail("unexpected character") }
        return true
    }

    private mutating func enter() throws(Failure) {
        depth += 1
        if depth > JSONParser.maximumDepth { throw fail("nesting too deep") }
    }

    // MARK: Values

    /// The value is `null` (consumed if so).
    public mutating func null() throws(Failure) -> Bool {
        guard peek() == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    /// A string value, decoded; nil (the value skipped) when the value is not a string.
    public mutating func stringIfAny() throws(Failure) -> String? {
        guard peek() == UInt8(ascii: "\"") else {
            try skipValue()
            return nil
        }
        return try string()
    }

    /// An integer value; nil (the value skipped) when it is not a number with an integral value.
    public mutating func intIfAny() throws(Failure) -> Int? {
        guard let c = peek(), c == UInt8(ascii: "-") || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) else {
            try skipValue()
            return nil
        }
        // `2.0` or `1e3`: integral doubles count, as `JSONValue.intValue` has it.
        return JSONLexer.intValue(bytes, try number())
    }

    /// The value parsed as a `JSONValue` (for the rare members kept whole: a tool's input).
    public mutating func value() throws(Failure) -> JSONValue {
        let span = try skipValue()
        do {
            return try JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[span]))
        } catch {
            throw Failure(offset: span.lowerBound + error.offset, reason: error.reason)
        }
    }

    /// Skips one value, checking it; returns where it was.
    @discardableResult
    public mutating func skipValue() throws(Failure) -> Range<Int> {
        guard let c = peek() else { throw fail("unexpected end of input") }
        let start = offset
        switch c {
        case UInt8(ascii: "{"):
            try enterObject()
            while try nextKey() != nil { try skipValue() }
        case UInt8(ascii: "["):
            try enterArray()
            while try nextElement() { try skipValue() }
        case UInt8(ascii: "\""): _ = try skipString()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try number()
        default: throw fail("unexpected character")
        }
        return start..<offset
    }

    private mutating func literal(_ word: StaticString) throws(Failure) {
        do { try lex.literal(word) } catch { throw Failure(error) }
    }

    /// A number, checked as `JSONParser` checks it (a double's range included).
    private mutating func number() throws(Failure) -> JSONLexer.Number {
        do { return try lex.number() } catch { throw Failure(error) }
    }

    // MARK: Strings

    /// A string value, decoded (the cursor on its opening quote).
    public mutating func string() throws(Failure) -> String {
        guard peek() == UInt8(ascii: "\"") else { throw fail("expected a string") }
        do { return try lex.string() } catch { throw Failure(error) }
    }

    /// Skips a string (the cursor on its opening quote), checking it; returns whether it held an escape.
    private mutating func skipString() throws(Failure) -> Bool {
        do { return try lex.skipString() } catch { throw Failure(error) }
    }
}

/// A provider's `usage` object as read by the cursor: the four counts the translations use,
/// each nil when absent or not an integer. `present` is false when the value is no object.
public struct UsageCounts: Sendable, Hashable {
    public var present = false
    public var input: Int?
    public var output: Int?
    public var cacheRead: Int?
    public var cacheWrite: Int?
    /// The input member is there (whatever its value).
    public var hasInput = false

    public init() {}

    /// Reads the object at the cursor, its members named as the provider names them.
    public init(
        _ c: inout JSONCursor, input: StaticString, output: StaticString, cacheRead: StaticString, cacheWrite: StaticString
    ) throws(JSONCursor.Failure) {
        guard c.peek() == UInt8(ascii: "{") else {
            try c.skipValue()
            return
        }
        present = true
        try c.enterObject()
        while let k = try c.nextKey() {
            if c.key(k, is: input) {
                hasInput = true
                self.input = try c.intIfAny()
            } else if c.key(k, is: output) {
                self.output = try c.intIfAny()
            } else if c.key(k, is: cacheRead) {
                self.cacheRead = try c.intIfAny()
            } else if c.key(k, is: cacheWrite) {
                self.cacheWrite = try c.intIfAny()
            } else {
                try c.skipValue()
            }
        }
    }

    /// OpenAI's counts: input includes the cache reads and writes, which both providers count apart.
    public var tokenUsage: TokenUsage? {
        guard present else { return nil }
        return TokenUsage(
            input: (input ?? 0) + (cacheRead ?? 0) + (cacheWrite ?? 0), output: output ?? 0, cachedInput: cacheRead, cacheCreationInput: cacheWrite)
    }
}

extension JSONCursor {
    /// Calls `member` for each member of the object at the cursor (each call reads or skips the
    /// member's value); a value that is not an object is skipped.
    static func members(
        of c: inout JSONCursor, _ member: (inout JSONCursor, JSONCursor.Key) throws(JSONCursor.Failure) -> Void
    ) throws(JSONCursor.Failure) {
        guard c.peek() == UInt8(ascii: "{") else {
            try c.skipValue()
            return
        }
        try c.enterObject()
        while let k = try c.nextKey() { try member(&c, k) }
    }
}
