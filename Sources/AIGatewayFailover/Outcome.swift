import AIGatewayProviders

/// What one attempt against one entry came to.
public enum AttemptOutcome: Sendable, Hashable {
    case success
    /// Connection refused or reset before any response byte.
    case connectFailed
    /// A 5xx response.
    case serverError(Int)
    /// A 429; `retryAfter` from `Retry-After` or `x-ratelimit-reset-*`, if given.
    case rateLimited(retryAfter: Duration?)
    /// No response headers within the first-byte timeout: the model is silent.
    case firstByteTimeout
    /// Headers arrived but no first token within the first-token timeout.
    case firstTokenTimeout
    /// The per-attempt budget (`timeouts.backendRequest`) ran out.
    case attemptTimeout
    /// The body ended early or the stream broke before anything reached the client.
    case truncated
    /// A 400 context-length error: another model may have a larger window.
    case contextLengthExceeded(Int)
    /// A content-policy rejection: returned as is, no retry, no failover.
    case contentFiltered(Int)
    /// 401, 403 or 404 model-not-found: the entry is misconfigured.
    case misconfigured(Int)
    /// Any other 4xx: the request itself is wrong.
    case clientError(Int)
    /// The entry could not be tried (missing Secret, provider not served yet).
    case unusable(String)
    /// The entry cannot serve this request (a parameter it cannot honour, named in `parameter`).
    /// Failover moves on; when no candidate could even be tried, the client gets a 400.
    case incompatible(parameter: String, reason: String)
    /// Skipped because passive health checks ejected it.
    case ejected

    /// A short stable label, for metrics and the attempt trail.
    public var label: String {
        switch self {
        case .success: "ok"
        case .connectFailed: "connect_error"
        case .serverError(let s): "\(s)"
        case .rateLimited: "429"
        case .firstByteTimeout: "first_byte_timeout"
        case .firstTokenTimeout: "first_token_timeout"
        case .attemptTimeout: "attempt_timeout"
        case .truncated: "truncated"
        case .contextLengthExceeded: "context_length_exceeded"
        case .contentFiltered: "content_filter"
        case .misconfigured(let s): "\(s)"
        case .clientError(let s): "\(s)"
        case .unusable: "unusable"
        case .incompatible: "unsupported"
        case .ejected: "ejected"
        }
    }

    /// Whether the outcome counts against the entry's passive health.
    public var isHealthFailure: Bool {
        switch self {
        case .connectFailed, .serverError, .firstByteTimeout, .firstTokenTimeout, .attemptTimeout, .truncated, .misconfigured:
            true
        default:
            false
        }
    }

    /// Classifies a complete non-2xx response in the OpenAI shape.
    public static func classify(status: Int, headers: [(name: String, value: String)], body: [UInt8], now: ContinuousClock.Instant) -> AttemptOutcome {
        AttemptOutcome(OpenAIAdapter.classify(ProviderResponse(status: status, headers: headers, body: body), now: Double(time(nil))))
    }

    /// What a provider's failure means for failover.
    public init(_ failure: ProviderFailure) {
        switch failure {
        case .overloaded(let s): self = .serverError(s)
        case .rateLimited(_, let after): self = .rateLimited(retryAfter: after)
        case .quotaExhausted(let s): self = .misconfigured(s)
        case .contextLengthExceeded(let s): self = .contextLengthExceeded(s)
        case .contentFiltered(let s): self = .contentFiltered(s)
        case .misconfigured(let s): self = .misconfigured(s)
        case .prefillRejected(let s), .invalidRequest(let s): self = .clientError(s)
        case .malformedResponse: self = .truncated
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
