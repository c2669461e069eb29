import AIGatewayAPI

/// Turns a provider's streamed answer into OpenAI `chat.completion.chunk` events, incrementally:
/// bytes go in as they arrive, split anywhere, and whole events come out. A value-type state
/// machine with no I/O: the proxy feeds it and acts on each event.
public protocol StreamTranslator: Sendable {
    /// Takes the next bytes of the answer; returns the events they complete.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [StreamEvent]
    /// The answer ended (the provider closed the body): returns what the rest completes.
    mutating func finish() -> [StreamEvent]
}

/// One event for the client, with what the relay needs to know about it.
public struct StreamEvent: Sendable {
    public enum Kind: Sendable {
        /// An OpenAI chunk (`bytes` is the whole SSE event); `facts` says what it carries.
        case chunk(ChunkFacts)
        /// Not a chunk (an SSE comment, a keep-alive): relayed as is, says nothing.
        case other
        /// The answer is complete (`[DONE]` or the provider's own end): the relay ends the stream.
        case done
        /// An event that could not be read: dropped, counted, the stream goes on.
        case malformed
        /// The provider reported an error inside the stream: the attempt failed (never silence).
        case fault(StreamFault)
    }

    public var kind: Kind
    /// What goes to the client (an SSE event: `data: {...}\n\n`); empty for `done`, `malformed`, `fault`.
    public var bytes: [UInt8]

    public init(_ kind: Kind, bytes: [UInt8] = []) {
        self.kind = kind
        self.bytes = bytes
    }
}

/// What the gateway reads from one chat-completion chunk.
public struct ChunkFacts: Sendable {
    /// Assistant text in the chunk (the continuation prefill is built from it).
    public var content: String = ""
    /// The chunk carries part of the answer (text, a tool call, a refusal, a finish): the stream
    /// commits to the client on the first one.
    public var isToken = false
    /// It carries a finish reason.
    public var finished = false
    /// It is the usage chunk (`choices: []`): dropped when the client did not ask for usage.
    public var usageOnly = false
    public var usage: TokenUsage?
    public var model: String?
    /// It is an error object, not a chunk (`{"error": {...}}` inside a 200 stream).
    public var isError = false

    public init(content: String = "", isToken: Bool = false, finished: Bool = false, usageOnly: Bool = false, usage: TokenUsage? = nil, model: String? = nil) {
        self.content = content
        self.isToken = isToken
        self.finished = finished
        self.usageOnly = usageOnly
        self.usage = usage
        self.model = model
    }

    /// Reads an OpenAI chunk; nil when it is not a JSON object.
    public init?(json: String) {
        guard let value = try? JSONParser.parse(Array(json.utf8)), case .object = value else { return nil }
        model = value["model"]?.stringValue
        if let u = value["usage"], case .object = u {
            usage = TokenUsage(
                input: u["prompt_tokens"]?.intValue ?? 0, output: u["completion_tokens"]?.intValue ?? 0,
                cachedInput: u["prompt_tokens_details"]?["cached_tokens"]?.intValue)
        }
        let choices = value["choices"]?.arrayValue ?? []
        usageOnly = choices.isEmpty && usage != nil
        for choice in choices {
            let delta = choice["delta"]
            if let c = delta?["content"]?.stringValue, !c.isEmpty {
                content += c
                isToken = true
            }
            if delta?["tool_calls"] != nil || delta?["function_call"] != nil || (delta?["refusal"]?.stringValue.map { !$0.isEmpty } ?? false) {
                isToken = true
            }
            if let f = choice["finish_reason"], f != .null {
                finished = true
                isToken = true
            }
        }
        if value["error"] != nil {
            isToken = true
            isError = choices.isEmpty
        }
    }
}

/// The translator of providers that already stream OpenAI chunks: events are split, read for
/// their facts and relayed byte for byte.
public struct OpenAIStreamTranslator: StreamTranslator {
    private var parser = SSEParser()

    public init() {}

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [StreamEvent] {
        do {
            return try parser.feed(bytes).map(Self.translate)
        } catch {
            return [StreamEvent(.fault(StreamFault(.malformedResponse, message: "a stream event exceeded \(parser.maxEventBytes) bytes")))]
        }
    }

    public mutating func finish() -> [StreamEvent] {
        parser.finish().map { [Self.translate($0)] } ?? []
    }

    static func translate(_ event: SSEEvent) -> StreamEvent {
        guard let data = event.data else { return StreamEvent(.other, bytes: event.raw) }
        if event.isDone { return StreamEvent(.done) }
        guard let facts = ChunkFacts(json: data) else { return StreamEvent(.malformed) }
        if facts.isError, let fault = Self.fault(data) { return StreamEvent(.fault(fault)) }
        return StreamEvent(.chunk(facts), bytes: event.raw)
    }

    /// An OpenAI error object sent inside a 200 stream (`data: {"error": {...}}`).
    static func fault(_ data: String) -> StreamFault? {
        guard let v = try? JSONParser.parse(Array(data.utf8)), let e = v["error"], case .object = e else { return nil }
        let message = e["message"]?.stringValue ?? "the provider reported an error inside the stream"
        let type = (e["type"]?.stringValue ?? "").lowercased()
        let code = (e["code"]?.stringValue ?? "").lowercased()
        let failure: ProviderFailure
        if code == "rate_limit_exceeded" || type == "rate_limit_error" || type == "requests" || type == "tokens" {
            failure = .rateLimited(status: 429, retryAfter: nil)
        } else if code == "context_length_exceeded" {
            failure = .contextLengthExceeded(status: 400)
        } else if code == "content_filter" {
            failure = .contentFiltered(status: 400)
        } else {
            failure = .overloaded(status: 500)
        }
        return StreamFault(failure, message: message)
    }
}
