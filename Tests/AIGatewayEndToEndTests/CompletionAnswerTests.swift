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

    private static let keys = [
        #""prompt_tokens""#, #""completion_tokens""#, #""total_tokens""#, #""prompt\u005ftokens""#, #""completion_tokens ""#,
        #""Prompt_tokens""#, #""prompt_tokens_details""#, #""x""#, #""\"prompt_tokens""#,
    ]
    private static let values = [
        "9", "0", "-3", "12345678901234", "99999999999999999999", "9.0", "1e3", "-0", #""9""#, "null", "true", "[1,2]",
        #"{"cached_tokens":0,"a":{"b":[{}]}}"#, #""a } and a \" inside""#, "01", "+1", "tru", "[1,]", #""\x""#,
    ]

    /// A usage object of up to 6 members from `keys` and `values` (duplicates and escapes often,
    /// invalid JSON now and then: a bad value, a trailing comma, a missing colon).
    private func randomUsage(_ rng: inout SeededRandom) -> String {
        var members: [String] = []
        for _ in 0..<Int.random(in: 0...6, using: &rng) {
            let colon = Int.random(in: 0..<40, using: &rng) == 0 ? " " : [":", " : ", ":\n"].randomElement(using: &rng)!
            members.append(Self.keys.randomElement(using: &rng)! + colon + Self.values.randomElement(using: &rng)!)
        }
        let trailing = Int.random(in: 0..<30, using: &rng) == 0 ? "," : ""
        return "{" + members.joined(separator: [",", ", ", " ,\n"].randomElement(using: &rng)!) + trailing + [" }", "}"].randomElement(using: &rng)!
    }

    @Test("over 20,000 generated usage objects: the counts the dictionary of members gave")
    func differentialUsage() {
        var rng = SeededRandom(state: 4)
        var counted = 0
        var invalid = 0
        for _ in 0..<20000 {
            let usage = randomUsage(&rng)
            let expected = Array(usage.utf8).withUnsafeBytes { CompletionAnswerReference.counts($0) }
            if expected == nil { invalid += 1 } else { counted += 1 }
            // Read through `inspect`, with the usage in the middle of an answer or at its end.
            let body = Bool.random(using: &rng) ? #"{"id":"x","usage":"# + usage + #","n":1}"# : #"{"id":"x", "usage" : "# + usage + "}"
            #expect(inspect(body) == .init(usage: expected), "\(body)")
        }
        #expect(counted > 5000 && invalid > 2000, "\(counted) read, \(invalid) not JSON")
    }
}

