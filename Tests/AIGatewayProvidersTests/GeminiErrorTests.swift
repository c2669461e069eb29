@testable import AIGatewayAPI
import AIGatewayProviders
import Testing

private func body(_ code: Int, _ status: String, _ message: String, details: String = "[]", wrapped: Bool = false) -> [UInt8] {
    let error = #"{"error": {"code": \#(code), "message": "\#(message)", "status": "\#(status)", "details": \#(details)}}"#
    return Array((wrapped ? "[\(error)]" : error).utf8)
}

@Suite("Gemini and Vertex AI errors and endpoints")
struct GeminiErrorTests {
    @Test("400 API_KEY_INVALID is a misconfigured entry, not the client's error")
    func apiKeyInvalid() {
        let e = GeminiError.classify(
            status: 400,
            body: body(
                400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                details: #"[{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]"#))
        #expect(e.kind == .misconfigured)
        #expect(e.reason == "API_KEY_INVALID" && e.code == "INVALID_ARGUMENT" && e.status == 400)
    }

    @Test(
        "statuses and codes",
        arguments: [
            (403, "PERMISSION_DENIED", "Permission denied on resource project p.", GeminiError.Kind.misconfigured),
            (401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", .misconfigured),
            (400, "FAILED_PRECONDITION", "User location is not supported for the API use.", .misconfigured),
            (404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta.", .modelNotFound),
            (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", .throttled(retryAfter: nil)),
            (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", .unavailable),
            (500, "INTERNAL", "An internal error has occurred.", .unavailable),
            (504, "DEADLINE_EXCEEDED", "Deadline exceeded.", .unavailable),
            (
                400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
                .contextLengthExceeded
            ),
            (400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified", .invalidRequest),
        ])
    func kinds(status: Int, code: String, message: String, kind: GeminiError.Kind) {
        #expect(GeminiError.classify(status: status, body: body(status, code, message)).kind == kind)
        #expect(GeminiError.classify(status: status, body: body(status, code, message, wrapped: true)).kind == kind, "array-wrapped")
    }

    @Test("RetryInfo.retryDelay is read from a 429")
    func retryDelay() {
        let e = GeminiError.classify(
            status: 429,
            body: body(
                429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.",
                details: #"[{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []}, {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]"#
            ))
        #expect(e.kind == .throttled(retryAfter: .seconds(37)))
    }

    @Test("a body that is not JSON is classified by its status")
    func notJSON() {
        #expect(GeminiError.classify(status: 502, body: Array("<html>bad gateway</html>".utf8)).kind == .unavailable)
        #expect(GeminiError.classify(status: 400, body: []).kind == .invalidRequest)
    }

    @Test(
        "Vertex AI hosts from location",
        arguments: [
            ("global", "aiplatform.googleapis.com"), ("us", "aiplatform.us.rep.googleapis.com"), ("eu", "aiplatform.eu.rep.googleapis.com"),
            ("us-central1", "us-central1-aiplatform.googleapis.com"), ("europe-west4", "europe-west4-aiplatform.googleapis.com"),
        ])
    func vertexHost(location: String, host: String) {
        #expect(GeminiEndpoint.vertexHost(location: location) == host)
    }

    @Test("Vertex AI and Gemini paths")
    func paths() {
        var p = VertexAIProvider(
            authToken: .inline(SecretString("t")), model: "gemini-2.5-flash", apiVersion: "v1", projectId: "proj", location: "global",
            modelPath: nil, publisher: "GOOGLE")
        #expect(
            GeminiEndpoint.vertexPath(p, stream: false)
                == "/v1/projects/proj/locations/global/publishers/google/models/gemini-2.5-flash:generateContent")
        #expect(
            GeminiEndpoint.vertexPath(p, stream: true)
                == "/v1/projects/proj/locations/global/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
        p.modelPath = ":countTokens"
        #expect(GeminiEndpoint.vertexPath(p, stream: false).hasSuffix("/models/gemini-2.5-flash:countTokens"))
        #expect(GeminiEndpoint.geminiPath(apiVersion: "v1beta", model: "models/gemini-2.5-pro", stream: false) == "/v1beta/models/gemini-2.5-pro:generateContent")
        #expect(
            GeminiEndpoint.geminiPath(apiVersion: "v1beta", model: "gemini-2.5-pro", stream: true)
                == "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse")
    }
}
