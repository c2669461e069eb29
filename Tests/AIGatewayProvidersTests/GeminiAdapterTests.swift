import AIGatewayAPI
import AIGatewayProviders
import Testing

private func googleTarget(_ yaml: String) throws -> UpstreamTarget {
    let docs = try ManifestLoader.parse(
        """
        apiVersion: gateway.kgateway.dev/v1alpha1
        kind: Backend
        metadata: {name: b, namespace: default}
        spec: {type: AI, ai: {llm: {\(yaml)}}}
        """, source: "test.yaml")
    guard let entry = ResourceSet(docs.resources).backends.first?.spec.ai?.priorities.first?.first else {
        throw GeminiTestFailure("no llm entry: \(docs.errorLines)")
    }
    return ProviderCatalog.target(for: entry)
}

private struct GeminiTestFailure: Error {
    var s: String
    init(_ s: String) { self.s = s }
}

private let token = "authToken: {kind: Inline, inline: k}"

private func request(_ target: UpstreamTarget, _ body: String, prefill: String? = nil) throws -> Result<UpstreamRequest, AttemptRefusal> {
    let chat = try ChatRequest(bytes: Array(body.utf8))
    return try #require(target.adapter).makeRequest(AttemptInput(chat: chat, target: target, prefill: prefill))
}

