/// A JSON syntax error with the byte offset where parsing stopped.
public struct JSONSyntaxError: Error, Sendable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

/// Where one top-level member of a JSON object sits in the original bytes.
public struct JSONMemberSpan: Sendable, Hashable {
    /// Range of the whole member, from the opening quote of the key to the end of the value.
    public var member: Range<Int>
    /// Range of the value alone.
    public var value: Range<Int>

    public init(member: Range<Int>, value: Range<Int>) {
        self.member = member
        self.value = value
    }
}

/// A strict RFC 8259 parser producing `JSONValue`.
///
/// Besides the value it can report the byte ranges of the top-level members of an object,
/// which the proxy uses to rewrite a request body (inject `model`) without re-serialising
/// anything the client sent.
public enum JSONParser {
    /// Maximum nesting depth accepted; deeper input is rejected rather than risking the stack.
    public static let maximumDepth = 128

    public static func parse<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(JSONSyntaxError) -> JSONValue {
        try parseTopLevel(bytes).value
    }

    /// Parses `bytes` and, when the top-level value is an object, returns the spans of its members.
    public static func parseTopLevel<Bytes: Collection<UInt8>>(
        _ bytes: Bytes
    ) throws(JSONSyntaxError) -> (value: JSONValue, members: [String: JSONMemberSpan]) {
        let result: Result<(JSONValue, [String: JSONMemberSpan]), JSONSyntaxError>
        if let r = bytes.withContiguousStorageIfAvailable({ buffer in
            var p = Parser(buffer)
            return Result { () throws(JSONSyntaxError) in try p.parseDocument() }
        }) {
            result = r
        } else {
            let array = Array(bytes)
            result = array.withUnsafeBufferPointer { buffer in
                var p = Parser(buffer)
                return Result { () throws(JSONSyntaxError) in try p.parseDocument() }
            }
        }
        let (v, m) = try result.get()
        return (v, m)
    }

    /// Checks that `bytes` is one valid JSON document, as strictly as `parse`, without building
    /// any value; returns the spans of the top-level members when it is an object, else nil.
    /// For bodies the proxy only needs to vouch for (an upstream answer) and pick a member from.
    public static func scanTopLevel<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(JSONSyntaxError) -> [String: JSONMemberSpan]? {
        let result: Result<(JSONValue, [String: JSONMemberSpan]), JSONSyntaxError>
        if let r = bytes.withContiguousStorageIfAvailable({ buffer in
            var p = Parser(buffer, materialize: false)
            return Result { () throws(JSONSyntaxError) in try p.parseDocument() }
        }) {
            result = r
        } else {
            let array = Array(bytes)
            result = array.withUnsafeBufferPointer { buffer in
                var p = Parser(buffer, materialize: false)
                return Result { () throws(JSONSyntaxError) in try p.parseDocument() }
            }
        }
        let (value, members) = try result.get()
        return value == .object([:]) ? members : nil
    }

