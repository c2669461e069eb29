import AIGatewayAPI

/// Amazon Bedrock's Converse and ConverseStream, signed with SigV4 (service `bedrock`).
public struct BedrockAdapter: ProviderAdapter {
    public let region: String
    public var guardrail: BedrockProvider.Guardrail?
    /// Signs each request; keeps the region's signing key of the day.
    private let signer: SigV4FixedHeaderSigner

    public static let service = "bedrock"

    public init(region: String, guardrail: BedrockProvider.Guardrail?) {
        self.region = region
        self.guardrail = guardrail
        signer = SigV4FixedHeaderSigner(region: region, service: Self.service)
    }

    public var provider: String { "bedrock" }
    public var streamContentType: String { "application/vnd.amazon.eventstream" }

    /// `/model/{modelId}/converse`, the model id URI-encoded once (`:` as `%3A`).
    public static func path(model: String, stream: Bool) -> String {
        "/model/\(SigV4.uriEncode(model))/\(stream ? "converse-stream" : "converse")"
    }

    public func makeRequest(_ input: AttemptInput) -> Result<UpstreamRequest, AttemptRefusal> {
        let body: [UInt8]
        var names = BedrockToolNames()
        if let text = BedrockConverse.textRequestBody(input.chat.bytes, guardrail: guardrail, prefill: input.prefill) {
            // A plain text conversation, written straight from the client's bytes.
            body = text
        } else {
            let conversation: ChatConversation
            switch input.chat.conversation() {
            case .success(let c): conversation = c
            case .failure(let e): return .failure(AttemptRefusal(reason: e.description))
            }
            switch BedrockConverse.request(conversation, guardrail: guardrail, prefill: input.prefill) {
            case .success(let r): (body, names) = r
            case .failure(let r): return .failure(r)
            }
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
        let (path, query) = Self.splitQuery(request.path)
        // Exactly what goes on the wire: the Host the proxy sends, and the content type (the last
        // one, as `header` finds it; an exact match of the name is tried first, as the adapter
        // wrote it, before the case-blind compare).
        let contentType = request.headers.last { $0.name == "content-type" || HeaderName.equal($0.name, "content-type") }?.value
        let signature = signer.sign(
            method: request.method, path: path, query: query, host: target.hostHeader, contentType: contentType, body: body, credentials: credentials,
            time: now)
        // As `setHeader` for each, in one pass: any same-named header goes, the three come last.
        let token = credentials.sessionToken
        request.headers.removeAll {
            HeaderName.equal($0.name, "x-amz-date") || HeaderName.equal($0.name, "authorization")
                || (token != nil && HeaderName.equal($0.name, "x-amz-security-token"))
        }
        request.headers.reserveCapacity(request.headers.count + 3)
        request.headers.append(.init(name: "x-amz-date", value: signature.amzDate))
        if let token { request.headers.append(.init(name: "x-amz-security-token", value: token.value)) }
        request.headers.append(.init(name: "authorization", value: signature.authorization))
        return .success(())
    }

    /// The path and the query (after the first `?`, without it) of a request target.
    static func splitQuery(_ target: String) -> (path: Substring, query: Substring) {
        // The `?` looked for in place: a generic search of the UTF-8 view cost more than the rest.
        let offset =
            target.utf8.withContiguousStorageIfAvailable { $0.firstIndex(of: UInt8(ascii: "?")) }
            ?? target.utf8.firstIndex(of: UInt8(ascii: "?")).map { target.utf8.distance(from: target.startIndex, to: $0) }
        guard let offset else { return (target[...], "") }
        let mark = target.utf8.index(target.startIndex, offsetBy: offset)
        return (target[..<mark], target[target.utf8.index(after: mark)...])
    }

    /// Converse's answer has no id in its body: the request id header stands for it.
    public var answerHeaderNames: [String]? { Self.answerHeaders }
    private static let answerHeaders = ["x-amzn-RequestId"]

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
