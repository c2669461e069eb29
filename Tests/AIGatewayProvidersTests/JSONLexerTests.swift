import AIGatewayAPI
import Testing

/// What the lexer made of one token: its value (or the range consumed) or where and why it failed.
private enum Outcome: Equatable, CustomStringConvertible {
    case string(String, escaped: Bool)
    case number(Range<Int>, isInteger: Bool)
    case literal
    case failure(offset: Int, reason: String)

    var description: String {
        switch self {
        case .string(let s, let e): "string \(s.debugDescription) escaped \(e)"
        case .number(let r, let i): "number \(r) integer \(i)"
        case .literal: "literal"
        case .failure(let o, let r): "failure at \(o): \(r)"
        }
    }
}

private func lexed(_ bytes: [UInt8], _ read: (inout JSONLexer) throws(JSONLexer.Failure) -> Outcome) -> (Outcome, end: Int) {
    bytes.withUnsafeBytes { raw in
        var l = JSONLexer(raw)
        do throws(JSONLexer.Failure) {
            let o = try read(&l)
            return (o, l.offset)
        } catch {
            return (.failure(offset: error.offset, reason: String(describing: error.reason)), l.offset)
        }
    }
}

private func decoded(_ text: String) -> (Outcome, end: Int) {
    lexed(Array(text.utf8)) { (l: inout JSONLexer) throws(JSONLexer.Failure) in
        let start = l.offset
        let s = try l.string()
        // The validating skip agrees with the decoding read, and says whether there was an escape.
        var again = JSONLexer(l.bytes, offset: start)
        let escaped = try again.skipString()
        #expect(again.offset == l.offset, "\(text)")
        return .string(s, escaped: escaped)
    }
}

private func skipped(_ bytes: [UInt8]) -> (Outcome, end: Int) {
    lexed(bytes) { (l: inout JSONLexer) throws(JSONLexer.Failure) in
        let escaped = try l.skipString()
        return .string("", escaped: escaped)
    }
}

/// The lexer lives in AIGatewayAPI; it is tested here, next to the readers that share it (and
/// their seeded generator).
@Suite("JSON lexer: the tokens the three JSON readers share")
struct JSONLexerTests {
    // MARK: Strings

