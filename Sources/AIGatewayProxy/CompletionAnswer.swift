import AIGatewayAPI
import AIGatewayProviders

/// What the gateway needs from a provider's complete (non-streamed) OpenAI-shaped answer, read
/// without a JSON pass over all of it: the answer arrived whole (its length or its chunked end
/// says so), so it is vouched for by its shape, an object from its first byte to its last, and its
/// token counts come from the `"usage"` member alone.
///
/// The usage member is the last `"usage"` key of the answer: a key is a quote that follows `{` or
/// `,` (a quote inside a string is escaped, so text that mentions "usage" is never taken for it).
enum CompletionAnswer {
    struct Usage: Equatable {
        var input: Int
        var output: Int
    }

    /// An answer that passed: its usage, when it reports one.
    struct Summary: Equatable {
        var usage: Usage?
    }

    /// Nil when the body is not an object (cut short, or not JSON).
    static func inspect(_ body: UnsafeRawBufferPointer) -> Summary? {
        guard let first = firstNonSpace(body), body[first] == UInt8(ascii: "{"),
            let last = lastNonSpace(body), last > first, body[last] == UInt8(ascii: "}")
        else { return nil }
        guard let open = usageObject(body, within: first..<last) else { return Summary(usage: nil) }
        // A usage that does not close before the answer's last byte: the answer's own end is missing.
        guard let close = matchingBrace(body, open: open, limit: last) else { return nil }
        return Summary(usage: counts(UnsafeRawBufferPointer(rebasing: body[open...close])))
    }

    /// The token counts of the usage object `usage` (nil when it is not valid JSON), read member by
    /// member in place (no dictionary of its members, no strings): of a key given twice the last
    /// counts, and a count that is not an integer reads as 0, as with `JSONParser.scanTopLevel`.
    private static func counts(_ usage: UnsafeRawBufferPointer) -> Usage? {
        var cursor = JSONCursor(usage)
        var input: Range<Int>?
        var output: Range<Int>?
        do {
            try cursor.enterObject()
            while let key = try cursor.nextKey() {
                if cursor.key(key, is: "prompt_tokens") {
                    input = try cursor.skipValue()
                } else if cursor.key(key, is: "completion_tokens") {
                    output = try cursor.skipValue()
                } else {
                    try cursor.skipValue()
                }
            }
            try cursor.end()
        } catch {
            return nil
        }
        func tokens(_ value: Range<Int>?) -> Int { value.flatMap { JSONLexer.integer(usage, $0) } ?? 0 }
        return Usage(input: tokens(input), output: tokens(output))
    }

    private static func isSpace(_ c: UInt8) -> Bool {
        c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09
    }

    private static func firstNonSpace(_ b: UnsafeRawBufferPointer) -> Int? {
        b.firstIndex { !isSpace($0) }
    }

    private static func lastNonSpace(_ b: UnsafeRawBufferPointer) -> Int? {
        b.lastIndex { !isSpace($0) }
    }

    private static let key = Array(#""usage""#.utf8)

    /// The offset of the `{` that opens the value of the last `"usage"` key in `range`.
    private static func usageObject(_ b: UnsafeRawBufferPointer, within range: Range<Int>) -> Int? {
        var i = range.upperBound - key.count
        while i > range.lowerBound {
            defer { i -= 1 }
            guard b[i] == UInt8(ascii: "\""), b[i + 1] == UInt8(ascii: "u"), matchesKey(b, at: i) else { continue }
            // A key: after `{` or `,`.
            var before = i - 1
            while before > range.lowerBound, isSpace(b[before]) { before -= 1 }
            guard b[before] == UInt8(ascii: ",") || b[before] == UInt8(ascii: "{") else { continue }
            // Its value: `:` then an object.
            var after = i + key.count
            while after < range.upperBound, isSpace(b[after]) { after += 1 }
            guard after < range.upperBound, b[after] == UInt8(ascii: ":") else { continue }
            after += 1
            while after < range.upperBound, isSpace(b[after]) { after += 1 }
            return after < range.upperBound && b[after] == UInt8(ascii: "{") ? after : nil
        }
        return nil
    }

    private static func matchesKey(_ b: UnsafeRawBufferPointer, at i: Int) -> Bool {
        guard i + key.count <= b.count else { return false }
        for k in 0..<key.count where b[i + k] != key[k] { return false }
        return true
    }

    /// The offset of the `}` that closes the object opened at `open` (strings skipped), before `limit`.
    private static func matchingBrace(_ b: UnsafeRawBufferPointer, open: Int, limit: Int) -> Int? {
        var depth = 0
        var i = open
        var inString = false
        while i < limit {
            let c = b[i]
            if inString {
                if c == UInt8(ascii: "\\") {
                    i += 1
                } else if c == UInt8(ascii: "\"") {
                    inString = false
                }
            } else if c == UInt8(ascii: "\"") {
                inString = true
            } else if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") {
                depth += 1
            } else if c == UInt8(ascii: "}") || c == UInt8(ascii: "]") {
                depth -= 1
                if depth == 0 { return i }
            }
            i += 1
        }
        return nil
    }
}
