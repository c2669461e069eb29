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
        guard let payload = try? JSONParser.parse(frame.payload), case .object = payload else { return [StreamEvent(.malformed)] }
        switch type {
        case "messageStart":
            return writer.role().map { [$0] } ?? []
        case "contentBlockStart":
            guard let block = payload["contentBlockIndex"]?.intValue, let use = payload["start"]?["toolUse"], case .object = use else { return [] }
            let name = names.clientName(use["name"]?.stringValue ?? "")
            let (index, events) = writer.startToolCall(id: use["toolUseId"]?.stringValue ?? "", name: name)
            tools[block] = (index, false)
            return events
        case "contentBlockDelta":
            let block = payload["contentBlockIndex"]?.intValue ?? 0
            guard let delta = payload["delta"] else { return [StreamEvent(.malformed)] }
            if let text = delta["text"]?.stringValue {
                return writer.text(text)
            }
            if let input = delta["toolUse"]?["input"]?.stringValue {
                guard let tool = tools[block] else { return [StreamEvent(.malformed)] }
                if !input.isEmpty { tools[block]?.sentArguments = true }
                return writer.toolArguments(index: tool.index, input)
            }
            if let reasoning = delta["reasoningContent"]?["text"]?.stringValue {
                return writer.reasoning(reasoning)
            }
            return []  // signatures, redacted reasoning, citations: nothing for an OpenAI client
        case "contentBlockStop":
            if let block = payload["contentBlockIndex"]?.intValue, let tool = tools[block], !tool.sentArguments {
                // A tool call without input: its arguments are still a JSON object.
                tools[block]?.sentArguments = true
                return writer.toolArguments(index: tool.index, "{}")
            }
            return []
        case "messageStop":
            stopped = true
            return writer.finish(BedrockConverse.finishReason(payload["stopReason"]?.stringValue))
        case "metadata":
            ended = true
            var out: [StreamEvent] = []
            if !stopped {
                // Usage before any stop: the answer is cut short.
                return [StreamEvent(.fault(StreamFault(.malformedResponse, message: "Bedrock sent metadata before messageStop")))]
            }
            if let u = BedrockConverse.usage(payload["usage"]) { out.append(writer.usage(u)) }
            out.append(writer.done())
            return out
        default:
            return []  // a new event type: ignored, as AWS's SDKs do
        }
    }
}
