import AIGatewayAPI

/// A complete Gemini `GenerateContentResponse` rewritten as an OpenAI `chat.completion`.
///
/// - `id`: `responseId`, else the id the caller made; `model`: `modelVersion`, else the request's.
/// - Each candidate is one choice (`index` kept): text parts joined, thought parts as
///   `reasoning_content` (as DeepSeek and the Anthropic translation do),
///   `functionCall` parts → `tool_calls` (`id`: the part's own id, else `call_<response id>_<k>`;
///   a `thoughtSignature` rides along as `<id>__thought__<signature>` so the next turn can return
///   it), arguments = the JSON of `args`.
/// - `finish_reason` per `GeminiFinish`; no candidate and a `promptFeedback.blockReason` is one
///   empty choice with `content_filter` (Gemini answers such a block with HTTP 200).
/// - `usage` per `GeminiUsage`.
public enum GeminiResponse {
    /// Translates a 200 body. Throws the error a 200 body may carry (Vertex's array-wrapped errors),
    /// or `truncated` for a body that is not a response at all.
    public static func chatCompletion(_ body: [UInt8], fallbackID: String, model: String, created: Int) throws(GeminiError) -> JSONValue {
        guard let value = try? JSONParser.parse(body) else {
            throw GeminiError(kind: .truncated, status: 502, code: nil, reason: nil, message: "Gemini answered with a body that is not JSON")
        }
        if let error = GeminiError.errorObject(value) { throw GeminiError.classify(status: 0, error: error) }
        // `:generateContent` answers one object; accept a one-element array as well.
        let response = value.arrayValue?.first ?? value
        guard case .object = response else {
            throw GeminiError(kind: .truncated, status: 502, code: nil, reason: nil, message: "Gemini answered with \(value.typeName), not a response object")
        }
        let id = response["responseId"]?.stringValue ?? fallbackID
        var choices: [JSONValue] = []
        for (k, candidate) in (response["candidates"]?.arrayValue ?? []).enumerated() {
            let parts = GeminiParts(candidate["content"]?["parts"], responseID: id, firstToolIndex: 0)
            var message: [String: JSONValue] = [
                "role": .string("assistant"),
                "content": parts.text.isEmpty && !parts.toolCalls.isEmpty ? .null : .string(parts.text),
                "refusal": .null,
            ]
            if !parts.toolCalls.isEmpty {
                message["tool_calls"] = .array(parts.toolCalls.map { $0.openAI })
            }
            if !parts.reasoning.isEmpty { message["reasoning_content"] = .string(parts.reasoning) }
            let finish = GeminiFinish.openAI(candidate["finishReason"]?.stringValue, sawToolCall: !parts.toolCalls.isEmpty)
            choices.append(.object([
                "index": .int(candidate["index"]?.intValue ?? k), "message": .object(message), "logprobs": .null,
                "finish_reason": .string(finish),
            ]))
        }
        if choices.isEmpty {
            // A blocked prompt (promptFeedback.blockReason) or an empty answer.
            let blocked = response["promptFeedback"]?["blockReason"] != nil
            choices.append(.object([
                "index": .int(0),
                "message": .object(["role": .string("assistant"), "content": .string(""), "refusal": .null]),
                "logprobs": .null,
                "finish_reason": .string(blocked ? "content_filter" : "stop"),
            ]))
        }
        var out: [String: JSONValue] = [
            "id": .string(id), "object": .string("chat.completion"), "created": .int(created),
            "model": .string(response["modelVersion"]?.stringValue ?? model), "choices": .array(choices),
        ]
        if let usage = GeminiUsage(response["usageMetadata"]) { out["usage"] = usage.openAI }
        return .object(out)
    }
}

/// A tool call found in a Gemini answer.
struct GeminiToolCall: Hashable {
    var index: Int
    var id: String
    var name: String
    var arguments: String

    var openAI: JSONValue {
        .object([
            "id": .string(id), "type": .string("function"),
            "function": .object(["name": .string(name), "arguments": .string(arguments)]),
        ])
    }
}

/// The text and the tool calls of one candidate's parts.
struct GeminiParts {
    var text = ""
    /// The text of thought parts (a thinking model's summaries).
    var reasoning = ""
    var toolCalls: [GeminiToolCall] = []

    init(_ parts: JSONValue?, responseID: String, firstToolIndex: Int) {
        for part in parts?.arrayValue ?? [] {
            if part["thought"] == .bool(true) {
                reasoning += part["text"]?.stringValue ?? ""
                continue
            }
            if let t = part["text"]?.stringValue {
                text += t
            } else if let call = part["functionCall"], let name = call["name"]?.stringValue {
                let index = firstToolIndex + toolCalls.count
                var id = call["id"]?.stringValue ?? "call_\(responseID)_\(index)"
                if let signature = part["thoughtSignature"]?.stringValue { id += GeminiRequest.thoughtSeparator + signature }
                let args = call["args"] ?? .object([:])
                toolCalls.append(GeminiToolCall(index: index, id: id, name: name, arguments: args == .null ? "{}" : args.canonicalJSON()))
            }
        }
    }
}

/// Gemini's `finishReason` in OpenAI's terms.
public enum GeminiFinish {
    /// Reasons that mean the answer was blocked or cut for policy.
    static let filtered: Set<String> = [
        "SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS",
    ]

    /// `STOP` (and unknown or unspecified reasons) is `stop`, or `tool_calls` when the answer holds
    /// a function call (Gemini says STOP then too); `MAX_TOKENS` is `length`; the safety family is
    /// `content_filter`.
    public static func openAI(_ reason: String?, sawToolCall: Bool) -> String {
        switch reason {
        case "MAX_TOKENS": return "length"
        case let r? where filtered.contains(r): return "content_filter"
        default: return sawToolCall ? "tool_calls" : "stop"
        }
    }
}

/// `usageMetadata` in OpenAI's terms: prompt = `promptTokenCount`, completion =
/// `candidatesTokenCount` + `thoughtsTokenCount`, total = `totalTokenCount` (or their sum);
/// `cachedContentTokenCount` → `prompt_tokens_details.cached_tokens`, `thoughtsTokenCount` →
/// `completion_tokens_details.reasoning_tokens`.
public struct GeminiUsage: Sendable, Hashable {
    public var prompt: Int
    public var completion: Int
    public var total: Int
    public var cached: Int?
    public var reasoning: Int?

    public init?(_ metadata: JSONValue?) {
        guard let m = metadata, case .object = m else { return nil }
        prompt = m["promptTokenCount"]?.intValue ?? 0
        let thoughts = m["thoughtsTokenCount"]?.intValue
        completion = (m["candidatesTokenCount"]?.intValue ?? 0) + (thoughts ?? 0)
        total = m["totalTokenCount"]?.intValue ?? prompt + completion
        cached = m["cachedContentTokenCount"]?.intValue
        reasoning = thoughts
    }

    public var openAI: JSONValue {
        var u: [String: JSONValue] = [
            "prompt_tokens": .int(prompt), "completion_tokens": .int(completion), "total_tokens": .int(total),
        ]
        if let cached { u["prompt_tokens_details"] = .object(["cached_tokens": .int(cached)]) }
        if let reasoning { u["completion_tokens_details"] = .object(["reasoning_tokens": .int(reasoning)]) }
        return .object(u)
    }
}
