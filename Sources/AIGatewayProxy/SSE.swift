import AIGatewayAPI

/// One server-sent event: its original bytes (forwarded unchanged) and its `data` payload.
struct SSEEvent: Sendable {
    var raw: [UInt8]
    /// The `data:` lines joined with `\n`, or nil for an event without data (a comment, a keep-alive).
    var data: String?

    var isDone: Bool { data == "[DONE]" }
}

/// Splits a byte stream into server-sent events at blank lines, whatever the chunking.
struct SSEParser {
    private var buffer: [UInt8] = []
    private var scanFrom = 0
    /// Largest event accepted; a provider sending more without a blank line is broken.
    let maxEventBytes: Int

    init(maxEventBytes: Int = 1 << 20) { self.maxEventBytes = maxEventBytes }

    struct Oversize: Error {}

    mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [SSEEvent] {
        buffer.append(contentsOf: bytes)
        var events: [SSEEvent] = []
        var start = 0
        var i = max(scanFrom, 0)
        while i < buffer.count {
            if buffer[i] == UInt8(ascii: "\n") {
                // Blank line: "\n\n" or "\n\r\n".
                var end: Int?
                if i + 1 < buffer.count, buffer[i + 1] == UInt8(ascii: "\n") {
                    end = i + 2
                } else if i + 2 < buffer.count, buffer[i + 1] == UInt8(ascii: "\r"), buffer[i + 2] == UInt8(ascii: "\n") {
                    end = i + 3
                }
                if let end {
                    events.append(Self.event(Array(buffer[start..<end])))
                    start = end
                    i = end
                    continue
                }
            }
            i += 1
        }
        if start > 0 { buffer.removeFirst(start) }
        // Re-scan the last two bytes next time: a separator may straddle chunks.
        scanFrom = max(0, buffer.count - 2)
        if buffer.count > maxEventBytes { throw Oversize() }
        return events
    }

    /// Whatever is left when the stream ends (an event without its final blank line).
    mutating func finish() -> SSEEvent? {
        defer { buffer = [] }
        guard buffer.contains(where: { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: " ") }) else { return nil }
        return Self.event(buffer + Array("\n\n".utf8))
    }

    static func event(_ raw: [UInt8]) -> SSEEvent {
        var data: [String] = []
        for line in raw.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            var l = line[...]
            if l.last == UInt8(ascii: "\r") { l = l.dropLast() }
            guard l.starts(with: "data:".utf8) else { continue }
            l = l.dropFirst(5)
            if l.first == UInt8(ascii: " ") { l = l.dropFirst() }
            data.append(String(decoding: l, as: UTF8.self))
        }
        return SSEEvent(raw: raw, data: data.isEmpty ? nil : data.joined(separator: "\n"))
    }
}

/// What the gateway reads from one chat-completion chunk.
struct ChunkFacts {
    var content: String = ""
    var isToken = false
    var finished = false
    var usageOnly = false
    var usage: (input: Int, output: Int)?
    var model: String?

    init?(json: String) {
        guard let value = try? JSONParser.parse(Array(json.utf8)), case .object = value else { return nil }
        model = value["model"]?.stringValue
        if let u = value["usage"], case .object = u {
            usage = (u["prompt_tokens"]?.intValue ?? 0, u["completion_tokens"]?.intValue ?? 0)
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
        if value["error"] != nil { isToken = true }
    }
}
