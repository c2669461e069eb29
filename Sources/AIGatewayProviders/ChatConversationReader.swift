import AIGatewayAPI

extension ChatConversation {
    /// Reads the request straight from its bytes in one pass (`JSONCursor`), without the
    /// `JSONValue` tree `init(parsing:)` reads: what the translating adapters ask of every request.
    ///
    /// Nil when the bytes are anything but a request `init(parsing:)` accepts, or one of the rare
    /// forms this reader leaves to it (an earlier duplicate of a member that is invalid where the
    /// last one is valid): the caller then parses the value, so a bad request gets exactly the
    /// error `init(parsing:)` words. Where this reader reads, it builds the same value (the
    /// differential test compares the two on many requests).
    public init?(reading bytes: [UInt8]) {
        guard let read = try? JSONCursor.read(bytes, { (c: inout JSONCursor) throws(JSONCursor.Failure) in try ConversationReader.conversation(&c) }) else {
            return nil
        }
        self = read
    }
}

/// The reader behind `ChatConversation(reading:)`. Every function reads one value at the cursor
/// and throws at anything `ChatConversation(parsing:)` would refuse; the thrown failure is only
/// a signal to fall back, never shown. A member sent twice counts once, the last time (as in the
/// parsed object): each member's reader assigns its whole result.
enum ConversationReader {
    typealias Failure = JSONCursor.Failure

    static func conversation(_ c: inout JSONCursor) throws(Failure) -> ChatConversation {
        var messages: [ChatMessage]?
        var tools: [ChatTool] = []
        var toolChoice: ToolChoice?
        var parallelToolCalls: Bool?
        var maxCompletion: Int?
        var legacyMax: Int?
        var temperature: Double?
        var topP: Double?
        var stop: [String] = []
        var n: Int?
        var logprobs: Bool?
        var topLogprobs: Int?
        var responseFormat: ResponseFormat?
        var user: String?
        var reasoningEffort: String?
        // Bit k: `ChatConversation.tuningNames[k]` is set (and not null).
        var tuning: UInt32 = 0
        try c.enterObject()
        while let k = try c.nextKey() {
            if c.key(k, is: "messages") {
                messages = try elements(&c, message)
            } else if c.key(k, is: "model") || c.key(k, is: "stream") || c.key(k, is: "stream_options") {
                // Read by `ChatRequest`; skipped here before the longer search below.
                try c.skipValue()
            } else if c.key(k, is: "tools") {
                tools = try c.null() ? [] : try elements(&c, tool)
            } else if c.key(k, is: "tool_choice") {
                toolChoice = try self.toolChoice(&c)
            } else if c.key(k, is: "parallel_tool_calls") {
                parallelToolCalls = try bool(&c)
            } else if c.key(k, is: "max_completion_tokens") {
                maxCompletion = try int(&c)
            } else if c.key(k, is: "max_tokens") {
                legacyMax = try int(&c)
            } else if c.key(k, is: "temperature") {
                temperature = try number(&c)
            } else if c.key(k, is: "top_p") {
                topP = try number(&c)
            } else if c.key(k, is: "stop") {
                stop = try self.stop(&c)
            } else if c.key(k, is: "n") {
                n = try int(&c)
            } else if c.key(k, is: "logprobs") {
                logprobs = try bool(&c)
            } else if c.key(k, is: "top_logprobs") {
                topLogprobs = try int(&c)
            } else if c.key(k, is: "response_format") {
                responseFormat = try self.responseFormat(&c)
            } else if c.key(k, is: "user") {
                user = try c.stringIfAny()
            } else if c.key(k, is: "reasoning_effort") {
                reasoningEffort = try c.stringIfAny()
            } else if let bit = ChatConversation.tuningNames.firstIndex(where: { c.key(k, is: $0) }) {
                if try c.null() {
                    tuning &= ~(1 << bit)
                } else {
                    try c.skipValue()
                    tuning |= 1 << bit
                }
            } else {
                try c.skipValue()
            }
        }
        try c.end()
        guard let messages else { throw decline(c) }
        let maxTokens = maxCompletion ?? legacyMax
        if let m = maxTokens, m < 1 { throw decline(c) }
        var tuningParameters: [String] = []
        if tuning != 0 {
            for (bit, name) in ChatConversation.tuningNames.enumerated() where tuning & (1 << bit) != 0 {
                tuningParameters.append(String(describing: name))
            }
        }
        return ChatConversation(
            messages: messages, tools: tools, toolChoice: toolChoice, parallelToolCalls: parallelToolCalls, maxTokens: maxTokens,
            temperature: temperature, topP: topP, stop: stop, n: n, logprobs: logprobs ?? false, topLogprobs: topLogprobs,
            responseFormat: responseFormat, user: user, reasoningEffort: reasoningEffort, tuningParameters: tuningParameters)
    }

