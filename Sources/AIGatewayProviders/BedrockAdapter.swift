import AIGatewayAPI

/// Amazon Bedrock's Converse and ConverseStream, signed with SigV4 (service `bedrock`).
public struct BedrockAdapter: ProviderAdapter {
    public var region: String
    public var guardrail: BedrockProvider.Guardrail?

    public static let service = "bedrock"

    public init(region: String, guardrail: BedrockProvider.Guardrail?) {
        self.region = region
        self.guardrail = guardrail
    }

    public var provider: String { "bedrock" }
    public var streamContentType: String { "application/vnd.amazon.eventstream" }

    /// `/model/{modelId}/converse`, the model id URI-encoded once (`:` as `%3A`).
    public static func path(model: String, stream: Bool) -> String {
        "/model/\(SigV4.uriEncode(model))/\(stream ? "converse-stream" : "converse")"
    }

    public func makeRequest(_ input: AttemptInput) -> Result<UpstreamRequest, AttemptRefusal> {
        let conversation: ChatConversation
        switch input.chat.conversation() {
        case .success(let c): conversation = c
        case .failure(let e): return .failure(AttemptRefusal(reason: e.description))
        }
        let body: [UInt8]
        let names: BedrockToolNames
        switch BedrockConverse.request(conversation, guardrail: guardrail, prefill: input.prefill) {
        case .success(let r): (body, names) = r
        case .failure(let r): return .failure(r)
        }
        var path = input.target.path
        if input.chat.stream {
            // The catalog's path (or an override) names the non-streamed operation.
            if path.hasSuffix("/converse") { path += "-stream" } else if !path.hasSuffix("/converse-stream") { path = Self.path(model: input.model ?? "", stream: true) }
        }
        var headers: [UpstreamTarget.HeaderField] = []
        // Room for the signature headers `authorize` adds (x-amz-date, a session token, authorization).
        headers.reserveCapacity(2 + input.target.staticHeaders.count + 3)
        headers.append(.init(name: "content-type", value: "application/json"))
        headers.append(.init(name: "accept", value: input.chat.stream ? streamContentType : "application/json"))
        for s in input.target.staticHeaders { headers.append(s) }
        var request = UpstreamRequest(path: path, headers: headers, body: .bytes(body))
        request.hints = names.hints
        return .success(request)
    }

    public func authorize(_ request: inout UpstreamRequest, credential: ProviderCredential, target: UpstreamTarget, now: Double) -> Result<Void, AttemptRefusal> {
        guard case .aws(let credentials) = credential else {
            return .failure(AttemptRefusal(reason: "bedrock signs with AWS credentials, not an API key"))
        }
        guard case .bytes(let body) = request.body else {
            return .failure(AttemptRefusal(reason: "bedrock signs a translated body"))
        }
        var path = Substring(request.path)
        var query: Substring = ""
        if let q = path.utf8.firstIndex(of: UInt8(ascii: "?")) {
            query = path[path.utf8.index(after: q)...]
            path = path[..<q]
        }
        // Exactly what goes on the wire: the Host the proxy sends, and the content type.
        var signed: [(name: String, value: String)] = [(name: "host", value: target.hostHeader)]
        if let ct = request.header("content-type") { signed.append((name: "content-type", value: ct)) }
        let signature = SigV4(region: region, service: Self.service).signatureHeaders(
            method: request.method, path: path, query: query, headers: signed, body: body, credentials: credentials, time: now)
        for h in signature { request.setHeader(h.name, h.value) }
        return .success(())
    }

    public func translateResponse(_ response: ProviderResponse, context: TranslationContext) -> ResponseTranslation {
        BedrockConverse.completion(
            response.body, id: response.header("x-amzn-RequestId") ?? context.header("x-amzn-RequestId") ?? context.fallbackID,
            model: context.model, created: context.created, names: BedrockToolNames(hints: context.hints))
    }

    public func makeStreamTranslator(_ context: TranslationContext) -> any StreamTranslator {
        BedrockStreamTranslator(context: context, names: BedrockToolNames(hints: context.hints))
    }

    public func classifyError(_ response: ProviderResponse, now: Double) -> ProviderFailure {
        BedrockErrors.classify(response)
    }

    public func clientErrorBody(_ response: ProviderResponse) -> [UInt8]? {
        BedrockErrors.openAIErrorBody(response)
    }
}
