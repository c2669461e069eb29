import AIGatewayAPI

/// Writes the OpenAI chunks of a translated stream, keeping the promises the OpenAI API makes
/// whatever the provider: the role comes once, first; a tool call's `id` and `name` come once, in
/// its first delta, then only argument fragments; tool calls are numbered 0, 1, ... in the order
/// they start; `choices[].index` is 0; one finish chunk; the usage chunk (`choices: []`) is last.
/// Translators parse their provider's events and call these methods; each returns the event to emit.
public struct ChunkWriter: Sendable {
    public var id: String {
        didSet { if id != oldValue { prefix = Self.prefix(id: id, created: created, model: model) } }
    }
    public var model: String {
        didSet { if model != oldValue { prefix = Self.prefix(id: id, created: created, model: model) } }
    }
    public let created: Int
    /// Every chunk carries `"usage":null` when the client asked for the usage chunk (as OpenAI does).
    public let usageField: Bool
    private var roleSent: Bool
    public private(set) var toolCalls = 0
    public private(set) var finished = false
    /// `data: {"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[`, written
    /// once (again when the id or model changes), not per chunk.
    private var prefix: [UInt8]

    /// - Parameter continuation: the answer continues one already streamed: no second role chunk.
    public init(id: String, model: String, created: Int, clientWantsUsage: Bool, continuation: Bool = false) {
        self.id = id
        self.model = model
        self.created = created
        self.usageField = clientWantsUsage
        self.roleSent = continuation
        self.prefix = Self.prefix(id: id, created: created, model: model)
    }

    private static func prefix(id: String, created: Int, model: String) -> [UInt8] {
        var s: [UInt8] = []
        s.reserveCapacity(96 + id.utf8.count + model.utf8.count)
        JSONBytes.append("data: {\"id\":", to: &s)
        JSONBytes.appendString(id, to: &s)
        JSONBytes.append(",\"object\":\"chat.completion.chunk\",\"created\":", to: &s)
        JSONBytes.appendInt(created, to: &s)
        JSONBytes.append(",\"model\":", to: &s)
        JSONBytes.appendString(model, to: &s)
        JSONBytes.append(",\"choices\":[", to: &s)
        return s
    }

    /// A chunk: the prefix, `{"index":0,"delta":`, what `delta` writes, then the rest.
    private func chunk(extra: Int = 0, finishReason: String? = nil, _ delta: (inout [UInt8]) -> Void) -> [UInt8] {
        var s: [UInt8] = []
        s.reserveCapacity(prefix.count + 96 + extra)
        s.append(contentsOf: prefix)
        JSONBytes.append("{\"index\":0,\"delta\":", to: &s)
        delta(&s)
        JSONBytes.append(",\"logprobs\":null,\"finish_reason\":", to: &s)
        if let finishReason { JSONBytes.appendString(finishReason, to: &s) } else { JSONBytes.append("null", to: &s) }
        JSONBytes.append("}]", to: &s)
        if usageField { JSONBytes.append(",\"usage\":null", to: &s) }
        JSONBytes.append("}\n\n", to: &s)
        return s
    }

    /// The role chunk, once (nil after the first call, and in a continuation).
    public mutating func role() -> StreamEvent? {
        guard !roleSent else { return nil }
        roleSent = true
        return StreamEvent(.chunk(ChunkFacts(model: model)), bytes: chunk { JSONBytes.append("{\"role\":\"assistant\",\"content\":\"\"}", to: &$0) })
    }

    /// Events before any part of the answer: the role if not sent yet.
    private mutating func lead(into events: inout [StreamEvent]) {
        if let r = role() { events.append(r) }
    }

    /// Assistant text (nothing for an empty string).
    public mutating func text(_ text: String) -> [StreamEvent] {
        var events: [StreamEvent] = []
        self.text(text, into: &events)
        return events
    }

    /// `text(_:)`, appended to `events`.
    public mutating func text(_ text: String, into events: inout [StreamEvent]) {
        guard !text.isEmpty else { return }
        lead(into: &events)
        let bytes = chunk(extra: text.utf8.count) { s in
            JSONBytes.append("{\"content\":", to: &s)
            JSONBytes.appendString(text, to: &s)
            s.append(UInt8(ascii: "}"))
        }
        events.append(StreamEvent(.chunk(ChunkFacts(content: text, isToken: true, model: model)), bytes: bytes))
    }