    /// The value of `span` in `bytes` as an integer, when it is a JSON integer (for reading a
    /// number out of a scanned document without building values).
    public static func integer(_ bytes: UnsafeRawBufferPointer, span: JSONMemberSpan) -> Int? {
        guard span.value.lowerBound >= 0, span.value.upperBound <= bytes.count else { return nil }
        var value = 0
        var index = span.value.lowerBound
        let negative = index < span.value.upperBound && bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        guard index < span.value.upperBound else { return nil }
        while index < span.value.upperBound {
            let c = bytes[index]
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(c - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            value = a
            index += 1
        }
        return negative ? -value : value
    }

    private struct Parser {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0
        var depth = 0
        /// False: validate only. Objects come back as an empty `.object`, everything else as `.null`.
        let materialize: Bool

        init(_ b: UnsafeBufferPointer<UInt8>, materialize: Bool = true) {
            self.b = b
            self.materialize = materialize
        }

        func fail(_ reason: String) -> JSONSyntaxError { JSONSyntaxError(offset: i, reason: reason) }

        mutating func skipWhitespace() {
            while i < b.count {
                switch b[i] {
                case 0x20, 0x09, 0x0A, 0x0D: i += 1
                default: return
                }
            }
        }

        mutating func parseDocument() throws(JSONSyntaxError) -> (JSONValue, [String: JSONMemberSpan]) {
            skipWhitespace()
            var spans: [String: JSONMemberSpan] = [:]
            let value: JSONValue
            if i < b.count, b[i] == UInt8(ascii: "{") {
                spans.reserveCapacity(8)  // Room for a chat request or answer at one allocation.
                value = try parseObject(recording: true, spans: &spans)
            } else {
                value = try parseValue()
            }
            skipWhitespace()
            if i != b.count { throw fail("unexpected data after the top-level value") }
            return (value, spans)
        }

        mutating func parseValue() throws(JSONSyntaxError) -> JSONValue {
            skipWhitespace()
            guard i < b.count else { throw fail("unexpected end of input") }
            switch b[i] {
            case UInt8(ascii: "{"):
                var ignored: [String: JSONMemberSpan] = [:]
                return try parseObject(recording: false, spans: &ignored)
            case UInt8(ascii: "["): return try parseArray()
            case UInt8(ascii: "\""):
                if materialize { return .string(try parseString()) }
                try skipString()
                return .null
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
            default: throw fail("unexpected character")
            }
        }

        mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
            let n = word.utf8CodeUnitCount
            guard i + n <= b.count else { throw fail("unexpected end of input") }
            for k in 0..<n where b[i + k] != word.utf8Start[k] {
                throw fail("invalid literal")
            }
            i += n
        }

        mutating func parseObject(recording: Bool, spans: inout [String: JSONMemberSpan]) throws(JSONSyntaxError) -> JSONValue {
            depth += 1
            defer { depth -= 1 }
            if depth > JSONParser.maximumDepth { throw fail("nesting too deep") }
            i += 1  // {
            var object: [String: JSONValue] = [:]
            skipWhitespace()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(object) }
            while true {
                skipWhitespace()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let memberStart = i
                let key: String
                if materialize || recording {
                    key = try parseString()
                } else {
                    try skipString()
                    key = ""
                }
                skipWhitespace()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                skipWhitespace()
                let valueStart = i
                let value = try parseValue()
                if recording {
                    spans[key] = JSONMemberSpan(member: memberStart..<i, value: valueStart..<i)
                }
                if materialize { object[key] = value }
                skipWhitespace()
                guard i < b.count else { throw fail("unexpected end of input in object") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return .object(object) }
                throw fail("expected ',' or '}'")
            }
        }