    /// The signal to leave the request to `ChatConversation(parsing:)`.
    static func decline(_ c: JSONCursor) -> Failure { c.fail("left to ChatConversation(parsing:)") }

    /// The elements of the array at the cursor, each read by `element` (anything else declines).
    static func elements<T>(_ c: inout JSONCursor, _ element: (inout JSONCursor) throws(Failure) -> T) throws(Failure) -> [T] {
        try c.enterArray()
        var out: [T] = []
        while try c.nextElement() { out.append(try element(&c)) }
        return out
    }

    // MARK: Messages

    static func message(_ c: inout JSONCursor) throws(Failure) -> ChatMessage {
        try c.enterObject()
        var role: ChatMessage.Role?
        var content: [ContentPart] = []
        var calls: [ToolCall] = []
        var toolCallID: String?
        var name: String?
        while let k = try c.nextKey() {
            if c.key(k, is: "role") {
                role = try self.role(&c)
            } else if c.key(k, is: "content") {
                content = try self.content(&c)
            } else if c.key(k, is: "tool_calls") {
                calls = try c.null() ? [] : try elements(&c, toolCall)
            } else if c.key(k, is: "tool_call_id") {
                toolCallID = try c.stringIfAny()
            } else if c.key(k, is: "name") {
                name = try c.stringIfAny()
            } else {
                try c.skipValue()
            }
        }
        guard let role else { throw decline(c) }
        // Only an assistant's tool calls and a tool's call id are read (the role may come last).
        if role != .assistant { calls = [] }
        if role == .tool {
            guard toolCallID != nil else { throw decline(c) }
        } else {
            toolCallID = nil
        }
        return ChatMessage(role: role, content: content, toolCalls: calls, toolCallID: toolCallID, name: name)
    }

    static let roles: [(name: StaticString, role: ChatMessage.Role)] = [
        ("user", .user), ("assistant", .assistant), ("system", .system), ("tool", .tool), ("developer", .developer),
    ]

    /// A message's role, its bytes compared with the names (no string built for the common case).
    static func role(_ c: inout JSONCursor) throws(Failure) -> ChatMessage.Role {
        guard c.peek() == UInt8(ascii: "\"") else { throw decline(c) }
        let span = try c.skipValue()
        let contents = (span.lowerBound + 1)..<(span.upperBound - 1)
        let escaped = c.bytes[contents].contains(UInt8(ascii: "\\"))
        for known in roles where JSONLexer.string(c.bytes, contents: contents, escaped: escaped, is: known.name) {
            return known.role
        }
        // As `Role(rawValue:)` compares (no other text equals a name; this keeps it exact).
        guard let known = ChatMessage.Role(rawValue: JSONLexer.string(c.bytes, contents: contents, escaped: escaped)) else { throw decline(c) }
        return known
    }

    static func content(_ c: inout JSONCursor) throws(Failure) -> [ContentPart] {
        if try c.null() { return [] }
        switch c.peek() {
        case UInt8(ascii: "\""): return [.text(try c.string())]
        case UInt8(ascii: "["): return try elements(&c, part)
        default: throw decline(c)
        }
    }

