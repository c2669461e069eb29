import AIGatewayAPI
@testable import AIGatewayProviders

/// `BedrockConverse.completion` as it was before the answer was read with `JSONScanner` (a
/// `JSONCursor` pass building `String`s), kept verbatim as the reference the differential test
/// compares the current translation with, byte for byte.
enum ConverseCompletionReference {
    static func completion(_ body: [UInt8], id: String, model: String, created: Int, names: BedrockToolNames) -> ResponseTranslation {
        guard let answer = try? Answer(body), answer.hasContent else { return .failed(.malformedResponse) }
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 256)
        JSONBytes.append("{\"id\":", to: &out)
        JSONBytes.appendString(id, to: &out)
        JSONBytes.append(",\"object\":\"chat.completion\",\"created\":", to: &out)
        JSONBytes.appendInt(created, to: &out)
        JSONBytes.append(",\"model\":", to: &out)
        JSONBytes.appendString(model, to: &out)
        // The message's members in sorted order, as before (content, reasoning_content, role, tool_calls).
        JSONBytes.append(",\"choices\":[{\"index\":0,\"message\":{\"content\":", to: &out)
        if answer.text.isEmpty && !answer.calls.isEmpty { JSONBytes.append("null", to: &out) } else { JSONBytes.appendString(answer.text, to: &out) }
        if !answer.reasoning.isEmpty {
            JSONBytes.append(",\"reasoning_content\":", to: &out)
            JSONBytes.appendString(answer.reasoning, to: &out)
        }
        JSONBytes.append(",\"role\":\"assistant\"", to: &out)
        if !answer.calls.isEmpty {
            JSONBytes.append(",\"tool_calls\":[", to: &out)
            for (k, call) in answer.calls.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                JSONBytes.append("{\"function\":{\"arguments\":", to: &out)
                JSONBytes.appendString(call.input.canonicalJSON(), to: &out)
                JSONBytes.append(",\"name\":", to: &out)
                JSONBytes.appendString(names.clientName(call.name), to: &out)
                JSONBytes.append("},\"id\":", to: &out)
                JSONBytes.appendString(call.id, to: &out)
                JSONBytes.append(",\"type\":\"function\"}", to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        JSONBytes.append("},\"logprobs\":null,\"finish_reason\":", to: &out)
        JSONBytes.appendString(BedrockConverse.finishReason(answer.stopReason), to: &out)
        JSONBytes.append("}]", to: &out)
        let u = answer.usage.tokenUsage
        if let u {
            JSONBytes.append(",\"usage\":", to: &out)
            JSONBytes.appendUsage(u, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return .translated(body: out, usage: u)
    }

    /// What a complete Converse answer says, read in one pass over its bytes.
    struct Answer {
        /// `output.message.content` is an array.
        var hasContent = false
        var text = ""
        var reasoning = ""
        var calls: [(id: String, name: String, input: JSONValue)] = []
        var stopReason: String?
        var usage = UsageCounts()

        private init() {}

        init(_ bytes: [UInt8]) throws(JSONCursor.Failure) {
            self = try JSONCursor.read(bytes) { (c: inout JSONCursor) throws(JSONCursor.Failure) -> Answer in
                var a = Answer()
                try c.enterObject()
                while let k = try c.nextKey() {
                    if c.key(k, is: "output") {
                        (a.hasContent, a.text, a.reasoning, a.calls) = (false, "", "", [])
                        try JSONCursor.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                            guard c.key(k, is: "message") else {
                                try c.skipValue()
                                return
                            }
                            (a.hasContent, a.text, a.reasoning, a.calls) = (false, "", "", [])
                            try JSONCursor.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                                guard c.key(k, is: "content") else {
                                    try c.skipValue()
                                    return
                                }
                                (a.hasContent, a.text, a.reasoning, a.calls) = (c.peek() == UInt8(ascii: "["), "", "", [])
                                guard a.hasContent else {
                                    try c.skipValue()
                                    return
                                }
                                try c.enterArray()
                                while try c.nextElement() { try a.block(&c) }
                            }
                        }
                    } else if c.key(k, is: "stopReason") {
                        a.stopReason = try c.stringIfAny()
                    } else if c.key(k, is: "usage") {
                        a.usage = try BedrockConverse.usageCounts(&c)
                    } else {
                        try c.skipValue()
                    }
                }
                try c.end()
                return a
            }
        }

        /// One content block: text, a tool use, or reasoning text (in that order of precedence).
        private mutating func block(_ c: inout JSONCursor) throws(JSONCursor.Failure) {
            var text: String?
            var use: (id: String?, name: String?, input: JSONValue?)?
            var reasoning: String?
            try JSONCursor.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                if c.key(k, is: "text") {
                    text = try c.stringIfAny()
                } else if c.key(k, is: "toolUse") {
                    use = nil
                    guard c.peek() == UInt8(ascii: "{") else {
                        try c.skipValue()
                        return
                    }
                    var u: (id: String?, name: String?, input: JSONValue?) = (nil, nil, nil)
                    try JSONCursor.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                        if c.key(k, is: "toolUseId") {
                            u.id = try c.stringIfAny()
                        } else if c.key(k, is: "name") {
                            u.name = try c.stringIfAny()
                        } else if c.key(k, is: "input") {
                            u.input = try c.value()
                        } else {
                            try c.skipValue()
                        }
                    }
                    use = u
                } else if c.key(k, is: "reasoningContent") {
                    reasoning = nil
                    try JSONCursor.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(JSONCursor.Failure) in
                        guard c.key(k, is: "reasoningText") else {
                            try c.skipValue()
                            return
                        }
                        reasoning = try BedrockStreamTranslator.Payload.member("text", of: &c)
                    }
                } else {
                    try c.skipValue()
                }
            }
            if let text {
                self.text += text
            } else if let use {
                calls.append((use.id ?? "", use.name ?? "", use.input ?? .object([:])))
            } else if let reasoning {
                self.reasoning += reasoning
            }
        }
    }
}
