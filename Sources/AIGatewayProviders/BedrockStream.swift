import AIGatewayAPI

/// ConverseStream (`application/vnd.amazon.eventstream`) → OpenAI chunks, incrementally: the
/// event-stream decoder frames the bytes, each frame's `:event-type` drives the chunk writer.
///
/// `contentBlockIndex` numbers all of Bedrock's content blocks (text and tool use alike); OpenAI's
/// tool index numbers tool calls only, so each toolUse block gets the next tool index when it
/// starts. `metadata` (usage) arrives after `messageStop`; the stream is done after it.
public struct BedrockStreamTranslator: StreamTranslator {
    private var decoder: EventStreamDecoder
    private var writer: ChunkWriter
    private let names: BedrockToolNames
    /// contentBlockIndex → OpenAI tool index, and whether that call streamed any argument yet.
    private var tools: [Int: (index: Int, sentArguments: Bool)] = [:]
    private var stopped = false
    private var ended = false

    public init(context: TranslationContext, names: BedrockToolNames, maximumFrameSize: Int = 1 << 20) {
        decoder = EventStreamDecoder(maximumFrameSize: maximumFrameSize)
        writer = ChunkWriter(
            id: context.header("x-amzn-RequestId") ?? context.fallbackID, model: context.model, created: context.created,
            clientWantsUsage: context.clientWantsUsage, continuation: context.continuation)
        self.names = names
    }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [StreamEvent] {
        guard !ended else { return [] }
        let frames: [EventStreamMessage]
        do {
            frames = try decoder.feed(bytes)
        } catch {
            ended = true
            return [StreamEvent(.fault(StreamFault(.malformedResponse, message: error.description)))]
        }
        var out: [StreamEvent] = []
        for frame in frames where !ended {
            out += translate(frame)
        }
        return out
    }

    public mutating func finish() -> [StreamEvent] {
        guard !ended else { return [] }
        ended = true
        if stopped {
            // The usage never came: the answer itself is complete.
            return [writer.done()]
        }
        return [StreamEvent(.fault(StreamFault(.malformedResponse, message: "the Bedrock stream ended before messageStop")))]
    }

    private mutating func translate(_ frame: EventStreamMessage) -> [StreamEvent] {
        let messageType = frame[header: ":message-type"] ?? "event"
        if messageType == "exception" || messageType == "error" {
            ended = true
            let type = frame[header: ":exception-type"] ?? frame[header: ":error-code"] ?? "InternalServerException"
            var message = BedrockErrors.message(frame.payload)
            if message.isEmpty { message = frame[header: ":error-message"] ?? type }
            let failure = BedrockErrors.classify(type: type, message: message, status: BedrockErrors.streamStatus(type))
            return [StreamEvent(.fault(StreamFault(failure, message: "\(BedrockErrors.errorType(type)): \(message)")))]
        }
        guard let type = frame[header: ":event-type"] else { return [StreamEvent(.malformed)] }
        guard let p = try? Payload(frame.payload) else { return [StreamEvent(.malformed)] }
        switch type {
        case "messageStart":
            return writer.role().map { [$0] } ?? []
        case "contentBlockStart":
            guard let block = p.index, p.startsToolUse else { return [] }
            let (index, events) = writer.startToolCall(id: p.toolUseID ?? "", name: names.clientName(p.name ?? ""))
            tools[block] = (index, false)
            return events
        case "contentBlockDelta":
            let block = p.index ?? 0
            guard p.hasDelta else { return [StreamEvent(.malformed)] }
            if let text = p.text {
                var out: [StreamEvent] = []
                writer.text(text, into: &out)
                return out
            }
            if let input = p.toolInput {
                guard let tool = tools[block] else { return [StreamEvent(.malformed)] }
                if !input.isEmpty { tools[block]?.sentArguments = true }
                return writer.toolArguments(index: tool.index, input)
            }
            if let reasoning = p.reasoning {
                return writer.reasoning(reasoning)
            }
            return []  // signatures, redacted reasoning, citations: nothing for an OpenAI client
        case "contentBlockStop":
            if let block = p.index, let tool = tools[block], !tool.sentArguments {
                // A tool call without input: its arguments are still a JSON object.
                tools[block]?.sentArguments = true
                return writer.toolArguments(index: tool.index, "{}")
            }
            return []
        case "messageStop":
            stopped = true
            return writer.finish(BedrockConverse.finishReason(p.stopReason))
        case "metadata":
            ended = true
            var out: [StreamEvent] = []
            if !stopped {
                // Usage before any stop: the answer is cut short.
                return [StreamEvent(.fault(StreamFault(.malformedResponse, message: "Bedrock sent metadata before messageStop")))]
            }
            if let u = p.usage.tokenUsage { out.append(writer.usage(u)) }
            out.append(writer.done())
            return out
        default:
            return []  // a new event type: ignored, as AWS's SDKs do
        }
    }

