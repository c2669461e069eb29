import AIGatewayAPI

/// JSON text written straight into a byte buffer: what the translators build their requests,
/// answers and chunks with (no `JSONValue` tree to build and walk, no `String` to grow and copy).
/// Escaping is `JSONValue.writeString`'s, so the text is the same.
public enum JSONBytes {
    /// Appends `s` as a JSON string literal.
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { appendEscaped($0, to: &out) }
        out.append(UInt8(ascii: "\""))
    }

    /// Appends the bytes of a string's contents, escaped (without the quotes).
    static func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        var run = 0
        var i = 0
        while i < utf8.count {
            // Printable ASCII but `"` and `\\` is copied as is: skipped eight bytes at a time.
            i = JSONLexer.plainRun(UnsafeRawBufferPointer(utf8), from: i)
            guard i < utf8.count else { break }
            let c = utf8[i]
            guard c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") else {
                // A byte of a multi-byte character: as is.
                i += 1
                continue
            }
            if run < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[run..<i])) }
            run = i + 1
            out.append(UInt8(ascii: "\\"))
            switch c {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(c)
            case 0x0A: out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "t"))
            default:
                out.append(contentsOf: "u00".utf8)
                out.append(hexDigits[Int(c >> 4)])
                out.append(hexDigits[Int(c & 0xF)])
            }
            i += 1
        }
        if run < utf8.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[run...])) }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends ASCII text as is (punctuation, member names known to need no escaping).
    @inline(__always)
    public static func append(_ text: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Appends a decimal integer.
    public static func appendInt(_ value: Int, to out: inout [UInt8]) {
        if value >= 0 && value < 10 {
            out.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        // The digits written backwards into a stack buffer and appended at once (`String(value)`'s
        // text, without making and copying out a string): 19 digits and a sign at most.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var rest = value.magnitude
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            } while rest != 0
            if value < 0 {
                start -= 1
                buffer[start] = UInt8(ascii: "-")
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: UnsafeBufferPointer(buffer)[start...]))
        }
    }

    /// Appends a value as `JSONValue.write` does (keys sorted when asked).
    public static func appendValue(_ value: JSONValue, sortedKeys: Bool = true, to out: inout [UInt8]) {
        switch value {
        case .null: append("null", to: &out)
        case .bool(let b): b ? append("true", to: &out) : append("false", to: &out)
        case .int(let i): appendInt(i, to: &out)
        case .double(let d): out.append(contentsOf: (d.isFinite ? "\(d)" : "null").utf8)
        case .string(let s): appendString(s, to: &out)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            for (i, v) in a.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                appendValue(v, sortedKeys: sortedKeys, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            out.append(UInt8(ascii: "{"))
            let keys = sortedKeys ? o.keys.sorted() : Array(o.keys)
            for (i, k) in keys.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                appendString(k, to: &out)
                out.append(UInt8(ascii: ":"))
                appendValue(o[k]!, sortedKeys: sortedKeys, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }
}

extension JSONBytes {
    /// Appends `usage.openAIJSON`'s text.
    public static func appendUsage(_ usage: TokenUsage, to out: inout [UInt8]) {
        append("{\"prompt_tokens\":", to: &out)
        appendInt(usage.input, to: &out)
        append(",\"completion_tokens\":", to: &out)
        appendInt(usage.output, to: &out)
        append(",\"total_tokens\":", to: &out)
        appendInt(usage.input + usage.output, to: &out)
        if let cached = usage.cachedInput {
            append(",\"prompt_tokens_details\":{\"cached_tokens\":", to: &out)
            appendInt(cached, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        if let reasoning = usage.reasoning {
            append(",\"completion_tokens_details\":{\"reasoning_tokens\":", to: &out)
            appendInt(reasoning, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "}"))
    }
}
