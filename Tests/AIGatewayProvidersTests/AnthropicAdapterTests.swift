import AIGatewayAPI
import AIGatewayProviders
import Testing

private let target = UpstreamTarget(
    provider: "anthropic", adapter: AnthropicAdapter(), tls: true, host: "api.anthropic.com", port: 443, path: "/v1/messages", authHeaderName: "x-api-key",
    authPrefix: "", staticHeaders: [.init(name: "anthropic-version", value: "2023-06-01")], model: "claude-sonnet-4-5", displayModel: "claude-sonnet-4-5")

/// The translated request: (body as a value, the request).
private func translate(_ json: String, prefill: String? = nil) throws -> (JSONValue, UpstreamRequest) {
    let chat = try ChatRequest(bytes: Array(json.utf8))
    let request = try AnthropicAdapter().makeRequest(AttemptInput(chat: chat, target: target, prefill: prefill)).get()
    guard case .bytes(let b) = request.body else { throw Failure("not bytes") }
    return (try JSONParser.parse(b), request)
}

private func refusal(_ json: String) throws -> AttemptRefusal? {
    let chat = try ChatRequest(bytes: Array(json.utf8))
    if case .failure(let r) = AnthropicAdapter().makeRequest(AttemptInput(chat: chat, target: target, prefill: nil)) { return r }
    return nil
}

private struct Failure: Error {
    var s: String
    init(_ s: String) { self.s = s }
}

private func json(_ s: String) throws -> JSONValue { try JSONParser.parse(Array(s.utf8)) }

