import AIGatewayAPI

/// How the gateway talks to one provider: a pure value (no I/O) that builds each attempt's
/// request from the client's OpenAI-shaped request, translates the answer back, and classifies
/// the provider's errors for failover. One adapter per provider; `ProviderAdapters` maps the
/// provider key of a Backend entry to its adapter.
///
/// The proxy carries bytes and outcomes only: it asks the adapter for the request, writes it,
/// feeds the answer to the adapter's translator, and hands the classification to the failover engine.
public protocol ProviderAdapter: Sendable, Hashable {
    /// The provider key (`openai`, `anthropic`, ...): the `provider` label of metrics and the trail.
    var provider: String { get }

    /// False when the provider already speaks OpenAI Chat Completions: its answers (complete and
    /// streamed) are relayed byte for byte and `translateResponse` is never called.
    var translates: Bool { get }

    /// The content type of a streamed 200 answer (`text/event-stream`, or Bedrock's eventstream).
    var streamContentType: String { get }

    /// Builds one attempt's request without credentials, or says why this candidate cannot serve
    /// this request (a parameter it cannot honour): failover then moves on.
    func makeRequest(_ input: AttemptInput) -> Result<UpstreamRequest, AttemptRefusal>

    /// Adds the credentials to the finished request. Runs last, so a signature (SigV4) can cover
    /// the final path, headers and body; `now` is the wall clock in seconds since 1970.
    func authorize(_ request: inout UpstreamRequest, credential: ProviderCredential, target: UpstreamTarget, now: Double) -> Result<Void, AttemptRefusal>

    /// Translates a complete 2xx answer into an OpenAI `chat.completion` (only when `translates`).
    func translateResponse(_ response: ProviderResponse, context: TranslationContext) -> ResponseTranslation

    /// The answer headers `translateResponse` reads, or nil for all: the proxy hands it (in the
    /// response and the context) the first field of each name listed, or every field.
    var answerHeaderNames: [String]? { get }

    /// A fresh translator for one streamed attempt: provider bytes in, OpenAI chunks out.
    func makeStreamTranslator(_ context: TranslationContext) -> any StreamTranslator

    /// Classifies a complete non-2xx answer for the failover engine.
    func classifyError(_ response: ProviderResponse, now: Double) -> ProviderFailure

    /// The error body the client gets when this provider's error is returned as is (a client
    /// error, a content-filter rejection), in OpenAI's shape. Nil keeps the provider's bytes.
    func clientErrorBody(_ response: ProviderResponse) -> [UInt8]?
}

extension ProviderAdapter {
    public var translates: Bool { true }
    public var streamContentType: String { "text/event-stream" }
    public func clientErrorBody(_ response: ProviderResponse) -> [UInt8]? { nil }
    public var answerHeaderNames: [String]? { nil }

    /// Equality across adapter types (for `UpstreamTarget`'s `Hashable`).
    func isEqual(to other: any ProviderAdapter) -> Bool {
        guard let other = other as? Self else { return false }
        return self == other
    }
}

/// What an adapter gets to build one attempt.
public struct AttemptInput: Sendable {
    /// The client's request: its bytes, and (on demand, parsed once per request) its conversation.
    public var chat: ChatRequest
    /// The entry's endpoint: host, default path, auth header, model.
    public var target: UpstreamTarget
    /// Assistant text already sent to the client (stream continuation): send it as a prefill in
    /// the provider's own format, so the model continues the answer.
    public var prefill: String?

    public init(chat: ChatRequest, target: UpstreamTarget, prefill: String?) {
        self.chat = chat
        self.target = target
        self.prefill = prefill
    }

    /// The model to ask for: the entry's, else the client's.
    public var model: String? { target.model ?? chat.model }
}

