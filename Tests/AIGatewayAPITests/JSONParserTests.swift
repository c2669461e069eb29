import AIGatewayAPI
import Testing

private func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue {
    try JSONParser.parse(Array(text.utf8))
}

private func syntaxError(_ bytes: [UInt8]) -> JSONSyntaxError? {
    do {
        _ = try JSONParser.parse(bytes)
        return nil
    } catch {
        return error
    }
}

@Suite("JSON parser")
struct JSONParserTests {
    // MARK: valid documents

    @Test("scalars of every type")
    func scalars() throws {
        #expect(try parse("null") == .null)
        #expect(try parse("true") == .bool(true))
        #expect(try parse("false") == .bool(false))
        #expect(try parse("\"hi\"") == .string("hi"))
        #expect(try parse("\"\"") == .string(""))
        #expect(try parse(" \t\r\n 42 \n") == .int(42))
    }

    @Test(
        "numbers",
        arguments: [
            ("0", JSONValue.int(0)),
            ("-0", .int(0)),
            ("7", .int(7)),
            ("-17", .int(-17)),
            ("3.25", .double(3.25)),
            ("-0.5", .double(-0.5)),
            ("1e3", .double(1000)),
            ("1E3", .double(1000)),
            ("1e+3", .double(1000)),
            ("25e-2", .double(0.25)),
            ("-2.5E+3", .double(-2500)),
            ("9223372036854775807", .int(Int.max)),
            ("-9223372036854775808", .int(Int.min)),
            // One past Int.max no longer fits an Int: it becomes a double, not an error.
            ("9223372036854775808", .double(9_223_372_036_854_775_808.0)),
            ("123456789012345678901234567890", .double(1.2345678901234568e29)),
            ("1.5e300", .double(1.5e300)),
        ])
    func numbers(text: String, expected: JSONValue) throws {
        #expect(try parse(text) == expected)
    }

    @Test("a number beyond a double's range is refused by parse and scan alike (found by the fuzzer)", arguments: ["1e400", "-1e400", "[1, 1e72036854775]", "{\"a\": 1" + String(repeating: "0", count: 400) + "}"])
    func outOfRange(text: String) throws {
        let e = syntaxError(Array(text.utf8))
        #expect(e?.reason == "number out of range")
        #expect(throws: JSONSyntaxError.self) { try JSONParser.scanTopLevel(Array(text.utf8)) }
        // Tiny numbers round to zero, as everywhere.
        #expect(try parse("1e-400") == .double(0))
    }

    @Test("integers and doubles stay distinct")
    func intVersusDouble() throws {
        #expect(try parse("1") != parse("1.0"))
        #expect(try parse("1.0").intValue == 1)
        #expect(try parse("1.5").intValue == nil)
        #expect(try parse("\"1\"").intValue == nil)
    }

    @Test("string escapes")
    func escapes() throws {
        #expect(try parse(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{08}\u{0C}\n\r\t"))
        #expect(try parse(#""a\u0041b""#) == .string("aAb"))
        #expect(try parse(#""caf\u00e9 \u00E9""#) == .string("café é"))
        #expect(try parse(#""\u20AC""#) == .string("€"))
        #expect(try parse(#""\u0000""#) == .string("\u{0}"))
        // Raw UTF-8 before and after an escape is kept byte for byte.
        #expect(try parse("\"héllo\\n wörld\"") == .string("héllo\n wörld"))
        #expect(try parse("\"日本語\"") == .string("日本語"))
        // DEL (0x7F) is not a control character in JSON.
        #expect(try parse("\"a\u{7F}b\"") == .string("a\u{7F}b"))
    }

    @Test("surrogate pairs")
    func surrogatePairs() throws {
        #expect(try parse(#""\uD83D\uDE00""#) == .string("😀"))
        #expect(try parse(#""x\ud834\udd1ey""#) == .string("x𝄞y"))
        // Raw 4-byte UTF-8 needs no escape.
        #expect(try parse("\"😀\"") == .string("😀"))
    }