    static func part(_ c: inout JSONCursor) throws(Failure) -> ContentPart {
        guard c.peek() == UInt8(ascii: "{") else { throw decline(c) }
        let start = c.offset
        try c.enterObject()
        var type: String?
        var text: String?
        var url: String?
        var detail: String?
        var refusal: String?
        while let k = try c.nextKey() {
            if c.key(k, is: "type") {
                type = try c.stringIfAny()
            } else if c.key(k, is: "text") {
                text = try c.stringIfAny()
            } else if c.key(k, is: "image_url") {
                // `{"url":...,"detail":...}`, or the URL alone.
                url = nil
                detail = nil
                if c.peek() == UInt8(ascii: "{") {
                    try c.enterObject()
                    while let k = try c.nextKey() {
                        if c.key(k, is: "url") {
                            url = try c.stringIfAny()
                        } else if c.key(k, is: "detail") {
                            detail = try c.stringIfAny()
                        } else {
                            try c.skipValue()
                        }
                    }
                } else {
                    url = try c.stringIfAny()
                }
            } else if c.key(k, is: "refusal") {
                refusal = try c.stringIfAny()
            } else {
                try c.skipValue()
            }
        }
        guard let type else { throw decline(c) }
        switch type {
        case "text":
            guard let text else { throw decline(c) }
            return .text(text)
        case "image_url":
            guard let url else { throw decline(c) }
            return .image(url: url, detail: detail)
        case "refusal":
            return .text(refusal ?? "")
        default:
            // Kept whole, as sent.
            guard let whole = try? JSONParser.parse(UnsafeRawBufferPointer(rebasing: c.bytes[start..<c.offset])) else { throw decline(c) }
            return .other(type: type, value: whole)
        }
    }

