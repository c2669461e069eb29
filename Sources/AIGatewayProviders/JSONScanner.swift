import AIGatewayAPI

/// A strict JSON reader that builds nothing: it walks a document accepting exactly what
/// `JSONParser` accepts (the same grammar, depth limit, escapes, UTF-8 and number range), and
/// lets its caller look at the members it cares about and skip the rest. For reading a few facts
/// out of many small documents (the events of a stream) without allocating.
///
/// Objects and arrays are walked with a cursor: `enterObject()` then, per member, `key()`, one
/// value (read or skipped) and `nextMember()`; arrays alike with `enterArray()`/`nextElement()`.
struct JSONScanner {
    struct Invalid: Error {}

    /// A string as it sits in the input: the bytes between its quotes.
    struct Text {
        var range: Range<Int>
        /// It holds an escape: its bytes are not its value.
        var escaped: Bool
    }

    private let b: UnsafeRawBufferPointer
    private var i = 0
    private var depth = 0

    init(_ bytes: UnsafeRawBufferPointer) { b = bytes }

    /// The next byte, if any (whitespace included).
    @inline(__always)
    var next: UInt8? { i < b.count ? b[i] : nil }

    @inline(__always)
    var atEnd: Bool { i == b.count }

    @inline(__always)
    mutating func skipWhitespace() {
        while i < b.count {
            switch b[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    /// The next value's first byte, after whitespace.
    @inline(__always)
    mutating func peek() -> UInt8? {
        skipWhitespace()
        return next
    }

    // MARK: Containers

    /// Enters an object (the next value must be one): true when it has members to read.
    mutating func enterObject() throws(Invalid) -> Bool {
        try enter(UInt8(ascii: "{"), closing: UInt8(ascii: "}"))
    }

    /// Enters an array (the next value must be one): true when it has elements to read.
    mutating func enterArray() throws(Invalid) -> Bool {
        try enter(UInt8(ascii: "["), closing: UInt8(ascii: "]"))
    }

    @inline(__always)
    private mutating func enter(_ open: UInt8, closing: UInt8) throws(Invalid) -> Bool {
        guard peek() == open else { throw Invalid() }
        depth += 1
        if depth > JSONParser.maximumDepth { throw Invalid() }
        i += 1
        if peek() == closing {
            i += 1
            depth -= 1
            return false
        }
        return true
    }

    /// A member's key and its colon; the member's value comes next.
    mutating func key() throws(Invalid) -> Text {
        guard peek() == UInt8(ascii: "\"") else { throw Invalid() }
        let k = try string()
        guard peek() == UInt8(ascii: ":") else { throw Invalid() }
        i += 1
        return k
    }

    /// After a member's value: true when another member follows, false at the object's end.
    mutating func nextMember() throws(Invalid) -> Bool {
        try after(closing: UInt8(ascii: "}"))
    }

    /// After an element: true when another element follows, false at the array's end.
    mutating func nextElement() throws(Invalid) -> Bool {
        try after(closing: UInt8(ascii: "]"))
    }

    @inline(__always)
    private mutating func after(closing: UInt8) throws(Invalid) -> Bool {
        switch peek() {
        case UInt8(ascii: ","):
            i += 1
            return true
        case closing:
            i += 1
            depth -= 1
            return false
        default:
            throw Invalid()
        }
    }

    // MARK: Values

    /// Skips one value, checking it.
    mutating func skipValue() throws(Invalid) {
        guard let c = peek() else { throw Invalid() }
        switch c {
        case UInt8(ascii: "{"):
            if try enterObject() {
                repeat {
                    _ = try key()
                    try skipValue()
                } while try nextMember()
            }
        case UInt8(ascii: "["):
            if try enterArray() {
                repeat { try skipValue() } while try nextElement()
            }
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try number()
        default: throw Invalid()
        }
    }

    /// Skips one value; says whether it was `null`.
    mutating func skipValueIsNull() throws(Invalid) -> Bool {
        if peek() == UInt8(ascii: "n") {
            try literal("null")
            return true
        }
        try skipValue()
        return false
    }

    /// The next value when it is a string (its text, checked), else nil (the value skipped).
    mutating func stringValue() throws(Invalid) -> Text? {
        guard peek() == UInt8(ascii: "\"") else {
            try skipValue()
            return nil
        }
        return try string()
    }

    /// The next value as an integer, as `JSONValue.intValue` reads it (an integral number below
    /// 9e15 written as a double counts), else nil (the value skipped).
    mutating func intValue() throws(Invalid) -> Int? {
        guard let c = peek() else { throw Invalid() }
        switch c {
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let r = try number()
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: b[r]), as: UTF8.self)
            if !b[r].contains(where: { $0 == UInt8(ascii: ".") || $0 | 0x20 == UInt8(ascii: "e") }), let v = Int(text) { return v }
            guard let d = Double(text), d.rounded() == d, abs(d) < 9e15 else { return nil }
            return Int(d)
        default:
            try skipValue()
            return nil
        }
    }

    private mutating func literal(_ word: StaticString) throws(Invalid) {
        let n = word.utf8CodeUnitCount
        guard i + n <= b.count else { throw Invalid() }
        for k in 0..<n where b[i + k] != word.utf8Start[k] { throw Invalid() }
        i += n
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    /// A number (at `i`), checked as `JSONParser` does: its range.
    private mutating func number() throws(Invalid) -> Range<Int> {
        let start = i
        var hasExponent = false
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count, Self.isDigit(b[i]) else { throw Invalid() }
        if b[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while i < b.count, Self.isDigit(b[i]) { i += 1 }
        }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard i < b.count, Self.isDigit(b[i]) else { throw Invalid() }
            while i < b.count, Self.isDigit(b[i]) { i += 1 }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            hasExponent = true
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count, Self.isDigit(b[i]) else { throw Invalid() }
            while i < b.count, Self.isDigit(b[i]) { i += 1 }
        }
        // Only an exponent or more than 308 digits can leave a double's range (refused, as
        // `JSONParser` refuses it).
        if hasExponent || i - start > 308 {
            guard let d = Double(String(decoding: UnsafeRawBufferPointer(rebasing: b[start..<i]), as: UTF8.self)), d.isFinite else { throw Invalid() }
        }
        return start..<i
    }

    /// A string (at its opening quote), checked: no control characters, valid escapes (paired
    /// surrogates) and valid UTF-8.
    /// Reads the string whose opening quote is at `quote`, checked; the scan goes on after it.
    mutating func string(at quote: Int) throws(Invalid) -> Text {
        guard quote >= 0, quote < b.count, b[quote] == UInt8(ascii: "\"") else { throw Invalid() }
        i = quote
        return try string()
    }

    private mutating func string() throws(Invalid) -> Text {
        i += 1  // opening quote
        let start = i
        var escaped = false
        var runStart = i
        var nonASCII = false
        while i < b.count {
            i = Self.plainRun(b, from: i)
            guard i < b.count else { break }
            let c = b[i]
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") {
                if nonASCII {
                    // Escapes are ASCII, so checking the runs between them checks the string.
                    let invalid = transcode(
                        UnsafeRawBufferPointer(rebasing: b[runStart..<i]).makeIterator(), from: UTF8.self, to: UTF32.self, stoppingOnError: true, into: { _ in })
                    if invalid { throw Invalid() }
                    nonASCII = false
                }
                if c == UInt8(ascii: "\"") {
                    i += 1
                    return Text(range: start..<(i - 1), escaped: escaped)
                }
                escaped = true
                i += 1
                guard i < b.count else { break }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"),
                    UInt8(ascii: "t"):
                    break
                case UInt8(ascii: "u"):
                    try unicodeEscape()
                default:
                    throw Invalid()
                }
                runStart = i
                continue
            }
            if c < 0x20 { throw Invalid() }
            if c >= 0x80 { nonASCII = true }
            i += 1
        }
        throw Invalid()
    }

    /// The end of the run of plain string bytes (printable ASCII but `"` and `\\`) starting at
    /// `from`: eight bytes at a time while none of them needs a look.
    @inline(__always)
    static func plainRun(_ b: UnsafeRawBufferPointer, from: Int) -> Int {
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

    /// Checks a `\u` escape (after the `u`), a surrogate pair included.
    private mutating func unicodeEscape() throws(Invalid) {
        let scalar = try hex4()
        if (0xD800...0xDBFF).contains(scalar) {
            guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else { throw Invalid() }
            i += 2
            guard (0xDC00...0xDFFF).contains(try hex4()) else { throw Invalid() }
        } else if (0xDC00...0xDFFF).contains(scalar) {
            throw Invalid()
        }
    }

    private mutating func hex4() throws(Invalid) -> UInt32 {
        guard i + 4 <= b.count else { throw Invalid() }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw Invalid()
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    // MARK: Strings' values

    /// Whether a scanned string (a key) is `name`.
    @inline(__always)
    func text(_ t: Text, is name: StaticString) -> Bool {
        if t.escaped { return string(t) == String(describing: name) }
        let n = name.utf8CodeUnitCount
        guard t.range.count == n else { return false }
        for k in 0..<n where b[t.range.lowerBound + k] != name.utf8Start[k] { return false }
        return true
    }

    /// A scanned string's value.
    func string(_ t: Text) -> String {
        let raw = UnsafeRawBufferPointer(rebasing: b[t.range])
        if !t.escaped { return String(decoding: raw, as: UTF8.self) }
        // Rare: let the parser undo the escapes (the scan has checked the string).
        let quoted = UnsafeRawBufferPointer(rebasing: b[(t.range.lowerBound - 1)..<(t.range.upperBound + 1)])
        return (try? JSONParser.parse(Array(quoted)))?.stringValue ?? ""
    }
}
