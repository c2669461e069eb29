import AIGatewayAPI
@testable import AIGatewayProviders
import Testing

/// The Messages answer read with `JSONScanner` and written from the body's spans must give, byte
/// for byte, what the `JSONCursor` reading that built `String`s gave (`AnthropicCompletionReference`),
/// and the same failure for errors and malformed answers.
@Suite("Anthropic answer: the span reading gives the reference's bytes and failures")
struct AnthropicAnswerSpanTests {
    static let context = TranslationContext(model: "claude-\"ctx\"", clientWantsUsage: true, created: 1_700_000_000, fallbackID: "chatcmpl-x")

    @discardableResult
    static func compare(_ body: String, sourceLocation: SourceLocation = #_sourceLocation) -> ResponseTranslation {
        compare(Array(body.utf8), sourceLocation: sourceLocation)
    }

    @discardableResult
    static func compare(_ body: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> ResponseTranslation {
        let response = ProviderResponse(status: 200, headers: [], body: body)
        let new = AnthropicAdapter().translateResponse(response, context: context)
        let old = AnthropicCompletionReference.translateResponse(response, context: context)
        #expect(BedrockAnswerTests.render(new) == BedrockAnswerTests.render(old), "\(String(decoding: body, as: UTF8.self))", sourceLocation: sourceLocation)
        return new
    }

    static let blocks: [String] = [
        #"{"type":"text","text":"Hello"}"#,
        #"{"type":"text","text":""}"#,
        #"{"type":"text","text":"H\u00e9 \"q\" \n\t \\ \/ \ud83d\ude00 \u0001"}"#,
        #"{"type":"text","text":"Hé ✓ 😀 a longer text past the small string size"}"#,
        #"{"type":"text"}"#,
        #"{"type":"text","text":5}"#,
        #"{"text":"no type"}"#,
        #"{"type":"t\u0065xt","text":"escaped type"}"#,
        #"{"type":"text","text":"a","type":"thinking","thinking":"b"}"#,
        #"{"type":"thinking","thinking":"Let me think.","signature":"sig"}"#,
        #"{"type":"thinking","thinking":"more \"thought\"\n"}"#,
        #"{"type":"thinking"}"#,
        #"{"type":"redacted_thinking","data":"YWJj"}"#,
        #"{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris","b":[1,2.5,1e2,-0,true,null],"a":{"z":1}}}"#,
        #"{"type":"tool_use","id":"toolu_\"2","name":"n\u0061me","input":{}}"#,
        #"{"type":"tool_use","name":"x"}"#,
        #"{"type":"tool_use","id":3,"name":null,"input":"s"}"#,
        #"{"type":"tool_use","input":[1]}"#,
        #"{"type":5,"text":"odd type"}"#,
        #"{"type":"image"}"#,
        #"{}"#,
        #"1"#,
        #"null"#,
        #"[]"#,
    ]

    static func answer(_ content: String, stop: String = #""stop_reason":"end_turn","#, usage: String = #""usage":{"input_tokens":10,"output_tokens":5}"#) -> String {
        #"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":\#(content),\#(stop)"stop_sequence":null,\#(usage)}"#
    }

    @Test("every block alone and every pair of blocks")
    func blockPairs() {
        var translated = 0
        for a in Self.blocks {
            if case .translated = Self.compare(Self.answer("[\(a)]")) { translated += 1 }
            for b in Self.blocks { Self.compare(Self.answer("[\(a),\(b)]")) }
        }
        #expect(translated == Self.blocks.count)
    }

    @Test("every stop reason and usage shape")
    func stopAndUsage() {
        let stops = ["end_turn", "max_tokens", "model_context_window_exceeded", "tool_use", "refusal", "stop_sequence", "pause_turn", "tool\\u005fuse", ""]
            .map { #""stop_reason":"\#($0)","# } + [#""stop_reason":null,"#, #""stop_reason":1,"#, ""]
        let usages = [
            #""usage":{"input_tokens":10,"output_tokens":5}"#,
            #""usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":3,"cache_creation_input_tokens":2}"#,
            #""usage":{"input_tokens":2.0,"output_tokens":"5","cache_read_input_tokens":null}"#,
            #""usage":{}"#, #""usage":null"#, #""usage":[]"#, #""other":1"#,
        ]
        for stop in stops {
            for usage in usages {
                Self.compare(Self.answer(#"[{"type":"text","text":"hi"}]"#, stop: stop, usage: usage))
                Self.compare(Self.answer(#"[{"type":"tool_use","id":"t","name":"f","input":{}}]"#, stop: stop, usage: usage))
            }
        }
    }

    @Test("errors inside a 200, every error type; odd shapes; missing id and model")
    func errorsAndShapes() {
        var failures = 0
        for type in ["overloaded_error", "api_error", "rate_limit_error", "authentication_error", "permission_error", "not_found_error",
                     "request_too_large", "billing_error", "invalid_request_error", "new_error"] {
            for message in ["Overloaded", "prompt is too long: 300000 tokens", "Your credit balance is too low", "spend limit reached", "final assistant content", "x"] {
                if case .failed = Self.compare(#"{"type":"error","error":{"type":"\#(type)","message":"\#(message)"}}"#) { failures += 1 }
            }
        }
        #expect(failures == 60)
        for body in [
            #"{"type":"error"}"#, #"{"type":"error","error":null}"#, #"{"type":"error","error":{"message":5}}"#,
            #"{"type":"\u0065rror","error":{"type":"api_error"}}"#, #"{"type":"error","content":[]}"#,
            #"{"error":{"type":"api_error"},"type":"error","error":{"message":"m"}}"#,
            #"{"content":[{"type":"text","text":"no id, no model"}]}"#,
            #"{"id":null,"model":7,"content":[{"type":"text","text":"odd id and model"}]}"#,
            #"{"id":"msg_\"esc\"","model":"m\u00e9","content":[]}"#,
            #"{"content":[{"type":"text","text":"a"}],"content":[{"type":"text","text":"b"}]}"#,
            #"{"content":[{"type":"text","text":"a"}],"content":null}"#,
            #"{"content":{"type":"text","text":"object"}}"#,
            #"{"type":"message"}"#, #"{}"#, "  {\n\"content\" : [ ]\t}  ",
        ] {
            Self.compare(body)
        }
    }

    @Test("malformed documents, every prefix and byte corruption read alike")
    func malformed() {
        for body in ["", "null", "[]", "{", #"{"content":[}"#, #"{"content":[{"type":"text","text":"a\x"}]}"#, #"{"content":[]} x"#, #"{"content":[],}"#,
                     #"{"content":[{"type":"tool_use","input":{"a":01}}]}"#] {
            guard case .failed(.malformedResponse) = Self.compare(body) else {
                Issue.record("accepted: \(body)")
                continue
            }
        }
        let sample = Array(Self.answer(#"[{"type":"thinking","thinking":"r"},{"type":"text","text":"H\u00e9"},{"type":"tool_use","id":"t","name":"f","input":{"k":[1]}}]"#,
                                       usage: #""usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":3}"#).utf8)
        for n in 0...sample.count { Self.compare(Array(sample[..<n])) }
        for i in sample.indices {
            for replacement: UInt8 in [UInt8(ascii: "\""), UInt8(ascii: "}"), UInt8(ascii: "1"), UInt8(ascii: "\\"), 0x00, 0x80] {
                var corrupted = sample
                corrupted[i] = replacement
                Self.compare(corrupted)
            }
        }
    }
}
