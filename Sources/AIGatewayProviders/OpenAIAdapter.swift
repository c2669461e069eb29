import AIGatewayAPI

/// OpenAI and Azure OpenAI: the client's request goes on as sent (the model, the usage option
/// and a continuation prefill rewritten in place), and the answer comes back byte for byte.
public struct OpenAIAdapter: ProviderAdapter {
    public enum Flavor: String, Sendable, Hashable {
        case openai
        case azureopenai
    }

    public let flavor: Flavor

    public init(_ flavor: Flavor) { self.flavor = flavor }

    public var provider: String { flavor.rawValue }
    public var translates: Bool { false }

    public func makeRequest(_ input: AttemptInput) -> Result<UpstreamRequest, AttemptRefusal> {
        var headers: [UpstreamTarget.HeaderField] = []
        // Room for the key header too (`authorize`): the array is made once.
        headers.reserveCapacity(3 + input.target.staticHeaders.count)
        headers.append(.init(name: "content-type", value: "application/json"))
        if input.chat.stream { headers.append(.init(name: "accept", value: "text/event-stream")) }
        for s in input.target.staticHeaders { headers.append(s) }
        // Usage is always asked for, so the gateway can count tokens; the relay drops the chunk
        // when the client did not ask for it.
        return .success(UpstreamRequest(path: input.target.path, headers: headers, body: .clientBytes(model: input.target.model, includeUsage: true, prefill: input.prefill)))
    }

    public func authorize(_ request: inout UpstreamRequest, credential: ProviderCredential, target: UpstreamTarget, now: Double) -> Result<Void, AttemptRefusal> {
        guard let token = credential.token else { return .failure(AttemptRefusal(reason: "\(provider) takes an API key, not AWS credentials")) }
        request.setHeader(target.authHeaderName, target.authPrefix + token.value)
        return .success(())
    }

    public func translateResponse(_ response: ProviderResponse, context: TranslationContext) -> ResponseTranslation {
        // Not called (`translates` is false); a faithful identity all the same.
        .translated(body: response.body, usage: nil)
    }

    public func makeStreamTranslator(_ context: TranslationContext) -> any StreamTranslator {
        OpenAIStreamTranslator()
    }

    public func classifyError(_ response: ProviderResponse, now: Double) -> ProviderFailure {
        Self.classify(response, now: now)
    }

    /// OpenAI-shaped errors (OpenAI, Azure, and OpenAI-compatible servers).
    public static func classify(_ response: ProviderResponse, now: Double) -> ProviderFailure {
        let status = response.status
        switch status {
        case 429:
            if ProviderErrors.code(of: response.body) == "insufficient_quota" { return .quotaExhausted(status: status) }
            return .rateLimited(status: status, retryAfter: RetryAfter.parse(headers: response.headers, now: now))
        case 500...599:
            return .overloaded(status: status)
        case 401, 403:
            return .misconfigured(status: status)
        case 400...499:
            switch ProviderErrors.classify(status: status, body: response.body) {
            case .contextLengthExceeded: return .contextLengthExceeded(status: status)
            case .contentFiltered: return .contentFiltered(status: status)
            case .modelNotFound: return .misconfigured(status: status)
            case .prefillUnsupported: return status == 404 ? .misconfigured(status: status) : .prefillRejected(status: status)
            case .other: return status == 404 ? .misconfigured(status: status) : .invalidRequest(status: status)
            }
        default:
            return .invalidRequest(status: status)
        }
    }
}
