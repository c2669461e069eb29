import AIGatewayAPI
import AIGatewayProviders
import Testing

private func request(_ text: String) throws -> ChatRequest {
    try ChatRequest(bytes: Array(text.utf8))
}

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

private func invalid(_ text: String) -> String? {
    do {
        _ = try ChatRequest(bytes: Array(text.utf8))
        return nil
    } catch {
        return error.description
    }
}

@Suite("Chat request rewriting")
struct ChatRequestTests {
    static let guideBody = """
        {
            "messages": [
              {
                "role": "user",
                "content": "What is kubernetes?"
              }
          ]}
        """

    @Test("the guide's request gets the entry's model and keeps every other byte")
    func injectsModelWhenAbsent() throws {
        let r = try request(Self.guideBody)
        #expect(r.model == nil)
        let out = text(r.body(model: "gpt-4o"))
        #expect(out == "{\"model\":\"gpt-4o\"," + Self.guideBody.dropFirst())
        let parsed = try JSONParser.parse(Array(out.utf8))
        #expect(parsed["model"] == .string("gpt-4o"))
        #expect(parsed["messages"] == r.value["messages"])
    }

    @Test("a client's model is replaced in place; nothing else changes")
    func replacesModelInPlace() throws {
        // Numbers written the client's way (0.70, 1e2) must survive: re-serialising would change them.
        let body = #"{ "temperature": 0.70, "model" : "client-model" ,"max_tokens":1e2, "messages": [ {"role":"user","content":"hi \u00e9"} ] }"#
        let r = try request(body)
        #expect(r.model == "client-model")
        #expect(text(r.body(model: "gpt-4o")) == #"{ "temperature": 0.70, "model" : "gpt-4o" ,"max_tokens":1e2, "messages": [ {"role":"user","content":"hi \u00e9"} ] }"#)
    }

    @Test("no configured model keeps the client's body byte for byte")
    func keepsBodyWithoutModel() throws {
        let body = #"{"model":"client","messages":[],"stream":false}"#
        let r = try request(body)
        #expect(r.body(model: nil) == Array(body.utf8))
        #expect(r.body(model: nil, includeUsage: true) == Array(body.utf8), "no usage option when not streaming")
        #expect(r.bytes == Array(body.utf8))
    }

