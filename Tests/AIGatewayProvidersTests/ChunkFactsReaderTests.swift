import AIGatewayAPI
@testable import AIGatewayProviders
import Testing

/// The facts of an OpenAI chunk read from its bytes must be those of the parsed chunk, and an
/// event the parser refuses must be refused (it is dropped as malformed).
@Suite("OpenAI chunk facts: read from the bytes, as from the parsed chunk")
struct ChunkFactsReaderTests {
    static func reference(_ json: String) -> ChunkFacts? {
        guard let v = try? JSONParser.parse(Array(json.utf8)) else { return nil }
        return ChunkFacts(value: v)
    }

    static let valid: [String] = [
        #"{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        #"{"id":"c","model":"gpt-4o-2024-08-06-long-name","choices":[{"index":0,"delta":{"content":" tok0"},"logprobs":null,"finish_reason":null}]}"#,
        #"{"choices":[{"index":0,"delta":{"content":"H\u00e9 \"q\" \n \ud83d\ude00"}}]}"#,
        #"{"choices":[{"index":0,"delta":{"content":"Hé ✓"}},{"index":1,"delta":{"content":"b"}}]}"#,
        #"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        #"{"choices":[{"index":0,"delta":{},"finish_reason":false}]}"#,
        #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"x","function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}"#,
        #"{"choices":[{"delta":{"function_call":null}}]}"#,
        #"{"choices":[{"delta":{"refusal":"no"}}]}"#,
        #"{"choices":[{"delta":{"refusal":""}}]}"#,
        #"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#,
        #"{"choices":[],"usage":{"prompt_tokens":3.0,"completion_tokens":1e2,"prompt_tokens_details":{"cached_tokens":2}}}"#,
        #"{"choices":[],"usage":{"prompt_tokens":99999999999999999999,"completion_tokens":-0,"prompt_tokens_details":null}}"#,
        #"{"choices":[],"usage":{"prompt_tokens":"3","completion_tokens":1.5,"prompt_tokens_details":{"cached_tokens":"x"}}}"#,
        #"{"choices":[],"usage":null}"#,
        #"{"usage":{}}"#,
        #"{"choices":{"delta":{"content":"x"}}}"#,
        #"{"choices":[1,"x",null,[],{"delta":"x"},{"delta":{"content":1}}]}"#,
        #"{"choices":[{"delta":{"content":"a","content":"b"}}],"choices":[{"delta":{"content":"c"}}]}"#,
        #"{"choices":[{"delta":{"content":"a"}}],"choices":null}"#,
        #"{"choices":[{"finish_reason":"stop","finish_reason":null,"delta":{"content":"a"},"delta":7}]}"#,
        #"{"\u0063hoices":[{"d\u0065lta":{"cont\u0065nt":"x"}}],"mod\u0065l":"m"}"#,
        #"{"error":{"message":"overloaded","type":"server_error","code":null}}"#,
        #"{"error":null,"choices":[{"delta":{"content":"x"}}]}"#,
        #"{"model":1}"#,
        #"{}"#,
        " \t\r\n{ \"choices\" : [ { \"delta\" : { \"content\" : \"x\" } } ] } \n",
        #"{"a":[[[[{"b":[true,false,null,-1.5e-3,0,"\/"]}]]]]}"#,
    ]

    static let invalid: [String] = [
        "", " ", "[", "{", "}", "{\"choices\": [", "[1,2]", "\"x\"", "1", "null",
        #"{"a":1,}"#, #"{"a":1 "b":2}"#, #"{"a"}"#, #"{a:1}"#, #"{"a":01}"#, #"{"a":-}"#, #"{"a":1.}"#, #"{"a":1e}"#, #"{"a":.5}"#,
        #"{"a":1e400}"#, #"{"a":tru}"#, #"{"a":nul}"#, #"{"a":"\x"}"#, #"{"a":"\u12"}"#, #"{"a":"\ud83d"}"#, #"{"a":"\ude00"}"#,
        "{\"a\":\"\u{01}\"}", "{\"a\":\"tab\there\"}", #"{"a":1}x"#, #"{"a":1}{"#, #"{"a":[1,]}"#, #"{"a":[,1]}"#,
        String(repeating: "[", count: 200) + String(repeating: "]", count: 200),
        "{\"a\":" + String(repeating: "[", count: 128) + String(repeating: "]", count: 128) + "}",
    ]

