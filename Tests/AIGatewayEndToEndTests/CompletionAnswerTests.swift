@testable import AIGatewayProxy
import Testing

@Suite("A complete answer vouched for by its shape, its usage read alone")
struct CompletionAnswerTests {
    func inspect(_ s: String) -> CompletionAnswer.Summary? {
        Array(s.utf8).withUnsafeBytes { CompletionAnswer.inspect($0) }
    }

    func usage(_ input: Int, _ output: Int) -> CompletionAnswer.Summary {
        .init(usage: .init(input: input, output: output))
    }

    @Test("an OpenAI answer: its usage, with members after it and nested details inside it")
    func openAIAnswer() {
        let body = """
            {"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o",
             "choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],
             "usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0}},
             "system_fingerprint":"fp"}

            """
        #expect(inspect(body) == usage(9, 12))
        #expect(inspect(#"{ "usage" : { "completion_tokens" : 3 } }"#) == usage(0, 3))
    }

    @Test("not an object from end to end: cut short, an array, not JSON, empty")
    func rejected() {
        for body in [#"{"choices": ["#, #"{"id":"x","usage":{"prompt_tokens":1}"#, "[]", "hello", "", "   ", "}", "{"] {
            #expect(inspect(body) == nil, "\(body)")
        }
    }

    @Test("no usage, or text that mentions it, is an answer without token counts")
    func noUsage() {
        #expect(inspect(#"{"id":"x"}"#) == .init(usage: nil))
        #expect(inspect("{}") == .init(usage: nil))
        // In a string the key's quotes are escaped: not a member.
        #expect(inspect(#"{"content":"the \"usage\":{\"prompt_tokens\":5} field","n":1}"#) == .init(usage: nil))
        // A usage that is not an object, or one that does not close.
        #expect(inspect(#"{"usage":null}"#) == .init(usage: nil))
        #expect(inspect(#"{"usage":{"prompt_tokens":1}"#) == nil)
        #expect(inspect(#"{"usage":{"prompt_tokens":1,"x":"}"}"#) == nil)
    }

    @Test("the usage member after text that mentions it, and strings with braces inside it")
    func usageAfterText() {
        let body = #"{"content":"\"usage\": {\"prompt_tokens\": 99}","usage":{"prompt_tokens":4,"note":"a } and a \" inside","completion_tokens":7}}"#
        #expect(inspect(body) == usage(4, 7))
    }
}
