import Foundation

/// An error from the Kubernetes API or from the transport to it.
///
/// Compare with the static members (`error == .notFound`); two errors are equal when their
/// kinds are equal, whatever the details. `description` is short and stable (usable as a
/// metric label) and never contains a credential, a URL or a server message.
public struct KubernetesError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: String, Sendable, Hashable {
        case notFound
        case conflict
        case gone
        case unauthorized
        case forbidden
        case tooManyRequests
        case invalid
        case alreadyExists
        case badRequest
        case server
        case transport
        case invalidResponse
        case configuration
    }

    private let code: Code

    /// The HTTP status of the response, when there was one.
    public let httpStatus: Int?
    /// The `reason` of the Kubernetes `Status` object, when there was one (e.g. `Expired`).
    public let reason: String?
    /// The server's `Status.message`, for debugging. Not part of `description`: it can quote
    /// user data. Do not log it at info level or above.
    public let serverMessage: String?
    /// How long the server asked us to wait (429 `Retry-After` or `details.retryAfterSeconds`).
    public let retryAfter: Duration?
    /// For `.transport`: libcurl's fixed text for the error code (no host, no credential).
    /// For `.configuration`: which setting is wrong (never its value).
    public let detail: String?

    private init(
        _ code: Code, httpStatus: Int? = nil, reason: String? = nil, serverMessage: String? = nil,
        retryAfter: Duration? = nil, detail: String? = nil
    ) {
        self.code = code
        self.httpStatus = httpStatus
        self.reason = reason
        self.serverMessage = serverMessage
        self.retryAfter = retryAfter
        self.detail = detail
    }

    /// 404, or `Status.reason` `NotFound`.
    public static let notFound = KubernetesError(.notFound)
    /// 409 Conflict (a stale `resourceVersion` on update).
    public static let conflict = KubernetesError(.conflict)
    /// 410 Gone or `Status.reason` `Expired`: the resourceVersion (or continue token) is too old.
    public static let gone = KubernetesError(.gone)
    /// 401.
    public static let unauthorized = KubernetesError(.unauthorized)
    /// 403.
    public static let forbidden = KubernetesError(.forbidden)
    /// 429; see `retryAfter`.
    public static let tooManyRequests = KubernetesError(.tooManyRequests)
    /// 422 Invalid.
    public static let invalid = KubernetesError(.invalid)
    /// 409 with reason `AlreadyExists`.
    public static let alreadyExists = KubernetesError(.alreadyExists)
    /// 400 Bad Request.
    public static let badRequest = KubernetesError(.badRequest)
    /// Any other non-success status; see `httpStatus`.
    public static let server = KubernetesError(.server)
    /// The request did not complete (connect, TLS, timeout, reset); see `detail`.
    public static let transport = KubernetesError(.transport)
    /// The server answered with something that is not the expected JSON.
    public static let invalidResponse = KubernetesError(.invalidResponse)
    /// The kubeconfig or in-cluster configuration cannot be used; see `detail`.
    public static let configuration = KubernetesError(.configuration)

    public static func tooManyRequests(retryAfter: Duration?) -> KubernetesError {
        KubernetesError(.tooManyRequests, httpStatus: 429, retryAfter: retryAfter)
    }

    public static func server(status: Int) -> KubernetesError {
        KubernetesError(.server, httpStatus: status)
    }

    public static func transport(_ detail: String) -> KubernetesError {
        KubernetesError(.transport, detail: detail)
    }

    static func invalidResponse(_ detail: String, httpStatus: Int? = nil) -> KubernetesError {
        KubernetesError(.invalidResponse, httpStatus: httpStatus, detail: detail)
    }

    static func configuration(_ detail: String) -> KubernetesError {
        KubernetesError(.configuration, detail: detail)
    }

    public static func == (lhs: KubernetesError, rhs: KubernetesError) -> Bool {
        lhs.code == rhs.code
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
    }

    /// The kind alone, e.g. `notFound`, `transport`: a bounded set, fit for a metric label.
    public var label: String { code.rawValue }

    public var description: String {
        switch code {
        case .server:
            if let httpStatus { return "KubernetesError.server(\(httpStatus))" }
            return "KubernetesError.server"
        case .transport, .invalidResponse, .configuration:
            if let detail { return "KubernetesError.\(code.rawValue)(\(detail))" }
            return "KubernetesError.\(code.rawValue)"
        default:
            return "KubernetesError.\(code.rawValue)"
        }
    }

    /// Whether retrying the same request later may succeed.
    public var isRetryable: Bool {
        switch code {
        case .tooManyRequests, .transport: return true
        case .server: return (httpStatus ?? 500) >= 500
        default: return false
        }
    }
}

extension KubernetesError {
    /// Classifies a failed response from its HTTP status and, when the body is a Kubernetes
    /// `Status`, its `reason`, `message`, `code` and `details.retryAfterSeconds`.
    static func fromResponse(httpStatus: Int, body: JSONValue?, retryAfterHeader: String?) -> KubernetesError {
        var reason: String?
        var message: String?
        var statusCode = httpStatus
        var retryAfterSeconds: Int?
        if let body, body["kind"]?.stringValue == "Status" {
            reason = body["reason"]?.stringValue
            message = body["message"]?.stringValue
            if let c = body["code"]?.intValue, c > 0 { statusCode = c }
            retryAfterSeconds = body["details"]?["retryAfterSeconds"]?.intValue
        }
        if let header = retryAfterHeader?.trimmingCharacters(in: .whitespaces), let s = Int(header) {
            retryAfterSeconds = s
        }
        let retryAfter = retryAfterSeconds.map { Duration.seconds(max(0, $0)) }
        return fromStatus(
            httpStatus: httpStatus, code: statusCode, reason: reason, message: message, retryAfter: retryAfter)
    }

    /// Classifies a Kubernetes `Status` object (e.g. from a watch `ERROR` event).
    static func fromStatusObject(_ status: JSONValue) -> KubernetesError {
        let code = status["code"]?.intValue ?? 500
        return fromStatus(
            httpStatus: nil, code: code, reason: status["reason"]?.stringValue,
            message: status["message"]?.stringValue,
            retryAfter: status["details"]?["retryAfterSeconds"]?.intValue.map { .seconds(max(0, $0)) })
    }

    private static func fromStatus(
        httpStatus: Int?, code: Int, reason: String?, message: String?, retryAfter: Duration?
    ) -> KubernetesError {
        let kind: Code
        switch reason {
        case "NotFound": kind = .notFound
        case "AlreadyExists": kind = .alreadyExists
        case "Conflict": kind = .conflict
        case "Gone", "Expired": kind = .gone
        case "Unauthorized": kind = .unauthorized
        case "Forbidden": kind = .forbidden
        case "TooManyRequests": kind = .tooManyRequests
        case "Invalid": kind = .invalid
        case "BadRequest": kind = .badRequest
        default:
            switch code {
            case 400: kind = .badRequest
            case 401: kind = .unauthorized
            case 403: kind = .forbidden
            case 404: kind = .notFound
            case 409: kind = .conflict
            case 410: kind = .gone
            case 422: kind = .invalid
            case 429: kind = .tooManyRequests
            default: kind = .server
            }
        }
        return KubernetesError(
            kind, httpStatus: httpStatus ?? code, reason: reason, serverMessage: message, retryAfter: retryAfter)
    }
}