    /// Reasoning text, as DeepSeek-style `reasoning_content` (not part of the answer's content).
    public mutating func reasoning(_ text: String) -> [StreamEvent] {
        guard !text.isEmpty else { return [] }
        var events: [StreamEvent] = []
        lead(into: &events)
        let bytes = chunk(extra: text.utf8.count) { s in
            JSONBytes.append("{\"reasoning_content\":", to: &s)
            JSONBytes.appendString(text, to: &s)
            s.append(UInt8(ascii: "}"))
        }
        events.append(StreamEvent(.chunk(ChunkFacts(isToken: true, model: model)), bytes: bytes))
        return events
    }

    /// Starts a tool call: returns its OpenAI index and the events (id, type, name, empty arguments).
    public mutating func startToolCall(id: String, name: String, arguments: String = "") -> (index: Int, events: [StreamEvent]) {
        var events: [StreamEvent] = []
        lead(into: &events)
        let index = toolCalls
        toolCalls += 1
        let bytes = chunk(extra: id.utf8.count + name.utf8.count + arguments.utf8.count) { s in
            JSONBytes.append("{\"tool_calls\":[{\"index\":", to: &s)
            JSONBytes.appendInt(index, to: &s)
            JSONBytes.append(",\"id\":", to: &s)
            JSONBytes.appendString(id, to: &s)
            JSONBytes.append(",\"type\":\"function\",\"function\":{\"name\":", to: &s)
            JSONBytes.appendString(name, to: &s)
            JSONBytes.append(",\"arguments\":", to: &s)
            JSONBytes.appendString(arguments, to: &s)
            JSONBytes.append("}}]}", to: &s)
        }
        events.append(StreamEvent(.chunk(ChunkFacts(isToken: true, model: model)), bytes: bytes))
        return (index, events)
    }

    /// A fragment of a started tool call's arguments (nothing for an empty fragment).
    public mutating func toolArguments(index: Int, _ fragment: String) -> [StreamEvent] {
        guard !fragment.isEmpty else { return [] }
        let bytes = chunk(extra: fragment.utf8.count) { s in
            JSONBytes.append("{\"tool_calls\":[{\"index\":", to: &s)
            JSONBytes.appendInt(index, to: &s)
            JSONBytes.append(",\"function\":{\"arguments\":", to: &s)
            JSONBytes.appendString(fragment, to: &s)
            JSONBytes.append("}}]}", to: &s)
        }
        return [StreamEvent(.chunk(ChunkFacts(isToken: true, model: model)), bytes: bytes)]
    }

    /// The finish chunk (`delta: {}`), once; `reason` is OpenAI's (`stop`, `length`, `tool_calls`, `content_filter`).
    public mutating func finish(_ reason: String) -> [StreamEvent] {
        guard !finished else { return [] }
        finished = true
        var events: [StreamEvent] = []
        lead(into: &events)
        let bytes = chunk(finishReason: reason) { JSONBytes.append("{}", to: &$0) }
        events.append(StreamEvent(.chunk(ChunkFacts(isToken: true, finished: true, model: model)), bytes: bytes))
        return events
    }

    /// The usage chunk (`choices: []`). Always emitted: the relay drops it when the client did not ask.
    public func usage(_ usage: TokenUsage) -> StreamEvent {
        var s: [UInt8] = []
        s.reserveCapacity(prefix.count + 160)
        s.append(contentsOf: prefix)
        JSONBytes.append("],\"usage\":", to: &s)
        JSONBytes.appendUsage(usage, to: &s)
        JSONBytes.append("}\n\n", to: &s)
        return StreamEvent(.chunk(ChunkFacts(usageOnly: true, usage: usage, model: model)), bytes: s)
    }

    /// The end of the answer (the relay writes `data: [DONE]`).
    public func done() -> StreamEvent { StreamEvent(.done) }
}
