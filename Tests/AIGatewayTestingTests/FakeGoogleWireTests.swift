import AIGatewayAPI
import AIGatewayProviders
@testable import AIGatewayTesting
import Testing

private func value(_ text: String) -> AIGatewayAPI.JSONValue {
    (try? JSONParser.parse(Array(text.utf8))) ?? .null
}

private func rejection(_ text: String, _ flavor: FakeGoogleWire.Flavor = .gemini) -> String? {
    FakeGoogleWire.validate(value(text), flavor: flavor)?.message
}

@Suite("Fake provider: native Gemini and Vertex AI wire")
struct FakeGoogleWireTests {
    @Test("routes")
    func routes() {
        #expect(
            FakeGoogleWire.route(path: "/v1beta/models/gemini-2.5-flash:generateContent", query: "")
                == .init(flavor: .gemini, model: "gemini-2.5-flash", stream: false))
        #expect(
            FakeGoogleWire.route(path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent", query: "alt=sse")
                == .init(flavor: .gemini, model: "gemini-2.5-flash", stream: true))
        #expect(
            FakeGoogleWire.route(path: "/v1/projects/p/locations/global/publishers/google/models/gemini-2.0:streamGenerateContent", query: "alt=sse")
                == .init(flavor: .vertex, model: "gemini-2.0", stream: true))
        #expect(FakeGoogleWire.route(path: "/v1/chat/completions", query: "") == nil)
        #expect(FakeGoogleWire.route(path: "/v1beta/models/m:countTokens", query: "") == nil)
    }

    @Test("keys: Gemini's wrong key is 400 API_KEY_INVALID, a missing one 403; Vertex's is 401")
    func keys() {
        let wrong = FakeGoogleWire.authorize(.gemini, headers: [("X-Goog-Api-Key", "nope")], query: "", requiredKey: "k")
        #expect(wrong?.status == 400 && wrong?.reason == "API_KEY_INVALID" && wrong?.code == "INVALID_ARGUMENT")
        #expect(FakeGoogleWire.authorize(.gemini, headers: [], query: "", requiredKey: "k")?.status == 403)
        #expect(FakeGoogleWire.authorize(.gemini, headers: [("x-goog-api-key", "k")], query: "", requiredKey: "k") == nil)
        #expect(FakeGoogleWire.authorize(.gemini, headers: [], query: "alt=sse&key=k", requiredKey: "k") == nil)
        #expect(FakeGoogleWire.authorize(.vertex, headers: [("authorization", "Bearer nope")], query: "", requiredKey: "k")?.status == 401)
        #expect(FakeGoogleWire.authorize(.vertex, headers: [("Authorization", "Bearer k")], query: "", requiredKey: "k") == nil)
        #expect(FakeGoogleWire.authorize(.vertex, headers: [], query: "", requiredKey: nil) == nil)
    }

    @Test("strict like the real API")
    func strict() {
        #expect(rejection(#"{"contents": []}"#) == "* GenerateContentRequest.contents: contents is not specified")
        #expect(rejection(#"{"contents": [{"role": "user", "parts": []}]}"#)?.contains("parts must not be empty") == true)
        #expect(rejection(#"{"contents": [{"role": "user", "parts": [{"text": ""}]}]}"#)?.contains("empty text parameter") == true)
        #expect(rejection(#"{"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}"#)?.contains("valid role") == true)
        #expect(rejection(#"{"model": "x", "contents": [{"role": "user", "parts": [{"text": "x"}]}]}"#)?.contains("Unknown name \"model\"") == true)
        // A function response must answer the calls of the turn right before it, all of them, in order.
        #expect(
            rejection(#"{"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}"#)?
                .contains("immediately after a function call turn") == true)
        #expect(
            rejection(
                #"{"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}, {"functionCall": {"name": "g", "args": {}}}]}, {"role": "user", "parts": [{"functionResponse": {"name": "g", "response": {}}}, {"functionResponse": {"name": "f", "response": {}}}]}]}"#
            )?.contains("number of function response parts") == true)
        #expect(
            rejection(
                #"{"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}, {"role": "user", "parts": [{"text": "x"}]}]}"#)?
                .contains("function call turn") == true)
        #expect(
            rejection(#"{"contents": [{"role": "model", "parts": [{"functionCall": {"id": "c1", "name": "f", "args": {}}}]}]}"#, .vertex)?
                .contains("Unknown name \"id\"") == true)
        // Schemas: only Gemini's subset, and an OBJECT needs properties.
        #expect(
            rejection(
                #"{"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT", "properties": {"a": {"type": "STRING", "additionalProperties": false}}}}]}]}"#
            ) == "Invalid JSON payload received. Unknown name \"additionalProperties\" at 'tools[0].function_declarations[0].parameters.properties[a].value': Cannot find field.")
        #expect(
            rejection(#"{"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]}]}"#)?
                .contains("should be non-empty for OBJECT type") == true)
        #expect(rejection(#"{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"max_tokens": 5}}"#)?.contains("Unknown name \"max_tokens\"") == true)
        #expect(
            rejection(
                #"{"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT", "properties": {"p": {"type": "OBJECT"}}}}]}]}"#
            ) == "* GenerateContentRequest.tools[0].function_declarations[0].parameters.properties[p].value.properties: should be non-empty for OBJECT type")
    }

    @Test("the gateway's translation of a tool conversation is accepted, and a schema with $refs too")
    func acceptsTranslation() throws {
        let request = try GeminiRequest(
            value(
                ##"""
                {"messages": [
                   {"role": "system", "content": "Be brief."},
                   {"role": "user", "content": "Weather?"}, {"role": "user", "content": "In Paris."},
                   {"role": "assistant", "content": null, "tool_calls": [
                     {"id": "a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                     {"id": "b", "type": "function", "function": {"name": "clock", "arguments": "{}"}}]},
                   {"role": "tool", "tool_call_id": "b", "content": "noon"},
                   {"role": "tool", "tool_call_id": "a", "content": "sunny"},
                   {"role": "user", "content": "And tomorrow?"}],
                 "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "additionalProperties": false,
                    "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}},
                    "properties": {"city": {"type": "string"}, "unit": {"$ref": "#/$defs/Unit"}, "when": {"type": ["string", "null"], "format": "date"}},
                    "required": ["city"]}}},
                   {"type": "function", "function": {"name": "clock", "parameters": {"type": "object", "properties": {}}}}],
                 "max_tokens": 10, "stop": ["x"], "seed": 1, "response_format": {"type": "json_object"}}
                """##))
        for flavor in [FakeGoogleWire.Flavor.gemini, .vertex] {
            #expect(FakeGoogleWire.validate(request.body, flavor: flavor) == nil)
        }
    }

    @Test("streams written by the fake read back through the gateway's translator: text, a whole tool call, a block, no-done")
    func formatStreams() {
        let format = FakeGoogleWire.Format(flavor: .gemini, answer: .init(responseID: "r1", model: "gemini-x", promptTokens: 2))
        func translate(_ bytes: [UInt8]) -> [GeminiStreamTranslator.Event] {
            var t = GeminiStreamTranslator(fallbackID: "f")
            return t.feed(bytes) + t.finish()
        }
        let text = FakeAnswerContent(kind: .text, tokens: ["A", " b"], promptTokens: 2)
        #expect(
            translate(format.streamStart(text) + format.textEvent("A", index: 0) + format.textEvent(" b", index: 1) + format.streamEnd(text, sentTokens: 2, done: true))
                == [.role, .content("A"), .content(" b"), .finish(reason: "stop"), .usage(GeminiUsage(value(#"{"promptTokenCount": 2, "candidatesTokenCount": 2, "totalTokenCount": 4}"#))!)])
        let call = FakeAnswerContent(kind: .toolCall(id: "x", name: "get_weather", fragments: ["{\"location\":", " \"Paris\"}"]), tokens: [], promptTokens: 2)
        let events = translate(format.toolCallEvents(id: "x", name: "get_weather", fragments: ["{\"location\":", " \"Paris\"}"]) + format.streamEnd(call, sentTokens: 0, done: true))
        #expect(events.prefix(3) == [.role, .toolCall(index: 0, id: "call_r1_0", name: "get_weather", arguments: "{\"location\":\"Paris\"}"), .finish(reason: "tool_calls")])
        let blocked = FakeAnswerContent(kind: .blocked, tokens: [], promptTokens: 2)
        #expect(translate(format.streamEnd(blocked, sentTokens: 0, done: true)).prefix(2) == [.role, .finish(reason: "content_filter")])
        if case .failed(let e) = translate(format.textEvent("A", index: 0) + format.streamEnd(text, sentTokens: 1, done: false)).last {
            #expect(e.kind == .truncated)
        } else {
            Issue.record("no-done should end without a finish reason")
        }
    }

    @Test("answers read back through the gateway's translation")
    func answersRoundTrip() throws {
        let wire = FakeGoogleWire.Answer(responseID: "r1", model: "gemini-x", promptTokens: 4)
        let complete = try GeminiResponse.chatCompletion(Array(wire.complete(tokens: ["Hi", " there"], call: nil).utf8), fallbackID: "f", model: "m", created: 1)
        #expect(complete["choices"]?.arrayValue?.first?["message"]?["content"] == .string("Hi there"))
        #expect(complete["usage"]?["total_tokens"] == .int(6))

        var t = GeminiStreamTranslator(fallbackID: "f")
        let stream = wire.tokenEvent("Hi", index: 0, last: false) + wire.tokenEvent(" there", index: 1, last: true)
        let events = t.feed(Array(stream.utf8)) + t.finish()
        #expect(events.count == 5)
        #expect(events.contains(.finish(reason: "stop")))

        var s = GeminiStreamTranslator(fallbackID: "f")
        let failed = s.feed(Array((wire.tokenEvent("Hi", index: 0, last: false) + FakeGoogleWire.streamErrorEvent(.vertex)).utf8))
        if case .failed(let e) = failed.last { #expect(e.kind == .unavailable) } else { Issue.record("expected a failure: \(failed)") }

        var b = GeminiStreamTranslator(fallbackID: "f")
        #expect(b.feed(Array(wire.blockedEvent().utf8)).last == .finish(reason: "content_filter"))

        let throttled = FakeGoogleWire.error(for: FaultSpec(.status(429), retryAfterSeconds: 3), flavor: .gemini, model: "m", promptTokens: 1)
        #expect(GeminiError.classify(status: throttled.status, body: Array(throttled.body().utf8)).kind == .throttled(retryAfter: .seconds(3)))
        let key = FakeGoogleWire.error(for: FaultSpec(.unauthorized), flavor: .gemini, model: "m", promptTokens: 1)
        #expect(GeminiError.classify(status: key.status, body: Array(key.body().utf8)).kind == .misconfigured)
        let long = FakeGoogleWire.error(for: FaultSpec(.contextLength), flavor: .vertex, model: "m", promptTokens: 1)
        #expect(GeminiError.classify(status: long.status, body: Array(long.body(wrapped: true).utf8)).kind == .contextLengthExceeded)
    }
}
