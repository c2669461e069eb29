import AIGatewayAPI
@testable import AIGatewayProviders
import Testing

/// JSON text written as bytes: the same text as the straightforward writing gave.
@Suite("JSONBytes: integers and escapes as before")
struct JSONBytesTests {
    @Test("a decimal integer is written as String(value) writes it")
    func integers() {
        var values = [0, 1, 9, 10, 11, 99, 100, 4096, 1_700_000_000, Int.max, Int.min, Int.max - 1, Int.min + 1]
        var p = 1
        for _ in 0..<18 {
            p *= 10
            values += [p - 1, p, p + 1]
        }
        values += values.filter { $0 != Int.min }.map { -$0 }
        for v in values {
            var out: [UInt8] = [UInt8(ascii: "x")]
            JSONBytes.appendInt(v, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == "x\(v)")
        }
    }

    /// The escaping as it was written before: byte by byte.
    static func referenceEscaped(_ utf8: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        let hex = Array("0123456789abcdef".utf8)
        for c in utf8 {
            guard c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") else {
                out.append(c)
                continue
            }
            out.append(UInt8(ascii: "\\"))
            switch c {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(c)
            case 0x0A: out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "t"))
            default: out += Array("u00".utf8) + [hex[Int(c >> 4)], hex[Int(c & 0xF)]]
            }
        }
        return out
    }

    @Test("escaping: every length up to 40 of mixed plain, special and multi-byte characters, at every alignment")
    func escapes() {
        let pieces: [String] = ["a", "Z", " ", "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1f}", "\u{7f}", "/", "é", "✓", "😀", "abcdefgh", "0123456789"]
        var state: UInt64 = 0x5851_F42D_4C95_7F2D
        func next(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33) % n
        }
        var samples: [String] = ["", "plain ascii text past eight bytes", String(repeating: "x", count: 64) + "\"", "\"" + String(repeating: "é", count: 20)]
        for length in 0...40 {
            for _ in 0..<25 { samples.append(String((0..<length).map { _ in pieces[next(pieces.count)] }.joined().prefix(length))) }
        }
        for sample in samples {
            var out: [UInt8] = [UInt8(ascii: "x")]
            JSONBytes.appendString(sample, to: &out)
            #expect(out == [UInt8(ascii: "x"), UInt8(ascii: "\"")] + Self.referenceEscaped(Array(sample.utf8)) + [UInt8(ascii: "\"")], "\(sample)")
            // And as `JSONValue` writes it.
            #expect(String(decoding: out.dropFirst(), as: UTF8.self) == JSONValue.string(sample).canonicalJSON())
        }
    }
}