    /// The members of an event's JSON payload the translation reads, in one pass over its bytes
    /// (every event type's, as Converse names them; the rest is checked and skipped).
    struct Payload {
        var index: Int?
        var hasDelta = false
        var text: String?
        var toolInput: String?
        var reasoning: String?
        var startsToolUse = false
        var toolUseID: String?
        var name: String?
        var stopReason: String?
        var usage = UsageCounts()

        private init() {}

        init(_ bytes: [UInt8]) throws(JSONCursor.Failure) {
            self = try JSONCursor.read(bytes) { (c: inout JSONCursor) throws(JSONCursor.Failure) -> Payload in
                var p = Payload()
                try c.enterObject()
                while let k = try c.nextKey() {
                    if c.key(k, is: "contentBlockIndex") {
                        p.index = try c.intIfAny()
                    } else if c.key(k, is: "delta") {
                        p.hasDelta = true
                        (p.text, p.toolInput, p.reasoning) = (nil, nil, nil)
                        guard c.peek() == UInt8(ascii: "{") else { try c.skipValue(); continue }
                        try c.enterObject()
                        while let d = try c.nextKey() {
                            if c.key(d, is: "text") {
                                p.text = try c.stringIfAny()
                            } else if c.key(d, is: "toolUse") {
                                p.toolInput = try Self.member("input", of: &c)
                            } else if c.key(d, is: "reasoningContent") {
                                p.reasoning = try Self.member("text", of: &c)
                            } else {
                                try c.skipValue()
                            }
                        }
                    } else if c.key(k, is: "start") {
                        (p.startsToolUse, p.toolUseID, p.name) = (false, nil, nil)
                        guard c.peek() == UInt8(ascii: "{") else { try c.skipValue(); continue }
                        try c.enterObject()
                        while let s = try c.nextKey() {
                            guard c.key(s, is: "toolUse") else {
                                try c.skipValue()
                                continue
                            }
                            (p.startsToolUse, p.toolUseID, p.name) = (c.peek() == UInt8(ascii: "{"), nil, nil)
                            guard p.startsToolUse else {
                                try c.skipValue()
                                continue
                            }
                            try c.enterObject()
                            while let u = try c.nextKey() {
                                if c.key(u, is: "toolUseId") {
                                    p.toolUseID = try c.stringIfAny()
                                } else if c.key(u, is: "name") {
                                    p.name = try c.stringIfAny()
                                } else {
                                    try c.skipValue()
                                }
                            }
                        }
                    } else if c.key(k, is: "stopReason") {
                        p.stopReason = try c.stringIfAny()
                    } else if c.key(k, is: "usage") {
                        p.usage = try BedrockConverse.usageCounts(&c)
                    } else {
                        try c.skipValue()
                    }
                }
                try c.end()
                return p
            }
        }

        /// The string member `name` of the object at the cursor (nil if the value is no object or
        /// has no such string); the value is consumed.
        static func member(_ name: StaticString, of c: inout JSONCursor) throws(JSONCursor.Failure) -> String? {
            guard c.peek() == UInt8(ascii: "{") else {
                try c.skipValue()
                return nil
            }
            var found: String?
            try c.enterObject()
            while let k = try c.nextKey() {
                if c.key(k, is: name) { found = try c.stringIfAny() } else { try c.skipValue() }
            }
            return found
        }
    }
}
