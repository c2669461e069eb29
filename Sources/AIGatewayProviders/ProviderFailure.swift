/// What a provider's error means for failover, in provider-neutral terms. Each adapter maps its
/// native errors (status, headers, body, and errors inside a 200 stream) to one of these; the
/// failover engine maps these to its outcomes (`AttemptOutcome(_:)`).
public enum ProviderFailure: Sendable, Hashable {
    /// Overloaded or failing (5xx, Anthropic 529, Gemini UNAVAILABLE): retried on the same entry
    /// when the status is one of the route's retry codes, else the next candidate.
    case overloaded(status: Int)
    /// Throttled: never retried sooner than `retryAfter` (from whatever reset hint the provider sent).
    case rateLimited(status: Int, retryAfter: Duration?)
    /// A spend cap or exhausted quota: retrying cannot help; the entry is treated as misconfigured.
    case quotaExhausted(status: Int)
    /// The prompt is too long for this model: another model may take it.
    case contextLengthExceeded(status: Int)
    /// A content-policy rejection: the same content is rejected anywhere.
    case contentFiltered(status: Int)
    /// Bad key, no access, unknown model: the entry is misconfigured.
    case misconfigured(status: Int)
    /// The provider rejected the assistant prefill (stream continuation).
    case prefillRejected(status: Int)
    /// The request itself is wrong: returned to the client as is.
    case invalidRequest(status: Int)
    /// A 200 whose body or stream is unreadable or ended early.
    case malformedResponse

    /// Maps a status by the usual HTTP meaning (the fallback of every classifier).
    public static func byStatus(_ status: Int, retryAfter: Duration? = nil) -> ProviderFailure {
        switch status {
        case 429: .rateLimited(status: status, retryAfter: retryAfter)
        case 401, 403, 404: .misconfigured(status: status)
        case 408, 500...599: .overloaded(status: status)
        case 400...499: .invalidRequest(status: status)
        default: .overloaded(status: status)
        }
    }
}

/// An error reported inside a 200 stream (Anthropic `event: error`, a Bedrock exception frame).
public struct StreamFault: Sendable, Hashable {
    public var failure: ProviderFailure
    /// The provider's message (never a secret: it is the provider's own text).
    public var message: String

    public init(_ failure: ProviderFailure, message: String) {
        self.failure = failure
        self.message = message
    }
}
