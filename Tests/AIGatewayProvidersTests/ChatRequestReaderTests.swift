import AIGatewayAPI
@testable import AIGatewayProviders
import Testing

/// `ChatRequest` (its body read in one pass, `ChatRequest.Facts(reading:)`) against
/// `ChatRequestReference` (the scanned spans and parsed members it replaced): the one-pass reader
/// reads exactly the bodies the reference accepts and finds the same facts and spans; the
/// request writes the same bodies and refuses with the same words.
@Suite("The chat request read from its bytes")
struct ChatRequestReaderTests {
    /// The facts the reference found, as the reader states them.
    static func facts(_ r: ChatRequestReference) -> ChatRequest.Facts {
        ChatRequest.Facts(
            model: r.model, stream: r.stream, includeUsage: r.clientWantsStreamUsage, messagesEmpty: r.messagesEmpty, hasMembers: !r.spans.isEmpty,
            modelSpan: r.spans["model"]?.value, streamOptionsSpan: r.spans["stream_options"]?.value, messagesSpan: r.spans["messages"]?.value)
    }

    /// The attempts' bodies compared: no rewrite, a model, the usage option, a prefill.
    static let rewrites: [(model: String?, includeUsage: Bool, prefill: String?)] = [
        (nil, false, nil), ("gpt-4o", false, nil), (nil, true, nil), ("we\"ird\n", true, "so far \u{1} é"), (nil, false, ""),
    ]

    /// The bodies written (as text: what a failure shows; both sides write valid UTF-8).
    static func written(_ write: (String?, Bool, String?, (UnsafeRawBufferPointer) -> Void) -> Void) -> [String] {
        rewrites.map { r in
            var out: [UInt8] = []
            write(r.model, r.includeUsage, r.prefill) { out.append(contentsOf: $0) }
            return String(decoding: out, as: UTF8.self)
        }
    }

    /// Checks one body; returns whether the reference accepted it.
    @discardableResult
    static func check(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        let reference = Result { () throws(ChatRequest.Invalid) in try ChatRequestReference(bytes: bytes) }
        let request = Result { () throws(ChatRequest.Invalid) in try ChatRequest(bytes: bytes) }
        let read = ChatRequest.Facts(reading: bytes)
        switch (reference, request) {
        case (.success(let ref), .success(let new)):
            #expect(read == facts(ref), "the reader: \(text)", sourceLocation: sourceLocation)
            #expect(new.facts == facts(ref), "\(text)", sourceLocation: sourceLocation)
            #expect(new.model == ref.model && new.stream == ref.stream, "\(text)", sourceLocation: sourceLocation)
            #expect(new.clientWantsStreamUsage == ref.clientWantsStreamUsage && new.messagesEmpty == ref.messagesEmpty, "\(text)", sourceLocation: sourceLocation)
            let bodies = written { new.writeBody(model: $0, includeUsage: $1, prefill: $2, $3) }
            let expected = written { ref.writeBody(model: $0, includeUsage: $1, prefill: $2, $3) }
            #expect(bodies == expected, "\(text)", sourceLocation: sourceLocation)
            return true
        case (.failure(let ref), .failure(let new)):
            #expect(read == nil, "the reader read a refused body: \(text)", sourceLocation: sourceLocation)
            #expect(new.description == ref.description, "\(text)", sourceLocation: sourceLocation)
            return false
        default:
            Issue.record("one accepts, the other refuses: \(text): \(reference) \(request)", sourceLocation: sourceLocation)
            return false
        }
    }

