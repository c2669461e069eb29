import AIGatewayAPI

/// Error bodies in the OpenAI shape (`{"error": {message, type, param, code}}`), which every
/// OpenAI SDK parses and raises.
enum OpenAIError {
    static func body(message: String, type: String, code: String, requestID: String, extra: [String: JSONValue] = [:]) -> [UInt8] {
        var error: [String: JSONValue] = [
            "message": .string(message), "type": .string(type), "code": .string(code), "param": .null,
        ]
        for (k, v) in extra { error[k] = v }
        return Array(JSONValue.object(["error": .object(error), "request_id": .string(requestID)]).canonicalJSON().utf8)
    }
}