    @Test("valid chunks: the same facts as the parsed chunk")
    func validChunks() {
        for json in Self.valid {
            let read = ChunkFacts(json: json)
            #expect(read != nil, "\(json)")
            #expect(read == Self.reference(json), "\(json)")
        }
        let text = ChunkFacts(json: Self.valid[2])
        #expect(text?.content == "Hé \"q\" \n 😀" && text?.isToken == true, "escapes undone in the text kept for a continuation")
        let usage = ChunkFacts(json: Self.valid[11])
        #expect(usage?.usage == TokenUsage(input: 3, output: 100, cachedInput: 2) && usage?.usageOnly == true)
        #expect(ChunkFacts(json: Self.valid[18])?.content == "c", "the last of duplicate keys counts")
    }

    @Test("what the parser refuses is refused (malformed), nested too deep included")
    func invalidChunks() {
        for json in Self.invalid {
            #expect(ChunkFacts(json: json) == nil, "\(json)")
            #expect(Self.reference(json) == nil, "the parser refuses \(json) too")
        }
        // Invalid UTF-8 in a string (and in a key).
        for bytes: [UInt8] in [Array(#"{"a":""#.utf8) + [0xC3] + Array(#""}"#.utf8), Array(#"{""#.utf8) + [0xFF] + Array(#"":1}"#.utf8)] {
            #expect(bytes.withUnsafeBytes { ChunkFacts(json: $0) } == nil)
        }
        let deepest = "{\"a\":" + String(repeating: "[", count: 127) + String(repeating: "]", count: 127) + "}"
        #expect(ChunkFacts(json: deepest) != nil && Self.reference(deepest) != nil, "128 levels with the object is the most accepted")
    }

    @Test("mutated chunks (bytes dropped, doubled, replaced): the reader agrees with the parser on every one")
    func mutations() async {
        var rng = SplitMix(seed: 3)
        let alphabet = Array(#"{}[]":,\ u0e.-+1tfnl"#.utf8) + [0x0A, 0xC3, 0xA9, 0x01]
        var disagreements: [String] = []
        for round in 0..<20_000 {
            // Leave the test pool's threads to the other suites now and then (see the note in
            // IncrementalCompilerTests).
            if round % 500 == 0 { await Task.yield() }
            var bytes = Array(Self.valid[rng.below(Self.valid.count)].utf8)
            for _ in 0...rng.below(3) where !bytes.isEmpty {
                let at = rng.below(bytes.count)
                switch rng.below(3) {
                case 0: bytes.remove(at: at)
                case 1: bytes.insert(bytes[at], at: at)
                default: bytes[at] = alphabet[rng.below(alphabet.count)]
                }
            }
            let read = bytes.withUnsafeBytes { ChunkFacts(json: $0) }
            let reference = (try? JSONParser.parse(bytes)).flatMap { ChunkFacts(value: $0) }
            if read != reference { disagreements.append(String(decoding: bytes, as: UTF8.self)) }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(5))")
    }
}

@Suite("OpenAI streams: the relay's in-place path")
struct OpenAIStreamVisitTests {
    static let input = Array(
        """
        data: {"choices":[{"index":0,"delta":{"content":"a"}}]}

        : ping

        data: {"choices": [

        data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

        data: [DONE]

        data: {"choices":[{"index":0,"delta":{"content":"after"}}]}


        """.utf8)

    @Test("visiting gives the events `feed` collects, split anywhere, and stops when told")
    func visit() {
        func visited(_ pieces: [[UInt8]], stopAtDone: Bool) -> [String] {
            var t = OpenAIStreamTranslator()
            var out: [String] = []
            var stopped = false
            for p in pieces where !stopped {
                p.withUnsafeBytes { b in
                    t.feed(b) { kind, raw in
                        out.append(StreamSplitting.render(StreamEvent(kind, bytes: Array(raw))))
                        if case .done = kind, stopAtDone { stopped = true }
                        return !stopped
                    }
                }
            }
            return out
        }
        let collected = StreamSplitting.run({ OpenAIStreamTranslator() }, [Self.input])
        #expect(visited([Self.input], stopAtDone: false) == collected)
        for cut in 1..<Self.input.count {
            #expect(visited([Array(Self.input[..<cut]), Array(Self.input[cut...])], stopAtDone: false) == collected, "split at \(cut)")
        }
        let stopped = visited([Self.input], stopAtDone: true)
        #expect(stopped.count == 5 && stopped.last == "done" && stopped[2] == "malformed")
    }
}

@Suite("OpenAI chunk facts: a stream's chunks read against the previous one")
struct ChunkStreamReaderTests {
    /// A token chunk with `text` (raw JSON string contents, possibly broken) as its content.
    static func token(_ text: String, finish: String = "null", extra: String = "") -> String {
        #"{"id":"c","model":"gpt-4o","choices":[{"index":0,"delta":{"content":""# + text + #""},"finish_reason":"# + finish + "}]" + extra + "}"
    }

    static let texts = [
        "", "x", " tok1", #"\""#, #"\\"#, #"a\nb"#, #"\u00e9"#, "é", #"\ud83d\ude00"#, #"x","finish_reason":"stop"#, #"x"}],"usage":{"prompt_tokens":1}, "q":{"a":""#,
        #"\"#, #"\u12"#, "\u{01}", #"\ud83d"#, #"x""#,
    ]

    static func reference(_ bytes: [UInt8]) -> ChunkFacts? {
        (try? JSONParser.parse(bytes)).flatMap { ChunkFacts(value: $0) }
    }

    @Test("after any chunk, any chunk reads as it reads alone: texts swapped, broken, shifted; finish, usage, error changed")
    func pairs() {
        var docs: [String] = []
        for t in Self.texts {
            docs.append(Self.token(t))
            docs.append(Self.token(t, finish: #""stop""#))
            docs.append(Self.token(t, extra: #","usage":null"#))
            docs.append(Self.token(t, extra: #","error":{"message":"m"}"#))
        }
        docs += ChunkFactsReaderTests.valid
        var rng = SplitMix(seed: 13)
        var seconds = docs.map { Array($0.utf8) }
        for _ in 0..<1000 {
            var b = Array(docs[rng.below(docs.count)].utf8)
            let at = rng.below(b.count)
            let alphabet = Array(#"{}[]":,\ ue"#.utf8)
            b[at] = alphabet[rng.below(alphabet.count)]
            seconds.append(b)
        }
        var disagreements: [String] = []
        for first in docs {
            for second in seconds where rng.below(16) == 0 || second.count < 110 {
                var reader = ChunkStreamReader()
                _ = Array(first.utf8).withUnsafeBytes { reader.read($0) }
                let read = second.withUnsafeBytes { reader.read($0) }
                if read != Self.reference(second) { disagreements.append(first + " then " + String(decoding: second, as: UTF8.self)) }
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(3))")
    }

    @Test("a whole event read in place against the template is what its data reads as: lines, spaces, CRs and other fields change nothing")
    func eventsInPlace() {
        // Templates: one-line chunks, and one whose JSON spans lines (its events take the long way).
        let templates = [Self.token("a"), Self.token("a", extra: #","usage":null"#), "{\"id\":\"c\",\n\"choices\":[{\"delta\":{\"content\":\"a\"}}]}"]
        var events: [String] = []
        for t in Self.texts {
            let doc = Self.token(t)
            events += ["data: \(doc)\n\n", "data:\(doc)\n\n", "data:  \(doc)\n\n", "data: \(doc)\r\n\r\n", "data: \(doc)\n\r\n",
                       "event: x\ndata: \(doc)\n\n", "data: \(doc)\ndata: \(doc)\n\n", "data: \(doc)\nid: 1\n\n", ": c\n\n", "data: [DONE]\n\n"]
        }
        events.append("data: {\"id\":\"c\",\n\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n")
        var disagreements: [String] = []
        for template in templates {
            for event in events {
                var fast = ChunkStreamReader()
                var slow = ChunkStreamReader()
                _ = Array(template.utf8).withUnsafeBytes { fast.read($0) }
                _ = Array(template.utf8).withUnsafeBytes { slow.read($0) }
                let inPlace = Array(event.utf8).withUnsafeBytes { fast.readEventLikeTemplate($0) }
                let expected = Array(event.utf8).withUnsafeBytes { raw in
                    SSEParser.withData(raw) { data in data.flatMap { d in SSEParser.isDone(d) ? nil : slow.read(d) } }
                }
                // In place it reads as the long way does, or leaves the event to it.
                if let inPlace, inPlace != expected { disagreements.append(template + " then " + event) }
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(3))")
        // The usual token is read in place.
        var reader = ChunkStreamReader()
        _ = Array(Self.token("a").utf8).withUnsafeBytes { reader.read($0) }
        let f = Array("data: \(Self.token(" tok1"))\n\n".utf8).withUnsafeBytes { reader.readEventLikeTemplate($0) }
        #expect(f?.content == " tok1" && f?.isToken == true)
    }

    @Test("a stream of tokens: each chunk's own text, tokens counted by their text, the finish seen")
    func stream() {
        var reader = ChunkStreamReader()
        var texts: [String] = []
        for t in ["", "Hel", "lo", #"\n"#, ""] {
            let f = Array(Self.token(t).utf8).withUnsafeBytes { reader.read($0) }
            texts.append(f?.content ?? "nil")
            #expect(f?.isToken == !t.isEmpty)
        }
        #expect(texts == ["", "Hel", "lo", "\n", ""])
        let finish = Array(Self.token("", finish: #""stop""#).utf8).withUnsafeBytes { reader.read($0) }
        #expect(finish?.finished == true && finish?.isToken == true)
    }
}
