import AIGatewayAPI
import AIGatewayProviders
import Testing

func conversation(_ json: String) throws -> ChatConversation {
    try ChatConversation(parsing: try JSONParser.parse(Array(json.utf8)))
}

func converse(_ json: String, guardrail: BedrockProvider.Guardrail? = nil, prefill: String? = nil) throws -> JSONValue {
    let body = try BedrockConverse.requestBody(try conversation(json), guardrail: guardrail, prefill: prefill).get()
    return try JSONParser.parse(body)
}

func bedrockJSON(_ s: String) -> JSONValue { try! JSONParser.parse(Array(s.utf8)) }

@Suite("Bedrock Converse request")
struct BedrockRequestTests {
    @Test("system to system blocks, same-role turns merged, maxTokens defaulted, sampling in inferenceConfig")
    func basics() throws {
        let body = try converse(#"""
            {"model":"m","messages":[
              {"role":"system","content":"Be brief."},{"role":"developer","content":"Speak French."},
              {"role":"user","content":"Hi"},{"role":"user","content":[{"type":"text","text":"there"},{"type":"text","text":""}]},
              {"role":"assistant","content":"Bonjour"}],
             "temperature":0.5,"top_p":1,"stop":"END","seed":7,"presence_penalty":1}
            """#)
        #expect(body["system"] == bedrockJSON(#"[{"text":"Be brief."},{"text":"Speak French."}]"#))
        #expect(body["messages"] == bedrockJSON(#"""
            [{"role":"user","content":[{"text":"Hi"},{"text":"there"}]},{"role":"assistant","content":[{"text":"Bonjour"}]}]
            """#))
        #expect(body["inferenceConfig"] == bedrockJSON(#"{"maxTokens":4096,"temperature":0.5,"topP":1,"stopSequences":["END"]}"#))
        #expect(body["toolConfig"] == nil)
        #expect(body["seed"] == nil && body["model"] == nil && body["presence_penalty"] == nil)
        let explicit = try converse(#"{"messages":[{"role":"user","content":"x"}],"max_tokens":10,"max_completion_tokens":20}"#)
        #expect(explicit["inferenceConfig"]?["maxTokens"] == .int(20))
    }

    @Test("tools: names sanitised, tool_choice mapped, toolUse and toolResult placed, guardrail sent")
    func tools() throws {
        let body = try converse(#"""
            {"messages":[
              {"role":"user","content":"weather?"},
              {"role":"assistant","content":null,"tool_calls":[
                {"id":"tooluse_1","type":"function","function":{"name":"get.weather","arguments":"{\"city\":\"Paris\"}"}},
                {"id":"tooluse_2","type":"function","function":{"name":"get.weather","arguments":""}}]},
              {"role":"tool","tool_call_id":"tooluse_1","content":"18C"},
              {"role":"tool","tool_call_id":"tooluse_2","content":"20C"}],
             "tools":[{"type":"function","function":{"name":"get.weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
             "tool_choice":{"type":"function","function":{"name":"get.weather"}}}
            """#, guardrail: .init(identifier: "gr-1", version: "2"))
        #expect(body["toolConfig"] == bedrockJSON(#"""
            {"tools":[{"toolSpec":{"name":"get_weather","description":"Weather","inputSchema":{"json":{"type":"object","properties":{"city":{"type":"string"}}}}}}],
             "toolChoice":{"tool":{"name":"get_weather"}}}
            """#))
        #expect(body["messages"] == bedrockJSON(#"""
            [{"role":"user","content":[{"text":"weather?"}]},
             {"role":"assistant","content":[{"toolUse":{"toolUseId":"tooluse_1","name":"get_weather","input":{"city":"Paris"}}},
                                            {"toolUse":{"toolUseId":"tooluse_2","name":"get_weather","input":{}}}]},
             {"role":"user","content":[{"toolResult":{"toolUseId":"tooluse_1","content":[{"text":"18C"}]}},
                                       {"toolResult":{"toolUseId":"tooluse_2","content":[{"text":"20C"}]}}]}]
            """#))
        #expect(body["guardrailConfig"] == bedrockJSON(#"{"guardrailIdentifier":"gr-1","guardrailVersion":"2","trace":"enabled"}"#))
    }

    @Test("a history with tool blocks and no tools still gets a toolConfig; none and required map")
    func toolConfigForHistory() throws {
        let body = try converse(#"""
            {"messages":[{"role":"user","content":"q"},
              {"role":"assistant","tool_calls":[{"id":"t1","type":"function","function":{"name":"lookup","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"t1","content":"r"}]}
            """#)
        #expect(body["toolConfig"]?["tools"]?.arrayValue?.first?["toolSpec"]?["name"] == .string("lookup"))
        let tools = #""tools":[{"type":"function","function":{"name":"f"}}]"#
        #expect(try converse(#"{"messages":[{"role":"user","content":"q"}],\#(tools),"tool_choice":"required"}"#)["toolConfig"]?["toolChoice"] == bedrockJSON(#"{"any":{}}"#))
        #expect(try converse(#"{"messages":[{"role":"user","content":"q"}],\#(tools),"tool_choice":"auto"}"#)["toolConfig"]?["toolChoice"] == bedrockJSON(#"{"auto":{}}"#))
        #expect(try converse(#"{"messages":[{"role":"user","content":"q"}],\#(tools),"tool_choice":"none"}"#)["toolConfig"]?["toolChoice"] == nil)
    }

    @Test("sanitised names are unique, at most 64 characters, and map back")
    func names() {
        var n = BedrockToolNames()
        let long = String(repeating: "a", count: 80)
        #expect(n.bedrockName("a.b") == "a_b")
        #expect(n.bedrockName("a b") == "a_b_2")
        #expect(n.bedrockName("a_b") == "a_b_3")
        #expect(n.bedrockName(long).count == 64)
        #expect(n.bedrockName("ünï") == "_n_")
        #expect(n.clientName("a_b_2") == "a b")
        #expect(n.clientName("a_b") == "a.b")
        #expect(n.clientName("unknown") == "unknown")
        // The request leaves the renamed ones as hints; the answer side maps back from them.
        let back = BedrockToolNames(hints: n.hints)
        #expect(back.clientName("a_b_2") == "a b" && back.clientName("a_b") == "a.b" && back.clientName("_n_") == "ünï")
        #expect(n.hints.count == 5)  // every one was renamed; a valid, unclashing name would leave no hint
        #expect(BedrockToolNames(names: ["ok_name"]).hints.isEmpty)
        // The same names in the same order give the same mapping.
        #expect(BedrockToolNames(names: ["a.b", "a b"]) == BedrockToolNames(names: ["a.b", "a b"]))
    }

    @Test("images from data URLs only; http(s) and unknown parts refused with the parameter named")
    func images() throws {
        let ok = try converse(#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0K"}}]}]}"#)
        #expect(ok["messages"]?.arrayValue?.first?["content"] == bedrockJSON(#"[{"image":{"format":"png","source":{"bytes":"iVBORw0K"}}}]"#))
        let remote = try conversation(#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#)
        guard case .failure(let r) = BedrockConverse.requestBody(remote, guardrail: nil) else { Issue.record("accepted"); return }
        #expect(r.parameter == "messages[0].content[0].image_url")
        #expect(r.reason.contains("data: URL"))
        let audio = try conversation(#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#)
        #expect((try? BedrockConverse.requestBody(audio, guardrail: nil).get()) == nil)
        let n2 = try conversation(#"{"messages":[{"role":"user","content":"x"}],"n":2}"#)
        guard case .failure(let refusal) = BedrockConverse.requestBody(n2, guardrail: nil) else { Issue.record("n=2 accepted"); return }
        #expect(refusal.parameter == "n")
    }

    @Test("a continuation prefill is the last assistant turn")
    func prefill() throws {
        let body = try converse(#"{"messages":[{"role":"user","content":"count"}]}"#, prefill: "1, 2,")
        #expect(body["messages"]?.arrayValue?.last == bedrockJSON(#"{"role":"assistant","content":[{"text":"1, 2,"}]}"#))
    }
}

@Suite("Bedrock Converse response")
struct BedrockResponseTests {
    @Test("text, tool calls with restored names, usage with cache tokens, id from the request id")
    func complete() throws {
        let body = #"""
            {"output":{"message":{"role":"assistant","content":[{"text":"Let me check."},
              {"toolUse":{"toolUseId":"tooluse_x","name":"get_weather","input":{"city":"Paris"}}}]}},
             "stopReason":"tool_use","usage":{"inputTokens":10,"outputTokens":5,"totalTokens":20,"cacheReadInputTokens":4,"cacheWriteInputTokens":1},
             "metrics":{"latencyMs":100}}
            """#
        guard case .translated(let out, let usage) = BedrockConverse.completion(
            Array(body.utf8), id: "req-1", model: "anthropic.claude-3:0", created: 7, names: BedrockToolNames(names: ["get.weather"]))
        else { Issue.record("not translated"); return }
        let v = try JSONParser.parse(out)
        #expect(v["id"] == .string("req-1") && v["model"] == .string("anthropic.claude-3:0") && v["object"] == .string("chat.completion"))
        #expect(v["choices"]?.arrayValue?.first?["finish_reason"] == .string("tool_calls"))
        let message = v["choices"]?.arrayValue?.first?["message"]
        #expect(message?["content"] == .string("Let me check."))
        #expect(message?["tool_calls"] == bedrockJSON(#"[{"id":"tooluse_x","type":"function","function":{"name":"get.weather","arguments":"{\"city\":\"Paris\"}"}}]"#))
        #expect(v["usage"] == bedrockJSON(#"{"prompt_tokens":15,"completion_tokens":5,"total_tokens":20,"prompt_tokens_details":{"cached_tokens":4}}"#))
        #expect(usage == TokenUsage(input: 15, output: 5, cachedInput: 4, cacheCreationInput: 1))
    }

    @Test("stop reasons map to OpenAI finish reasons")
    func finish() {
        #expect(BedrockConverse.finishReason("end_turn") == "stop")
        #expect(BedrockConverse.finishReason("stop_sequence") == "stop")
        #expect(BedrockConverse.finishReason("max_tokens") == "length")
        #expect(BedrockConverse.finishReason("model_context_window_exceeded") == "length")
        #expect(BedrockConverse.finishReason("tool_use") == "tool_calls")
        #expect(BedrockConverse.finishReason("guardrail_intervened") == "content_filter")
        #expect(BedrockConverse.finishReason("content_filtered") == "content_filter")
    }

    @Test("an unreadable 200 is a malformed response")
    func malformed() {
        guard case .failed(.malformedResponse) = BedrockConverse.completion(Array("{}".utf8), id: "i", model: "m", created: 0, names: .init()) else {
            Issue.record("accepted"); return
        }
    }
}

@Suite("Bedrock errors")
struct BedrockErrorTests {
    func classify(_ status: Int, _ type: String?, _ message: String) -> ProviderFailure {
        var headers: [(name: String, value: String)] = []
        if let type { headers.append((name: "x-amzn-ErrorType", value: type)) }
        return BedrockErrors.classify(ProviderResponse(status: status, headers: headers, body: Array(#"{"message":\#(JSONValue.quoted(message))}"#.utf8)))
    }

    @Test("x-amzn-ErrorType decides; the message refines ValidationException")
    func table() {
        #expect(classify(429, "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/", "slow down") == .rateLimited(status: 429, retryAfter: nil))
        #expect(classify(503, "ServiceUnavailableException", "busy") == .overloaded(status: 503))
        #expect(classify(408, "ModelTimeoutException", "t") == .overloaded(status: 408))
        #expect(classify(500, "InternalServerException", "x") == .overloaded(status: 500))
        #expect(classify(403, "AccessDeniedException", "no access") == .misconfigured(status: 403))
        #expect(classify(403, "InvalidSignatureException", "bad sig") == .misconfigured(status: 403))
        #expect(classify(403, "UnrecognizedClientException", "bad key") == .misconfigured(status: 403))
        #expect(classify(403, "ExpiredTokenException", "expired") == .misconfigured(status: 403))
        #expect(classify(400, "ValidationException", "Input is too long for requested model.") == .contextLengthExceeded(status: 400))
        #expect(classify(400, "ValidationException", "The provided model identifier is invalid.") == .misconfigured(status: 400))
        #expect(classify(400, "ValidationException", "messages: field required") == .invalidRequest(status: 400))
        #expect(classify(404, "ResourceNotFoundException", "no model") == .misconfigured(status: 404))
        #expect(classify(400, nil, "x") == .invalidRequest(status: 400))
        // The body's __type when the header is missing.
        let r = ProviderResponse(status: 429, headers: [], body: Array(#"{"__type":"com.amazon.coral#ThrottlingException","message":"m"}"#.utf8))
        #expect(BedrockErrors.classify(r) == .rateLimited(status: 429, retryAfter: nil))
    }

    @Test("the client sees an OpenAI-shaped error with Bedrock's message")
    func openAIShape() throws {
        let body = BedrockErrors.openAIErrorBody(ProviderResponse(
            status: 400, headers: [(name: "x-amzn-ErrorType", value: "ValidationException")], body: Array(#"{"message":"Input is too long for requested model."}"#.utf8)))
        let v = try JSONParser.parse(body)
        #expect(v["error"]?["message"] == .string("Input is too long for requested model."))
        #expect(v["error"]?["code"] == .string("context_length_exceeded"))
        #expect(v["error"]?["type"] == .string("invalid_request_error"))
    }
}