    @Test("arrays and objects, nested")
    func containers() throws {
        #expect(try parse("[]") == .array([]))
        #expect(try parse("{}") == .object([:]))
        #expect(try parse("[ ]") == .array([]))
        #expect(try parse("{ \n }") == .object([:]))
        let doc = """
            {"a": [1, 2.5, "x", null, true, false, {"b": []}],
             "c": {"d": {"e": "f"}}, "": 0}
            """
        #expect(
            try parse(doc)
                == .object([
                    "a": .array([.int(1), .double(2.5), .string("x"), .null, .bool(true), .bool(false), .object(["b": .array([])])]),
                    "c": .object(["d": .object(["e": .string("f")])]),
                    "": .int(0),
                ]))
    }

    @Test("duplicate keys: the last one wins")
    func duplicateKeys() throws {
        #expect(try parse(#"{"a":1,"a":2}"#) == .object(["a": .int(2)]))
    }

    @Test("nesting up to the limit is accepted, one level more is rejected")
    func nestingLimit() throws {
        let n = JSONParser.maximumDepth
        #expect(n == 128)
        let ok = String(repeating: "[", count: n) + String(repeating: "]", count: n)
        var value = try parse(ok)
        var depth = 0
        while case .array(let a) = value {
            depth += 1
            guard let first = a.first else { break }
            value = first
        }
        #expect(depth == n)

        let objects = String(repeating: "{\"k\":", count: n) + "1" + String(repeating: "}", count: n)
        #expect(throws: Never.self) { try parse(objects) }

        let deep = String(repeating: "[", count: n + 1) + String(repeating: "]", count: n + 1)
        let e = syntaxError(Array(deep.utf8))
        #expect(e?.offset == n, "the offending bracket is the (n+1)th, at offset n")
        #expect(e?.reason.contains("deep") == true)

        let mixed = String(repeating: "[{\"a\":", count: (n + 2) / 2) + "0" + String(repeating: "}]", count: (n + 2) / 2)
        #expect(syntaxError(Array(mixed.utf8)) != nil, "objects and arrays count towards the same depth")

        // Far deeper input must fail cleanly rather than exhaust the stack.
        let huge = String(repeating: "[", count: 100_000)
        #expect(syntaxError(Array(huge.utf8))?.offset == n)
    }

    @Test("non-contiguous collections parse like arrays")
    func nonContiguous() throws {
        let bytes = Array(#"{"a":[1,"b"]}"#.utf8)
        let lazy = bytes.lazy.map { $0 }  // not contiguous storage
        #expect(try JSONParser.parse(lazy) == JSONParser.parse(bytes))
        #expect(try JSONValue.parse(json: bytes[...]) == .object(["a": .array([.int(1), .string("b")])]))
    }

    // MARK: malformed documents

    struct Malformed: Sendable, CustomTestStringConvertible {
        var name: String
        var bytes: [UInt8]
        /// Where the error should be reported: exactly, or within the offending token.
        var offset: ClosedRange<Int>
        var testDescription: String { name }

        init(_ name: String, _ text: String, at offset: Int) {
            self.init(name, Array(text.utf8), at: offset...offset)
        }

        init(_ name: String, _ bytes: [UInt8], at offset: ClosedRange<Int>) {
            self.name = name
            self.bytes = bytes
            self.offset = offset
        }
    }

    static let malformed: [Malformed] = [
        .init("empty input", "", at: 0),
        .init("only whitespace", "   ", at: 3),
        .init("unclosed object", "{", at: 1),
        .init("unclosed array", "[", at: 1),
        .init("array missing bracket", "[1", at: 2),
        .init("object missing brace", #"{"a":1"#, at: 6),
        .init("trailing comma in array", "[1,]", at: 3),
        .init("trailing comma in object", #"{"a":1,}"#, at: 7),
        .init("missing comma", "[1 2]", at: 3),
        .init("missing colon", #"{"a" 1}"#, at: 5),
        .init("missing value", #"{"a":}"#, at: 5),
        .init("non-string key", "{1:2}", at: 1),
        .init("single-quoted string", "'a'", at: 0),
        .init("data after the value", "[1] x", at: 4),
        .init("two values", "1 2", at: 2),
        .init("leading zero", "01", at: 1),
        .init("leading zero in array", "[01]", at: 2),
        .init("lone minus", "-", at: 1),
        .init("minus without digits", "-a", at: 1),
        .init("leading plus", "+1", at: 0),
        .init("leading dot", ".5", at: 0),
        .init("trailing dot", "1.", at: 2),
        .init("dot without fraction", "1.e3", at: 2),
        .init("exponent without digits", "1e", at: 2),
        .init("exponent sign without digits", "1e+", at: 3),
        .init("NaN", "NaN", at: 0),
        .init("Infinity", "Infinity", at: 0),
        .init("hex number", "0x10", at: 1),
        .init("truncated true", "tru", at: 0),
        .init("misspelled true", "trux", at: 0),
        .init("capitalised literal", "True", at: 0),
        .init("truncated null", "nul", at: 0),
        .init("unterminated string", #""abc"#, at: 4),
        .init("backslash at the end", #""\"#, at: 2),
        .init("raw newline in string", "\"a\nb\"", at: 2),
        .init("raw tab in string", "\"\t\"", at: 1),
        .init("raw control character after an escape", "\"\\n\u{01}\"", at: 3),
        .init("bad hex digit", #""\u12G4""#, at: 5),
        .init("truncated unicode escape", #""\u00""#, at: 3),
        Malformed("unknown escape", Array(#""a\x""#.utf8), at: 2...4),
        Malformed("lone high surrogate", Array(#""\ud800""#.utf8), at: 1...7),
        Malformed("lone low surrogate", Array(#""\udc00""#.utf8), at: 1...7),
        Malformed("high surrogate followed by a non-surrogate", Array(#""\ud800\u0041""#.utf8), at: 1...13),
        Malformed("high surrogate followed by a plain character", Array(#""\ud800x""#.utf8), at: 1...8),
        Malformed("invalid UTF-8 in string", [0x22, 0xFF, 0x22], at: 1...3),
        Malformed("invalid UTF-8 after an escape", [0x22, 0x5C, 0x6E, 0xC3, 0x28, 0x22], at: 1...6),
        Malformed("invalid byte outside a string", [0xFF], at: 0...0),
        Malformed("byte order mark", [0xEF, 0xBB, 0xBF, 0x7B, 0x7D], at: 0...0),
    ]

    @Test("malformed input is rejected with an offset", arguments: malformed)
    func rejects(_ c: Malformed) {
        guard let e = syntaxError(c.bytes) else {
            Issue.record("accepted \(c.name)")
            return
        }
        #expect(c.offset.contains(e.offset), "\(c.name): offset \(e.offset), reason \(e.reason)")
        #expect(!e.reason.isEmpty)
        #expect(e.description == "invalid JSON at byte \(e.offset): \(e.reason)")
    }

    @Test("scanTopLevel rejects the same malformed input, at top level and nested where nothing is built", arguments: malformed)
    func scanRejects(_ c: Malformed) {
        #expect(throws: JSONSyntaxError.self, "top level: \(c.name)") { _ = try JSONParser.scanTopLevel(c.bytes) }
        // Inside an array inside an object: the validate-only paths for nested values. (Inputs
        // that are only bad as a whole document, like two values, are not bad inside an array.)
        let wholeDocumentOnly = ["empty input", "only whitespace", "two values", "data after the value", "byte order mark"]
        if !wholeDocumentOnly.contains(c.name) {
            let nested = Array(#"{"a":[true,"#.utf8) + c.bytes + Array("]}".utf8)
            #expect(throws: JSONSyntaxError.self, "nested: \(c.name)") { _ = try JSONParser.scanTopLevel(nested) }
        }
    }

    @Test("scanTopLevel accepts what parse accepts and reports the same top-level spans")
    func scanAccepts() throws {
        let documents = [
            #"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"h\u00e9llo \ud83d\ude00 café"}}],"usage":{"prompt_tokens":3,"completion_tokens":-1.5e3}}"#,
            #"{"a":null,"b":[],"c":{},"d":[1,2.5,-0,1E+2,"\"\\\/\b\f\n\r\t"],"e":false}"#,
            "  {\n \"k\" : \"😀\" \n}  ",
        ]
        for d in documents {
            let bytes = Array(d.utf8)
            let parsed = try JSONParser.parseTopLevel(bytes)
            let spans = try #require(try JSONParser.scanTopLevel(bytes), "\(d)")
            #expect(spans == parsed.members)
        }
        #expect(try JSONParser.scanTopLevel(Array("[1,2]".utf8)) == nil)
        #expect(try JSONParser.scanTopLevel(Array(#""text""#.utf8)) == nil)
    }

    // MARK: top-level member spans

    @Test("parseTopLevel reports where each top-level member sits")
    func memberSpans() throws {
        let text = #" {"model" : "gpt-4o", "n":1 ,"messages":[{"role":"user"}],"e":{"x":[]}} "#
        let bytes = Array(text.utf8)
        let (value, members) = try JSONParser.parseTopLevel(bytes)
        #expect(value["model"] == .string("gpt-4o"))
        #expect(Set(members.keys) == ["model", "n", "messages", "e"], "nested keys are not top-level members")
        func slice(_ r: Range<Int>) -> String { String(decoding: bytes[r], as: UTF8.self) }
        #expect(members["model"].map { slice($0.member) } == #""model" : "gpt-4o""#)
        #expect(members["model"].map { slice($0.value) } == #""gpt-4o""#)
        #expect(members["n"].map { slice($0.member) } == #""n":1"#)
        #expect(members["n"].map { slice($0.value) } == "1")
        #expect(members["messages"].map { slice($0.value) } == #"[{"role":"user"}]"#)
        #expect(members["e"].map { slice($0.value) } == #"{"x":[]}"#)
        #expect(members["model"]?.member.lowerBound == 2)
    }

    @Test("parseTopLevel of a non-object has no members")
    func spansOfNonObjects() throws {
        #expect(try JSONParser.parseTopLevel(Array("[1,2]".utf8)).members.isEmpty)
        #expect(try JSONParser.parseTopLevel(Array(#""x""#.utf8)).members.isEmpty)
        #expect(try JSONParser.parseTopLevel(Array("{}".utf8)).members.isEmpty)
    }

    @Test("a duplicated key's span is that of its last occurrence, like its value")
    func spansOfDuplicateKeys() throws {
        let bytes = Array(#"{"a":1,"a":22}"#.utf8)
        let (value, members) = try JSONParser.parseTopLevel(bytes)
        #expect(value["a"] == .int(22))
        #expect(members["a"]?.value == 11..<13)
    }

    // MARK: canonical output

    @Test("canonicalJSON sorts keys and writes compact text")
    func canonical() throws {
        let v = try parse(#"{ "b" : [1, 2.5, "x"], "a": {"d": null, "c": true} }"#)
        #expect(v.canonicalJSON() == #"{"a":{"c":true,"d":null},"b":[1,2.5,"x"]}"#)
        #expect(JSONValue.string("a\"b\\c\n\r\t\u{01}\u{1F}é😀").canonicalJSON() == #""a\"b\\c\n\r\t\u0001\u001fé😀""#)
        #expect(JSONValue.double(.infinity).canonicalJSON() == "null")
        #expect(JSONValue.double(.nan).canonicalJSON() == "null")
        #expect(JSONValue.quoted("x\"y") == #""x\"y""#)
    }

    @Test(
        "canonicalJSON round-trips through the parser",
        arguments: [
            #"{"a":[1,-2,3.5,-0.25,1e300,12345678901234567890],"b":{"c":null,"d":[true,false,{}]},"e":""}"#,
            #"["\u0000\u001f\"\\/é😀\ud83d\ude00", "tab\there"]"#,
            "[[[[[]]]]]",
            #"{"unicode key ü":{"":[]}}"#,
            "1e-7",
            "-9223372036854775808",
        ])
    func roundTrip(text: String) throws {
        let value = try parse(text)
        let canonical = value.canonicalJSON()
        let again = try parse(canonical)
        #expect(again == value)
        #expect(again.canonicalJSON() == canonical, "canonical text is a fixed point")
    }

    @Test("JSONValue accessors and type names")
    func accessors() throws {
        let v = try parse(#"{"s":"x","a":[1],"o":{"k":2},"n":null}"#)
        #expect(v["s"]?.stringValue == "x")
        #expect(v["a"]?.arrayValue == [.int(1)])
        #expect(v["o"]?.objectValue == ["k": .int(2)])
        #expect(v["o"]?["k"]?.intValue == 2)
        #expect(v["missing"] == nil)
        #expect(v["s"]?["k"] == nil)
        #expect(v["n"] == .null)
        #expect(
            [JSONValue.null, .bool(true), .int(1), .double(1), .string(""), .array([]), .object([:])].map(\.typeName)
                == ["null", "boolean", "integer", "number", "string", "array", "object"])
    }

    @Test("integers read out of a scanned document without building it; anything else is nil")
    func integersFromSpans() throws {
        let text = #"{"a": 12, "b":-7,"c":0,"d":1.5,"e":"3","f":1e2,"g":9223372036854775807,"h":9223372036854775808,"i":[1]}"#
        let bytes = Array(text.utf8)
        let spans = try #require(try JSONParser.scanTopLevel(bytes))
        let read = { (k: String) in bytes.withUnsafeBytes { JSONParser.integer($0, span: spans[k]!) } }
        #expect(read("a") == 12)
        #expect(read("b") == -7)
        #expect(read("c") == 0)
        #expect(read("g") == Int.max)
        for k in ["d", "e", "f", "h", "i"] { #expect(read(k) == nil, "\(k)") }
        // A span outside the buffer is not read.
        let outside = JSONMemberSpan(member: 0..<500, value: 490..<500)
        #expect(bytes.withUnsafeBytes { JSONParser.integer($0, span: outside) } == nil)
    }

    @Test("strings with and without non-ASCII bytes decode alike; invalid UTF-8 is still rejected")
    func asciiFastPath() throws {
        #expect(try parse(#"["plain ascii", "caf\#u{e9}", "\u00e9"]"#) == .array([.string("plain ascii"), .string("café"), .string("é")]))
        #expect(syntaxError(Array(#"[""#.utf8) + [0xC3, 0x28] + Array(#""]"#.utf8)) != nil)
    }
}
