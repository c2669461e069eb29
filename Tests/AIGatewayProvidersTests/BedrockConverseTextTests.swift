import AIGatewayAPI
@testable import AIGatewayProviders
import Testing

/// The Converse body of a plain text request written straight from its bytes
/// (`BedrockConverse.textRequestBody`) against the general path it stands in for: the
/// conversation read (`ChatRequest.conversation()`), then `BedrockConverse.request`. Wherever the
/// direct writer writes, the general path must accept the request and write the same bytes with
/// no hints; wherever it declines, the adapter takes the general path, so nothing is lost.
@Suite("Bedrock Converse body written straight from a text request's bytes")
struct BedrockConverseTextTests {
    static let guardrails: [BedrockProvider.Guardrail?] = [nil, .init(identifier: "g\"1", version: "DRAFT")]
    static let prefills: [String?] = [nil, "", "so far \u{e9}\n"]

    /// Compares the two paths on one body (all guardrails and prefills); returns whether the direct
    /// writer wrote it.
    @discardableResult
    static func check(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        // A body `ChatRequest` refuses never reaches an adapter.
        guard let chat = try? ChatRequest(bytes: bytes) else { return false }
        var wrote = false
        for guardrail in guardrails {
            for prefill in prefills {
                guard let direct = BedrockConverse.textRequestBody(bytes, guardrail: guardrail, prefill: prefill) else { continue }
                wrote = true
                guard case .success(let conversation) = chat.conversation() else {
                    Issue.record("written, but the conversation is refused: \(text)", sourceLocation: sourceLocation)
                    continue
                }
                switch BedrockConverse.request(conversation, guardrail: guardrail, prefill: prefill) {
                case .success(let general):
                    #expect(
                        String(decoding: direct, as: UTF8.self) == String(decoding: general.body, as: UTF8.self), "\(text)",
                        sourceLocation: sourceLocation)
                    #expect(general.names.hints.isEmpty, "\(text)", sourceLocation: sourceLocation)
                case .failure(let refusal):
                    Issue.record("written, but the general path refuses (\(refusal.reason)): \(text)", sourceLocation: sourceLocation)
                }
            }
        }
        return wrote
    }

    /// Plain text requests the direct writer must write.
    static let plain: [String] = [
        #"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
        #"{"messages":[]}"#,
        #" { "messages" : [ { "content" : "x" , "role" : "user" } ] , "model" : null , "stream" : false } "#,
        #"{"messages":[{"role":"system","content":"s1"},{"role":"developer","content":"d","name":"n"},{"role":"user","content":null},{"role":"assistant"},{"role":"system","content":"s\"2"}]}"#,
        #"{"messages":[{"role":"user","content":"a"},{"role":"user","content":""},{"role":"user","content":"b"},{"role":"assistant","content":"c"},{"role":"assistant","content":"d"},{"role":"user","content":"e"}]}"#,
        #"{"messages":[{"role":"assistant","content":"first"}],"max_tokens":7,"temperature":0.5,"top_p":1}"#,
        #"{"temperature":1e-1,"top_p":-0,"max_completion_tokens":5,"max_tokens":9,"messages":[{"role":"user","content":"x"}]}"#,
        #"{"messages":[{"role":"user","content":"x"}],"max_completion_tokens":null,"max_tokens":3.0,"temperature":9007199254740993}"#,
        #"{"messages":[{"role":"user","content":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00 日本 é \u2028 \u007f"}]}"#,
        #"{"m\u0065ssages":[{"r\u006fle":"\u0075ser","c\u006Fntent":"\uD83D\uDE00"}],"s\u0065ed":1}"#,
        #"{"messages":[{"role":"user","content":"x","tool_calls":null,"tool_call_id":5,"name":"n","extra":[1,{}]}],"n":1,"logprobs":false,"parallel_tool_calls":true}"#,
        #"{"messages":[{"role":"user","content":"x"}],"tools":null,"tool_choice":null,"stop":null,"top_logprobs":null,"response_format":null,"n":null,"logprobs":null}"#,
        #"{"messages":[{"role":"user","content":"x"}],"user":"u","reasoning_effort":"high","seed":1,"presence_penalty":0.5,"metadata":{"a":"b"},"unknown":[1],"stream_options":{"include_usage":true}}"#,
        #"{"messages":[{"role":"user","content":"x"}],"max_tokens":1}"#,
    ]

    /// Requests the direct writer must leave to the general path (parts, tools, refusals, errors).
    static let general: [String] = [
        #"{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]}"#,
        #"{"messages":[{"role":"tool","tool_call_id":"c1","content":"r"}]}"#,
        #"{"messages":[{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}]}"#,
        #"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}"#,
        #"{"messages":[{"role":"user","content":"x"}],"stop":"x"}"#,
        #"{"messages":[{"role":"user","content":"x"}],"n":2}"#,
        #"{"messages":[{"role":"user","content":"x"}],"logprobs":true}"#,
        #"{"messages":[{"role":"user","content":"x"}],"top_logprobs":0}"#,
        #"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}}"#,
        #"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
        #"{"messages":[{"role":"user","content":"a"}],"messages":[{"role":"user","content":"b"}]}"#,
        #"{"messages":[{"content":"x"}]}"#,
        #"{"messages":[{"role":"robot","content":"x"}]}"#,
        #"{"messages":[{"role":"user","content":7}]}"#,
        #"{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
        #"{"model":"m"}"#,
    ]

    @Test("plain text requests: written, and exactly the general path's bytes")
    func plainRequests() {
        for body in Self.plain {
            #expect(Self.check(Array(body.utf8)), "left to the general path: \(body)")
        }
    }

    @Test("anything else is left to the general path")
    func generalRequests() {
        for body in Self.general {
            #expect(BedrockConverse.textRequestBody(Array(body.utf8), guardrail: nil, prefill: nil) == nil, "\(body)")
        }
    }

    @Test("every request of the conversation reader's tests, and each changed in one place: written alike, or left")
    func mutated() async throws {
        var total = 0
        var written = 0
        for body in ChatConversationReaderTests.valid + ChatConversationReaderTests.invalid + Self.plain + Self.general {
            let bytes = Array(body.utf8)
            if Self.check(bytes) { written += 1 }
            total += 1
            guard let value = try? JSONParser.parse(bytes) else { continue }
            // Leave the test pool's threads to the other suites now and then (see the note in
            // IncrementalCompilerTests): their waits would otherwise time out on a 2-core machine.
            await Task.yield()
            for m in ChatConversationReaderTests.mutations(value) {
                total += 1
                if Self.check(Array(m.canonicalJSON().utf8)) { written += 1 }
            }
        }
        // The direct writer takes a good share (the plain requests and their mutations).
        #expect(total > 9_000 && written > 500, "\(written) of \(total)")
    }
}