@Suite("Anthropic: requests")
struct AnthropicRequestTests {
    @Test("system messages go to the top level, same-role turns merge, max_tokens defaults to 4096")
    func basics() throws {
        let (body, request) = try translate(
            """
            {"model":"x","messages":[{"role":"system","content":"Be brief."},{"role":"developer","content":[{"type":"text","text":"Use French."}]},
            {"role":"user","content":"Hi"},{"role":"user","content":[{"type":"text","text":"there"},{"type":"text","text":""}]},
            {"role":"assistant","content":""},{"role":"assistant","content":"Bonjour"}],
            "temperature":1.5,"top_p":0.5,"stop":"END","seed":3,"presence_penalty":1,"user":"u1"}
            """)
        #expect(body["model"] == .string("claude-sonnet-4-5"))
        #expect(body["system"] == .string("Be brief.\nUse French."))
        #expect(body["max_tokens"] == .int(4096))
        #expect(
            body["messages"]
                == (try json(#"[{"role":"user","content":[{"type":"text","text":"Hi"},{"type":"text","text":"there"}]},{"role":"assistant","content":[{"type":"text","text":"Bonjour"}]}]"#)))
        #expect(body["temperature"] == .double(1))
        #expect(body["top_p"] == .double(0.5))
        #expect(body["stop_sequences"] == .array([.string("END")]))
        #expect(body["metadata"] == (try json(#"{"user_id":"u1"}"#)))
        #expect(body["seed"] == nil && body["presence_penalty"] == nil && body["stream"] == nil)
        #expect(request.dropped.contains("seed") && request.dropped.contains("presence_penalty"))
        #expect(request.path == "/v1/messages")
        #expect(request.header("anthropic-version") == "2023-06-01")
        #expect(request.header("content-type") == "application/json")
    }

    @Test("max_completion_tokens wins over max_tokens; stream asks for events")
    func maxTokens() throws {
        let (body, request) = try translate(#"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":10,"max_completion_tokens":20,"stream":true}"#)
        #expect(body["max_tokens"] == .int(20))
        #expect(body["stream"] == .bool(true))
        #expect(request.header("accept") == "text/event-stream")
    }

    @Test("tools, tool_choice, parallel_tool_calls, assistant tool calls and parallel tool results")
    func tools() throws {
        let (body, _) = try translate(
            """
            {"messages":[{"role":"user","content":"Weather in Paris and Rome?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}},
              {"id":"toolu_2","type":"function","function":{"name":"get_weather","arguments":""}}]},
            {"role":"tool","tool_call_id":"toolu_1","content":"18C"},{"role":"tool","tool_call_id":"toolu_2","content":[{"type":"text","text":"21C"}]},
            {"role":"user","content":"Thanks"}],
            "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
            "tool_choice":"required","parallel_tool_calls":false}
            """)
        #expect(
            body["messages"]
                == (try json(
                    """
                    [{"role":"user","content":[{"type":"text","text":"Weather in Paris and Rome?"}]},
                    {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}},{"type":"tool_use","id":"toolu_2","name":"get_weather","input":{}}]},
                    {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"18C"},{"type":"tool_result","tool_use_id":"toolu_2","content":"21C"},{"type":"text","text":"Thanks"}]}]
                    """)))
        #expect(
            body["tools"]
                == (try json(#"[{"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}]"#)))
        #expect(body["tool_choice"] == (try json(#"{"type":"any","disable_parallel_tool_use":true}"#)))
    }

    @Test("tool_choice none and a named function")
    func toolChoice() throws {
        let tools = #""tools":[{"type":"function","function":{"name":"f"}}]"#
        #expect(try translate(#"{"messages":[{"role":"user","content":"x"}],\#(tools),"tool_choice":"none"}"#).0["tool_choice"] == (try json(#"{"type":"none"}"#)))
        #expect(
            try translate(#"{"messages":[{"role":"user","content":"x"}],\#(tools),"tool_choice":{"type":"function","function":{"name":"f"}}}"#).0["tool_choice"]
                == (try json(#"{"type":"tool","name":"f"}"#)))
        #expect(try translate(#"{"messages":[{"role":"user","content":"x"}],\#(tools)}"#).0["tool_choice"] == nil)
        #expect(try translate(#"{"messages":[{"role":"user","content":"x"}],\#(tools)}"#).0["tools"]?[0]?["input_schema"] == (try json(#"{"type":"object","properties":{}}"#)))
    }

    @Test("images: data URLs as base64, http(s) URLs as url sources")
    func images() throws {
        let (body, _) = try translate(
            #"{"messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},{"type":"image_url","image_url":{"url":"https://example.com/a.jpg"}}]}]}"#)
        #expect(
            body["messages"]?[0]?["content"]
                == (try json(
                    #"[{"type":"text","text":"What is this?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},{"type":"image","source":{"type":"url","url":"https://example.com/a.jpg"}}]"#)))
    }

    @Test("a continuation prefill is the final assistant turn, without trailing white space")
    func prefill() throws {
        let (body, _) = try translate(#"{"messages":[{"role":"user","content":"Hi"}]}"#, prefill: "Kubernetes is ")
        #expect(body["messages"]?[1] == (try json(#"{"role":"assistant","content":[{"type":"text","text":"Kubernetes is"}]}"#)))
    }

    @Test("shape-changing parameters make the candidate unusable, naming the parameter")
    func refusals() throws {
        #expect(try refusal(#"{"messages":[{"role":"user","content":"x"}],"n":2}"#)?.parameter == "n")
        #expect(try refusal(#"{"messages":[{"role":"user","content":"x"}],"logprobs":true}"#)?.parameter == "logprobs")
        #expect(try refusal(#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}"#)?.parameter == "response_format")
        #expect(try refusal(#"{"messages":[{"role":"user","content":"x"}],"n":1,"response_format":{"type":"text"}}"#) == nil)
        #expect(try refusal(#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#)?.parameter == "messages")
        #expect(try refusal(#"{"messages":[{"role":"wizard","content":"x"}]}"#)?.reason.contains("messages[0].role") == true)
    }

    @Test("the key goes in x-api-key; an OAuth token stays a bearer token")
    func auth() throws {
        var r = try translate(#"{"messages":[{"role":"user","content":"x"}]}"#).1
        _ = AnthropicAdapter().authorize(&r, credential: .apiKey(SecretString("sk-ant-api-1")), target: target, now: 0)
        #expect(r.header("x-api-key") == "sk-ant-api-1")
        var o = try translate(#"{"messages":[{"role":"user","content":"x"}]}"#).1
        _ = AnthropicAdapter().authorize(&o, credential: .passthrough(SecretString("sk-ant-oat-2")), target: target, now: 0)
        #expect(o.header("authorization") == "Bearer sk-ant-oat-2" && o.header("x-api-key") == nil)
    }
}

@Suite("Anthropic: answers and errors")
struct AnthropicAnswerTests {
    let context = TranslationContext(model: "claude-sonnet-4-5", clientWantsUsage: true, created: 1_700_000_000, fallbackID: "chatcmpl-x")

    @Test("a complete answer with text, a tool call and cache usage")
    func completion() throws {
        let body = #"""
            {"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Let me check."},
            {"type":"tool_use","id":"toolu_9","name":"get_weather","input":{"city":"Paris"}}],"stop_reason":"tool_use","stop_sequence":null,
            "usage":{"input_tokens":10,"cache_creation_input_tokens":5,"cache_read_input_tokens":20,"output_tokens":7}}
            """#
        guard case .translated(let out, let usage) = AnthropicAdapter().translateResponse(ProviderResponse(status: 200, headers: [], body: Array(body.utf8)), context: context) else {
            Issue.record("not translated")
            return
        }
        #expect(usage == TokenUsage(input: 35, output: 7, cachedInput: 20, cacheCreationInput: 5))
        let v = try JSONParser.parse(out)
        #expect(v["id"] == .string("msg_1") && v["object"] == .string("chat.completion") && v["model"] == .string("claude-sonnet-4-5-20250929"))
        let choice = v["choices"]?[0]
        #expect(choice?["finish_reason"] == .string("tool_calls"))
        #expect(choice?["message"]?["content"] == .string("Let me check."))
        #expect(
            choice?["message"]?["tool_calls"]
                == (try json(#"[{"id":"toolu_9","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]"#)))
        #expect(v["usage"] == (try json(#"{"prompt_tokens":35,"completion_tokens":7,"total_tokens":42,"prompt_tokens_details":{"cached_tokens":20}}"#)))
    }

    @Test("finish reasons", arguments: [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter"), ("pause_turn", "stop")])
    func finishReasons(native: String, openai: String) throws {
        let body = #"{"id":"m","content":[],"stop_reason":"\#(native)","usage":{"input_tokens":1,"output_tokens":0}}"#
        guard case .translated(let out, _) = AnthropicAdapter().translateResponse(ProviderResponse(status: 200, headers: [], body: Array(body.utf8)), context: context) else {
            Issue.record("not translated")
            return
        }
        #expect(try JSONParser.parse(out)["choices"]?[0]?["finish_reason"] == .string(openai))
    }

    private func classify(_ status: Int, _ body: String, headers: [(name: String, value: String)] = [], now: Double = 1_000_000) -> ProviderFailure {
        AnthropicAdapter().classifyError(ProviderResponse(status: status, headers: headers, body: Array(body.utf8)), now: now)
    }

    private func err(_ type: String, _ message: String, details: String = "") -> String {
        #"{"type":"error","error":{"type":"\#(type)","message":"\#(message)"\#(details)},"request_id":"req_1"}"#
    }

    @Test("native errors classified for failover")
    func errors() throws {
        #expect(classify(529, err("overloaded_error", "Overloaded")) == .overloaded(status: 529))
        #expect(classify(500, err("api_error", "Internal")) == .overloaded(status: 500))
        #expect(classify(401, err("authentication_error", "invalid x-api-key")) == .misconfigured(status: 401))
        #expect(classify(403, err("permission_error", "no")) == .misconfigured(status: 403))
        #expect(classify(404, err("not_found_error", "model: x")) == .misconfigured(status: 404))
        #expect(classify(400, err("invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum")) == .contextLengthExceeded(status: 400))
        #expect(classify(413, err("request_too_large", "too big")) == .contextLengthExceeded(status: 413))
        #expect(classify(400, err("invalid_request_error", "messages: roles must alternate")) == .invalidRequest(status: 400))
        #expect(classify(400, err("invalid_request_error", "Your credit balance is too low to access the Anthropic API.")) == .quotaExhausted(status: 400))
        #expect(classify(429, err("rate_limit_error", "limit", details: #","details":{"error_code":"enforced_spend_limit_reached"}"#)) == .quotaExhausted(status: 429))
        #expect(classify(429, err("rate_limit_error", "limit"), headers: [("retry-after", "3")]) == .rateLimited(status: 429, retryAfter: .seconds(3)))
        // The reset time, when later than retry-after, is what counts.
        #expect(
            classify(429, err("rate_limit_error", "limit"), headers: [("retry-after", "1"), ("anthropic-ratelimit-tokens-reset", "1970-01-12T13:46:50Z")], now: 1_000_000)
                == .rateLimited(status: 429, retryAfter: .seconds(10)))
        #expect(classify(502, "<html>bad gateway</html>") == .overloaded(status: 502))
    }

    @Test("an error returned to the client is in OpenAI's shape")
    func clientError() throws {
        let out = AnthropicAdapter().clientErrorBody(ProviderResponse(status: 400, headers: [], body: Array(err("invalid_request_error", "prompt is too long: 1 tokens > 0 maximum").utf8)))
        let v = try JSONParser.parse(out ?? [])
        #expect(v["error"]?["message"] == .string("prompt is too long: 1 tokens > 0 maximum"))
        #expect(v["error"]?["type"] == .string("invalid_request_error"))
        #expect(v["error"]?["code"] == .string("context_length_exceeded"))
    }

    @Test("RFC 3339 times")
    func rfc3339() {
        #expect(RetryAfter.rfc3339("1970-01-01T00:00:10Z") == 10)
        #expect(RetryAfter.rfc3339("1970-01-01T01:00:10.5+01:00") == 10.5)
        #expect(RetryAfter.rfc3339("2026-12-07T09:50:42Z") == 1_796_637_042)
        #expect(RetryAfter.rfc3339("yesterday") == nil)
        #expect(RetryAfter.rfc3339("1970-01-01T00:00:10") == nil)
    }
}

@Suite("Anthropic: streams")
struct AnthropicStreamTests {
    func translator(usage: Bool = true, continuation: Bool = false) -> AnthropicStreamTranslator {
        AnthropicStreamTranslator(TranslationContext(model: "claude", clientWantsUsage: usage, continuation: continuation, created: 7, fallbackID: "chatcmpl-x"))
    }

    static let toolStream = """
        event: message_start\r
        data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":1,"cache_read_input_tokens":4,"output_tokens":1}}}\r
        \r
        event: content_block_start
        data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

        event: ping
        data: {"type": "ping"}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking "}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"é☃."}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":0}

        event: content_block_start
        data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"city\\": "}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\\"Paris\\"}"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":1}

        event: content_block_start
        data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_2","name":"now","input":{}}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":2}

        event: message_delta
        data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}

        event: message_stop
        data: {"type":"message_stop"}


        """

    @Test("text and tool calls, split anywhere: role first, ids and names once, argument fragments, finish, one usage chunk last")
    func toolCalls() throws {
        let out = StreamSplitting.translate(Self.toolStream) { translator() }
        let chunks = StreamSplitting.chunks(out)
        #expect(out.last == "done")
        #expect(chunks.first?["choices"]?[0]?["delta"] == (try json(#"{"role":"assistant","content":""}"#)))
        #expect(chunks.allSatisfy { $0["id"] == .string("msg_1") && $0["model"] == .string("claude-sonnet-4-5") && $0["object"] == .string("chat.completion.chunk") })
        let text = chunks.compactMap { $0["choices"]?[0]?["delta"]?["content"]?.stringValue }.joined()
        #expect(text == "Checking é☃.")
        let calls = chunks.compactMap { $0["choices"]?[0]?["delta"]?["tool_calls"]?[0] }
        #expect(calls.count == 5)
        #expect(calls[0] == (try json(#"{"index":0,"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":""}}"#)))
        #expect(calls[1] == (try json(#"{"index":0,"function":{"arguments":"{\"city\": "}}"#)))
        #expect(calls[2] == (try json(#"{"index":0,"function":{"arguments":"\"Paris\"}"}}"#)))
        #expect(calls[3] == (try json(#"{"index":1,"id":"toolu_2","type":"function","function":{"name":"now","arguments":""}}"#)))
        // A call that streamed no arguments gets "{}".
        #expect(calls[4] == (try json(#"{"index":1,"function":{"arguments":"{}"}}"#)))
        let finishes = chunks.compactMap { $0["choices"]?[0]?["finish_reason"]?.stringValue }
        #expect(finishes == ["tool_calls"])
        #expect(chunks.last?["choices"] == .array([]))
        #expect(chunks.last?["usage"] == (try json(#"{"prompt_tokens":15,"completion_tokens":42,"total_tokens":57,"prompt_tokens_details":{"cached_tokens":4}}"#)))
        #expect(chunks.dropLast().allSatisfy { $0["usage"] == .null })
        #expect(chunks.filter { $0["usage"] != .null }.count == 1)
    }

    @Test("without include_usage chunks carry no usage field (the relay drops the usage chunk)")
    func noUsageField() {
        let out = StreamSplitting.translate(Self.toolStream) { translator(usage: false) }
        let chunks = StreamSplitting.chunks(out)
        #expect(chunks.dropLast().allSatisfy { $0["usage"] == nil })
        #expect(out.filter { $0.contains("usageOnly=true") }.count == 1)
    }

    @Test("a continuation sends no second role chunk")
    func continuation() {
        let out = StreamSplitting.translate(Self.toolStream) { translator(continuation: true) }
        #expect(!out.contains { $0.contains("\"role\"") })
    }

    @Test("an error event inside the stream is a fault, never silence")
    func errorEvent() {
        let input = """
            event: message_start
            data: {"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":3,"output_tokens":1}}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}

            event: error
            data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}


            """
        let out = StreamSplitting.translate(input) { translator() }
        #expect(out.last == "fault(overloaded(status: 529)) Overloaded")
        #expect(!out.contains("done"))
    }

    @Test("an unreadable event is reported malformed and the stream goes on; a refusal is content_filter")
    func malformedAndRefusal() {
        let input = """
            event: message_start
            data: {"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":3,"output_tokens":1}}}

            event: content_block_delta
            data: {"type":"content_block_delta", "index": 0, "delta": {

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"refusal"},"usage":{"output_tokens":0}}

            event: message_stop
            data: {"type":"message_stop"}


            """
        let out = StreamSplitting.translate(input) { translator() }
        #expect(out.contains("malformed"))
        #expect(StreamSplitting.chunks(out).compactMap { $0["choices"]?[0]?["finish_reason"]?.stringValue } == ["content_filter"])
        #expect(out.last == "done")
    }

    @Test("a stream that stops before message_stop does not claim to be done")
    func cut() {
        let input = """
            event: message_start
            data: {"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":3,"output_tokens":1}}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}
            """
        let out = StreamSplitting.translate(input) { translator() }
        #expect(!out.contains("done"))
        #expect(StreamSplitting.chunks(out).compactMap { $0["choices"]?[0]?["delta"]?["content"]?.stringValue }.joined() == "Hel")
    }
}