/// A credential as a value; the proxy resolves it per attempt (a passthrough token comes from
/// the client's request, AWS credentials from a refreshed source).
public enum ProviderCredential: Sendable, Hashable {
    /// An API key or bearer token from the Backend (inline or Secret).
    case apiKey(SecretString)
    /// The client's own token (`authToken.kind: Passthrough`), `Bearer ` removed.
    case passthrough(SecretString)
    /// AWS credentials for SigV4.
    case aws(AWSCredentials)

    /// The key or token, for adapters that send one in a header.
    public var token: SecretString? {
        switch self {
        case .apiKey(let k), .passthrough(let k): k
        case .aws: nil
        }
    }
}

public struct AWSCredentials: Sendable, Hashable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: SecretString
    public var sessionToken: SecretString?

    public init(accessKeyID: String, secretAccessKey: SecretString, sessionToken: SecretString? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String { "AWSCredentials(<redacted>)" }
}

/// The request an adapter built: the proxy adds `host`, `content-length`, the client's
/// forwardable headers and the route's header modifiers, then `headers` (which win).
public struct UpstreamRequest: Sendable {
    public var method: String
    /// Path and query, as sent.
    public var path: String
    /// The provider's headers (content type, accept, version, auth once authorized).
    public var headers: [UpstreamTarget.HeaderField]
    public var body: UpstreamBody
    /// The client's parameters this target cannot take and the adapter left out (tuning-only
    /// ones such as `seed`): logged at debug.
    public var dropped: [String] = []
    /// What this request's translation needs to know of how it was built (e.g. sanitised tool
    /// names → the client's): handed to the answer's translators as `TranslationContext.hints`.
    public var hints: [String: String] = [:]

    public init(method: String = "POST", path: String, headers: [UpstreamTarget.HeaderField], body: UpstreamBody) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
    }

    /// Sets a header, replacing any of the same name (ASCII case-insensitive).
    public mutating func setHeader(_ name: String, _ value: String) {
        headers.removeAll { HeaderName.equal($0.name, name) }
        headers.append(.init(name: name, value: value))
    }

    public func header(_ name: String) -> String? {
        headers.last { HeaderName.equal($0.name, name) }?.value
    }
}

/// The body of an upstream request.
public enum UpstreamBody: Sendable {
    /// The client's own bytes with the gateway's few edits (model, usage option, prefill), written
    /// straight into the outgoing buffer by `ChatRequest.writeBody`: the OpenAI path copies no
    /// conversation.
    case clientBytes(model: String?, includeUsage: Bool, prefill: String?)
    /// A body the adapter built (a translated request).
    case bytes([UInt8])

    /// The final bytes (for a signature over the body).
    public func bytes(of chat: ChatRequest) -> [UInt8] {
        switch self {
        case .bytes(let b): b
        case .clientBytes(let model, let includeUsage, let prefill): chat.body(model: model, includeUsage: includeUsage, prefill: prefill)
        }
    }
}

/// Why a candidate cannot serve this request. `parameter` names what it cannot honour (`n`,
/// `logprobs`, `response_format`): when no candidate can, the client gets a 400 naming it.
public struct AttemptRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    public var parameter: String?
    public var reason: String

    public init(parameter: String? = nil, reason: String) {
        self.parameter = parameter
        self.reason = reason
    }

    public static func unsupported(_ parameter: String, _ reason: String) -> AttemptRefusal {
        AttemptRefusal(parameter: parameter, reason: reason)
    }

    public var description: String { reason }
}

/// A complete answer from the provider.
public struct ProviderResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? {
        headers.first { HeaderName.equal($0.name, name) }?.value
    }
}

