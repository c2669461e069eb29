/// The grammar the JSON readers share: white space, literals, numbers and strings (escapes,
/// surrogate pairs, UTF-8), read in place from a byte buffer. `JSONParser` (values), `JSONCursor`
/// (provider answers) and `JSONScanner` (the OpenAI stream) each keep their own objects, arrays
/// and depth limit, and call this for the tokens between, so the three accept exactly the same text.
///
/// Every function starts at `offset` and leaves it after what it read; a failure says where
/// (the byte offset, as `JSONParser` reports it) and why. Inlinable: the stream's scanner calls
/// it for every event, from another module.
public struct JSONLexer {
    /// Where and why a token is not JSON.
    public struct Failure: Error, Sendable {
        public var offset: Int
        public var reason: StaticString

        @inlinable
        public init(offset: Int, reason: StaticString) {
            self.offset = offset
            self.reason = reason
        }
    }

    /// A number as written: its bytes, and whether it is an integer (no fraction, no exponent).
    public struct Number: Sendable, Hashable {
        public var range: Range<Int>
        public var isInteger: Bool
        /// It has an exponent or more than 308 digits: the only ways out of a double's range.
        public var mayOverflow: Bool

        @inlinable
        public init(range: Range<Int>, isInteger: Bool, mayOverflow: Bool) {
            self.range = range
            self.isInteger = isInteger
            self.mayOverflow = mayOverflow
        }
    }

    public let bytes: UnsafeRawBufferPointer
    public var offset: Int

    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    @inlinable
    public func fail(_ reason: StaticString) -> Failure { Failure(offset: offset, reason: reason) }

    // MARK: White space and literals

