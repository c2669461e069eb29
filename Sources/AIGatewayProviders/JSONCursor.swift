import AIGatewayAPI

/// A strict JSON reader that walks a document in place and builds only what its caller asks
/// for: the translators read a provider's answer or stream event member by member (a string
/// here, an integer there) instead of building the whole `JSONValue` tree and looking members up.
///
/// It accepts exactly what `JSONParser` accepts (RFC 8259, nesting up to
/// `JSONParser.maximumDepth`, numbers within a double's range, valid UTF-8, paired surrogates):
/// whatever a caller skips is still checked, and `end()` refuses trailing data.
public struct JSONCursor {
    public struct Failure: Error, Sendable, Hashable {
        public var offset: Int
        public var reason: String
    }

    /// A member name as written (between the quotes), compared without being decoded.
    public struct Key {
        public var range: Range<Int>
        /// Holds a backslash escape (compared after decoding).
        public var escaped: Bool
    }

    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset = 0
    private var depth = 0

    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
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

    mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x09, 0x0A, 0x0D: offset += 1
            default: return
            }
        }
    }

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
        offset += 1
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
            offset += 1
            depth -= 1
            return nil
        } else if bytes[offset] == UInt8(ascii: ",") {
            offset += 1
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
        offset += 1
        skipWhitespace()
        return key
    }

    /// Whether `key` is `name`.
    public func key(_ key: Key, is name: StaticString) -> Bool {
        if key.escaped {
            var c = JSONCursor(bytes)
            c.offset = key.range.lowerBound - 1
            return (try? c.string()) == String(describing: name)
        }
        guard key.range.count == name.utf8CodeUnitCount else { return false }
        let p = name.utf8Start
        var k = 0
        for i in key.range {
            if bytes[i] != p[k] { return false }
            k += 1
        }
        return true
    }

    /// Enters an array (`[`); then `nextElement` until it returns false.
    public mutating func enterArray() throws(Failure) {
        guard peek() == UInt8(ascii: "[") else { throw fail("expected an array") }
        try enter()
        offset += 1
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
            offset += 1
            depth -= 1
            firstElement = false
            return false
        }
        if firstElement {
            firstElement = false
            return true
        }
        guard bytes[offset] == UInt8(ascii: ",") else { throw fail("expected ',' or ']'") }
        offset += 1
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
        let span = try number()
        if let v = JSONParser.integer(bytes, span: JSONMemberSpan(member: span, value: span)) { return v }
        // `2.0` or `1e3`: integral doubles count, as `JSONValue.intValue` has it.
        guard let d = Double(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[span]), as: UTF8.self)), d.rounded() == d, abs(d) < 9e15 else {
            return nil
        }
        return Int(d)
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
        let n = word.utf8CodeUnitCount
        guard offset + n <= bytes.count else { throw fail("unexpected end of input") }
        for k in 0..<n where bytes[offset + k] != word.utf8Start[k] {
            throw fail("invalid literal")
        }
        offset += n
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    /// A number's span, checked as `JSONParser` does (a double's range included).
    private mutating func number() throws(Failure) -> Range<Int> {
        let start = offset
        var hasExponent = false
        if bytes[offset] == UInt8(ascii: "-") { offset += 1 }
        guard offset < bytes.count, Self.isDigit(bytes[offset]) else { throw fail("invalid number") }
        if bytes[offset] == UInt8(ascii: "0") {
            offset += 1
        } else {
            while offset < bytes.count, Self.isDigit(bytes[offset]) { offset += 1 }
        }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: ".") {
            offset += 1
            guard offset < bytes.count, Self.isDigit(bytes[offset]) else { throw fail("invalid number") }
            while offset < bytes.count, Self.isDigit(bytes[offset]) { offset += 1 }
        }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "e") || bytes[offset] == UInt8(ascii: "E") {
            hasExponent = true
            offset += 1
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "+") || bytes[offset] == UInt8(ascii: "-") { offset += 1 }
            guard offset < bytes.count, Self.isDigit(bytes[offset]) else { throw fail("invalid number") }
            while offset < bytes.count, Self.isDigit(bytes[offset]) { offset += 1 }
        }
        if hasExponent || offset - start > 308 {
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
            guard let d = Double(text), d.isFinite else { throw fail("number out of range") }
        }
        return start..<offset
    }

    // MARK: Strings

    /// A string value, decoded (the cursor on its opening quote).
    public mutating func string() throws(Failure) -> String {
        guard peek() == UInt8(ascii: "\"") else { throw fail("expected a string") }
        offset += 1
        let start = offset
        var ascii = true
        while offset < bytes.count {
            let c = bytes[offset]
            if c == UInt8(ascii: "\"") {
                let run = UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
                offset += 1
                if ascii { return String(decoding: run, as: UTF8.self) }
                guard let s = String(validating: run, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw fail("control character in string") }
            if c >= 0x80 { ascii = false }
            offset += 1
        }
        var out = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<offset]))
        while offset < bytes.count {
            let c = bytes[offset]
            if c == UInt8(ascii: "\"") {
                offset += 1
                guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
                return s
            }
            if c < 0x20 { throw fail("control character in string") }
            offset += 1
            if c != UInt8(ascii: "\\") {
                out.append(c)
                continue
            }
            guard offset < bytes.count else { break }
            let e = bytes[offset]
            offset += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"): out.append(contentsOf: String(Character(try unicodeEscape())).utf8)
            default: throw fail("invalid escape")
            }
        }
        throw fail("unterminated string")
    }

    /// Skips a string (the cursor on its opening quote), checking it; returns whether it held an escape.
    private mutating func skipString() throws(Failure) -> Bool {
        offset += 1
        var runStart = offset
        var nonASCII = false
        var escaped = false
        while offset < bytes.count {
            let c = bytes[offset]
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") {
                if nonASCII {
                    // Escapes are ASCII: checking the runs between them checks the string.
                    guard String(validating: UnsafeRawBufferPointer(rebasing: bytes[runStart..<offset]), as: UTF8.self) != nil else {
                        throw fail("invalid UTF-8 in string")
                    }
                    nonASCII = false
                }
                offset += 1
                if c == UInt8(ascii: "\"") { return escaped }
                escaped = true
                guard offset < bytes.count else { break }
                let e = bytes[offset]
                offset += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"),
                    UInt8(ascii: "t"):
                    break
                case UInt8(ascii: "u"): _ = try unicodeEscape()
                default: throw fail("invalid escape")
                }
                runStart = offset
                continue
            }
            if c < 0x20 { throw fail("control character in string") }
            if c >= 0x80 { nonASCII = true }
            offset += 1
        }
        throw fail("unterminated string")
    }

    /// The scalar of a `\u` escape (after the `u`), a surrogate pair included.
    private mutating func unicodeEscape() throws(Failure) -> Unicode.Scalar {
        var scalar = try hex4()
        if (0xD800...0xDBFF).contains(scalar) {
            guard offset + 1 < bytes.count, bytes[offset] == UInt8(ascii: "\\"), bytes[offset + 1] == UInt8(ascii: "u") else {
                throw fail("unpaired surrogate")
            }
            offset += 2
            let low = try hex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw fail("unpaired surrogate") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(scalar) {
            throw fail("unpaired surrogate")
        }
        guard let u = Unicode.Scalar(scalar) else { throw fail("invalid escape") }
        return u
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard offset + 4 <= bytes.count else { throw fail("invalid \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[offset]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            offset += 1
        }
        return v
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
