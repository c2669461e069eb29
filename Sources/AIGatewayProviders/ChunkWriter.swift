import AIGatewayAPI

/// Writes the OpenAI chunks of a translated stream, keeping the promises the OpenAI API makes
/// whatever the provider: the role comes once, first; a tool call's `id` and `name` come once, in
/// its first delta, then only argument fragments; tool calls are numbered 0, 1, ... in the order
/// they start; `choices[].index` is 0; one finish chunk; the usage chunk (`choices: []`) is last.
/// Translators parse their provider's events and call these methods; each returns the event to emit.
public struct ChunkWriter: Sendable {
    public var id: String
    public var model: String
    public let created: Int
    /// Every chunk carries `"usage":null` when the client asked for the usage chunk (as OpenAI does).
    public let usageField: Bool
    private var roleSent: Bool
    public private(set) var toolCalls = 0
    public private(set) var finished = false

    /// - Parameter continuation: the answer continues one already streamed: no second role chunk.
    public init(id: String, model: String, created: Int, clientWantsUsage: Bool, continuation: Bool = false) {
        self.id = id
        self.model = model
        self.created = created
        self.usageField = clientWantsUsage
        self.roleSent = continuation
    }

    private func prefix() -> String {
        var s = "data: {\"id\":"
        JSONValue.writeString(id, into: &s)
        s += ",\"object\":\"chat.completion.chunk\",\"created\":\(created),\"model\":"
        JSONValue.writeString(model, into: &s)
        return s + ",\"choices\":["
    }

    private func chunk(delta: String, finishReason: String? = nil) -> [UInt8] {
        var s = prefix()
        s += "{\"index\":0,\"delta\":" + delta + ",\"logprobs\":null,\"finish_reason\":"
        if let finishReason { JSONValue.writeString(finishReason, into: &s) } else { s += "null" }
        s += "}]"
        if usageField { s += ",\"usage\":null" }
        s += "}\n\n"
        return Array(s.utf8)
    }

    /// The role chunk, once (nil after the first call, and in a continuation).
    public mutating func role() -> StreamEvent? {
        guard !roleSent else { return nil }
        roleSent = true
        return StreamEvent(.chunk(ChunkFacts(model: model)), bytes: chunk(delta: "{\"role\":\"assistant\",\"content\":\"\"}"))
    }

    /// Events before any part of the answer: the role if not sent yet.
    private mutating func lead() -> [StreamEvent] {
        role().map { [$0] } ?? []
    }

    /// Assistant text (nothing for an empty string).
    public mutating func text(_ text: String) -> [StreamEvent] {
        guard !text.isEmpty else { return [] }
        var events = lead()
        var delta = "{\"content\":"
        JSONValue.writeString(text, into: &delta)
        delta += "}"
        events.append(StreamEvent(.chunk(ChunkFacts(content: text, isToken: true, model: model)), bytes: chunk(delta: delta)))
        return events
    }

    /// Reasoning text, as DeepSeek-style `reasoning_content` (not part of the answer's content).
    public mutating func reasoning(_ text: String) -> [StreamEvent] {
        guard !text.isEmpty else { return [] }
        var events = lead()
        var delta = "{\"reasoning_content\":"
        JSONValue.writeString(text, into: &delta)
        delta += "}"
        events.append(StreamEvent(.chunk(ChunkFacts(isToken: true, model: model)), bytes: chunk(delta: delta)))
        return events
    }

    /// Starts a tool call: returns its OpenAI index and the events (id, type, name, empty arguments).
    public mutating func startToolCall(id: String, name: String, arguments: String = "") -> (index: Int, events: [StreamEvent]) {
        var events = lead()
        let index = toolCalls
        toolCalls += 1
        var delta = "{\"tool_calls\":[{\"index\":\(index),\"id\":"
        JSONValue.writeString(id, into: &delta)
        delta += ",\"type\":\"function\",\"function\":{\"name\":"
        JSONValue.writeString(name, into: &delta)
        delta += ",\"arguments\":"
        JSONValue.writeString(arguments, into: &delta)
        delta += "}}]}"
        events.append(StreamEvent(.chunk(ChunkFacts(isToken: true, model: model)), bytes: chunk(delta: delta)))
        return (index, events)
    }

    /// A fragment of a started tool call's arguments (nothing for an empty fragment).
    public mutating func toolArguments(index: Int, _ fragment: String) -> [StreamEvent] {
        guard !fragment.isEmpty else { return [] }
        var delta = "{\"tool_calls\":[{\"index\":\(index),\"function\":{\"arguments\":"
        JSONValue.writeString(fragment, into: &delta)
        delta += "}}]}"
        return [StreamEvent(.chunk(ChunkFacts(isToken: true, model: model)), bytes: chunk(delta: delta))]
    }

    /// The finish chunk (`delta: {}`), once; `reason` is OpenAI's (`stop`, `length`, `tool_calls`, `content_filter`).
    public mutating func finish(_ reason: String) -> [StreamEvent] {
        guard !finished else { return [] }
        finished = true
        var events = lead()
        events.append(StreamEvent(.chunk(ChunkFacts(isToken: true, finished: true, model: model)), bytes: chunk(delta: "{}", finishReason: reason)))
        return events
    }

    /// The usage chunk (`choices: []`). Always emitted: the relay drops it when the client did not ask.
    public func usage(_ usage: TokenUsage) -> StreamEvent {
        var s = prefix()
        s += "],\"usage\":" + usage.openAIJSON + "}\n\n"
        return StreamEvent(.chunk(ChunkFacts(usageOnly: true, usage: usage, model: model)), bytes: Array(s.utf8))
    }

    /// The end of the answer (the relay writes `data: [DONE]`).
    public func done() -> StreamEvent { StreamEvent(.done) }
}