    @inlinable @inline(__always)
    public mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x09, 0x0A, 0x0D: offset += 1
            default: return
            }
        }
    }

    /// `true`, `false` or `null` (the one named), at `offset`.
    @inlinable
    public mutating func literal(_ word: StaticString) throws(Failure) {
        let n = word.utf8CodeUnitCount
        guard offset + n <= bytes.count else { throw fail("unexpected end of input") }
        for k in 0..<n where bytes[offset + k] != word.utf8Start[k] {
            throw fail("invalid literal")
        }
        offset += n
    }

    // MARK: Numbers

    @inlinable @inline(__always)
    public static func isDigit(_ c: UInt8) -> Bool { c &- UInt8(ascii: "0") < 10 }

    /// A number (its first byte, `-` or a digit, at `offset`), checked: the grammar, and a
    /// double's range (`1e400` is refused rather than read as infinity, which no JSON text can
    /// carry back out).
    @inlinable
    public mutating func number() throws(Failure) -> Number {
        let n = try numberSyntax()
        if n.mayOverflow {
            guard let d = Double(Self.text(bytes, n.range)), d.isFinite else { throw fail("number out of range") }
        }
        return n
    }

    /// `number()` without the range check, for a caller that converts the number anyway.
    @inlinable
    public mutating func numberSyntax() throws(Failure) -> Number {
        let start = offset
        var isInteger = true
        var hasExponent = false
        if bytes[offset] == UInt8(ascii: "-") { offset += 1 }
        guard offset < bytes.count, Self.isDigit(bytes[offset]) else { throw fail("invalid number") }
        if bytes[offset] == UInt8(ascii: "0") {
            offset += 1
        } else {
            skipDigits()
        }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: ".") {
            isInteger = false
            offset += 1
            guard offset < bytes.count, Self.isDigit(bytes[offset]) else { throw fail("invalid number") }
            skipDigits()
        }
        if offset < bytes.count, bytes[offset] | 0x20 == UInt8(ascii: "e") {
            isInteger = false
            hasExponent = true
            offset += 1
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "+") || bytes[offset] == UInt8(ascii: "-") { offset += 1 }
            guard offset < bytes.count, Self.isDigit(bytes[offset]) else { throw fail("invalid number") }
            skipDigits()
        }
        return Number(range: start..<offset, isInteger: isInteger, mayOverflow: hasExponent || offset - start > 308)
    }

    @inlinable @inline(__always)
    mutating func skipDigits() {
        while offset < bytes.count, Self.isDigit(bytes[offset]) { offset += 1 }
    }

    /// The bytes of `range` as text (for `Double`).
    @inlinable
    static func text(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// The integer `range` holds: an optional `-` and decimal digits only, within `Int`'s range;
    /// else nil. (`Int(text)` without building the text.)
    @inlinable
    public static func integer(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard range.lowerBound >= 0, range.upperBound <= bytes.count else { return nil }
        var index = range.lowerBound
        let negative = index < range.upperBound && bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        guard index < range.upperBound else { return nil }
        // Accumulated on the negative side, which holds one more value (`Int.min`).
        var value = 0
        while index < range.upperBound {
            let c = bytes[index]
            guard isDigit(c) else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.subtractingReportingOverflow(Int(c &- UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            value = s
            index += 1
        }
        if negative { return value }
        return value == .min ? nil : -value
    }

    /// The number as a double (finite when `number()` accepted it).
    @inlinable
    public static func double(_ bytes: UnsafeRawBufferPointer, _ number: Number) -> Double? {
        Double(text(bytes, number.range))
    }

    /// The number as an integer the way `JSONValue.intValue` reads the parsed value: an integer
    /// within `Int`, or an integral double below 9e15 (`2.0`, `1e3`); else nil.
    @inlinable
    public static func intValue(_ bytes: UnsafeRawBufferPointer, _ number: Number) -> Int? {
        if number.isInteger, let v = integer(bytes, number.range) { return v }
        guard let d = double(bytes, number), d.rounded() == d, abs(d) < 9e15 else { return nil }
        return Int(d)
    }

    // MARK: Strings

    /// Skips a string (its opening quote at `offset`), checking it: no raw control characters,
    /// valid escapes (surrogates paired) and valid UTF-8. Returns whether it held an escape (its
    /// bytes between the quotes are then not its value).
    @inlinable
    public mutating func skipString() throws(Failure) -> Bool {
        offset += 1  // opening quote
        var escaped = false
        var runStart = offset
        var nonASCII = false
        while offset < bytes.count {
            offset = Self.plainRun(bytes, from: offset)
            guard offset < bytes.count else { break }
            let c = bytes[offset]
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") {
                if nonASCII {
                    // Escapes are ASCII, so checking the runs between them checks the string.
                    try checkUTF8(runStart..<offset)
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
            nonASCII = true  // plainRun stops at nothing else
            offset += 1
        }
        throw fail("unterminated string")
    }

    /// A string's value (its opening quote at `offset`), checked as `skipString` checks it.
    @inlinable
    public mutating func string() throws(Failure) -> String {
        let start = offset + 1
        let escaped = try skipString()
        return Self.string(bytes, contents: start..<(offset - 1), escaped: escaped)
    }

    /// The value of a string that `skipString` checked, from the bytes between its quotes.
    @inlinable
    public static func string(_ bytes: UnsafeRawBufferPointer, contents: Range<Int>, escaped: Bool) -> String {
        let raw = UnsafeRawBufferPointer(rebasing: bytes[contents])
        if !escaped { return String(decoding: raw, as: UTF8.self) }
        // The escapes undone: the runs between them copied, each escape's bytes appended.
        var out: [UInt8] = []
        out.reserveCapacity(contents.count)
        var l = JSONLexer(bytes, offset: contents.lowerBound)
        var runStart = l.offset
        while l.offset < contents.upperBound {
            guard bytes[l.offset] == UInt8(ascii: "\\") else {
                l.offset += 1
                continue
            }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<l.offset]))
            let e = bytes[l.offset + 1]
            l.offset += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            // Checked by `skipString`: a valid scalar, a surrogate pair included.
            case UInt8(ascii: "u"): if let u = try? l.unicodeEscape() { UTF8.encode(u) { out.append($0) } }
            default: out.append(e)  // `"`, `\\`, `/`
            }
            runStart = l.offset
        }
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<contents.upperBound]))
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether the string whose contents are `contents` (checked by `skipString`) is `name`:
    /// compared as bytes, decoded first only when it holds an escape.
    @inlinable @inline(__always)
    public static func string(_ bytes: UnsafeRawBufferPointer, contents: Range<Int>, escaped: Bool, is name: StaticString) -> Bool {
        if escaped { return string(bytes, contents: contents, escaped: true) == String(describing: name) }
        let n = name.utf8CodeUnitCount
        guard contents.count == n else { return false }
        let p = name.utf8Start
        for k in 0..<n where bytes[contents.lowerBound + k] != p[k] { return false }
        return true
    }

    /// Checks that `run` is well-formed UTF-8: no stray continuation byte, no sequence cut short,
    /// overlong, above U+10FFFF or encoding a surrogate.
    @inlinable
    func checkUTF8(_ run: Range<Int>) throws(Failure) {
        var j = run.lowerBound
        while j < run.upperBound {
            let c = bytes[j]
            if c < 0x80 {
                j += 1
                continue
            }
            let more: Int
            var scalar: UInt32
            let least: UInt32
            switch c {
            case 0xC2...0xDF: (more, scalar, least) = (1, UInt32(c & 0x1F), 0x80)
            case 0xE0...0xEF: (more, scalar, least) = (2, UInt32(c & 0x0F), 0x800)
            case 0xF0...0xF4: (more, scalar, least) = (3, UInt32(c & 0x07), 0x10000)
            default: throw fail("invalid UTF-8 in string")
            }
            guard j + more < run.upperBound else { throw fail("invalid UTF-8 in string") }
            for k in 1...more {
                let d = bytes[j + k]
                guard d & 0xC0 == 0x80 else { throw fail("invalid UTF-8 in string") }
                scalar = scalar << 6 | UInt32(d & 0x3F)
            }
            guard scalar >= least, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else { throw fail("invalid UTF-8 in string") }
            j += more + 1
        }
    }

    /// The end of the run of plain string bytes (printable ASCII but `"` and `\\`) starting at
    /// `from`: eight bytes at a time while none of them needs a look.
    @inlinable @inline(__always)
    public static func plainRun(_ b: UnsafeRawBufferPointer, from: Int) -> Int {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        var j = from
        while j + 8 <= b.count {
            let w = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: j, as: UInt64.self))
            // Any byte < 0x20, any byte with the high bit, any `"` (0x22), any `\\` (0x5C).
            let control = (w &- ones &* 0x20) & ~w & highs
            let quote = ((w ^ (ones &* 0x22)) &- ones) & ~(w ^ (ones &* 0x22)) & highs
            let backslash = ((w ^ (ones &* 0x5C)) &- ones) & ~(w ^ (ones &* 0x5C)) & highs
            if control | quote | backslash | (w & highs) != 0 { break }
            j += 8
        }
        while j < b.count {
            let c = b[j]
            if c < 0x20 || c >= 0x80 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") { break }
            j += 1
        }
        return j
    }

    /// The scalar of a `\u` escape (`offset` after the `u`), a surrogate pair included.
    @inlinable
    mutating func unicodeEscape() throws(Failure) -> Unicode.Scalar {
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

    @inlinable
    mutating func hex4() throws(Failure) -> UInt32 {
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
