import AIGatewayAPI
import AIGatewayProviders
import Testing

@Suite("Bedrock ConverseStream")
struct BedrockStreamTests {
    static let context = TranslationContext(
        model: "anthropic.claude-3:0", clientWantsUsage: true, created: 1, responseHeaders: [(name: "x-amzn-RequestId", value: "req-9")], fallbackID: "x")

    static func frames(_ list: [EventStreamMessage]) -> [UInt8] { list.flatMap(EventStreamEncoder.encode) }

    static let toolStream = frames([
        .event("messageStart", json: #"{"role":"assistant","p":"abc"}"#),
        .event("contentBlockDelta", json: #"{"contentBlockIndex":0,"delta":{"text":"Checking"}}"#),
        .event("contentBlockDelta", json: #"{"contentBlockIndex":0,"delta":{"text":" now."}}"#),
        .event("contentBlockStop", json: #"{"contentBlockIndex":0}"#),
        .event("contentBlockStart", json: #"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_A","name":"get_weather"}}}"#),
        .event("contentBlockDelta", json: #"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\":"}}}"#),
        .event("contentBlockDelta", json: #"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"\"Paris\"}"}}}"#),
        .event("contentBlockStop", json: #"{"contentBlockIndex":1}"#),
        .event("contentBlockStart", json: #"{"contentBlockIndex":2,"start":{"toolUse":{"toolUseId":"tooluse_B","name":"now"}}}"#),
        .event("contentBlockStop", json: #"{"contentBlockIndex":2}"#),
        .event("messageStop", json: #"{"stopReason":"tool_use"}"#),
        .event("metadata", json: #"{"usage":{"inputTokens":12,"outputTokens":7,"totalTokens":19},"metrics":{"latencyMs":5}}"#),
    ])

    static func run(_ bytes: [UInt8], splitAt cut: Int? = nil, context: TranslationContext = context, names: [String] = ["get.weather", "now"]) -> [StreamEvent] {
        var t = BedrockStreamTranslator(context: context, names: BedrockToolNames(names: names))
        var out: [StreamEvent] = []
        let cuts = cut.map { [0, $0, bytes.count] } ?? [0, bytes.count]
        for i in 0..<(cuts.count - 1) {
            bytes[cuts[i]..<cuts[i + 1]].withUnsafeBytes { out += t.feed($0) }
        }
        return out + t.finish()
    }

    /// The chunks' JSON, and a marker for each non-chunk event.
    static func describe(_ events: [StreamEvent]) -> [String] {
        events.map { e in
            switch e.kind {
            case .chunk: String(decoding: e.bytes, as: UTF8.self)
            case .done: "DONE"
            case .malformed: "MALFORMED"
            case .fault(let f): "FAULT \(f.failure) \(f.message)"
            default: "OTHER"
            }
        }
    }

    static func deltas(_ events: [StreamEvent]) -> [JSONValue] {
        events.compactMap { e -> JSONValue? in
            guard case .chunk = e.kind else { return nil }
            let text = String(decoding: e.bytes, as: UTF8.self)
            guard text.hasPrefix("data: ") else { return nil }
            return try? JSONParser.parse(Array(text.dropFirst(6).utf8))
        }
    }

    @Test("role, text, tool calls with OpenAI indexes and restored names, finish, usage last, then done")
    func toolCalls() throws {
        let events = Self.run(Self.toolStream)
        let chunks = Self.deltas(events)
        #expect(chunks.allSatisfy { $0["id"] == .string("req-9") && $0["model"] == .string("anthropic.claude-3:0") })
        let d = chunks.compactMap { $0["choices"]?.arrayValue?.first?["delta"] }
        #expect(d[0] == bedrockJSON(#"{"role":"assistant","content":""}"#))
        #expect(d[1] == bedrockJSON(#"{"content":"Checking"}"#))
        #expect(d[2] == bedrockJSON(#"{"content":" now."}"#))
        #expect(d[3] == bedrockJSON(#"{"tool_calls":[{"index":0,"id":"tooluse_A","type":"function","function":{"name":"get.weather","arguments":""}}]}"#))
        #expect(d[4] == bedrockJSON(#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}"#))
        #expect(d[5] == bedrockJSON(#"{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}"#))
        #expect(d[6] == bedrockJSON(#"{"tool_calls":[{"index":1,"id":"tooluse_B","type":"function","function":{"name":"now","arguments":""}}]}"#))
        #expect(d[7] == bedrockJSON(#"{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}"#))
        #expect(chunks.compactMap { $0["choices"]?.arrayValue?.first?["finish_reason"] }.filter { $0 != .null } == [.string("tool_calls")])
        #expect(chunks.allSatisfy { $0["choices"]?.arrayValue?.first?["index"] ?? .int(0) == .int(0) })
        #expect(chunks.last?["choices"] == .array([]))
        #expect(chunks.last?["usage"] == bedrockJSON(#"{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}"#))
        #expect(Self.describe(events).last == "DONE")
    }

    @Test("every split of the bytes gives the same events")
    func everySplit() {
        let whole = Self.describe(Self.run(Self.toolStream))
        for cut in 0...Self.toolStream.count {
            #expect(Self.describe(Self.run(Self.toolStream, splitAt: cut)) == whole, "split at \(cut)")
        }
    }

    @Test("an exception frame is a classified fault, never silence")
    func exception() {
        let bytes = Self.frames([
            .event("messageStart", json: #"{"role":"assistant"}"#),
            .event("contentBlockDelta", json: #"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#),
            .exception("throttlingException", json: #"{"message":"Too many tokens"}"#),
        ])
        let events = Self.run(bytes)
        guard case .fault(let f) = events.last?.kind else { Issue.record("no fault: \(Self.describe(events))"); return }
        #expect(f.failure == .rateLimited(status: 429, retryAfter: nil))
        #expect(f.message.contains("Too many tokens"))
        let stream = Self.run(Self.frames([.exception("modelStreamErrorException", json: #"{"message":"boom"}"#)]))
        guard case .fault(let g) = stream.last?.kind else { Issue.record("no fault"); return }
        #expect(g.failure == .overloaded(status: 424))
        let internalError = Self.run(Self.frames([.exception("internalServerException", json: #"{"message":"x"}"#)]))
        guard case .fault(let h) = internalError.last?.kind else { Issue.record("no fault"); return }
        #expect(h.failure == .overloaded(status: 500))
    }

    @Test("a cut before messageStop and a corrupted frame are faults; a bad payload is dropped as malformed")
    func broken() {
        let cut = Self.run(Array(Self.toolStream.prefix(200)))
        guard case .fault(let f) = cut.last?.kind else { Issue.record("no fault"); return }
        #expect(f.failure == .malformedResponse)
        var corrupt = Self.toolStream
        corrupt[30] ^= 1
        guard case .fault = Self.run(corrupt).last?.kind else { Issue.record("no fault"); return }
        let bad = Self.run(Self.frames([
            .event("messageStart", json: #"{"role":"assistant"}"#), .event("contentBlockDelta", json: "{not json"),
            .event("messageStop", json: #"{"stopReason":"end_turn"}"#),
        ]))
        #expect(Self.describe(bad).contains("MALFORMED"))
        #expect(Self.describe(bad).last == "DONE")  // no metadata after the stop: still a complete answer
    }

    @Test("a guardrail stop is content_filter; no second role chunk in a continuation")
    func guardrail() {
        var ctx = Self.context
        ctx.continuation = true
        let events = Self.run(Self.frames([
            .event("messageStart", json: #"{"role":"assistant"}"#),
            .event("contentBlockDelta", json: #"{"contentBlockIndex":0,"delta":{"text":"Sorry, blocked."}}"#),
            .event("messageStop", json: #"{"stopReason":"guardrail_intervened"}"#),
            .event("metadata", json: #"{"usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3}}"#),
        ]), context: ctx)
        let chunks = Self.deltas(events)
        #expect(chunks.first?["choices"]?.arrayValue?.first?["delta"] == bedrockJSON(#"{"content":"Sorry, blocked."}"#))
        #expect(chunks.contains { $0["choices"]?.arrayValue?.first?["finish_reason"] == .string("content_filter") })
    }
}