    @Test("a null model is replaced")
    func nullModel() throws {
        let r = try request(#"{"model":null,"messages":[]}"#)
        #expect(r.model == nil)
        #expect(text(r.body(model: "m")) == #"{"model":"m","messages":[]}"#)
    }

    @Test("an empty object and leading whitespace")
    func emptyObject() throws {
        #expect(text(try request("{}").body(model: "m")) == #"{"model":"m"}"#)
        #expect(text(try request(" \n{ }").body(model: "m")) == " \n{\"model\":\"m\" }")
        #expect(text(try request("  {\"a\":1}").body(model: "m")) == "  {\"model\":\"m\",\"a\":1}")
    }

    @Test("a model needing escapes is written as a valid JSON string")
    func escapedModel() throws {
        let model = "we\"ird\\model\n\u{1}"
        for body in [#"{"messages":[]}"#, #"{"model":"x","messages":[]}"#] {
            let out = try request(body).body(model: model)
            #expect(try JSONParser.parse(out)["model"] == .string(model))
        }
    }

    @Test("the stream flag")
    func streamFlag() throws {
        #expect(try request(#"{"stream":true}"#).stream)
        #expect(try !request(#"{"stream":false}"#).stream)
        #expect(try !request(#"{"stream":null}"#).stream)
        #expect(try !request(#"{}"#).stream)
    }

    @Test("include_usage is added to a stream whose client did not ask")
    func addsIncludeUsage() throws {
        let r = try request(#"{"stream":true,"messages":[]}"#)
        #expect(!r.clientWantsStreamUsage)
        #expect(text(r.body(model: nil, includeUsage: true)) == #"{"stream_options":{"include_usage":true},"stream":true,"messages":[]}"#)
        let both = try JSONParser.parse(r.body(model: "m", includeUsage: true))
        #expect(
            both
                == .object([
                    "model": .string("m"), "stream": .bool(true), "messages": .array([]),
                    "stream_options": .object(["include_usage": .bool(true)]),
                ]))
        #expect(r.body(model: nil, includeUsage: false) == r.bytes)
    }

    @Test("include_usage is added to existing stream_options, keeping their other members")
    func mergesIncludeUsage() throws {
        let r = try request(#"{"stream":true,"stream_options":{"include_usage":false,"x":1},"messages":[]}"#)
        #expect(!r.clientWantsStreamUsage)
        let out = try JSONParser.parse(r.body(model: nil, includeUsage: true))
        #expect(out["stream_options"] == .object(["include_usage": .bool(true), "x": .int(1)]))
        #expect(out["stream"] == .bool(true))
        #expect(out["messages"] == .array([]))

        let nullOptions = try request(#"{"stream":true,"stream_options":null}"#)
        #expect(text(nullOptions.body(model: nil, includeUsage: true)) == #"{"stream":true,"stream_options":{"include_usage":true}}"#)
    }

    @Test("a client that asked for usage keeps its body")
    func clientAskedForUsage() throws {
        let body = #"{"stream":true,"stream_options": { "include_usage" : true },"messages":[]}"#
        let r = try request(body)
        #expect(r.clientWantsStreamUsage)
        #expect(r.body(model: nil, includeUsage: true) == Array(body.utf8))
        #expect(text(r.body(model: "m", includeUsage: true)) == #"{"model":"m","stream":true,"stream_options": { "include_usage" : true },"messages":[]}"#)
    }

    @Test("a prefill continuation appends an assistant message")
    func prefill() throws {
        let body = #"{"model":"x","messages":[ {"role":"system","content":"s"}, {"role":"user","content":"hi"} ],"n":1}"#
        let r = try request(body)
        let partial = "Kubernetes is \"an\" open-source\n"
        let out = r.body(model: nil, prefill: partial)
        #expect(
            text(out)
                == #"{"model":"x","messages":[ {"role":"system","content":"s"}, {"role":"user","content":"hi"} ,{"role":"assistant","content":"Kubernetes is \"an\" open-source\n"}],"n":1}"#
        )
        let parsed = try JSONParser.parse(out)
        let messages = try #require(parsed["messages"]?.arrayValue)
        #expect(messages.count == 3)
        #expect(messages.last == .object(["role": .string("assistant"), "content": .string(partial)]))
        #expect(parsed["n"] == .int(1))
    }

    @Test("a prefill on empty messages, combined with a model and usage")
    func prefillCombined() throws {
        let r = try request(#"{"stream":true,"messages":[ ]}"#)
        let out = try JSONParser.parse(r.body(model: "gpt-4o", includeUsage: true, prefill: "Hel"))
        #expect(
            out
                == .object([
                    "model": .string("gpt-4o"), "stream": .bool(true), "stream_options": .object(["include_usage": .bool(true)]),
                    "messages": .array([.object(["role": .string("assistant"), "content": .string("Hel")])]),
                ]))
        let guide = try request(Self.guideBody)
        let again = try JSONParser.parse(guide.body(model: "gpt-4o", prefill: "Kube"))
        #expect(again["messages"]?.arrayValue?.count == 2)
        #expect(again["model"] == .string("gpt-4o"))
    }

    @Test(
        "invalid bodies are rejected with a clear message",
        arguments: [
            ("[1]", "request body must be a JSON object, found array"),
            (#""hello""#, "request body must be a JSON object, found string"),
            ("null", "request body must be a JSON object, found null"),
            (#"{"model":42}"#, "'model' must be a string"),
            (#"{"model":["a"]}"#, "'model' must be a string"),
            (#"{"stream":"yes"}"#, "'stream' must be a boolean"),
            (#"{"stream":1}"#, "'stream' must be a boolean"),
            (#"{"messages":{}}"#, "'messages' must be an array"),
        ])
    func rejects(body: String, message: String) {
        #expect(invalid(body) == message)
    }

    @Test("a body that is not JSON names the offset")
    func notJSON() {
        #expect(invalid(#"{"model":"a",}"#) == "request body is not valid JSON: invalid JSON at byte 13: expected a string key")
        #expect(invalid("") == "request body is not valid JSON: invalid JSON at byte 0: unexpected end of input")
    }
}
