import AIGatewayAPI

extension BedrockConverse {
    /// The Converse body of a plain text chat request, written straight from the request's bytes
    /// in one pass: no `ChatConversation` built, copied and freed, and each message's text copied
    /// from the body as it is when it holds no escape (`JSONSpans`).
    ///
    /// Plain text: the messages are system, developer, user and assistant turns whose `content` is
    /// a string or null, with no tool calls; the members read besides are the token limit,
    /// `temperature` and `top_p`. Anything else (content parts, tools, `stop`, `n`, ...) or
    /// anything `ChatConversation(reading:)` would not read gives nil: the caller then takes the
    /// general path (`ChatRequest.conversation()`, then `request(_:guardrail:prefill:)`), which
    /// words the refusals. Where this writes, it writes exactly the general path's bytes (the
    /// differential test compares the two on many requests); such a request has no tool names,
    /// so no hints.
    static func textRequestBody(_ bytes: [UInt8], guardrail: BedrockProvider.Guardrail?, prefill: String?) -> [UInt8]? {
        try? JSONCursor.read(bytes) { (c: inout JSONCursor) throws(JSONCursor.Failure) in
            try TextRequestWriter.body(&c, guardrail: guardrail, prefill: prefill)
        }
    }
}

/// The reader behind `BedrockConverse.textRequestBody`: `ConversationReader`'s reading of the
/// members it accepts (the same checks, through the same functions), writing instead of building.
/// A thrown failure only means "take the general path".
private enum TextRequestWriter {
    typealias Failure = JSONCursor.Failure
    typealias Text = JSONScanner.Text

    static func body(_ c: inout JSONCursor, guardrail: BedrockProvider.Guardrail?, prefill: String?) throws(Failure) -> [UInt8] {
        // The turns are written as the messages are read; `inferenceConfig`, which comes first in
        // the body, may be sent after `messages`, so the turns go into a buffer of their own.
        var turns: [UInt8]?
        var system: [Text] = []
        var maxCompletion: Int?
        var legacyMax: Int?
        var temperature: Double?
        var topP: Double?
        try c.enterObject()
        while let k = try c.nextKey() {
            if c.key(k, is: "messages") {
                // A second `messages` would replace the first: left to the general path.
                guard turns == nil else { throw decline(c) }
                turns = try messages(&c, system: &system, prefill: prefill)
            } else if c.key(k, is: "model") || c.key(k, is: "stream") || c.key(k, is: "stream_options") {
                try c.skipValue()
            } else if c.key(k, is: "max_completion_tokens") {
                maxCompletion = try ConversationReader.int(&c)
            } else if c.key(k, is: "max_tokens") {
                legacyMax = try ConversationReader.int(&c)
            } else if c.key(k, is: "temperature") {
                temperature = try ConversationReader.number(&c)
            } else if c.key(k, is: "top_p") {
                topP = try ConversationReader.number(&c)
            } else if c.key(k, is: "n") {
                // One choice is what Converse gives; more is refused on the general path.
                if let n = try ConversationReader.int(&c), n > 1 { throw decline(c) }
            } else if c.key(k, is: "logprobs") {
                if try ConversationReader.bool(&c) == true { throw decline(c) }
            } else if c.key(k, is: "parallel_tool_calls") {
                // Checked as the conversation reads it; without tools, nothing to send.
                _ = try ConversationReader.bool(&c)
            } else if c.key(k, is: "tools") || c.key(k, is: "tool_choice") || c.key(k, is: "stop") || c.key(k, is: "top_logprobs")
                || c.key(k, is: "response_format")
            {
                // Null is as absent; anything else is the general path's.
                guard try c.null() else { throw decline(c) }
            } else {
                // `user`, `reasoning_effort` (strings if they are, not sent), the tuning-only
                // members and unknown ones: checked, not sent.
                try c.skipValue()
            }
        }
        try c.end()
        guard let turns else { throw decline(c) }
        let maxTokens = maxCompletion ?? legacyMax
        if let m = maxTokens, m < 1 { throw decline(c) }

        // As `BedrockConverse.request` writes it, members in sorted order.
        var s: [UInt8] = []
        s.reserveCapacity(turns.count + system.reduce(0) { $0 + $1.range.count + 16 } + 160)
        BedrockConverse.writeOpening(guardrail: guardrail, maxTokens: maxTokens, stop: [], temperature: temperature, topP: topP, to: &s)
        s.append(contentsOf: turns)
        s.append(UInt8(ascii: "]"))
        if !system.isEmpty {
            JSONBytes.append(",\"system\":[", to: &s)
            for (k, text) in system.enumerated() {
                if k > 0 { s.append(UInt8(ascii: ",")) }
                JSONBytes.append("{\"text\":", to: &s)
                JSONSpans(text).write(c.bytes, to: &s)
                s.append(UInt8(ascii: "}"))
            }
            s.append(UInt8(ascii: "]"))
        }
        s.append(UInt8(ascii: "}"))
        return s
    }

    static func decline(_ c: JSONCursor) -> Failure { ConversationReader.decline(c) }

    /// The `messages` array: each turn written (the continuation's prefill last), the system and
    /// developer texts collected for `system`.
    static func messages(_ c: inout JSONCursor, system: inout [Text], prefill: String?) throws(Failure) -> [UInt8] {
        var s: [UInt8] = []
        s.reserveCapacity(c.bytes.count - c.offset + 64)
        var turns = BedrockConverse.TurnWriter()
        try c.enterArray()
        while try c.nextElement() {
            let (role, text) = try message(&c)
            // A tool result is a block even when empty: the general path's.
            if role == .tool { throw decline(c) }
            // As `request` takes each role's text; an empty text adds no block.
            guard let text, !text.range.isEmpty else { continue }
            switch role {
            case .system, .developer:
                system.append(text)
            case .user, .assistant, .tool:
                turns.begin(role == .user ? .user : .assistant, to: &s)
                JSONBytes.append("{\"text\":", to: &s)
                JSONSpans(text).write(c.bytes, to: &s)
                s.append(UInt8(ascii: "}"))
            }
        }
        if let prefill, !prefill.isEmpty {
            turns.add(.assistant, .text(prefill), to: &s)
        }
        turns.close(to: &s)
        return s
    }

    /// One message: its role and its string content (nil: null or absent). Tool roles, tool calls
    /// and content parts decline.
    static func message(_ c: inout JSONCursor) throws(Failure) -> (ChatMessage.Role, Text?) {
        try c.enterObject()
        var role: ChatMessage.Role?
        var text: Text?
        while let k = try c.nextKey() {
            if c.key(k, is: "role") {
                role = try ConversationReader.role(&c)
            } else if c.key(k, is: "content") {
                if try c.null() {
                    text = nil
                } else {
                    guard c.peek() == UInt8(ascii: "\"") else { throw decline(c) }
                    let span = try c.skipValue()
                    let contents = (span.lowerBound + 1)..<(span.upperBound - 1)
                    text = Text(range: contents, escaped: c.bytes[contents].contains(UInt8(ascii: "\\")))
                }
            } else if c.key(k, is: "tool_calls") {
                // Null is no calls (for any role); calls go the general way.
                guard try c.null() else { throw decline(c) }
            } else {
                // `name`, `tool_call_id` (read as strings if they are, not sent) and unknown members.
                try c.skipValue()
            }
        }
        guard let role else { throw decline(c) }
        return (role, text)
    }
}
