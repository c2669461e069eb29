import AIGatewayAPI

/// Bedrock's errors in failover terms: a non-2xx answer (`x-amzn-ErrorType`, `{"message":…}`)
/// or an exception frame inside a 200 ConverseStream.
public enum BedrockErrors {
    /// The error type without its namespace or URL: `ThrottlingException:http://…` and
    /// `com.amazon.coral#ThrottlingException` are both `ThrottlingException`.
    public static func errorType(_ raw: String) -> String {
        var s = Substring(raw)
        if let colon = s.firstIndex(of: ":") { s = s[..<colon] }
        if let hash = s.lastIndex(of: "#") { s = s[s.index(after: hash)...] }
        return String(s).trimmingSpaces
    }

    /// The message of an error body (`message` or `Message`).
    public static func message(_ body: [UInt8]) -> String {
        guard let v = try? JSONParser.parse(body) else { return "" }
        return v["message"]?.stringValue ?? v["Message"]?.stringValue ?? ""
    }

    /// Classifies by the error type (any casing: the stream's frames say `throttlingException`),
    /// its message and the status.
    public static func classify(type rawType: String?, message: String, status: Int, retryAfter: Duration? = nil) -> ProviderFailure {
        let type = rawType.map(errorType)?.lowercased() ?? ""
        let text = message.lowercased()
        switch type {
        case "throttlingexception", "modelnotreadyexception":
            return .rateLimited(status: status, retryAfter: retryAfter)
        case "servicequotaexceededexception":
            return .quotaExhausted(status: status)
        case "serviceunavailableexception", "modeltimeoutexception", "internalserverexception", "internalfailure", "modelerrorexception",
            "modelstreamerrorexception":
            return .overloaded(status: status)
        case "accessdeniedexception", "invalidsignatureexception", "unrecognizedclientexception", "expiredtokenexception",
            "incompletesignatureexception", "missingauthenticationtokenexception", "signaturedoesnotmatch", "invalidclienttokenid":
            return .misconfigured(status: status)
        case "resourcenotfoundexception":
            return .misconfigured(status: status)
        case "validationexception":
            if text.contains("too long") || text.contains("too many total text bytes") || text.contains("context window")
                || text.contains("maximum context length") || text.contains("exceeds the maximum") {
                return .contextLengthExceeded(status: status)
            }
            if text.contains("model identifier is invalid") || text.contains("on-demand throughput") || text.contains("inference profile") {
                return .misconfigured(status: status)
            }
            if text.contains("prefill") || text.contains("final assistant content") {
                return .prefillRejected(status: status)
            }
            return .invalidRequest(status: status)
        default:
            return .byStatus(status, retryAfter: retryAfter)
        }
    }

    /// The HTTP status an exception frame stands for (the frame has none of its own).
    public static func streamStatus(_ exceptionType: String) -> Int {
        switch errorType(exceptionType).lowercased() {
        case "throttlingexception": 429
        case "serviceunavailableexception": 503
        case "modeltimeoutexception": 408
        case "modelstreamerrorexception": 424
        case "validationexception": 400
        default: 500
        }
    }

    /// A complete non-2xx answer.
    public static func classify(_ response: ProviderResponse) -> ProviderFailure {
        let type = response.header("x-amzn-ErrorType")
            ?? (try? JSONParser.parse(response.body))?["__type"]?.stringValue
        var retryAfter: Duration?
        if let r = response.header("retry-after"), let s = Double(r.trimmingSpaces), s >= 0 {
            retryAfter = .milliseconds(Int64((s * 1000).rounded(.up)))
        }
        return classify(type: type, message: message(response.body), status: response.status, retryAfter: retryAfter)
    }

    /// Bedrock's error in OpenAI's shape, for the client.
    public static func openAIErrorBody(_ response: ProviderResponse) -> [UInt8] {
        let type = errorType(response.header("x-amzn-ErrorType") ?? "")
        var msg = message(response.body)
        if msg.isEmpty { msg = "Bedrock answered \(response.status)" }
        let failure = classify(response)
        let code: String
        switch failure {
        case .contextLengthExceeded: code = "context_length_exceeded"
        case .contentFiltered: code = "content_filter"
        case .rateLimited: code = "rate_limit_exceeded"
        default: code = type.isEmpty ? "bedrock_error" : type
        }
        let openAIType = response.status == 429 ? "rate_limit_error" : response.status >= 500 ? "server_error" : "invalid_request_error"
        return Array("{\"error\":{\"message\":\(JSONValue.quoted(msg)),\"type\":\"\(openAIType)\",\"param\":null,\"code\":\(JSONValue.quoted(code))}}".utf8)
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
