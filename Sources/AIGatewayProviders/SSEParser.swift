import AIGatewayAPI

/// One server-sent event: its original bytes (forwarded unchanged) and its `data` payload.
public struct SSEEvent: Sendable {
    public var raw: [UInt8]
    /// The `data:` lines joined with `\n`, or nil for an event without data (a comment, a keep-alive).
    public var data: String?
    /// The `event:` field, if any (Anthropic names its events).
    public var name: String?

    public init(raw: [UInt8], data: String?, name: String? = nil) {
        self.raw = raw
        self.data = data
        self.name = name
    }

    public var isDone: Bool { data == "[DONE]" }
}

/// Splits a byte stream into server-sent events at blank lines, whatever the chunking.
public struct SSEParser: Sendable {
    private var buffer: [UInt8] = []
    private var scanFrom = 0
    /// Largest event accepted; a provider sending more without a blank line is broken.
    let maxEventBytes: Int

    public init(maxEventBytes: Int = 1 << 20) { self.maxEventBytes = maxEventBytes }

    public struct Oversize: Error {}

    public mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [SSEEvent] {
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
    public mutating func finish() -> SSEEvent? {
        defer { buffer = [] }
        guard buffer.contains(where: { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: " ") }) else { return nil }
        return Self.event(buffer + Array("\n\n".utf8))
    }

    public static func event(_ raw: [UInt8]) -> SSEEvent {
        var data: [String] = []
        var name: String?
        for line in raw.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            var l = line[...]
            if l.last == UInt8(ascii: "\r") { l = l.dropLast() }
            if l.starts(with: "event:".utf8) {
                l = l.dropFirst(6)
                if l.first == UInt8(ascii: " ") { l = l.dropFirst() }
                name = String(decoding: l, as: UTF8.self)
                continue
            }
            guard l.starts(with: "data:".utf8) else { continue }
            l = l.dropFirst(5)
            if l.first == UInt8(ascii: " ") { l = l.dropFirst() }
            data.append(String(decoding: l, as: UTF8.self))
        }
        return SSEEvent(raw: raw, data: data.isEmpty ? nil : data.joined(separator: "\n"), name: name)
    }
}