    /// Bodies with every member the gateway reads, in every form (and a few it must not read).
    static let bodies: [String] = [
        #"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
        #"{"messages":[]}"#, "{}", " \n{ }\t", #"{"a":1}"#,
        #" { "model" : null , "messages" : [ ] , "stream" : false } "#,
        #"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}"#,
        #"{"stream":true,"stream_options":{"include_usage":false,"x":[1,{"include_usage":true}]},"messages":[ ]}"#,
        #"{"stream":true,"stream_options":{"include_usage":true,"include_usage":false},"messages":[]}"#,
        #"{"stream":true,"stream_options":{"include_usage":false,"include_usage":true},"messages":[]}"#,
        #"{"stream":true,"stream_options":null,"messages":[{"role":"user","content":"x"}]}"#,
        #"{"stream":true,"stream_options":[{"include_usage":true}],"messages":[]}"#,
        #"{"stream":true,"stream_options":{},"stream":null,"messages":[]}"#,
        #"{"stream":true,"stream_options":{"include_usage":"true"},"messages":[]}"#,
        #"{"stream":"yes","messages":[]}"#, #"{"stream":1,"messages":[]}"#, #"{"stream":null}"#, #"{"stream":false,"stream":true}"#,
        #"{"model":7,"messages":[]}"#, #"{"model":["m"]}"#, #"{"model":{"name":"m"}}"#, #"{"model":true}"#,
        #"{"model":7,"model":"ok"}"#, #"{"model":"ok","model":7}"#, #"{"model":"a","model":null}"#,
        #"{"model":"\u0067pt\"4o\\ \ud83d\ude00 é"}"#, #"{"mod\u0065l":"escaped key","m\u0065ssages":[1],"stre\u0061m":true}"#,
        #"{"messages":{}}"#, #"{"messages":"[]"}"#, #"{"messages":null}"#, #"{"messages":[],"messages":7}"#, #"{"messages":7,"messages":[]}"#,
        #"{"messages":[ ],"messages":[{"role":"user","content":"x"}]}"#, #"{"messages":[ [] ]}"#,
        #"{"x":{"model":"nested","stream":true,"messages":7},"y":[{"stream_options":1}],"model":"top"}"#,
        #"{"temperature":0.70,"max_tokens":1e2,"n":-0,"top_p":1E-2,"stop":["a","b"],"seed":null,"user":"u"}"#,
        // Not a request at all, or not JSON.
        "[]", #""x""#, "7", "null", "true", "", " ", "{", "}", #"{"model":}"#, #"{"model":"a",}"#, #"{"model" "a"}"#,
        #"{"messages":[]} x"#, #"{"messages":[],}"#, #"{"model":"\ud800"}"#, #"{"n":1e400}"#, #"{"n":01}"#, #"{"a":tru}"#,
        #"{"model":"a\u0001"}"#, "{\"model\":\"a\u{1}\"}", #"[1,2"#, #"{"a":[}"#,
        String(repeating: "[", count: 127) + String(repeating: "]", count: 127),
        #"{"a":"# + String(repeating: "[", count: 127) + String(repeating: "]", count: 127) + "}",
        #"{"a":"# + String(repeating: "[", count: 126) + String(repeating: "]", count: 126) + "}",
    ]

    @Test("the hand-written bodies: the same facts, bodies and errors")
    func handWritten() {
        var accepted = 0
        for body in Self.bodies where Self.check(Array(body.utf8)) { accepted += 1 }
        #expect(accepted > 20 && accepted < Self.bodies.count - 20, "\(accepted) of \(Self.bodies.count)")
        // Invalid UTF-8, in a value and in a key.
        Self.check(Array(#"{"model":""#.utf8) + [0xFF] + Array(#""}"#.utf8))
        Self.check(Array(#"{""#.utf8) + [0xC0, 0x80] + Array(#"":1}"#.utf8))
    }

    /// Bytes put in each place: the structure's, the literals' and numbers' first bytes, a
    /// control byte and bytes that are not UTF-8.
    static let mutationBytes: [UInt8] = Array(#"{}[]",:\ tn0-e"#.utf8) + [0x01, 0xFF, 0xC3]

    @Test("every body changed at one byte (dropped, replaced, or one inserted): the same facts, bodies and errors")
    func byteMutations() {
        var total = 0
        var accepted = 0
        for body in Self.bodies.prefix(34) {
            let bytes = Array(body.utf8)
            for i in 0...bytes.count {
                var variants: [[UInt8]] = []
                if i < bytes.count {
                    var dropped = bytes
                    dropped.remove(at: i)
                    variants.append(dropped)
                }
                for b in Self.mutationBytes {
                    var inserted = bytes
                    inserted.insert(b, at: i)
                    variants.append(inserted)
                    if i < bytes.count, bytes[i] != b {
                        var replaced = bytes
                        replaced[i] = b
                        variants.append(replaced)
                    }
                }
                for v in variants {
                    total += 1
                    if Self.check(v) { accepted += 1 }
                }
            }
        }
        // Both kinds are well represented.
        #expect(total > 20_000 && accepted > total / 20 && accepted < total / 2, "\(accepted) of \(total)")
    }

    @Test("every member's value replaced by each type, each member dropped: the same facts, bodies and errors")
    func valueMutations() throws {
        let values: [JSONValue] = [
            .null, .bool(true), .bool(false), .int(0), .double(1.5), .string(""), .string("m"), .array([]), .array([.object([:])]),
            .object([:]), .object(["include_usage": .bool(true)]), .object(["include_usage": .bool(false)]),
        ]
        var total = 0
        for body in Self.bodies.prefix(12) {
            guard case .object(let o) = try JSONParser.parse(Array(body.utf8)) else { continue }
            var variants: [JSONValue] = []
            for key in Set(o.keys).union(["model", "stream", "stream_options", "messages"]) {
                var without = o
                without[key] = nil
                variants.append(.object(without))
                for v in values {
                    var copy = o
                    copy[key] = v
                    variants.append(.object(copy))
                }
            }
            for v in variants {
                total += 1
                // Written both compactly and spread out with white space.
                Self.check(Array(v.canonicalJSON().utf8))
                let spread = v.canonicalJSON().split(separator: ",", omittingEmptySubsequences: false).joined(separator: " ,\n ")
                Self.check(Array(spread.split(separator: ":", omittingEmptySubsequences: false).joined(separator: "\t: ").utf8))
            }
        }
        #expect(total > 300)
    }
}