@Suite("Gemini and Vertex AI adapter")
struct GeminiAdapterTests {
    @Test("Gemini: translated body, stream path, key header; what was dropped is reported")
    func gemini() throws {
        let target = try googleTarget("gemini: {model: gemini-2.5-flash, apiVersion: v1beta, \(token)}")
        var plain = try request(target, #"{"model": "x", "messages": [{"role": "user", "content": "Hi"}], "user": "u"}"#).get()
        #expect(plain.path == "/v1beta/models/gemini-2.5-flash:generateContent")
        guard case .bytes(let b) = plain.body else { throw GeminiTestFailure("not bytes") }
        #expect(try JSONParser.parse(b) == (try JSONParser.parse(Array(#"{"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}"#.utf8))))
        #expect(plain.dropped == ["user"])
        _ = try #require(target.adapter).authorize(&plain, credential: .apiKey(SecretString("sk-1")), target: target, now: 0)
        #expect(plain.header("x-goog-api-key") == "sk-1" && plain.header("authorization") == nil)

        let streamed = try request(target, #"{"messages": [{"role": "user", "content": "Hi"}], "stream": true}"#).get()
        #expect(streamed.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    }

    @Test("Vertex AI: host from location, bearer token, stream path")
    func vertex() throws {
        let target = try googleTarget("vertexai: {model: gemini-2.5-pro, apiVersion: v1, projectId: p, location: global, publisher: GOOGLE, \(token)}")
        #expect(target.host == "aiplatform.googleapis.com")
        var streamed = try request(target, #"{"messages": [{"role": "user", "content": "Hi"}], "stream": true}"#).get()
        #expect(streamed.path == "/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse")
        _ = try #require(target.adapter).authorize(&streamed, credential: .apiKey(SecretString("tok")), target: target, now: 0)
        #expect(streamed.header("authorization") == "Bearer tok")
    }

    @Test("refusals: what Gemini cannot take names the parameter; a continuation is refused")
    func refusals() throws {
        let target = try googleTarget("gemini: {model: m, apiVersion: v1beta, \(token)}")
        guard case .failure(let n) = try request(target, #"{"messages": [{"role": "user", "content": "Hi"}], "n": 2, "stream": true}"#) else {
            Issue.record("n > 1 streamed should be refused")
            return
        }
        #expect(n.parameter == "n")
        guard case .failure(let prefill) = try request(target, #"{"messages": [{"role": "user", "content": "Hi"}]}"#, prefill: "Kube") else {
            Issue.record("a prefill should be refused")
            return
        }
        #expect(prefill.reason.contains("prefill"))
    }

    @Test("a complete answer and errors through the adapter")
    func answers() throws {
        let adapter = GeminiAdapter(.gemini)
        let context = TranslationContext(model: "gemini-x", clientWantsUsage: false, created: 7, fallbackID: "gw-1")
        let body = #"{"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4, "cachedContentTokenCount": 2}}"#
        guard case .translated(let out, let usage) = adapter.translateResponse(ProviderResponse(status: 200, headers: [], body: Array(body.utf8)), context: context) else {
            Issue.record("expected a translation")
            return
        }
        #expect(usage == TokenUsage(input: 3, output: 1, cachedInput: 2))
        let value = try JSONParser.parse(out)
        #expect(value["id"] == .string("gw-1") && value["model"] == .string("gemini-x") && value["created"] == .int(7))
        #expect(value["choices"]?.arrayValue?.first?["message"]?["content"] == .string("Hi"))

        func classify(_ status: Int, _ body: String) -> ProviderFailure {
            adapter.classifyError(ProviderResponse(status: status, headers: [], body: Array(body.utf8)), now: 0)
        }
        let keyInvalid = #"{"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}"#
        #expect(classify(400, keyInvalid) == .misconfigured(status: 400))
        #expect(classify(400, #"{"error": {"code": 400, "message": "Bad.", "status": "INVALID_ARGUMENT"}}"#) == .invalidRequest(status: 400))
        #expect(classify(503, #"[{"error": {"code": 503, "message": "Overloaded.", "status": "UNAVAILABLE"}}]"#) == .overloaded(status: 503))
        #expect(
            classify(429, #"{"error": {"code": 429, "message": "Quota.", "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "4s"}]}}"#)
                == .rateLimited(status: 429, retryAfter: .seconds(4)))
        guard case .failed(let f) = adapter.translateResponse(ProviderResponse(status: 200, headers: [], body: Array("{\"cand".utf8)), context: context) else {
            Issue.record("a body that is not JSON fails")
            return
        }
        #expect(f == .malformedResponse)
    }

    @Test("a stream split anywhere becomes OpenAI chunks: role once first, text, a whole tool call, finish, usage, done")
    func stream() {
        let input =
            "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Let me \"}], \"role\": \"model\"}}], \"responseId\": \"r9\", \"modelVersion\": \"gemini-2.5-flash-001\"}\r\n\r\n"
            + "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"check.\"}, {\"functionCall\": {\"name\": \"get_weather\", \"args\": {\"location\": \"Paris\"}}}], \"role\": \"model\"}, \"finishReason\": \"STOP\"}], \"usageMetadata\": {\"promptTokenCount\": 4, \"candidatesTokenCount\": 6, \"totalTokenCount\": 10}}\r\n\r\n"
        let context = TranslationContext(model: "gemini-2.5-flash", clientWantsUsage: true, created: 5, fallbackID: "gw-2")
        let rendered = StreamSplitting.translate(input) { GeminiChunkTranslator(context) }
        let chunks = StreamSplitting.chunks(rendered)
        #expect(rendered.last == "done")
        #expect(chunks.count == 6)
        #expect(chunks.allSatisfy { $0["id"] == .string("r9") && $0["model"] == .string("gemini-2.5-flash-001") })
        #expect(chunks[0]["choices"]?[0]?["delta"] == .object(["role": .string("assistant"), "content": .string("")]))
        #expect(chunks[1]["choices"]?[0]?["delta"]?["content"] == .string("Let me "))
        #expect(chunks[2]["choices"]?[0]?["delta"]?["content"] == .string("check."))
        let call = chunks[3]["choices"]?[0]?["delta"]?["tool_calls"]?[0]
        #expect(call?["index"] == .int(0) && call?["id"] == .string("call_r9_0") && call?["function"]?["name"] == .string("get_weather"))
        #expect(call?["function"]?["arguments"] == .string("{\"location\":\"Paris\"}"))
        #expect(chunks[4]["choices"]?[0]?["finish_reason"] == .string("tool_calls"))
        #expect(chunks[5]["choices"] == .array([]) && chunks[5]["usage"]?["total_tokens"] == .int(10))

        let failed = StreamSplitting.translate(
            "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}]}}]}\n\ndata: [{\"error\": {\"code\": 503, \"message\": \"Overloaded.\", \"status\": \"UNAVAILABLE\"}}]\n\n"
        ) { GeminiChunkTranslator(context) }
        #expect(failed.last == "fault(overloaded(status: 503)) Overloaded.")
        #expect(!failed.contains("done"))
    }
}

extension JSONValue {
    fileprivate subscript(index: Int) -> JSONValue? {
        guard case .array(let a) = self, a.indices.contains(index) else { return nil }
        return a[index]
    }
}