    static func toolCall(_ c: inout JSONCursor) throws(Failure) -> ToolCall {
        guard c.peek() == UInt8(ascii: "{") else { throw decline(c) }
        try c.enterObject()
        var id: String?
        var name: String?
        var arguments: String?
        while let k = try c.nextKey() {
            if c.key(k, is: "id") {
                id = try c.stringIfAny()
            } else if c.key(k, is: "function") {
                name = nil
                arguments = nil
                try JSONCursor.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(Failure) in
                    if c.key(k, is: "name") {
                        name = try c.stringIfAny()
                    } else if c.key(k, is: "arguments") {
                        arguments = try c.stringIfAny()
                    } else {
                        try c.skipValue()
                    }
                }
            } else {
                try c.skipValue()
            }
        }
        guard let id, let name else { throw decline(c) }
        return ToolCall(id: id, name: name, arguments: arguments ?? "")
    }

    // MARK: Tools

    static func tool(_ c: inout JSONCursor) throws(Failure) -> ChatTool {
        guard c.peek() == UInt8(ascii: "{") else { throw decline(c) }
        try c.enterObject()
        var isFunction = true
        var function: ChatTool?
        while let k = try c.nextKey() {
            if c.key(k, is: "type") {
                // A `type` that is not a string counts as "function", as `init(parsing:)` has it.
                isFunction = try c.stringIfAny().map { $0 == "function" } ?? true
            } else if c.key(k, is: "function") {
                function = try self.function(&c)
            } else {
                try c.skipValue()
            }
        }
        guard isFunction, let function, !function.name.isEmpty else { throw decline(c) }
        return function
    }

    /// A tool's `function`: nil when it is not an object; its name empty when it has none.
    static func function(_ c: inout JSONCursor) throws(Failure) -> ChatTool? {
        guard c.peek() == UInt8(ascii: "{") else {
            try c.skipValue()
            return nil
        }
        var f = ChatTool(name: "", description: nil, parameters: nil, strict: nil)
        var named = false
        try c.enterObject()
        while let k = try c.nextKey() {
            if c.key(k, is: "name") {
                let name = try c.stringIfAny()
                named = name != nil
                f.name = name ?? ""
            } else if c.key(k, is: "description") {
                f.description = try c.stringIfAny()
            } else if c.key(k, is: "parameters") {
                if try c.null() {
                    f.parameters = nil
                } else {
                    guard c.peek() == UInt8(ascii: "{") else { throw decline(c) }
                    f.parameters = try c.value()
                }
            } else if c.key(k, is: "strict") {
                f.strict = try boolIfAny(&c)
            } else {
                try c.skipValue()
            }
        }
        guard named else { throw decline(c) }
        return f
    }

    static func toolChoice(_ c: inout JSONCursor) throws(Failure) -> ToolChoice? {
        if try c.null() { return nil }
        if c.peek() == UInt8(ascii: "\"") {
            switch try c.string() {
            case "none": return ToolChoice.none
            case "auto": return .auto
            case "required": return .required
            default: throw decline(c)
            }
        }
        // `{"type":"function","function":{"name":...}}`: only the name counts.
        guard c.peek() == UInt8(ascii: "{") else { throw decline(c) }
        var name: String?
        try c.enterObject()
        while let k = try c.nextKey() {
            if c.key(k, is: "function") {
                name = nil
                try JSONCursor.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(Failure) in
                    if c.key(k, is: "name") { name = try c.stringIfAny() } else { try c.skipValue() }
                }
            } else {
                try c.skipValue()
            }
        }
        guard let name else { throw decline(c) }
        return .function(name)
    }

    // MARK: Parameters

    static func stop(_ c: inout JSONCursor) throws(Failure) -> [String] {
        if try c.null() { return [] }
        switch c.peek() {
        case UInt8(ascii: "\""): return [try c.string()]
        case UInt8(ascii: "["): return try elements(&c) { (c: inout JSONCursor) throws(Failure) in try c.string() }
        default: throw decline(c)
        }
    }

    static func responseFormat(_ c: inout JSONCursor) throws(Failure) -> ResponseFormat? {
        if try c.null() { return nil }
        guard c.peek() == UInt8(ascii: "{") else { throw decline(c) }
        var type: String?
        var name: String?
        var schema: JSONValue?
        var strict: Bool?
        try c.enterObject()
        while let k = try c.nextKey() {
            if c.key(k, is: "type") {
                type = try c.stringIfAny()
            } else if c.key(k, is: "json_schema") {
                name = nil
                schema = nil
                strict = nil
                try JSONCursor.members(of: &c) { (c: inout JSONCursor, k: JSONCursor.Key) throws(Failure) in
                    if c.key(k, is: "name") {
                        name = try c.stringIfAny()
                    } else if c.key(k, is: "schema") {
                        schema = try c.value()
                    } else if c.key(k, is: "strict") {
                        strict = try boolIfAny(&c)
                    } else {
                        try c.skipValue()
                    }
                }
            } else {
                try c.skipValue()
            }
        }
        switch type {
        case "text": return .text
        case "json_object": return .jsonObject
        case "json_schema":
            guard let name else { throw decline(c) }
            return .jsonSchema(name: name, schema: schema ?? .object([:]), strict: strict)
        default: throw decline(c)
        }
    }

    /// A boolean or null; anything else declines.
    static func bool(_ c: inout JSONCursor) throws(Failure) -> Bool? {
        if try c.null() { return nil }
        guard let b = try boolIfAny(&c) else { throw decline(c) }
        return b
    }

    /// A boolean, else nil (the value skipped), as `JSONValue.boolValue` reads it.
    static func boolIfAny(_ c: inout JSONCursor) throws(Failure) -> Bool? {
        let first = c.peek()
        try c.skipValue()
        switch first {
        case UInt8(ascii: "t"): return true
        case UInt8(ascii: "f"): return false
        default: return nil
        }
    }

    /// An integer (as `JSONValue.intValue` reads one: `2.0` counts) or null; anything else declines.
    static func int(_ c: inout JSONCursor) throws(Failure) -> Int? {
        if try c.null() { return nil }
        guard let i = try c.intIfAny() else { throw decline(c) }
        return i
    }

    /// A number or null; anything else declines. An integer within `Int` converts from the
    /// integer, anything else from its text, as the parsed `.int` and `.double` do.
    static func number(_ c: inout JSONCursor) throws(Failure) -> Double? {
        if try c.null() { return nil }
        guard let first = c.peek(), first == UInt8(ascii: "-") || JSONLexer.isDigit(first) else { throw decline(c) }
        let span = try c.skipValue()
        var lex = JSONLexer(c.bytes, offset: span.lowerBound)
        guard let number = try? lex.numberSyntax() else { throw decline(c) }
        if number.isInteger, let i = JSONLexer.integer(c.bytes, number.range) { return Double(i) }
        guard let d = JSONLexer.double(c.bytes, number) else { throw decline(c) }
        return d
    }
}
