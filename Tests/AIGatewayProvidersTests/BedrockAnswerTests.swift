import AIGatewayAPI
@testable import AIGatewayProviders
import Testing

/// The Converse answer read with `JSONScanner` and written from the body's spans must give, byte
/// for byte, what the `JSONCursor` reading that built `String`s gave (`ConverseCompletionReference`),
/// for valid answers of every shape and for every malformed one (refused alike).
@Suite("Bedrock Converse answer: the span reading gives the reference's bytes")
struct BedrockAnswerTests {
    /// A comparable rendering of a translation: the body's bytes and the usage, or the failure.
    static func render(_ t: ResponseTranslation) -> String {
        switch t {
        case .translated(let body, let usage): "translated \(String(decoding: body, as: UTF8.self)) \(String(describing: usage))"
        case .failed(let f): "failed \(f)"
        }
    }

    /// Sanitised names, so answers naming `get_weather` or `a_b` map back to the client's.
    static let names = BedrockToolNames(names: ["get.weather", "a b", "tool", "a?b"])

    @discardableResult
    static func compare(_ body: String, names: BedrockToolNames = names, sourceLocation: SourceLocation = #_sourceLocation) -> ResponseTranslation {
        compare(Array(body.utf8), names: names, sourceLocation: sourceLocation)
    }

    @discardableResult
    static func compare(_ body: [UInt8], names: BedrockToolNames = names, sourceLocation: SourceLocation = #_sourceLocation) -> ResponseTranslation {
        let new = BedrockConverse.completion(body, id: "req-\"1\"", model: "anthropic.claude-3:0", created: 1_700_000_000, names: names)
        let old = ConverseCompletionReference.completion(body, id: "req-\"1\"", model: "anthropic.claude-3:0", created: 1_700_000_000, names: names)
        #expect(render(new) == render(old), "\(String(decoding: body, as: UTF8.self))", sourceLocation: sourceLocation)
        return new
    }

    /// Content blocks of every kind, valid and odd.
    static let blocks: [String] = [
        #"{"text":"Hello"}"#,
        #"{"text":""}"#,
        #"{"text":"a longer text block, well past the small-string size, with words"}"#,
        #"{"text":"H\u00e9 \"q\" \n\t\r \\ \/ \ud83d\ude00 \u0001 \b\f"}"#,
        #"{"text":"Hé ✓ 😀"}"#,
        #"{"text":123}"#,
        #"{"text":null}"#,
        #"{"text":"a","text":"b"}"#,
        #"{"text":"a","text":7}"#,
        #"{"\u0074ext":"escaped key"}"#,
        #"{"toolUse":{"toolUseId":"tooluse_1","name":"get_weather","input":{"city":"Paris","b":[1,2.5,1e2,-0,true,null],"a":{"z":1,"y":"\u00e9"}}}}"#,
        #"{"toolUse":{"toolUseId":"tooluse_2","name":"a_b","input":{}}}"#,
        #"{"toolUse":{"toolUseId":"t\"3","name":"unknown_tool","input":[1,"x"]}}"#,
        #"{"toolUse":{"name":"tool"}}"#,
        #"{"toolUse":{"toolUseId":5,"name":null,"input":"s"}}"#,
        #"{"toolUse":{"toolUseId":"t4","name":"a\u005fb","input":1.0}}"#,
        #"{"toolUse":{}}"#,
        #"{"toolUse":"not an object"}"#,
        #"{"toolUse":{"toolUseId":"t5","name":"get_weather"},"text":"text wins"}"#,
        #"{"reasoningContent":{"reasoningText":{"text":"Let me think.","signature":"sig"}}}"#,
        #"{"reasoningContent":{"reasoningText":{"text":"more \"thought\"\n"}}}"#,
        #"{"reasoningContent":{"redactedContent":"YWJj"}}"#,
        #"{"reasoningContent":{"reasoningText":"flat"}}"#,
        #"{"reasoningContent":{"reasoningText":{"text":1}}}"#,
        #"{"reasoningContent":7}"#,
        #"{"reasoningContent":{"reasoningText":{"text":"r"}},"toolUse":{"toolUseId":"t6","name":"x"}}"#,
        #"{"image":{"format":"png","source":{"bytes":"AAAA"}}}"#,
        #"{}"#,
        #"1"#,
        #""s""#,
        #"null"#,
        #"[]"#,
    ]

