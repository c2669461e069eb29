import AIGatewayAPI
import AIGatewayProviders
import Testing

private func translate(_ text: String) throws(GeminiRequest.Refusal) -> GeminiRequest {
    try GeminiRequest(parsedJSON(text))
}

@Suite("Gemini request translation")
struct GeminiRequestTests {
    @Test("system messages, merged same-role turns, no empty parts, generation config")
    func basic() throws {
        let r = try translate(
            """
            {"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true}, "user": "u1",
             "messages": [
               {"role": "system", "content": "Be brief."},
               {"role": "user", "content": "Hello"},
               {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "again"}]},
               {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
               {"role": "assistant", "content": ""},
               {"role": "assistant", "content": "Bonjour"},
               {"role": "user", "content": ""}],
             "max_tokens": 50, "max_completion_tokens": 60, "temperature": 0.2, "top_p": 0.9, "stop": "END", "seed": 7,
             "presence_penalty": 0.5, "frequency_penalty": 0.25, "response_format": {"type": "json_object"}}
            """)
        #expect(r.stream)
        #expect(
            r.body
                == parsedJSON(
                    """
                    {"systemInstruction": {"parts": [{"text": "Be brief.\\nUse French."}]},
                     "contents": [
                       {"role": "user", "parts": [{"text": "Hello"}, {"text": "again"}]},
                       {"role": "model", "parts": [{"text": "Bonjour"}]},
                       {"role": "user", "parts": [{"text": " "}]}],
                     "generationConfig": {"maxOutputTokens": 60, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"], "seed": 7,
                       "presencePenalty": 0.5, "frequencyPenalty": 0.25, "responseMimeType": "application/json"}}
                    """))
        #expect(r.dropped == ["stream_options", "user"])
    }

    @Test("only a system message still sends one user turn")
    func neverEmpty() throws {
        let r = try translate(#"{"messages": [{"role": "system", "content": "S"}]}"#)
        #expect(r.body["contents"] == parsedJSON(#"[{"role": "user", "parts": [{"text": " "}]}]"#))
    }

    @Test("tools, tool_choice, tool calls and their results in call order, alone in their turn")
    func tools() throws {
        let r = try translate(
            """
            {"messages": [
               {"role": "user", "content": "Weather in Paris and Rome?"},
               {"role": "assistant", "content": "Checking.", "tool_calls": [
                 {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\\"city\\":\\"Paris\\"}"}},
                 {"id": "call_b__thought__c2lnbg==", "type": "function", "function": {"name": "time", "arguments": ""}}]},
               {"role": "tool", "tool_call_id": "call_b__thought__c2lnbg==", "content": "noon"},
               {"role": "tool", "tool_call_id": "call_a", "content": [{"type": "text", "text": "sunny"}]},
               {"role": "user", "content": "Thanks"}],
             "tools": [
               {"type": "function", "function": {"name": "weather", "description": "Weather", "strict": true,
                 "parameters": {"type": "object", "additionalProperties": false, "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
               {"type": "function", "function": {"name": "time", "parameters": {"type": "object", "properties": {}}}}],
             "tool_choice": {"type": "function", "function": {"name": "weather"}}, "parallel_tool_calls": true}
            """)
        #expect(
            r.body
                == parsedJSON(
                    """
                    {"contents": [
                       {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
                       {"role": "model", "parts": [{"text": "Checking."},
                         {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
                         {"functionCall": {"name": "time", "args": {}}, "thoughtSignature": "c2lnbg=="}]},
                       {"role": "user", "parts": [
                         {"functionResponse": {"name": "weather", "response": {"content": "sunny"}}},
                         {"functionResponse": {"name": "time", "response": {"content": "noon"}}}]},
                       {"role": "user", "parts": [{"text": "Thanks"}]}],
                     "tools": [{"functionDeclarations": [
                       {"name": "weather", "description": "Weather",
                        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}},
                       {"name": "time"}]}],
                     "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}}}
                    """))
        #expect(r.dropped == ["parallel_tool_calls", "tools.function.strict", "tools.parameters.additionalProperties"])
    }

    @Test("tool_choice strings", arguments: [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")])
    func toolChoice(choice: String, mode: String) throws {
        let tools = #"[{"type": "function", "function": {"name": "f"}}]"#
        let r = try translate(#"{"messages": [{"role": "user", "content": "x"}], "tools": \#(tools), "tool_choice": "\#(choice)"}"#)
        #expect(r.body["toolConfig"] == parsedJSON(#"{"functionCallingConfig": {"mode": "\#(mode)"}}"#))
        let none = try translate(#"{"messages": [{"role": "user", "content": "x"}], "tool_choice": "\#(choice)"}"#)
        #expect(none.body["toolConfig"] == nil && none.dropped == ["tool_choice (no tools)"])
    }

    @Test("images: data URLs inline, gs:// as file data; json_schema response format normalised; n non-streamed")
    func media() throws {
        let r = try translate(
            """
            {"messages": [{"role": "user", "content": [
               {"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
               {"type": "image_url", "image_url": {"url": "gs://bucket/cat.JPG"}}]}],
             "n": 2,
             "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": ["integer", "null"]}}}}}}
            """)
        #expect(
            r.body
                == parsedJSON(
                    """
                    {"contents": [{"role": "user", "parts": [{"text": "What is this?"},
                       {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}},
                       {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/cat.JPG"}}]}],
                     "generationConfig": {"candidateCount": 2, "responseMimeType": "application/json",
                       "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "INTEGER", "nullable": true}}}}}
                    """))
    }

    @Test(
        "refusals name the parameter",
        arguments: [
            (
                #"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}]}"#,
                "messages[0].content[0]"
            ),
            (
                #"{"messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "r"}]}"#,
                "messages[1].tool_call_id"
            ),
            (
                #"{"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, {"role": "user", "content": "x"}]}"#,
                "messages"
            ),
            (
                #"{"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1"}}]}]}"#,
                "messages[0].tool_calls[0].function.arguments"
            ),
            (#"{"messages": [{"role": "user", "content": "x"}], "n": 2, "stream": true}"#, "n"),
            (#"{"messages": [{"role": "user", "content": "x"}], "logprobs": true}"#, "logprobs"),
            (#"{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "custom", "custom": {"name": "g"}}]}"#, "tools[0]"),
            (
                ##"{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"$ref": "#/nowhere"}}}]}"##,
                "tools[0].function.parameters"
            ),
            (#"{"messages": [{"role": "wizard", "content": "x"}]}"#, "messages[0].role"),
            (#"{"model": "m"}"#, "messages"),
        ])
    func refusals(body: String, param: String) {
        do {
            _ = try translate(body)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.param == param, "\(error.message)")
            #expect(!error.message.isEmpty)
        }
    }

    @Test("an http(s) image URL is refused with a message that says what to send instead")
    func httpImageMessage() {
        #expect(throws: GeminiRequest.Refusal.self) {
            try translate(#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]}"#)
        }
        do {
            _ = try translate(#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]}"#)
        } catch {
            #expect(error.message.contains("data URL") && error.message.contains("gs://"))
        }
    }
}
