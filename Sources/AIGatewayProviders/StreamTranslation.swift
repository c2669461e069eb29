import AIGatewayAPI

/// Turns a provider's streamed answer into OpenAI `chat.completion.chunk` events, incrementally:
/// bytes go in as they arrive, split anywhere, and whole events come out. A value-type state
/// machine with no I/O: the proxy feeds it and acts on each event.
public protocol StreamTranslator: Sendable {
    /// Takes the next bytes of the answer; returns the events they complete.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [StreamEvent]
    /// The answer ended (the provider closed the body): returns what the rest completes.
    mutating func finish() -> [StreamEvent]
    /// `feed` without collecting: hands each event to `visit` as it completes (its bytes valid
    /// during the call only) until `visit` returns false, which ends the stream (the rest is
    /// dropped). The relay's path; a translator that can read its events in place (the OpenAI
    /// one) implements it without a copy per event.
    mutating func feed(_ bytes: UnsafeRawBufferPointer, visit: (StreamEvent.Kind, UnsafeRawBufferPointer) -> Bool)
}

extension StreamTranslator {
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, visit: (StreamEvent.Kind, UnsafeRawBufferPointer) -> Bool) {
        for event in feed(bytes) {
            guard event.bytes.withUnsafeBytes({ visit(event.kind, $0) }) else { return }
        }
    }
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
public struct ChunkFacts: Sendable, Equatable {
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
        var json = json
        guard let facts = json.withUTF8({ ChunkFactsReader.read(UnsafeRawBufferPointer($0)) }) else { return nil }
        self = facts
    }

    /// Reads an OpenAI chunk from its bytes, without building it; nil when it is not a JSON object.
    public init?(json: UnsafeRawBufferPointer) {
        guard let facts = ChunkFactsReader.read(json) else { return nil }
        self = facts
    }

    /// Reads a parsed OpenAI chunk; nil when it is not an object. The reference the byte reader
    /// (`init(json:)`) is checked against.
    public init?(value: JSONValue) {
        guard case .object = value else { return nil }
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

/// The translator of providers that already stream OpenAI chunks: events are found and read for
/// their facts in place, and relayed byte for byte.
public struct OpenAIStreamTranslator: StreamTranslator {
    private var splitter = SSESplitter()
    private var chunks = ChunkStreamReader()

    public init() {}

    public mutating func feed(_ bytes: UnsafeRawBufferPointer, visit: (StreamEvent.Kind, UnsafeRawBufferPointer) -> Bool) {
        var chunks = self.chunks
        self.chunks = ChunkStreamReader()  // The reader's memory stays uniquely held meanwhile.
        defer { self.chunks = chunks }
        do {
            try splitter.feed(bytes) { raw in
                let kind = Self.kind(of: raw, chunks: &chunks)
                return visit(kind, Self.relays(kind) ? raw : UnsafeRawBufferPointer(start: nil, count: 0))
            }
        } catch {
            _ = visit(.fault(StreamFault(.malformedResponse, message: "a stream event exceeded \(splitter.maxEventBytes) bytes")), UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [StreamEvent] {
        var events: [StreamEvent] = []
        feed(bytes) { kind, raw in
            events.append(StreamEvent(kind, bytes: Array(raw)))
            return true
        }
        return events
    }

    public mutating func finish() -> [StreamEvent] {
        guard let raw = splitter.finish() else { return [] }
        return raw.withUnsafeBytes { raw in
            let kind = Self.kind(of: raw, chunks: &chunks)
            return [StreamEvent(kind, bytes: Self.relays(kind) ? Array(raw) : [])]
        }
    }

    /// Whether the event's own bytes go to the client.
    private static func relays(_ kind: StreamEvent.Kind) -> Bool {
        switch kind {
        case .chunk, .other: true
        case .done, .malformed, .fault: false
        }
    }

    /// What one event is.
    static func kind(of raw: UnsafeRawBufferPointer, chunks: inout ChunkStreamReader) -> StreamEvent.Kind {
        // The usual token: the last chunk with another text, read without finding its lines.
        if let facts = chunks.readEventLikeTemplate(raw) { return .chunk(facts) }
        return SSEParser.withData(raw) { data in
            guard let data else { return .other }
            if SSEParser.isDone(data) { return .done }
            guard let facts = chunks.read(data) else { return .malformed }
            if facts.isError, let fault = Self.fault(Array(data)) { return .fault(fault) }
            return .chunk(facts)
        }
    }

    /// An OpenAI error object sent inside a 200 stream (`data: {"error": {...}}`).
    static func fault(_ data: [UInt8]) -> StreamFault? {
        guard let v = try? JSONParser.parse(data), let e = v["error"], case .object = e else { return nil }
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