        mutating func parseArray() throws(JSONSyntaxError) -> JSONValue {
            depth += 1
            defer { depth -= 1 }
            if depth > JSONParser.maximumDepth { throw fail("nesting too deep") }
            i += 1  // [
            var array: [JSONValue] = []
            skipWhitespace()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(array) }
            while true {
                let element = try parseValue()
                if materialize { array.append(element) }
                skipWhitespace()
                guard i < b.count else { throw fail("unexpected end of input in array") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return .array(array) }
                throw fail("expected ',' or ']'")
            }
        }

        mutating func parseNumber() throws(JSONSyntaxError) -> JSONValue {
            let start = i
            var isInteger = true
            var hasExponent = false
            if b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count, isDigit(b[i]) else { throw fail("invalid number") }
            if b[i] == UInt8(ascii: "0") {
                i += 1
            } else {
                while i < b.count, isDigit(b[i]) { i += 1 }
            }
            if i < b.count, b[i] == UInt8(ascii: ".") {
                isInteger = false
                i += 1
                guard i < b.count, isDigit(b[i]) else { throw fail("invalid number") }
                while i < b.count, isDigit(b[i]) { i += 1 }
            }
            if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                isInteger = false
                hasExponent = true
                i += 1
                if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                guard i < b.count, isDigit(b[i]) else { throw fail("invalid number") }
                while i < b.count, isDigit(b[i]) { i += 1 }
            }
            // Only an exponent or more than 308 digits can leave a double's range: the scan checks
            // those too, so it accepts exactly what `parse` does.
            let mayOverflow = hasExponent || i - start > 308
            if !materialize && !mayOverflow { return .null }
            let text = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
            if isInteger, let v = Int(text) { return .int(v) }
            // A number beyond a double's range (`1e400`) is refused rather than read as infinity,
            // which no JSON text can carry back out.
            guard let d = Double(text), d.isFinite else { throw fail("number out of range") }
            return materialize ? .double(d) : .null
        }

        func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

        mutating func parseString() throws(JSONSyntaxError) -> String {
            i += 1  // opening quote
            let start = i
            // Fast path: no escapes.
            var ascii = true
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") {
                    let run = UnsafeBufferPointer(rebasing: b[start..<i])
                    i += 1
                    // ASCII needs no validation (and `String(decoding:)` is the cheaper call).
                    if ascii { return String(decoding: run, as: UTF8.self) }
                    guard let s = String(validating: run, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
                    return s
                }
                if c == UInt8(ascii: "\\") { break }
                if c < 0x20 { throw fail("control character in string") }
                if c >= 0x80 { ascii = false }
                i += 1
            }
            var bytes = Array(UnsafeBufferPointer(rebasing: b[start..<i]))
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") {
                    i += 1
                    guard let s = String(validating: bytes, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
                    return s
                }
                if c < 0x20 { throw fail("control character in string") }
                if c != UInt8(ascii: "\\") { bytes.append(c); i += 1; continue }
                i += 1
                guard i < b.count else { break }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): bytes.append(0x22)
                case UInt8(ascii: "\\"): bytes.append(0x5C)
                case UInt8(ascii: "/"): bytes.append(0x2F)
                case UInt8(ascii: "b"): bytes.append(0x08)
                case UInt8(ascii: "f"): bytes.append(0x0C)
                case UInt8(ascii: "n"): bytes.append(0x0A)
                case UInt8(ascii: "r"): bytes.append(0x0D)
                case UInt8(ascii: "t"): bytes.append(0x09)
                case UInt8(ascii: "u"):
                    let u = try unicodeEscape()
                    bytes.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw fail("invalid escape")
                }
            }
            throw fail("unterminated string")
        }

        /// The scalar of a `\\u` escape (after the `u`), a surrogate pair included.
        mutating func unicodeEscape() throws(JSONSyntaxError) -> Unicode.Scalar {
            var scalar = try hex4()
            if (0xD800...0xDBFF).contains(scalar) {
                guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                    throw fail("unpaired surrogate")
                }
                i += 2
                let low = try hex4()
                guard (0xDC00...0xDFFF).contains(low) else { throw fail("unpaired surrogate") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                throw fail("unpaired surrogate")
            }
            guard let u = Unicode.Scalar(scalar) else { throw fail("invalid escape") }
            return u
        }

        /// Validates a string like `parseString` without building it.
        mutating func skipString() throws(JSONSyntaxError) {
            i += 1  // opening quote
            var runStart = i
            var nonASCII = false
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") {
                    if nonASCII {
                        // Escapes are ASCII, so checking the runs between them checks the string.
                        let invalid = transcode(
                            UnsafeBufferPointer(rebasing: b[runStart..<i]).makeIterator(), from: UTF8.self, to: UTF32.self, stoppingOnError: true,
                            into: { _ in })
                        if invalid { throw fail("invalid UTF-8 in string") }
                        nonASCII = false
                    }
                    if c == UInt8(ascii: "\"") {
                        i += 1
                        return
                    }
                    i += 1
                    guard i < b.count else { break }
                    let e = b[i]
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"),
                        UInt8(ascii: "t"):
                        break
                    case UInt8(ascii: "u"):
                        _ = try unicodeEscape()
                    default: throw fail("invalid escape")
                    }
                    runStart = i
                    continue
                }
                if c < 0x20 { throw fail("control character in string") }
                if c >= 0x80 { nonASCII = true }
                i += 1
            }
            throw fail("unterminated string")
        }

        mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
            guard i + 4 <= b.count else { throw fail("invalid \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw fail("invalid \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }
    }
}
