import AIGatewayAPI

/// What a provider's 4xx error body says, in the terms failover cares about.
public enum ProviderErrorKind: String, Sendable, Hashable {
    /// The prompt is longer than the model's window: another model may take it.
    case contextLengthExceeded = "context_length_exceeded"
    /// A content-policy rejection: the same content is rejected anywhere.
    case contentFiltered = "content_filter"
    /// The entry's model does not exist for this key.
    case modelNotFound = "model_not_found"
    /// The provider says the assistant prefill is not supported.
    case prefillUnsupported = "prefill_unsupported"
    case other
}

public enum ProviderErrors {
    /// The `error.code` of an OpenAI-shaped error body, lowercased.
    public static func code(of body: [UInt8]) -> String? {
        guard let value = try? JSONParser.parse(body) else { return nil }
        return (value["error"] ?? value)["code"]?.stringValue?.lowercased()
    }

    /// Classifies an error body (OpenAI and Azure OpenAI shapes).
    public static func classify(status: Int, body: [UInt8]) -> ProviderErrorKind {
        guard let value = try? JSONParser.parse(body) else { return .other }
        let error = value["error"] ?? value
        let code = error["code"]?.stringValue?.lowercased() ?? ""
        let type = error["type"]?.stringValue?.lowercased() ?? ""
        let message = error["message"]?.stringValue?.lowercased() ?? ""
        let inner = error["innererror"]?["code"]?.stringValue?.lowercased() ?? ""
        if code == "context_length_exceeded" || type == "context_length_exceeded"
            || message.contains("maximum context length") || message.contains("context window") {
            return .contextLengthExceeded
        }
        if code == "content_filter" || code == "content_policy_violation" || inner == "responsibleaipolicyviolation"
            || message.contains("content management policy") || message.contains("content policy") {
            return .contentFiltered
        }
        if code == "model_not_found" || code == "deploymentnotfound" || (status == 404 && message.contains("model")) {
            return .modelNotFound
        }
        if message.contains("prefill") {
            return .prefillUnsupported
        }
        return .other
    }
}
