import AIGatewayAPI
import AIGatewayProviders
import Testing

@Suite("Bedrock adapter")
struct BedrockAdapterTests {
    static let adapter = BedrockAdapter(region: "eu-west-3", guardrail: nil)
    static let target = UpstreamTarget(
        provider: "bedrock", adapter: adapter, tls: true, host: "bedrock-runtime.eu-west-3.amazonaws.com", port: 443,
        path: BedrockAdapter.path(model: "anthropic.claude-v2:1", stream: false), authHeaderName: "Authorization", authPrefix: "", staticHeaders: [],
        model: "anthropic.claude-v2:1", displayModel: "anthropic.claude-v2:1")
    static let keys = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: SecretString("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), sessionToken: SecretString("tok"))

    static func build(_ json: String) throws -> UpstreamRequest {
        try adapter.makeRequest(AttemptInput(chat: try ChatRequest(bytes: Array(json.utf8)), target: target, prefill: nil)).get()
    }

    @Test("the stream variant's path, content type and accept; renamed tools left as hints")
    func request() throws {
        let plain = try Self.build(#"{"messages":[{"role":"user","content":"hi"}]}"#)
        #expect(plain.path == "/model/anthropic.claude-v2%3A1/converse")
        #expect(plain.header("content-type") == "application/json" && plain.header("accept") == "application/json")
        #expect(plain.hints.isEmpty)
        let streamed = try Self.build(#"{"stream":true,"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"a.b"}}]}"#)
        #expect(streamed.path == "/model/anthropic.claude-v2%3A1/converse-stream")
        #expect(streamed.header("accept") == "application/vnd.amazon.eventstream")
        #expect(BedrockToolNames(hints: streamed.hints).clientName("a_b") == "a.b")
    }

    @Test("authorize signs host, content type, date and session token over the final body; an API key is refused")
    func authorize() throws {
        var request = try Self.build(#"{"messages":[{"role":"user","content":"hi"}]}"#)
        try Self.adapter.authorize(&request, credential: .aws(Self.keys), target: Self.target, now: 1_440_938_160).get()
        let auth = try #require(request.header("authorization"))
        #expect(auth.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-3/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="))
        #expect(request.header("x-amz-date") == "20150830T123600Z" && request.header("x-amz-security-token") == "tok")
        guard case .bytes(let body) = request.body else { Issue.record("not bytes"); return }
        // What AWS would check: the signature holds for the wire request.
        var headers: [(name: String, value: String)] = [(name: "host", value: Self.target.hostHeader)]
        headers += request.headers.map { (name: $0.name, value: $0.value) }
        #expect(SigV4.verify(method: "POST", path: request.path, query: "", headers: headers, body: body) { _ in "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" } == nil)
        var other = try Self.build(#"{"messages":[{"role":"user","content":"hi"}]}"#)
        guard case .failure = Self.adapter.authorize(&other, credential: .apiKey(SecretString("sk")), target: Self.target, now: 0) else {
            Issue.record("an API key was accepted"); return
        }
    }

    @Test("an unreadable request is refused with the field named")
    func invalid() throws {
        let chat = try ChatRequest(bytes: Array(#"{"messages":[{"role":"wizard","content":"hi"}]}"#.utf8))
        guard case .failure(let r) = Self.adapter.makeRequest(AttemptInput(chat: chat, target: Self.target, prefill: nil)) else {
            Issue.record("accepted"); return
        }
        #expect(r.reason.contains("role"))
    }
}