    static func answer(content: String, stop: String = #""stopReason":"end_turn","#, usage: String = #""usage":{"inputTokens":10,"outputTokens":5,"totalTokens":15}"#) -> String {
        #"{"output":{"message":{"role":"assistant","content":\#(content)}},\#(stop)\#(usage),"metrics":{"latencyMs":1}}"#
    }

    @Test("every block alone and every pair of blocks")
    func blockPairs() {
        var translated = 0
        for a in Self.blocks {
            if case .translated = Self.compare(Self.answer(content: "[\(a)]")) { translated += 1 }
            for b in Self.blocks {
                Self.compare(Self.answer(content: "[\(a),\(b)]"))
                Self.compare(Self.answer(content: "[\(a),\(b)]"), names: BedrockToolNames())
            }
        }
        #expect(translated == Self.blocks.count)
    }

    @Test("triples of blocks, in a fixed pseudo-random order")
    func blockTriples() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33) % Self.blocks.count
        }
        for _ in 0..<400 {
            Self.compare(Self.answer(content: "[\(Self.blocks[next()]),\(Self.blocks[next()]),\(Self.blocks[next()])]"))
        }
    }

    @Test("every stop reason, usage with and without cache tokens, odd counts, missing members")
    func stopAndUsage() {
        let stops = [
            "end_turn", "stop_sequence", "max_tokens", "model_context_window_exceeded", "tool_use", "guardrail_intervened", "content_filtered",
            "something_new", "tool\\u005fuse", "",
        ].map { #""stopReason":"\#($0)","# } + [#""stopReason":null,"#, #""stopReason":3,"#, ""]
        let usages = [
            #""usage":{"inputTokens":10,"outputTokens":5,"totalTokens":15}"#,
            #""usage":{"inputTokens":10,"outputTokens":5,"totalTokens":20,"cacheReadInputTokens":4,"cacheWriteInputTokens":1}"#,
            #""usage":{"cacheReadInputTokens":4}"#,
            #""usage":{"inputTokens":3.0,"outputTokens":1e2,"cacheWriteInputTokens":2.5}"#,
            #""usage":{"inputTokens":"3","outputTokens":null,"cacheReadInputTokens":99999999999999999999}"#,
            #""usage":{"inputTokens":-1,"outputTokens":-0}"#,
            #""usage":{}"#,
            #""usage":null"#,
            #""usage":[1]"#,
            #""usage":{"inputTokens":1},"usage":{"outputTokens":2}"#,
            #""usage":{"inputTokens":1},"usage":5"#,
            #""other":1"#,
        ]
        for stop in stops {
            for usage in usages {
                Self.compare(Self.answer(content: #"[{"text":"hi"}]"#, stop: stop, usage: usage))
                Self.compare(Self.answer(content: #"[{"toolUse":{"toolUseId":"t","name":"get_weather","input":{}}}]"#, stop: stop, usage: usage))
            }
        }
    }

    /// Answers whose shape is odd: members repeated, reordered, missing; white space; escaped keys.
    static let shapes: [String] = [
        #"{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}}}"#,
        #"{"stopReason":"max_tokens","usage":{"inputTokens":1,"outputTokens":2},"output":{"message":{"content":[{"text":"first"}]}}}"#,
        #"  {  "output" : { "message" : { "content" : [ { "text" : "spaced" } , { "text" : "!" } ] } } , "stopReason" : "end_turn" }  "#,
        "{\n\t\"output\":{\"message\":{\"content\":[{\"text\":\"tabs\"}]}}\r\n}\n",
        #"{"output":{"message":{"content":[]}}}"#,
        #"{"output":{"message":{"content":[{"text":""}]}}}"#,
        #"{"output":{"message":{"content":{"text":"object"}}}}"#,
        #"{"output":{"message":{"content":null}}}"#,
        #"{"output":{"message":{}}}"#,
        #"{"output":{"message":[]}}"#,
        #"{"output":{}}"#,
        #"{"output":null}"#,
        #"{"output":[]}"#,
        #"{}"#,
        #"{"stopReason":"end_turn"}"#,
        #"{"output":{"message":{"content":[{"text":"a"}]}},"output":{"message":{"content":[{"text":"b"}]}}}"#,
        #"{"output":{"message":{"content":[{"text":"a"}]}},"output":{}}"#,
        #"{"output":{"message":{"content":[{"text":"a"}]}},"output":5}"#,
        #"{"output":{"message":{"content":[{"text":"a"}]},"message":{"content":[{"text":"b"}]}}}"#,
        #"{"output":{"message":{"content":[{"text":"a"}]},"message":null}}"#,
        #"{"output":{"message":{"content":[{"text":"a"}],"content":[{"text":"b"}]}}}"#,
        #"{"output":{"message":{"content":[{"text":"a"}],"content":"x"}}}"#,
        #"{"output":{"message":{"content":[{"text":"a"}]},"other":[1,{"a":null}]}}"#,
        #"{"\u006futput":{"m\u0065ssage":{"cont\u0065nt":[{"text":"escaped keys"}]}},"st\u006fpReason":"tool_use"}"#,
        #"{"output":{"message":{"content":[{"text":"a"}]}},"stopReason":"end_turn","stopReason":"max_tokens"}"#,
        #"{"output":{"message":{"content":[{"toolUse":{"toolUseId":"x","name":"n","input":{"deep":[[[[[[[[[[1]]]]]]]]]]}}}]}}}"#,
        #"{"output":{"message":{"content":[{"text":"a"}]}},"trace":{"guardrail":{"x":[true,false,null,1.5e-3]}}}"#,
    ]

    @Test("odd shapes: members repeated, reordered, missing, escaped; white space")
    func shapes() {
        var outcomes: Set<Bool> = []
        for body in Self.shapes {
            if case .translated = Self.compare(body) { outcomes.insert(true) } else { outcomes.insert(false) }
        }
        // Both kinds of outcome are covered.
        #expect(outcomes == [true, false])
    }

    /// Documents that are not JSON, or not a Converse answer: all malformed, as before.
    static let malformed: [String] = [
        "", " ", "null", "[]", "\"s\"", "1", "{", "}", "{\"output\"}", "{\"output\":}",
        #"{"output":{"message":{"content":[{"text":"a"}]}}} x"#,
        #"{"output":{"message":{"content":[{"text":"a"}]}}}{}"#,
        #"{"output":{"message":{"content":[{"text":"a"},]}}}"#,
        #"{"output":{"message":{"content":[{"text":"a"}]}},}"#,
        #"{"output":{"message":{"content":[{"text":"a\x"}]}}}"#,
        #"{"output":{"message":{"content":[{"text":"\ud83d"}]}}}"#,
        #"{"output":{"message":{"content":[{"text":"\udc00\ud83d"}]}}}"#,
        "{\"output\":{\"message\":{\"content\":[{\"text\":\"raw \u{01} control\"}]}}}",
        #"{"output":{"message":{"content":[{"toolUse":{"input":{"a":01}}}]}}}"#,
        #"{"output":{"message":{"content":[{"toolUse":{"input":{"a":1e999}}}]}}}"#,
        #"{"output":{"message":{"content":[{"toolUse":{"input":{"a":tru}}}]}}}"#,
        #"{"output":{"message":{"content":[{"text":"a"}]}},"usage":{"inputTokens":-}}"#,
        #"{'output':1}"#,
        #"{"output":{"message":{"content":[{"text":"a"}]}}"#,
    ]

    @Test("malformed documents, too deep nesting and invalid UTF-8 are refused alike")
    func malformedDocuments() {
        for body in Self.malformed {
            guard case .failed(.malformedResponse) = Self.compare(body) else {
                Issue.record("accepted: \(body)")
                continue
            }
        }
        let deep = String(repeating: "[", count: JSONParser.maximumDepth) + String(repeating: "]", count: JSONParser.maximumDepth)
        Self.compare(#"{"output":{"message":{"content":[{"toolUse":{"input":\#(deep)}}]}}}"#)
        Self.compare(#"{"output":{"message":{"content":[{"text":"a"}]}},"x":\#(deep)}"#)
        for bad: [UInt8] in [[0xC3], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xC0, 0xAF], [0xFF]] {
            let body = Array(#"{"output":{"message":{"content":[{"text":"a"#.utf8) + bad + Array(#""}]}}}"#.utf8)
            guard case .failed(.malformedResponse) = Self.compare(body) else {
                Issue.record("accepted invalid UTF-8 \(bad)")
                continue
            }
        }
    }

    @Test("every prefix of an answer, and every byte of it replaced, read alike")
    func truncationsAndCorruptions() {
        let samples = [
            Self.answer(content: #"[{"text":"H\u00e9 \"q\""},{"reasoningContent":{"reasoningText":{"text":"r"}}},{"toolUse":{"toolUseId":"t","name":"a_b","input":{"k":[1,2.0]}}}]"#,
                        usage: #""usage":{"inputTokens":10,"outputTokens":5,"cacheReadInputTokens":4}"#),
            Self.answer(content: #"[{"text":"Hello there"}]"#),
        ]
        for sample in samples {
            let bytes = Array(sample.utf8)
            for n in 0...bytes.count { Self.compare(Array(bytes[..<n])) }
            for i in bytes.indices {
                for replacement: UInt8 in [UInt8(ascii: "\""), UInt8(ascii: "}"), UInt8(ascii: "1"), UInt8(ascii: "\\"), 0x00, 0x80] {
                    var corrupted = bytes
                    corrupted[i] = replacement
                    Self.compare(corrupted)
                }
            }
        }
    }

    @Test("the adapter's answer: the fake provider's text and tool call shapes")
    func fakeShapes() {
        let text = #"{"output":{"message":{"role":"assistant","content":[{"text":"tok0 tok1"}]}},"stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":2,"totalTokens":5},"metrics":{"latencyMs":1}}"#
        guard case .translated(let body, let usage) = Self.compare(text) else {
            Issue.record("not translated")
            return
        }
        #expect(String(decoding: body, as: UTF8.self) == #"{"id":"req-\"1\"","object":"chat.completion","created":1700000000,"model":"anthropic.claude-3:0","choices":[{"index":0,"message":{"content":"tok0 tok1","role":"assistant"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#)
        #expect(usage == TokenUsage(input: 3, output: 2))
    }

    /// The proxy hands `translateResponse` only the first field of each name in
    /// `answerHeaderNames` (as `FailoverRun.answerTranslated` picks them); the answer must be the
    /// one every field gives, whatever the case, order and repetition of the names.
    @Test("the answer from only the headers it names is the answer from all of them")
    func answerHeaderNames() throws {
        let adapter = BedrockAdapter(region: "us-east-1", guardrail: nil)
        let names = try #require(adapter.answerHeaderNames)
        let body = Array(#"{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"stopReason":"end_turn"}"#.utf8)
        let heads: [[(name: String, value: String)]] = [
            [],
            [(name: "x-amzn-RequestId", value: "req-1")],
            [(name: "content-type", value: "application/json"), (name: "X-AMZN-REQUESTID", value: "req-2"), (name: "x-amzn-requestid", value: "req-3")],
            [(name: "date", value: "x"), (name: "x-amzn-requestid", value: "req-4"), (name: "content-length", value: "9")],
        ]
        func translate(_ headers: [(name: String, value: String)]) -> String {
            let context = TranslationContext(model: "m", clientWantsUsage: false, created: 1, responseHeaders: headers, fallbackID: "gw-id")
            return Self.render(adapter.translateResponse(ProviderResponse(status: 200, headers: headers, body: body), context: context))
        }
        // The id each head gives: the first request id field's, else the gateway's.
        for (head, id) in zip(heads, ["gw-id", "req-1", "req-2", "req-4"]) {
            let listed = names.compactMap { name in head.first { HeaderName.equal($0.name, name) }.map { (name: name, value: $0.value) } }
            let answer = translate(listed)
            #expect(answer == translate(head), "\(head)")
            #expect(answer.contains(#"{"id":"\#(id)""#), "\(answer)")
        }
    }
}
