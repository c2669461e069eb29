import AIGatewayAPI
@testable import AIGatewayProviders

/// `AnthropicAdapter.translateResponse` as it was before the answer was read with `JSONScanner`
/// (a `JSONCursor` pass building `String`s), kept verbatim as the reference the differential test
/// compares the current translation with, byte for byte.
enum AnthropicCompletionReference {
    static func finishReason(_ stop: String?) -> String { AnthropicAdapter.finishReason(stop) }
    static func failure(forType type: String?, message: String, status: Int?) -> ProviderFailure {
        AnthropicAdapter.failure(forType: type, message: message, status: status)
    }

    static func translateResponse(_ response: ProviderResponse, context: TranslationContext) -> ResponseTranslation {
        guard let v = try? Answer(response.body) else { return .failed(.malformedResponse) }
        if v.type == "error" { return .failed(Self.failure(forType: v.errorType, message: v.errorMessage ?? "", status: nil)) }
        guard v.hasContent else { return .failed(.malformedResponse) }
        let usage = v.usage.tokenUsage
        var s: [UInt8] = []
        s.reserveCapacity(response.body.count + 256)
        JSONBytes.append("{\"id\":", to: &s)
        JSONBytes.appendString(v.id ?? context.fallbackID, to: &s)
        JSONBytes.append(",\"object\":\"chat.completion\",\"created\":", to: &s)
        JSONBytes.appendInt(context.created, to: &s)
        JSONBytes.append(",\"model\":", to: &s)
        JSONBytes.appendString(v.model ?? context.model, to: &s)
        JSONBytes.append(",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":", to: &s)
        if v.text.isEmpty && !v.calls.isEmpty { JSONBytes.append("null", to: &s) } else { JSONBytes.appendString(v.text, to: &s) }
        if !v.reasoning.isEmpty {
            JSONBytes.append(",\"reasoning_content\":", to: &s)
            JSONBytes.appendString(v.reasoning, to: &s)
        }
        if !v.calls.isEmpty {
            JSONBytes.append(",\"tool_calls\":[", to: &s)
            for (k, call) in v.calls.enumerated() {
                if k > 0 { s.append(UInt8(ascii: ",")) }
                JSONBytes.append("{\"id\":", to: &s)
                JSONBytes.appendString(call.id, to: &s)
                JSONBytes.append(",\"type\":\"function\",\"function\":{\"name\":", to: &s)
                JSONBytes.appendString(call.name, to: &s)
                JSONBytes.append(",\"arguments\":", to: &s)
                JSONBytes.appendString(call.input.canonicalJSON(), to: &s)
                JSONBytes.append("}}", to: &s)
            }
            s.append(UInt8(ascii: "]"))
        }
        JSONBytes.append(",\"refusal\":null},\"logprobs\":null,\"finish_reason\":", to: &s)
        JSONBytes.appendString(Self.finishReason(v.stopReason), to: &s)
        s.append(UInt8(ascii: "}"))
        s.append(UInt8(ascii: "]"))
        if let usage {
            JSONBytes.append(",\"usage\":", to: &s)
            JSONBytes.appendUsage(usage, to: &s)
        }
        s.append(UInt8(ascii: "}"))
        return .translated(body: s, usage: usage)
    }

    /// What a complete Messages answer says, read in one pass over its bytes.
    struct Answer {
        var type: String?
        var id: String?
        var model: String?
        var stopReason: String?
        var usage = UsageCounts()
        var errorType: String?
        var errorMessage: String?
        /// `content` is an array (an answer has one, an error has none).
        var hasContent = false
        var text = ""
        var reasoning = ""
        var calls: [(id: String, name: String, input: JSONValue)] = []

        private init() {}

        init(_ bytes: [UInt8]) throws(JSONCursor.Failure) {
            self = try JSONCursor.read(bytes) { (c: inout JSONCursor) throws(JSONCursor.Failure) -> Answer in
                var a = Answer()
                try c.enterObject()
                while let k = try c.nextKey() {
                    if c.key(k, is: "type") {
                        a.type = try c.stringIfAny()
                    } else if c.key(k, is: "id") {
                        a.id = try c.stringIfAny()
                    } else if c.key(k, is: "model") {
                        a.model = try c.stringIfAny()
                    } else if c.key(k, is: "stop_reason") {
                        a.stopReason = try c.stringIfAny()
                    } else if c.key(k, is: "usage") {
                        a.usage = try AnthropicAdapter.usageCounts(&c)
                    } else if c.key(k, is: "content") {
                        (a.hasContent, a.text, a.reasoning, a.calls) = (c.peek() == UInt8(ascii: "["), "", "", [])
                        guard a.hasContent else {
                            try c.skipValue()
                            continue
                        }
                        try c.enterArray()
                        while try c.nextElement() { try a.block(&c) }
                    } else if c.key(k, is: "error") {
                        try JSONCursor.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                            if c.key(k, is: "type") {
                                a.errorType = try c.stringIfAny()
                            } else if c.key(k, is: "message") {
                                a.errorMessage = try c.stringIfAny()
                            } else {
                                try c.skipValue()
                            }
                        }
                    } else {
                        try c.skipValue()
                    }
                }
                try c.end()
                return a
            }
        }

        /// One content block: its text, thinking or tool call added.
        private mutating func block(_ c: inout JSONCursor) throws(JSONCursor.Failure) {
            var type: String?
            var text: String?
            var thinking: String?
            var id: String?
            var name: String?
            var input: JSONValue?
            try JSONCursor.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                if c.key(k, is: "type") {
                    type = try c.stringIfAny()
                } else if c.key(k, is: "text") {
                    text = try c.stringIfAny()
                } else if c.key(k, is: "thinking") {
                    thinking = try c.stringIfAny()
                } else if c.key(k, is: "id") {
                    id = try c.stringIfAny()
                } else if c.key(k, is: "name") {
                    name = try c.stringIfAny()
                } else if c.key(k, is: "input") {
                    input = try c.value()
                } else {
                    try c.skipValue()
                }
            }
            switch type {
            case "text": self.text += text ?? ""
            case "thinking": reasoning += thinking ?? ""
            case "tool_use": calls.append((id ?? "", name ?? "", input ?? .object([:])))
            default: break
            }
        }
    }
}
