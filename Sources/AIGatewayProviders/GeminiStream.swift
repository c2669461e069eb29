import AIGatewayAPI

/// Translates a Gemini `:streamGenerateContent?alt=sse` body, as its bytes arrive in any split, into
/// the events of an OpenAI chat-completion stream.
///
/// Each SSE event's `data` is a whole `GenerateContentResponse`; events end at a blank line (`\n\n`
/// or `\r\n\r\n`). Candidate 0 is read (the request translation refuses `n > 1` with a stream).
/// Text parts become content (thought parts, reasoning); a `functionCall` part arrives whole and becomes one tool call (id,
/// name and complete arguments, numbered from 0); `finishReason` becomes the finish (`STOP` is
/// `tool_calls` once a call was seen); a blocked prompt (`promptFeedback.blockReason`, no
/// candidate) finishes with `content_filter`. `usageMetadata` holds running totals: the last one
/// is reported once, after the finish. An `error` object (bare or array-wrapped, as Vertex sends
/// it) is a failure, classified like an HTTP error; so is an event that is not JSON, and a body
/// that ends before a finish reason.
public struct GeminiStreamTranslator: Sendable {
    public enum Event: Sendable, Hashable {
        /// The assistant role: the first event of every answer.
        case role
        case content(String)
        /// Text of thought parts, for `reasoning_content`.
        case reasoning(String)
        /// A whole tool call; `index` numbers the calls of the answer from 0.
        case toolCall(index: Int, id: String, name: String, arguments: String)
        case finish(reason: String)
        /// The last usage seen, after the finish.
        case usage(GeminiUsage)
        /// An event that is not JSON: dropped (and counted), the stream goes on, as for OpenAI's.
        case malformed
        /// The stream failed; nothing follows.
        case failed(GeminiError)
    }

    /// Largest event accepted.
    public static let maximumEventBytes = 4 << 20

    /// `responseId` of the first event, once seen.
    public private(set) var responseID: String?
    /// `modelVersion` of the first event, once seen.
    public private(set) var modelVersion: String?

    private let fallbackID: String
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var started = false
    private var finishReason: String?
    private var toolCalls = 0
    private var usage: GeminiUsage?
    private var over = false

    /// `fallbackID` names tool calls that carry no id when the answer has no `responseId`.
    public init(fallbackID: String) {
        self.fallbackID = fallbackID
    }

    /// Whether a finish reason was seen.
    public var finished: Bool { finishReason != nil }

    /// Feeds the next bytes of the body.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Event] {
        var events: [Event] = []
        for byte in bytes {
            if over { break }
            guard byte == UInt8(ascii: "\n") else {
                line.append(byte)
                if line.count + data.count > Self.maximumEventBytes {
                    fail(&events, "Gemini sent a stream event larger than \(Self.maximumEventBytes) bytes")
                }
                continue
            }
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            endLine(&events)
        }
        return events
    }

    /// The end of the body: what is still buffered, then the usage, or the failure of a stream that
    /// ended early.
    public mutating func finish() -> [Event] {
        var events: [Event] = []
        guard !over else { return events }
        if !line.isEmpty { endLine(&events) }
        if hasData { dispatch(&events) }
        guard !over else { return events }
        over = true
        guard finishReason != nil else {
            events.append(.failed(GeminiError(
                kind: .truncated, status: 502, code: nil, reason: nil,
                message: started ? "the Gemini stream ended before a finish reason" : "the Gemini stream ended before any answer")))
            return events
        }
        if let usage { events.append(.usage(usage)) }
        return events
    }

    private mutating func fail(_ events: inout [Event], _ message: String) {
        events.append(.failed(GeminiError(kind: .truncated, status: 502, code: nil, reason: nil, message: message)))
        over = true
        line = []
        data = []
    }

    private mutating func endLine(_ events: inout [Event]) {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            if hasData { dispatch(&events) }
            return
        }
        guard line.starts(with: "data:".utf8) else { return }  // comments, event:, id:, retry:
        var value = line.dropFirst(5)
        if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        if hasData { data.append(UInt8(ascii: "\n")) }
        data.append(contentsOf: value)
        hasData = true
    }

    private mutating func dispatch(_ events: inout [Event]) {
        defer {
            data.removeAll(keepingCapacity: true)
            hasData = false
        }
        guard let value = try? JSONParser.parse(data) else {
            events.append(.malformed)
            return
        }
        if let error = GeminiError.errorObject(value) {
            events.append(.failed(GeminiError.classify(status: 0, error: error)))
            over = true
            return
        }
        for response in value.arrayValue ?? [value] {
            read(response, &events)
        }
    }

    private mutating func read(_ response: JSONValue, _ events: inout [Event]) {
        guard case .object = response else { return }
        if !started {
            started = true
            responseID = response["responseId"]?.stringValue
            modelVersion = response["modelVersion"]?.stringValue
            events.append(.role)
        }
        if let u = GeminiUsage(response["usageMetadata"]) { usage = u }
        guard finishReason == nil else { return }
        let candidate = response["candidates"]?.arrayValue?.first { ($0["index"]?.intValue ?? 0) == 0 }
        if let candidate {
            let parts = GeminiParts(candidate["content"]?["parts"], responseID: responseID ?? fallbackID, firstToolIndex: toolCalls)
            if !parts.reasoning.isEmpty { events.append(.reasoning(parts.reasoning)) }
            if !parts.text.isEmpty { events.append(.content(parts.text)) }
            for call in parts.toolCalls {
                events.append(.toolCall(index: call.index, id: call.id, name: call.name, arguments: call.arguments))
            }
            toolCalls += parts.toolCalls.count
            if let reason = candidate["finishReason"]?.stringValue {
                finishReason = reason
                events.append(.finish(reason: GeminiFinish.openAI(reason, sawToolCall: toolCalls > 0)))
            }
        } else if response["promptFeedback"]?["blockReason"] != nil {
            finishReason = "BLOCKED"
            events.append(.finish(reason: "content_filter"))
        }
    }
}
