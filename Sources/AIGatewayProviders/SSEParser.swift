#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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

/// Finds where server-sent events end in a byte stream, whatever the chunking: a blank line
/// (`\n\n` or `\n\r\n`) ends one, and the event's bytes include it. An event wholly inside one
/// input is handed out in place; only an event the chunking cut is copied, to join its pieces.
public struct SSESplitter: Sendable {
    /// The start of an event not finished yet.
    private var carry: [UInt8] = []
    /// How far into a blank line the input stopped: 0 not, 1 after `\n`, 2 after `\n\r`.
    private var blank: UInt8 = 0
    /// Largest unfinished event accepted; a provider sending more without a blank line is broken.
    public let maxEventBytes: Int

    public struct Oversize: Error {}

    public init(maxEventBytes: Int = 1 << 20) { self.maxEventBytes = maxEventBytes }

    /// Hands each event the input completes to `event` (its bytes valid during the call only),
    /// until `event` returns false: the rest of the input is then dropped, and the splitter is
    /// done. Throws when the unfinished event outgrows `maxEventBytes`.
    public mutating func feed(_ input: UnsafeRawBufferPointer, _ event: (UnsafeRawBufferPointer) -> Bool) throws(Oversize) {
        guard let base = input.baseAddress else { return }
        let n = input.count
        var start = 0
        var i = 0
        while i < n {
            if blank == 0 {
                // Not in a blank line: on to the next line feed.
                guard let p = memchr(base + i, Int32(UInt8(ascii: "\n")), n - i) else { break }
                i = base.distance(to: UnsafeRawPointer(p)) + 1
                blank = 1
                continue
            }
            let c = input[i]
            i += 1
            if c == UInt8(ascii: "\n") {
                blank = 0
                let more: Bool
                if carry.isEmpty {
                    more = event(UnsafeRawBufferPointer(rebasing: input[start..<i]))
                } else {
                    carry.append(contentsOf: input[start..<i])
                    more = carry.withUnsafeBytes(event)
                    carry.removeAll(keepingCapacity: true)
                }
                start = i
                if !more { return }
            } else {
                blank = blank == 1 && c == UInt8(ascii: "\r") ? 2 : 0
            }
        }
        carry.append(contentsOf: input[start..<n])
        if carry.count > maxEventBytes { throw Oversize() }
    }

    /// Whatever is left when the stream ends: an event without its final blank line (which is
    /// added), or nil when only line breaks and spaces are left.
    public mutating func finish() -> [UInt8]? {
        defer {
            carry = []
            blank = 0
        }
        guard carry.contains(where: { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: " ") }) else { return nil }
        return carry + Array("\n\n".utf8)
    }
}

/// Splits a byte stream into server-sent events at blank lines, whatever the chunking, and reads
/// each one's fields.
public struct SSEParser: Sendable {
    private var splitter: SSESplitter

    /// Largest event accepted; a provider sending more without a blank line is broken.
    public var maxEventBytes: Int { splitter.maxEventBytes }

    public init(maxEventBytes: Int = 1 << 20) { splitter = SSESplitter(maxEventBytes: maxEventBytes) }

    public typealias Oversize = SSESplitter.Oversize

    public mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [SSEEvent] {
        var events: [SSEEvent] = []
        let fits = bytes.withContiguousStorageIfAvailable { feed(UnsafeRawBufferPointer($0), into: &events) } ?? Array(bytes).withUnsafeBytes { feed($0, into: &events) }
        guard fits else { throw Oversize() }
        return events
    }

    /// False when the unfinished event outgrew the limit.
    private mutating func feed(_ bytes: UnsafeRawBufferPointer, into events: inout [SSEEvent]) -> Bool {
        do {
            try splitter.feed(bytes) { raw in
                events.append(Self.event(Array(raw)))
                return true
            }
            return true
        } catch {
            return false
        }
    }

    /// Whatever is left when the stream ends (an event without its final blank line).
    public mutating func finish() -> SSEEvent? {
        splitter.finish().map(Self.event)
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

    /// Whether an event's data is `[DONE]`, the end of an OpenAI stream.
    public static func isDone(_ data: UnsafeRawBufferPointer) -> Bool {
        data.count == 6 && data.baseAddress.map { memcmp($0, "[DONE]", 6) == 0 } == true
    }

    /// Calls `body` with an event's data, read in place: its `data:` lines joined with `\n` (in
    /// place when there is one line, the common case), or nil when it has none.
    public static func withData<R>(_ raw: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
        var first: Range<Int>?
        var joined: [UInt8]?
        var lineStart = 0
        while lineStart < raw.count {
            var end = raw.count
            if let base = raw.baseAddress, let p = memchr(base + lineStart, Int32(UInt8(ascii: "\n")), raw.count - lineStart) {
                end = base.distance(to: UnsafeRawPointer(p))
            }
            defer { lineStart = end + 1 }
            var line = lineStart..<end
            if !line.isEmpty, raw[line.upperBound - 1] == UInt8(ascii: "\r") { line = line.lowerBound..<(line.upperBound - 1) }
            guard line.count >= 5, raw[line.lowerBound] == UInt8(ascii: "d"), raw[line.lowerBound + 1] == UInt8(ascii: "a"),
                raw[line.lowerBound + 2] == UInt8(ascii: "t"), raw[line.lowerBound + 3] == UInt8(ascii: "a"), raw[line.lowerBound + 4] == UInt8(ascii: ":")
            else { continue }
            var value = (line.lowerBound + 5)..<line.upperBound
            if !value.isEmpty, raw[value.lowerBound] == UInt8(ascii: " ") { value = (value.lowerBound + 1)..<value.upperBound }
            if let f = first {
                if joined == nil { joined = Array(raw[f]) }
                joined!.append(UInt8(ascii: "\n"))
                joined!.append(contentsOf: raw[value])
            } else {
                first = value
            }
        }
        if let joined { return joined.withUnsafeBytes { body($0) } }
        guard let first else { return body(nil) }
        return body(UnsafeRawBufferPointer(rebasing: raw[first]))
    }
}
