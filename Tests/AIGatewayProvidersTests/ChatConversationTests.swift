import AIGatewayAPI
import AIGatewayProviders
import Testing

private func parse(_ json: String) throws -> Result<ChatConversation, ChatConversation.Invalid> {
    try ChatRequest(bytes: Array(json.utf8)).conversation()
}

@Suite("The OpenAI request as values")
struct ChatConversationTests {
    @Test("messages, parts, tool calls, tools and parameters")
    func full() throws {
        let c = try parse(
            """
            {"model":"m","messages":[{"role":"developer","content":"d"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,AAA","detail":"low"}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\\"x\\":1}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"r"}],
            "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"},"strict":true}}],"tool_choice":{"type":"function","function":{"name":"f"}},
            "max_tokens":9,"temperature":0,"top_p":1,"stop":["x","y"],"n":1,"logprobs":false,"response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"type":"object"}}},
            "seed":1,"frequency_penalty":null,"user":"u","reasoning_effort":"low"}
            """
        ).get()
        #expect(c.messages.map(\.role) == [.developer, .user, .assistant, .tool])
        #expect(c.messages[1].content == [.text("a"), .image(url: "data:image/jpeg;base64,AAA", detail: "low")])
        #expect(c.messages[2].content.isEmpty)
        #expect(c.messages[2].toolCalls == [ToolCall(id: "c1", name: "f", arguments: #"{"x":1}"#)])
        #expect(c.messages[2].toolCalls[0].argumentsObject == .object(["x": .int(1)]))
        #expect(c.messages[3].toolCallID == "c1" && c.messages[3].text == "r")
        #expect(c.tools.first?.name == "f" && c.tools.first?.strict == true)
        #expect(c.toolChoice == .function("f"))
        #expect(c.maxTokens == 9 && c.temperature == 0 && c.topP == 1 && c.stop == ["x", "y"] && c.n == 1 && !c.logprobs)
        #expect(c.responseFormat == .jsonSchema(name: "s", schema: .object(["type": .string("object")]), strict: nil))
        #expect(c.tuningParameters == ["seed"], "a null penalty was not set")
        #expect(c.user == "u" && c.reasoningEffort == "low")
        #expect(ContentPart.dataURL("data:image/jpeg;base64,AAA")! == ("image/jpeg", "AAA"))
        #expect(ContentPart.dataURL("https://x/y.png") == nil)
    }

    @Test(
        "bad requests name the field",
        arguments: [
            (#"{"messages":[{"role":"robot","content":"x"}]}"#, "messages[0].role"),
            (#"{"messages":[{"role":"user","content":7}]}"#, "messages[0].content"),
            (#"{"messages":[{"role":"user","content":[{"type":"text"}]}]}"#, "messages[0].content[0].text"),
            (#"{"messages":[{"role":"tool","content":"x"}]}"#, "messages[0].tool_call_id"),
            (#"{"messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}]}"#, "messages[0].tool_calls[0].id"),
            (#"{"messages":[],"tools":[{"type":"function","function":{}}]}"#, "tools[0].function.name"),
            (#"{"messages":[],"tool_choice":"sometimes"}"#, "tool_choice"),
            (#"{"messages":[],"max_tokens":"many"}"#, "max_tokens"),
            (#"{"messages":[],"max_tokens":0}"#, "max_tokens"),
            (#"{"messages":[],"stop":[1]}"#, "stop"),
            (#"{"messages":[],"response_format":{"type":"yaml"}}"#, "response_format"),
        ])
    func invalid(json: String, field: String) throws {
        guard case .failure(let e) = try parse(json) else {
            Issue.record("accepted")
            return
        }
        #expect(e.description.contains(field), "\(e.description)")
    }

    @Test("parsed once per request: every attempt gets the same value")
    func once() throws {
        let r = try ChatRequest(bytes: Array(#"{"messages":[{"role":"user","content":"x"}]}"#.utf8))
        let copy = r
        #expect(try r.conversation().get() == copy.conversation().get())
    }
}

@Suite("OpenAI streams: relayed byte for byte")
struct OpenAIStreamTests {
    @Test("events split anywhere come out whole, with their facts")
    func relay() {
        let input = """
            data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

            : keep-alive

            data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hé"},"finish_reason":null}]}\r
            \r
            data: {"choices": [

            data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

            data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}

            data: [DONE]


            """
        let out = StreamSplitting.translate(input) { OpenAIStreamTranslator() }
        #expect(out.count == 7)
        #expect(out[0].hasPrefix("chunk(token=false"))
        #expect(out[1].hasPrefix("other : keep-alive"))
        #expect(out[2].hasPrefix("chunk(token=true,finished=false") && out[2].contains("Hé"))
        #expect(out[3] == "malformed")
        #expect(out[4].hasPrefix("chunk(token=true,finished=true"))
        #expect(out[5].hasPrefix("chunk(token=false,finished=false,usageOnly=true,usage=3/1/-1)"))
        #expect(out[6] == "done")
        // Byte for byte: what the provider sent is what the client gets.
        #expect(out[2].hasSuffix("\"finish_reason\":null}]}\r\n\r\n"))
    }
}

@Suite("OpenAI streams: errors inside a 200 stream")
struct OpenAIStreamErrorTests {
    @Test("an error object in the stream is a fault, classified")
    func errorEvent() {
        let out = StreamSplitting.translate(
            """
            data: {"id":"c","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}

            data: {"error":{"message":"The server is overloaded or not ready yet.","type":"server_error","param":null,"code":null}}


            """
        ) { OpenAIStreamTranslator() }
        #expect(out.count == 2)
        #expect(out[1] == "fault(overloaded(status: 500)) The server is overloaded or not ready yet.")
        let limited = StreamSplitting.translate(#"data: {"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"# + "\n\n") {
            OpenAIStreamTranslator()
        }
        #expect(limited == ["fault(rateLimited(status: 429, retryAfter: nil)) slow down"])
    }
}

@Suite("Header names")
struct HeaderNameTests {
    @Test("ASCII case-insensitive, nothing else folded")
    func equal() {
        #expect(HeaderName.equal("X-Api-Key", "x-api-key"))
        #expect(HeaderName.equal("", ""))
        #expect(!HeaderName.equal("x-api-key", "x-api-ke"))
        #expect(!HeaderName.equal("a[", "A{"), "only letters fold")
        #expect(!HeaderName.equal("x-api-key", "x-api_key"))
    }
}