/// Header names compared ASCII-case-insensitively, without allocating.
public enum HeaderName {
    public static func equal(_ a: String, _ b: String) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }
        // Over the strings' UTF-8 storage when they have it (native and small strings do): no
        // view iterators per byte.
        if let same = a.utf8.withContiguousStorageIfAvailable({ x in
            b.utf8.withContiguousStorageIfAvailable { y in
                for i in 0..<x.count where !equal(x[i], y[i]) { return false }
                return true
            }
        }), let same {
            return same
        }
        return zip(a.utf8, b.utf8).allSatisfy(equal)
    }

    /// The same for names given as bytes (the fields of a head the proxy reads as bytes).
    @inlinable
    public static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        for i in 0..<a.count where !equal(a[i], b[i]) { return false }
        return true
    }

    /// The same for a name given as bytes and one as a string.
    @inlinable
    public static func equal(_ a: UnsafeRawBufferPointer, _ b: String) -> Bool {
        guard a.count == b.utf8.count else { return false }
        if let same = b.utf8.withContiguousStorageIfAvailable({ equal(a, UnsafeRawBufferPointer($0)) }) { return same }
        return zip(a, b.utf8).allSatisfy(equal)
    }

    @inline(__always) @usableFromInline
    static func equal(_ x: UInt8, _ y: UInt8) -> Bool {
        x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= UInt8(ascii: "a") && (x | 0x20) <= UInt8(ascii: "z"))
    }
}

/// What a translator knows of the attempt it translates.
public struct TranslationContext: Sendable {
    /// The model the attempt asked for (used when the answer does not name one).
    public var model: String
    /// Whether the client asked for the final usage chunk (`stream_options.include_usage`).
    public var clientWantsUsage: Bool
    /// This attempt continues an answer already streamed: no second role chunk.
    public var continuation: Bool
    /// `created` of the OpenAI objects (seconds since 1970).
    public var created: Int
    /// The provider's response headers (Bedrock's `x-amzn-RequestId` is the answer's id).
    public var responseHeaders: [(name: String, value: String)]
    /// A gateway-made id when the provider gives none.
    public var fallbackID: String
    /// What the request side left for the answer side (`UpstreamRequest.hints`).
    public var hints: [String: String] = [:]

    public init(
        model: String, clientWantsUsage: Bool, continuation: Bool = false, created: Int, responseHeaders: [(name: String, value: String)] = [],
        fallbackID: String
    ) {
        self.model = model
        self.clientWantsUsage = clientWantsUsage
        self.continuation = continuation
        self.created = created
        self.responseHeaders = responseHeaders
        self.fallbackID = fallbackID
    }

    public func header(_ name: String) -> String? {
        responseHeaders.first { HeaderName.equal($0.name, name) }?.value
    }
}

/// A complete answer translated.
public enum ResponseTranslation: Sendable {
    /// An OpenAI `chat.completion` body, with the usage it reports.
    case translated(body: [UInt8], usage: TokenUsage?)
    /// The answer is not what it should be (unreadable, an error inside a 200): a failure.
    case failed(ProviderFailure)
}

/// Token counts of one answer.
public struct TokenUsage: Sendable, Hashable {
    public var input: Int
    public var output: Int
    /// Input tokens read from the provider's prompt cache (part of `input`).
    public var cachedInput: Int?
    /// Input tokens written to the provider's prompt cache (part of `input`).
    public var cacheCreationInput: Int?
    /// Reasoning tokens (part of `output`).
    public var reasoning: Int?

    public init(input: Int, output: Int, cachedInput: Int? = nil, cacheCreationInput: Int? = nil, reasoning: Int? = nil) {
        self.input = input
        self.output = output
        self.cachedInput = cachedInput
        self.cacheCreationInput = cacheCreationInput
        self.reasoning = reasoning
    }

    /// The OpenAI `usage` object.
    public var openAIJSON: String {
        var s = "{\"prompt_tokens\":\(input),\"completion_tokens\":\(output),\"total_tokens\":\(input + output)"
        if let cachedInput { s += ",\"prompt_tokens_details\":{\"cached_tokens\":\(cachedInput)}" }
        if let reasoning { s += ",\"completion_tokens_details\":{\"reasoning_tokens\":\(reasoning)}" }
        return s + "}"
    }
}
