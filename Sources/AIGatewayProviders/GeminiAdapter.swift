import AIGatewayAPI

/// The Gemini API (`gemini`: key in `x-goog-api-key`) and Vertex AI (`vertexai`: bearer token):
/// the client's OpenAI request becomes a `generateContent` body (`GeminiRequest`), answers and
/// streams come back as OpenAI's (`GeminiResponse`, `GeminiStreamTranslator`), errors are
/// classified by `GeminiError`.
public struct GeminiAdapter: ProviderAdapter {
    public enum Flavor: String, Sendable, Hashable {
        case gemini
        case vertexai
    }

    public let flavor: Flavor

    public init(_ flavor: Flavor) { self.flavor = flavor }

    public var provider: String { flavor.rawValue }

    public func makeRequest(_ input: AttemptInput) -> Result<UpstreamRequest, AttemptRefusal> {
        if input.prefill != nil {
            // Whether Gemini continues a final `model` turn is not documented: no continuation.
            return .failure(AttemptRefusal(reason: "\(provider) does not continue a partial answer (no assistant prefill)"))
        }
        let request: GeminiRequest
        do {
            request = try GeminiRequest(input.chat.value)
        } catch {
            return .failure(AttemptRefusal(parameter: error.param, reason: error.message))
        }
        var headers: [UpstreamTarget.HeaderField] = [.init(name: "content-type", value: "application/json")]
        if request.stream { headers.append(.init(name: "accept", value: "text/event-stream")) }
        for s in input.target.staticHeaders { headers.append(s) }
        var upstream = UpstreamRequest(
            path: Self.path(input.target.path, stream: request.stream), headers: headers, body: .bytes(Array(request.body.canonicalJSON().utf8)))
        upstream.dropped = request.dropped
        return .success(upstream)
    }

    /// The target's path for a streamed request: `:generateContent` → `:streamGenerateContent`, and
    /// `alt=sse` added to the query (a path override keeps its own method).
    static func path(_ path: String, stream: Bool) -> String {
        guard stream else { return path }
        var p = path
        if let r = p.firstRange(of: ":generateContent") {
            let rest = p[r.upperBound...]
            if rest.isEmpty || rest.hasPrefix("?") { p.replaceSubrange(r, with: ":streamGenerateContent") }
        }
        if p.contains("alt=sse") { return p }
        return p + (p.contains("?") ? "&alt=sse" : "?alt=sse")
    }

    public func authorize(_ request: inout UpstreamRequest, credential: ProviderCredential, target: UpstreamTarget, now: Double) -> Result<Void, AttemptRefusal> {
        guard let token = credential.token else { return .failure(AttemptRefusal(reason: "\(provider) takes an API key or token, not AWS credentials")) }
        request.setHeader(target.authHeaderName, target.authPrefix + token.value)
        return .success(())
    }

    public func translateResponse(_ response: ProviderResponse, context: TranslationContext) -> ResponseTranslation {
        do {
            let out = try GeminiResponse.chatCompletion(response.body, fallbackID: context.fallbackID, model: context.model, created: context.created)
            let usage = out["usage"].map { u in
                TokenUsage(
                    input: u["prompt_tokens"]?.intValue ?? 0, output: u["completion_tokens"]?.intValue ?? 0,
                    cachedInput: u["prompt_tokens_details"]?["cached_tokens"]?.intValue,
                    reasoning: u["completion_tokens_details"]?["reasoning_tokens"]?.intValue)
            }
            return .translated(body: Array(out.canonicalJSON().utf8), usage: usage)
        } catch {
            return .failed(Self.failure(error))
        }
    }

    public func makeStreamTranslator(_ context: TranslationContext) -> any StreamTranslator {
        GeminiChunkTranslator(context)
    }

    public func classifyError(_ response: ProviderResponse, now: Double) -> ProviderFailure {
        Self.failure(GeminiError.classify(status: response.status, body: response.body))
    }

    /// A Gemini error in the failover engine's terms.
    static func failure(_ e: GeminiError) -> ProviderFailure {
        switch e.kind {
        case .misconfigured, .modelNotFound: .misconfigured(status: e.status)
        case .throttled(let retryAfter): .rateLimited(status: e.status, retryAfter: retryAfter)
        case .unavailable: .overloaded(status: e.status)
        case .contextLengthExceeded: .contextLengthExceeded(status: e.status)
        case .invalidRequest: .invalidRequest(status: e.status)
        case .truncated: .malformedResponse
        }
    }
}

extension TokenUsage {
    init(_ u: GeminiUsage) {
        self.init(input: u.prompt, output: u.completion, cachedInput: u.cached, reasoning: u.reasoning)
    }
}

/// `GeminiStreamTranslator`'s events written as OpenAI chunks.
public struct GeminiChunkTranslator: StreamTranslator {
    private var gemini: GeminiStreamTranslator
    private var writer: ChunkWriter
    private var failed = false

    public init(_ context: TranslationContext) {
        gemini = GeminiStreamTranslator(fallbackID: context.fallbackID)
        writer = ChunkWriter(
            id: context.fallbackID, model: context.model, created: context.created, clientWantsUsage: context.clientWantsUsage,
            continuation: context.continuation)
    }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [StreamEvent] {
        write(gemini.feed(bytes))
    }

    public mutating func finish() -> [StreamEvent] {
        var events = write(gemini.finish())
        if !failed { events.append(writer.done()) }
        return events
    }

    private mutating func write(_ events: [GeminiStreamTranslator.Event]) -> [StreamEvent] {
        var out: [StreamEvent] = []
        for event in events {
            switch event {
            case .role:
                if let id = gemini.responseID { writer.id = id }
                if let model = gemini.modelVersion { writer.model = model }
                if let role = writer.role() { out.append(role) }
            case .content(let text):
                out += writer.text(text)
            case .reasoning(let text):
                out += writer.reasoning(text)
            case .toolCall(_, let id, let name, let arguments):
                out += writer.startToolCall(id: id, name: name, arguments: arguments).events
            case .finish(let reason):
                out += writer.finish(reason)
            case .usage(let u):
                out.append(writer.usage(TokenUsage(u)))
            case .malformed:
                out.append(StreamEvent(.malformed))
            case .failed(let e):
                failed = true
                out.append(StreamEvent(.fault(StreamFault(GeminiAdapter.failure(e), message: e.message))))
            }
        }
        return out
    }
}
