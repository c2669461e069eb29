import AIGatewayAPI

/// A Gemini or Vertex AI error (an HTTP error body, or an error inside a 200 stream), in the
/// terms failover cares about.
///
/// The body is `{"error": {"code", "message", "status", "details": [...]}}`; Vertex AI may wrap it
/// in an array (`[{"error": …}]`).
public struct GeminiError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The entry cannot work as configured: a bad or expired key (Gemini says 400
        /// `API_KEY_INVALID`), 401 `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`, 400
        /// `FAILED_PRECONDITION` (e.g. the API is not offered in the caller's region).
        case misconfigured
        /// 404 `NOT_FOUND`: the model does not exist for this key or project.
        case modelNotFound
        /// 429 `RESOURCE_EXHAUSTED`, with `RetryInfo.retryDelay` when the body has it.
        case throttled(retryAfter: Duration?)
        /// 500 `INTERNAL`, 503 `UNAVAILABLE`, 504 `DEADLINE_EXCEEDED` and other 5xx: try elsewhere.
        case unavailable
        /// 400 "The input token count (N) exceeds the maximum number of tokens allowed (M)".
        case contextLengthExceeded
        /// Any other 4xx: the request itself is wrong.
        case invalidRequest
        /// A 200 whose body is not a Gemini answer, or a stream that broke off or held an event that
        /// is not JSON.
        case truncated
    }

    public var kind: Kind
    /// The HTTP status (for an in-stream error, the body's `code`).
    public var status: Int
    /// The canonical code (`RESOURCE_EXHAUSTED`), if given.
    public var code: String?
    /// The `ErrorInfo.reason` (`API_KEY_INVALID`), if given.
    public var reason: String?
    public var message: String

    public var description: String {
        "\(status) \(code ?? "")\(reason.map { " (\($0))" } ?? ""): \(message)"
    }

    /// Classifies an error response.
    public static func classify(status: Int, body: [UInt8]) -> GeminiError {
        let value = try? JSONParser.parse(body)
        return classify(status: status, error: value.flatMap(errorObject))
    }

    /// The `error` object of a body, whether bare or array-wrapped; nil when there is none.
    public static func errorObject(_ value: JSONValue) -> JSONValue? {
        switch value {
        case .object(let o):
            if let e = o["error"], case .object = e { return e }
            return nil
        case .array(let a):
            for item in a { if let e = errorObject(item) { return e } }
            return nil
        default:
            return nil
        }
    }

    /// Classifies an `error` object; `status` is the HTTP status (0 inside a stream: the body's `code` is used).
    public static func classify(status: Int, error: JSONValue?) -> GeminiError {
        let code = error?["status"]?.stringValue
        let message = error?["message"]?.stringValue ?? "error \(status)"
        let httpStatus = status >= 400 ? status : (error?["code"]?.intValue ?? 500)
        var reason: String?
        var retryDelay: Duration?
        for detail in error?["details"]?.arrayValue ?? [] {
            let type = detail["@type"]?.stringValue ?? ""
            if type.hasSuffix("google.rpc.ErrorInfo"), let r = detail["reason"]?.stringValue { reason = reason ?? r }
            if type.hasSuffix("google.rpc.RetryInfo"), let d = detail["retryDelay"]?.stringValue {
                retryDelay = protobufDuration(d)
            }
        }
        let lower = message.lowercased()
        let kind: Kind
        if reason == "API_KEY_INVALID" || reason == "API_KEY_EXPIRED" || code == "UNAUTHENTICATED" || code == "PERMISSION_DENIED"
            || code == "FAILED_PRECONDITION" || httpStatus == 401 || httpStatus == 403
        {
            kind = .misconfigured
        } else if code == "RESOURCE_EXHAUSTED" || httpStatus == 429 {
            kind = .throttled(retryAfter: retryDelay)
        } else if code == "NOT_FOUND" || httpStatus == 404 {
            kind = .modelNotFound
        } else if ["UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "UNKNOWN", "ABORTED"].contains(code) || httpStatus >= 500 {
            kind = .unavailable
        } else if lower.contains("input token count") && lower.contains("exceeds") || lower.contains("exceeds the maximum number of tokens") {
            kind = .contextLengthExceeded
        } else {
            kind = .invalidRequest
        }
        return GeminiError(kind: kind, status: httpStatus, code: code, reason: reason, message: message)
    }

    /// A protobuf JSON duration: decimal seconds followed by `s` (`"37s"`, `"1.5s"`).
    static func protobufDuration(_ text: String) -> Duration? {
        guard text.hasSuffix("s"), let seconds = Double(text.dropLast()), seconds >= 0, seconds < 1e9 else { return nil }
        return .milliseconds(Int64((seconds * 1000).rounded(.up)))
    }
}
