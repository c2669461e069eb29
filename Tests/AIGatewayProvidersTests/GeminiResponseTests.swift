import AIGatewayAPI
import AIGatewayProviders
import Testing

private typealias Event = GeminiStreamTranslator.Event

/// The events of `body` fed whole, then checked to be the same for every split in two and byte by byte.
private func streamEvents(_ body: String, sourceLocation: SourceLocation = #_sourceLocation) -> [Event] {
    let bytes = Array(body.utf8)
    var whole = GeminiStreamTranslator(fallbackID: "gw-1")
    let expected = whole.feed(bytes) + whole.finish()
    for cut in 0...bytes.count {
        var t = GeminiStreamTranslator(fallbackID: "gw-1")
        let got = t.feed(bytes[..<cut]) + t.feed(bytes[cut...]) + t.finish()
        if got != expected {
            Issue.record("split at byte \(cut) gave \(got)", sourceLocation: sourceLocation)
            break
        }
    }
    var t = GeminiStreamTranslator(fallbackID: "gw-1")
    var single: [Event] = []
    for b in bytes { single += t.feed([b]) }
    single += t.finish()
    #expect(single == expected, "byte by byte", sourceLocation: sourceLocation)
    return expected
}

private func usage(_ prompt: Int, _ completion: Int, _ total: Int) -> GeminiUsage {
    GeminiUsage(parsedJSON(#"{"promptTokenCount": \#(prompt), "candidatesTokenCount": \#(completion), "totalTokenCount": \#(total)}"#))!
}

@Suite("Gemini responses and streams")
struct GeminiResponseTests {
    @Test("a complete answer: text, thoughts as reasoning_content, usage with thoughts and cache, model version, response id")
    func complete() throws {
        let body = """
            {"candidates": [{"content": {"role": "model", "parts": [{"text": "thinking", "thought": true}, {"text": "Hello "}, {"text": "there"}]},
              "finishReason": "STOP", "index": 0}],
             "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4, "thoughtsTokenCount": 3, "cachedContentTokenCount": 2, "totalTokenCount": 17},
             "modelVersion": "gemini-2.5-flash-001", "responseId": "r-9"}
            """
        let out = try GeminiResponse.chatCompletion(Array(body.utf8), fallbackID: "gw", model: "gemini-2.5-flash", created: 1000)
        #expect(
            out
                == parsedJSON(
                    """
                    {"id": "r-9", "object": "chat.completion", "created": 1000, "model": "gemini-2.5-flash-001",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there", "refusal": null, "reasoning_content": "thinking"},
                                  "logprobs": null, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
                               "prompt_tokens_details": {"cached_tokens": 2}, "completion_tokens_details": {"reasoning_tokens": 3}}}
                    """))
    }

    @Test("function calls: STOP becomes tool_calls, ids synthesised or kept, thought signature carried in the id")
    func toolCalls() throws {
        let body = """
            {"candidates": [{"content": {"role": "model", "parts": [
               {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"},
               {"functionCall": {"id": "native-1", "name": "time", "args": {}}}]}, "finishReason": "STOP"}],
             "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 5, "totalTokenCount": 8}}
            """
        let out = try GeminiResponse.chatCompletion(Array(body.utf8), fallbackID: "gw", model: "gemini-x", created: 5)
        #expect(
            out["choices"]
                == parsedJSON(
                    """
                    [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
                      "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                        {"id": "call_gw_0__thought__c2ln", "type": "function", "function": {"name": "weather", "arguments": "{\\"city\\":\\"Paris\\"}"}},
                        {"id": "native-1", "type": "function", "function": {"name": "time", "arguments": "{}"}}]}}]
                    """))
        #expect(out["id"] == .string("gw"))
        #expect(out["model"] == .string("gemini-x"))
        // The id goes back as the thought signature on the next turn.
        let next = try GeminiRequest(
            parsedJSON(
                """
                {"messages": [{"role": "assistant", "tool_calls": [{"id": "call_gw_0__thought__c2ln", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]}]}
                """))
        #expect(next.body["contents"]?.arrayValue?.first?["parts"]?.arrayValue?.first?["thoughtSignature"] == .string("c2ln"))
    }

    @Test("n > 1: each candidate is a choice with its own index and finish reason")
    func candidates() throws {
        let body = """
            {"candidates": [{"content": {"parts": [{"text": "One"}]}, "finishReason": "STOP", "index": 0},
                            {"content": {"parts": [{"text": "Two"}]}, "finishReason": "MAX_TOKENS", "index": 1}]}
            """
        let out = try GeminiResponse.chatCompletion(Array(body.utf8), fallbackID: "gw", model: "m", created: 1)
        let choices = out["choices"]?.arrayValue ?? []
        #expect(choices.map { $0["index"] } == [.int(0), .int(1)])
        #expect(choices.map { $0["message"]?["content"] } == [.string("One"), .string("Two")])
        #expect(choices.map { $0["finish_reason"] } == [.string("stop"), .string("length")])
        #expect(out["usage"] == nil)
    }

    @Test(
        "finish reasons",
        arguments: [
            ("STOP", false, "stop"), ("STOP", true, "tool_calls"), (nil, false, "stop"), ("MAX_TOKENS", true, "length"),
            ("SAFETY", false, "content_filter"), ("RECITATION", false, "content_filter"), ("PROHIBITED_CONTENT", false, "content_filter"),
            ("OTHER", false, "stop"), ("MALFORMED_FUNCTION_CALL", false, "stop"),
        ] as [(String?, Bool, String)])
    func finishReasons(reason: String?, sawCall: Bool, expected: String) {
        #expect(GeminiFinish.openAI(reason, sawToolCall: sawCall) == expected)
    }

    @Test("a blocked prompt (HTTP 200, promptFeedback.blockReason, no candidates) is content_filter")
    func blockedPrompt() throws {
        let body = #"{"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4}}"#
        let out = try GeminiResponse.chatCompletion(Array(body.utf8), fallbackID: "gw", model: "m", created: 1)
        #expect(out["choices"]?.arrayValue?.first?["finish_reason"] == .string("content_filter"))
        #expect(out["choices"]?.arrayValue?.first?["message"]?["content"] == .string(""))
        #expect(out["usage"]?["completion_tokens"] == .int(0))
    }

    @Test("a 200 body holding an array-wrapped error is that error; one that is not JSON is truncated")
    func errorIn200() {
        do {
            _ = try GeminiResponse.chatCompletion(
                Array(#"[{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}]"#.utf8), fallbackID: "gw",
                model: "m", created: 1)
            Issue.record("expected an error")
        } catch {
            #expect(error.kind == .unavailable && error.status == 503)
        }
        #expect(throws: GeminiError.self) {
            try GeminiResponse.chatCompletion(Array("{\"candidates\": [".utf8), fallbackID: "gw", model: "m", created: 1)
        }
    }

    // MARK: Streams

    @Test("a text stream split anywhere: role first, content, finish, the last usage after it")
    func textStream() {
        let body =
            "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Plan.\", \"thought\": true}, {\"text\": \"Hel\"}], \"role\": \"model\"}, \"index\": 0}], \"usageMetadata\": {\"promptTokenCount\": 5, \"totalTokenCount\": 5}, \"modelVersion\": \"gemini-2.5-flash\", \"responseId\": \"resp-1\"}\r\n\r\n"
            + "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo \u{e9}\u{1F600}\"}], \"role\": \"model\"}, \"index\": 0}], \"usageMetadata\": {\"promptTokenCount\": 5, \"candidatesTokenCount\": 2, \"totalTokenCount\": 7}}\n\n"
            + ": a comment\r\n\r\n"
            + "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"!\"}], \"role\": \"model\"}, \"finishReason\": \"STOP\", \"index\": 0}], \"usageMetadata\": {\"promptTokenCount\": 5, \"candidatesTokenCount\": 3, \"totalTokenCount\": 8}}\r\n\r\n"
        #expect(
            streamEvents(body) == [
                .role, .reasoning("Plan."), .content("Hel"), .content("lo \u{e9}\u{1F600}"), .content("!"), .finish(reason: "stop"), .usage(usage(5, 3, 8)),
            ])
        var t = GeminiStreamTranslator(fallbackID: "gw")
        _ = t.feed(Array(body.utf8))
        #expect(t.responseID == "resp-1" && t.modelVersion == "gemini-2.5-flash")
    }

    @Test("function calls arrive whole: one event each, numbered, STOP becomes tool_calls; text before stays content")
    func toolStream() {
        let body =
            "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Let me check.\"}], \"role\": \"model\"}}], \"responseId\": \"r2\"}\r\n\r\n"
            + "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"weather\", \"args\": {\"city\": \"Paris\"}}}, {\"functionCall\": {\"name\": \"time\", \"args\": {}}}], \"role\": \"model\"}}]}\r\n\r\n"
            + "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"weather\", \"args\": {\"city\": \"Rome\"}}}], \"role\": \"model\"}, \"finishReason\": \"STOP\"}], \"usageMetadata\": {\"promptTokenCount\": 9, \"candidatesTokenCount\": 12, \"totalTokenCount\": 21}}\r\n\r\n"
        #expect(
            streamEvents(body) == [
                .role, .content("Let me check."),
                .toolCall(index: 0, id: "call_r2_0", name: "weather", arguments: "{\"city\":\"Paris\"}"),
                .toolCall(index: 1, id: "call_r2_1", name: "time", arguments: "{}"),
                .toolCall(index: 2, id: "call_r2_2", name: "weather", arguments: "{\"city\":\"Rome\"}"),
                .finish(reason: "tool_calls"), .usage(usage(9, 12, 21)),
            ])
    }

    @Test("safety: a blocked prompt and a SAFETY finish are content_filter")
    func safetyStream() {
        #expect(
            streamEvents("data: {\"promptFeedback\": {\"blockReason\": \"PROHIBITED_CONTENT\"}, \"usageMetadata\": {\"promptTokenCount\": 2, \"totalTokenCount\": 2}}\r\n\r\n")
                == [.role, .finish(reason: "content_filter"), .usage(GeminiUsage(parsedJSON(#"{"promptTokenCount": 2, "totalTokenCount": 2}"#))!)])
        #expect(
            streamEvents(
                "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Once\"}]}}]}\n\ndata: {\"candidates\": [{\"finishReason\": \"SAFETY\", \"safetyRatings\": []}]}\n\n"
            ) == [.role, .content("Once"), .finish(reason: "content_filter")])
    }

    @Test("in-stream errors (bare and array-wrapped) and an early end are failures; an event that is not JSON is skipped")
    func failures() {
        let throttled = streamEvents(
            "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}]}}]}\r\n\r\n"
                + "data: [{\"error\": {\"code\": 429, \"message\": \"Quota exceeded\", \"status\": \"RESOURCE_EXHAUSTED\", \"details\": [{\"@type\": \"type.googleapis.com/google.rpc.RetryInfo\", \"retryDelay\": \"2.5s\"}]}}]\r\n\r\n"
                + "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"ignored\"}]}}]}\r\n\r\n")
        #expect(throttled.count == 3)
        #expect(throttled.prefix(2) == [.role, .content("Hi")])
        if case .failed(let e) = throttled.last {
            #expect(e.kind == .throttled(retryAfter: .milliseconds(2500)) && e.status == 429 && e.code == "RESOURCE_EXHAUSTED")
        } else {
            Issue.record("expected a failure, got \(throttled)")
        }

        let bare = streamEvents("data: {\"error\": {\"code\": 500, \"message\": \"Internal error\", \"status\": \"INTERNAL\"}}\n\n")
        #expect(bare.count == 1)
        if case .failed(let e) = bare.first { #expect(e.kind == .unavailable) } else { Issue.record("expected a failure, got \(bare)") }

        // An event that is not JSON is skipped; the stream goes on.
        let malformed = streamEvents(
            "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}]}}]}\n\ndata: {\"candidates\": [\n\ndata: {\"candidates\": [{\"finishReason\": \"STOP\"}]}\n\n")
        #expect(malformed == [.role, .content("Hi"), .malformed, .finish(reason: "stop")])

        let cut = streamEvents("data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}]}}]}\r\n\r\ndata: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" th")
        #expect(cut.prefix(2) == [.role, .content("Hi")])
        if case .failed(let e) = cut.last { #expect(e.kind == .truncated) } else { Issue.record("expected a failure, got \(cut)") }

        let empty = streamEvents("")
        if case .failed(let e) = empty.first { #expect(e.kind == .truncated) } else { Issue.record("expected a failure, got \(empty)") }
    }

    @Test("the last event may lack its blank line")
    func lastEventWithoutBlankLine() {
        #expect(
            streamEvents("data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}]}, \"finishReason\": \"MAX_TOKENS\"}]}")
                == [.role, .content("Hi"), .finish(reason: "length")])
    }
}
