/// A JSON syntax error with the byte offset where parsing stopped.
public struct JSONSyntaxError: Error, Sendable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }

    public init(offset: Int, reason: String) {
        self.offset = offset
        self.reason = reason
    }

    init(_ failure: JSONLexer.Failure) {
        self.init(offset: failure.offset, reason: String(describing: failure.reason))
    }
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

/// A strict RFC 8259 parser producing `JSONValue`. Its tokens (strings, numbers, literals) are
/// read by `JSONLexer`, which the providers' in-place readers share.
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
        JSONLexer.integer(bytes, span.value)
    }

    private struct Parser {
        var lex: JSONLexer
        var depth = 0
        /// False: validate only. Objects come back as an empty `.object`, everything else as `.null`.
        let materialize: Bool

        init(_ b: UnsafeBufferPointer<UInt8>, materialize: Bool = true) {
            self.lex = JSONLexer(UnsafeRawBufferPointer(b))
            self.materialize = materialize
        }

        /// Where the parse is, and what it reads.
        var i: Int {
            get { lex.offset }
            set { lex.offset = newValue }
        }
        var b: UnsafeRawBufferPointer { lex.bytes }

        func fail(_ reason: String) -> JSONSyntaxError { JSONSyntaxError(offset: i, reason: reason) }

        mutating func skipWhitespace() { lex.skipWhitespace() }

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

        // MARK: Tokens, read by the lexer

        mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
            do { try lex.literal(word) } catch { throw JSONSyntaxError(error) }
        }

        mutating func parseString() throws(JSONSyntaxError) -> String {
            do { return try lex.string() } catch { throw JSONSyntaxError(error) }
        }

        mutating func skipString() throws(JSONSyntaxError) {
            do { _ = try lex.skipString() } catch { throw JSONSyntaxError(error) }
        }

        mutating func parseNumber() throws(JSONSyntaxError) -> JSONValue {
            do throws(JSONLexer.Failure) {
                // Validating only: the lexer checks the range of what might leave a double's.
                guard materialize else {
                    _ = try lex.number()
                    return .null
                }
                let n = try lex.numberSyntax()
                if n.isInteger, let v = JSONLexer.integer(b, n.range) { return .int(v) }
                // A number beyond a double's range (`1e400`) is refused rather than read as
                // infinity, which no JSON text can carry back out.
                guard let d = JSONLexer.double(b, n), d.isFinite else { throw lex.fail("number out of range") }
                return .double(d)
            } catch {
                throw JSONSyntaxError(error)
            }
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
    }
}
