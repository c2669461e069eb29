import AIGatewayAPI

/// A strict JSON reader that builds nothing: it walks a document accepting exactly what
/// `JSONParser` accepts (the same grammar, depth limit, escapes, UTF-8 and number range), and
/// lets its caller look at the members it cares about and skip the rest. For reading a few facts
/// out of many small documents (the events of a stream) without allocating.
///
/// Objects and arrays are walked with a cursor: `enterObject()` then, per member, `key()`, one
/// value (read or skipped) and `nextMember()`; arrays alike with `enterArray()`/`nextElement()`.
/// The tokens (strings, numbers, literals) are `JSONLexer`'s, as `JSONParser`'s and `JSONCursor`'s are.
struct JSONScanner {
    struct Invalid: Error {}

    /// A string as it sits in the input: the bytes between its quotes.
    struct Text {
        var range: Range<Int>
        /// It holds an escape: its bytes are not its value.
        var escaped: Bool
    }

    private var lex: JSONLexer
    private var depth = 0

    init(_ bytes: UnsafeRawBufferPointer) { lex = JSONLexer(bytes) }

    /// The next byte, if any (whitespace included).
    @inline(__always)
    var next: UInt8? { lex.offset < lex.bytes.count ? lex.bytes[lex.offset] : nil }

    @inline(__always)
    var atEnd: Bool { lex.offset == lex.bytes.count }

    @inline(__always)
    mutating func skipWhitespace() { lex.skipWhitespace() }

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
        lex.offset += 1
        if peek() == closing {
            lex.offset += 1
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
        lex.offset += 1
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
            lex.offset += 1
            return true
        case closing:
            lex.offset += 1
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

    /// Skips one value, checking it; returns where it was (a value kept whole, parsed later).
    mutating func skipValueRange() throws(Invalid) -> Range<Int> {
        skipWhitespace()
        let start = lex.offset
        try skipValue()
        return start..<lex.offset
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
            return JSONLexer.intValue(lex.bytes, try number())
        default:
            try skipValue()
            return nil
        }
    }

    private mutating func literal(_ word: StaticString) throws(Invalid) {
        do { try lex.literal(word) } catch { throw Invalid() }
    }

    /// A number (at its first byte), checked as `JSONParser` checks it.
    private mutating func number() throws(Invalid) -> JSONLexer.Number {
        do { return try lex.number() } catch { throw Invalid() }
    }

    /// Reads the string whose opening quote is at `quote`, checked; the scan goes on after it.
    mutating func string(at quote: Int) throws(Invalid) -> Text {
        guard quote >= 0, quote < lex.bytes.count, lex.bytes[quote] == UInt8(ascii: "\"") else { throw Invalid() }
        lex.offset = quote
        return try string()
    }

    /// A string (at its opening quote), checked: no control characters, valid escapes (paired
    /// surrogates) and valid UTF-8.
    private mutating func string() throws(Invalid) -> Text {
        let start = lex.offset + 1
        do {
            let escaped = try lex.skipString()
            return Text(range: start..<(lex.offset - 1), escaped: escaped)
        } catch {
            throw Invalid()
        }
    }

    // MARK: Strings' values

    /// Whether a scanned string (a key) is `name`.
    @inline(__always)
    func text(_ t: Text, is name: StaticString) -> Bool {
        JSONLexer.string(lex.bytes, contents: t.range, escaped: t.escaped, is: name)
    }

    /// A scanned string's value.
    func string(_ t: Text) -> String {
        JSONLexer.string(lex.bytes, contents: t.range, escaped: t.escaped)
    }
}