    @Test(
        "strings decode their escapes and surrogate pairs, and stop after the closing quote",
        arguments: [
            (#""""#, "", false),
            (#""plain ascii, longer than eight bytes""#, "plain ascii, longer than eight bytes", false),
            (#""café 日本 😀""#, "café 日本 😀", false),
            (#""\"\\\/\b\f\n\r\t""#, "\"\\/\u{08}\u{0C}\n\r\t", true),
            (#""\u0041\u00e9\u65E5\ud83d\ude00""#, "Aé日😀", true),
            (#""before \n after, a long run after the escape""#, "before \n after, a long run after the escape", true),
            (#""é\né""#, "é\né", true),
            (#""\u0000""#, "\u{0}", true),
        ])
    func strings(text: String, value: String, escaped: Bool) {
        let bytes = Array(text.utf8) + Array(#"  ,"x""#.utf8)  // what follows is not read
        let (outcome, end) = lexed(bytes) { (l: inout JSONLexer) throws(JSONLexer.Failure) in .string(try l.string(), escaped: false) }
        #expect(outcome == .string(value, escaped: false))
        #expect(end == text.utf8.count)
        let (skip, skipEnd) = skipped(bytes)
        #expect(skip == .string("", escaped: escaped))
        #expect(skipEnd == text.utf8.count)
        // The contents alone give the value back, and compare with a name as decoded.
        bytes.withUnsafeBytes { raw in
            let contents = 1..<(text.utf8.count - 1)
            #expect(JSONLexer.string(raw, contents: contents, escaped: escaped) == value)
        }
    }

    @Test(
        "a bad string fails where JSONParser reports it, with its reason, whether decoded or skipped",
        arguments: [
            (Array(#""abc"#.utf8), 4, "unterminated string"),
            (Array(#""abcdefghijkl"#.utf8), 13, "unterminated string"),
            (Array(#""\"#.utf8), 2, "unterminated string"),
            (Array("\"a\nb\"".utf8), 2, "control character in string"),
            (Array("\"ok so far\u{01}\"".utf8), 10, "control character in string"),
            (Array(#""a\x""#.utf8), 4, "invalid escape"),
            (Array(#""\u12G4""#.utf8), 5, "invalid \\u escape"),
            (Array(#""\u00""#.utf8), 3, "invalid \\u escape"),
            (Array(#""\ud800""#.utf8), 7, "unpaired surrogate"),
            (Array(#""\udc00""#.utf8), 7, "unpaired surrogate"),
            (Array(#""\ud800\u0041""#.utf8), 13, "unpaired surrogate"),
        ])
    func badStrings(bytes: [UInt8], offset: Int, reason: String) {
        #expect(decoded(String(decoding: bytes, as: UTF8.self)).0 == .failure(offset: offset, reason: reason))
        #expect(skipped(bytes).0 == .failure(offset: offset, reason: reason))
    }

    @Test("invalid UTF-8 is refused, before and after an escape, in the fast run and the slow one")
    func invalidUTF8() {
        let cases: [[UInt8]] = [
            [0x22, 0xFF, 0x22], [0x22, 0xC3, 0x22], [0x22, 0xC3, 0x28, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22],  // an encoded surrogate
            [0x22, 0x5C, 0x6E, 0xC3, 0x28, 0x22], [0x22, 0xC3, 0x5C, 0x6E, 0xA9, 0x22],  // a sequence cut by an escape
            Array(#""a long plain run first "#.utf8) + [0xF0, 0x9F, 0x98, 0x22],
        ]
        for bytes in cases {
            let decodedOutcome = lexed(bytes) { (l: inout JSONLexer) throws(JSONLexer.Failure) in .string(try l.string(), escaped: false) }.0
            guard case .failure(_, let reason) = decodedOutcome else {
                Issue.record("decoded \(bytes)")
                continue
            }
            #expect(reason == "invalid UTF-8 in string", "\(bytes)")
            guard case .failure(_, let skipReason) = skipped(bytes).0 else {
                Issue.record("skipped \(bytes)")
                continue
            }
            #expect(skipReason == "invalid UTF-8 in string", "\(bytes)")
        }
    }

    @Test("any string JSONValue writes reads back as itself, decoded or skipped to the same end (random strings)")
    func roundTrip() {
        var rng = SplitMix(seed: 11)
        let pool: [Unicode.Scalar] = ["a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1F}", "\u{7F}", "é", "日", "😀", "\u{FFFF}", "\u{10FFFF}"]
        for _ in 0..<3000 {
            var s = String.UnicodeScalarView()
            for _ in 0..<rng.below(24) {
                s.append(rng.below(2) == 0 ? pool[rng.below(pool.count)] : Unicode.Scalar(UInt8(0x20 + rng.below(0x5F))))
            }
            let value = String(s)
            let quoted = JSONValue.quoted(value)
            let (outcome, end) = decoded(quoted)
            #expect(outcome == .string(value, escaped: quoted.contains("\\")), "\(quoted)")
            #expect(end == quoted.utf8.count, "\(quoted)")
        }
    }

    @Test("UTF-8 is accepted exactly when the standard library validates it (random byte runs, around escapes too)")
    func utf8() {
        var rng = SplitMix(seed: 17)
        // Lead bytes of every length, continuation bytes, and the bytes never valid.
        let pieces: [[UInt8]] = [
            [0x41], [0xC3, 0xA9], [0xE6, 0x97, 0xA5], [0xF0, 0x9F, 0x98, 0x80], [0x80], [0xBF], [0xC0], [0xC1], [0xC2], [0xDF], [0xE0], [0xE0, 0x80],
            [0xE0, 0xA0], [0xED, 0x9F], [0xED, 0xA0], [0xEF, 0xBF, 0xBF], [0xF0, 0x80], [0xF0, 0x90], [0xF4, 0x8F], [0xF4, 0x90], [0xF5], [0xFF],
        ]
        for round in 0..<20_000 {
            var run: [UInt8] = []
            for _ in 0...rng.below(5) { run += pieces[rng.below(pieces.count)] }
            let expected = String(validating: run, as: UTF8.self) != nil
            // Alone, and split by an escape (which the check must not straddle).
            var bytes = [0x22] + run + [0x22]
            if round % 2 == 1 {
                let at = 1 + rng.below(run.count + 1)
                bytes.insert(contentsOf: [0x5C, 0x6E], at: at)
                let halves = String(validating: Array(bytes[1..<at]), as: UTF8.self) != nil
                    && String(validating: Array(bytes[(at + 2)..<(bytes.count - 1)]), as: UTF8.self) != nil
                #expect((skipped(bytes).0 == .string("", escaped: true)) == halves, "\(bytes)")
                continue
            }
            #expect((skipped(bytes).0 == .string("", escaped: false)) == expected, "\(bytes)")
            if expected { #expect(decoded(String(decoding: bytes, as: UTF8.self)).0 == .string(String(decoding: run, as: UTF8.self), escaped: false)) }
        }
    }

    @Test("names compare as bytes, or decoded when escaped")
    func names() {
        let bytes = Array(#""text""t\u0065xt""tex""textual""#.utf8)
        bytes.withUnsafeBytes { raw in
            #expect(JSONLexer.string(raw, contents: 1..<5, escaped: false, is: "text"))
            #expect(JSONLexer.string(raw, contents: 7..<16, escaped: true, is: "text"))
            #expect(!JSONLexer.string(raw, contents: 7..<16, escaped: false, is: "text"))
            #expect(!JSONLexer.string(raw, contents: 18..<21, escaped: false, is: "text"))
            #expect(!JSONLexer.string(raw, contents: 23..<30, escaped: false, is: "text"))
            #expect(!JSONLexer.string(raw, contents: 1..<5, escaped: false, is: "tex"))
        }
    }

    @Test("the plain run (eight bytes at a time) ends at the first byte that needs a look, wherever it sits")
    func plainRun() {
        var rng = SplitMix(seed: 5)
        let special: [UInt8] = [0x00, 0x1F, 0x22, 0x5C, 0x80, 0xC3, 0xFF, 0x0A]
        for _ in 0..<5000 {
            var bytes = (0..<rng.below(40)).map { _ in UInt8(0x20 + rng.below(0x5F)) }
            if !bytes.isEmpty, rng.below(4) > 0 { bytes[rng.below(bytes.count)] = special[rng.below(special.count)] }
            let from = rng.below(bytes.count + 1)
            let expected = bytes[from...].firstIndex { $0 < 0x20 || $0 >= 0x80 || $0 == 0x22 || $0 == 0x5C } ?? bytes.count
            // Where the string is: unaligned and at the end of the buffer.
            #expect(bytes.withUnsafeBytes { JSONLexer.plainRun($0, from: from) } == expected, "\(bytes) from \(from)")
        }
    }

    // MARK: Numbers

    @Test("a number is accepted whole exactly when RFC 8259's grammar matches it, and read as Int/Double read its text (random texts)")
    func numbers() {
        // RFC 8259's number grammar, written independently of the lexer.
        let grammar = #/-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/#
        var rng = SplitMix(seed: 7)
        let alphabet = Array("0123456789-+.eE")
        var texts = ["0", "-0", "01", "-", "1.", ".5", "1e", "1e+", "1.5e-3", "1E400", "-1e400", "9223372036854775807", "9223372036854775808",
            "-9223372036854775808", "-9223372036854775809", "2.0", "1e3", "9e15", "8999999999999999", "1e-400"]
        for _ in 0..<10_000 {
            texts.append(String((0...rng.below(8)).map { _ in alphabet[rng.below(alphabet.count)] }))
        }
        texts.append(String(repeating: "9", count: 400))
        for text in texts {
            let bytes = Array(text.utf8)
            guard text.first == "-" || text.first!.isNumber else { continue }  // a number starts so
            let result: (JSONLexer.Number?, Int?) = bytes.withUnsafeBytes { raw in
                var l = JSONLexer(raw)
                guard let n = try? l.number(), l.offset == raw.count else { return (nil, nil) }
                return (n, JSONLexer.intValue(raw, n))
            }
            let grammatical = (try? grammar.wholeMatch(in: text)) != nil
            let finite = Double(text).map(\.isFinite) ?? false
            #expect((result.0 != nil) == (grammatical && finite), "\(text)")
            guard let n = result.0 else { continue }
            #expect(n.isInteger == !text.contains(where: { ".eE".contains($0) }), "\(text)")
            // As JSONValue.intValue reads the parsed value.
            let expected: Int? =
                if n.isInteger, let v = Int(text) { v } else if let d = Double(text), d.rounded() == d, abs(d) < 9e15 { Int(d) } else { nil }
            #expect(result.1 == expected, "\(text)")
        }
    }

    @Test(
        "a bad number fails where JSONParser reports it",
        arguments: [("-", 1, "invalid number"), ("-a", 1, "invalid number"), ("1.", 2, "invalid number"), ("1.e3", 2, "invalid number"),
            ("1e", 2, "invalid number"), ("1e+", 3, "invalid number"), ("1e400", 5, "number out of range")])
    func badNumbers(text: String, offset: Int, reason: String) {
        #expect(lexed(Array(text.utf8)) { (l: inout JSONLexer) throws(JSONLexer.Failure) in
            let n = try l.number()
            return .number(n.range, isInteger: n.isInteger)
        }.0 == .failure(offset: offset, reason: reason))
    }

    @Test("a number stops at the first byte that cannot continue it")
    func numberEnds() {
        for (text, end) in [("0123", 1), ("12,3", 2), ("-0.5]", 4), ("7e2}", 3), ("1 2", 1)] {
            #expect(lexed(Array(text.utf8)) { (l: inout JSONLexer) throws(JSONLexer.Failure) in .number(try l.number().range, isInteger: true) }.1 == end, "\(text)")
        }
    }

    @Test("integers: Int's whole range, the minimum included; anything else (or outside the buffer) is nil")
    func integers() {
        let cases: [(String, Int?)] = [
            ("0", 0), ("-0", 0), ("42", 42), ("-42", -42), ("9223372036854775807", .max), ("-9223372036854775808", .min),
            ("9223372036854775808", nil), ("-9223372036854775809", nil), ("", nil), ("-", nil), ("1.0", nil), ("1e2", nil), ("+1", nil),
        ]
        for (text, expected) in cases {
            #expect(Array(text.utf8).withUnsafeBytes { JSONLexer.integer($0, 0..<$0.count) } == expected, "\(text)")
        }
        #expect(Array("12".utf8).withUnsafeBytes { JSONLexer.integer($0, 0..<3) } == nil)
        #expect(Array("12".utf8).withUnsafeBytes { JSONLexer.integer($0, -1..<2) } == nil)
    }

    // MARK: Literals and white space

    @Test("literals: the word named, whole; white space: the four JSON allows, nothing else")
    func literalsAndWhitespace() {
        func literal(_ text: String, _ word: StaticString) -> Outcome {
            lexed(Array(text.utf8)) { (l: inout JSONLexer) throws(JSONLexer.Failure) in
                try l.literal(word)
                return .literal
            }.0
        }
        #expect(literal("true", "true") == .literal)
        #expect(literal("null]", "null") == .literal)
        #expect(literal("tru", "true") == .failure(offset: 0, reason: "unexpected end of input"))
        #expect(literal("trUe", "true") == .failure(offset: 0, reason: "invalid literal"))
        #expect(literal("nulL", "null") == .failure(offset: 0, reason: "invalid literal"))
        let end = Array(" \t\r\n\u{0B}x".utf8).withUnsafeBytes { raw in
            var l = JSONLexer(raw)
            l.skipWhitespace()
            return l.offset
        }
        #expect(end == 4, "vertical tab is not JSON white space")
    }
}
