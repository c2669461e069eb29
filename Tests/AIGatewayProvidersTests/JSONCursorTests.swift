import AIGatewayAPI
import AIGatewayProviders
import Testing

@Suite("JSON cursor and byte writer")
struct JSONCursorTests {
    /// Valid and invalid documents, the corner cases of RFC 8259 that a hand-written reader gets wrong.
    static let documents: [String] = [
        #"{}"#, #"[]"#, #" { "a" : [ 1 , 2 ] } "#, #"{"a":{"b":{"c":[[],{},[{}]]}}}"#, #""s""#, #"0"#, #"-0"#, #"-12.5e+3"#, #"1E-2"#,
        #"true"#, #"false"#, #"null"#, #"{"a":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}"#, #"{"k\u0065y":1}"#, #"["é", "日本"]"#,
        #"{"a":1,}"#, #"[1,]"#, #"[,1]"#, #"{,}"#, #"{"a" 1}"#, #"{"a":1 "b":2}"#, #"{1:2}"#, #"[1 2]"#, #"01"#, #"1."#, #".5"#, #"-"#,
        #"1e"#, #"1e400"#, #"+1"#, #"tru"#, #"nul"#, #"[true false]"#, #"{"a":1}}"#, #"{"a":1} x"#, #"["\ud800"]"#, #"["\udc00"]"#,
        #"["\ud800\u0041"]"#, #"["\x"]"#, #"["\u12G4"]"#, "[\"a\u{01}\"]", #"["unterminated]"#, #"{"a":"#, #"["#, "", "   ",
        String(repeating: "[", count: 129) + String(repeating: "]", count: 129),
        String(repeating: "[", count: 128) + String(repeating: "]", count: 128),
    ]

    @Test("accepts exactly what JSONParser accepts, and reads the same value")
    func strictness() {
        var docs = Self.documents.map { Array($0.utf8) }
        docs.append([0x5B, 0x22, 0xFF, 0x22, 0x5D])  // ["<invalid UTF-8>"]
        docs.append([0x7B, 0x22, 0xC3, 0x22, 0x3A, 0x31, 0x7D])  // a key cut inside a UTF-8 sequence
        for doc in docs {
            let parsed = try? JSONParser.parse(doc)
            let skipped = (try? JSONCursor.read(doc) { (c: inout JSONCursor) throws(JSONCursor.Failure) -> Bool in
                try c.skipValue()
                try c.end()
                return true
            }) ?? false
            #expect(skipped == (parsed != nil), "\(String(decoding: doc, as: UTF8.self))")
            let value = try? JSONCursor.read(doc) { (c: inout JSONCursor) throws(JSONCursor.Failure) -> JSONValue in
                let v = try c.value()
                try c.end()
                return v
            }
            #expect(value == parsed, "\(String(decoding: doc, as: UTF8.self))")
        }
    }

    @Test("members are found by name, escaped names decoded; strings and integers read as JSONValue has them")
    func members() throws {
        let doc = Array(#"{"t\u0065xt":"a\nb","n":2.0,"big":1e20,"neg":-3,"s":"x","o":{"text":"no"},"arr":[1,{"n":1}]}"#.utf8)
        let read = try JSONCursor.read(doc) { (c: inout JSONCursor) throws(JSONCursor.Failure) -> [String: String] in
            var out: [String: String] = [:]
            try c.enterObject()
            while let k = try c.nextKey() {
                if c.key(k, is: "text") {
                    out["text"] = try c.stringIfAny()
                } else if c.key(k, is: "n") || c.key(k, is: "big") || c.key(k, is: "neg") || c.key(k, is: "s") {
                    let name = c.key(k, is: "n") ? "n" : c.key(k, is: "big") ? "big" : c.key(k, is: "neg") ? "neg" : "s"
                    out[name] = (try c.intIfAny()).map(String.init) ?? "nil"
                } else {
                    try c.skipValue()
                }
            }
            try c.end()
            return out
        }
        #expect(read == ["text": "a\nb", "n": "2", "big": "nil", "neg": "-3", "s": "nil"])
    }

    @Test("integers read as JSONValue.intValue reads the parsed number, Int's extremes included")
    func integers() throws {
        let numbers = [
            "0", "-0", "7", "-7", "2.0", "-2.5", "1e3", "1E-2", "9e15", "8999999999999999", "9223372036854775807", "-9223372036854775808",
            "9223372036854775808", "-9223372036854775809", "123456789012345678901234567890",
        ]
        for text in numbers {
            let read = try JSONCursor.read(Array(text.utf8)) { (c: inout JSONCursor) throws(JSONCursor.Failure) -> Int? in try c.intIfAny() }
            #expect(read == (try JSONParser.parse(Array(text.utf8))).intValue, "\(text)")
        }
    }

    @Test("the byte writer writes what JSONValue writes")
    func writer() {
        let strings = ["", "plain", "quote \" backslash \\ slash /", "\n\r\t\u{01}\u{1F}\u{7F}", "é日本😀", String(repeating: "ab\"", count: 100)]
        for s in strings {
            var bytes: [UInt8] = []
            JSONBytes.appendString(s, to: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == JSONValue.quoted(s))
        }
        let value = JSONValue.object([
            "b": .array([.int(-12), .int(0), .int(7), .double(1.5), .bool(true), .null, .string("x\n")]), "a": .object(["z": .int(Int.max), "y": .int(Int.min)]),
        ])
        var bytes: [UInt8] = []
        JSONBytes.appendValue(value, to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == value.canonicalJSON())
    }
}
