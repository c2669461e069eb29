/// CRC-32 (IEEE 802.3, the zlib one: reflected polynomial 0xEDB88320), as AWS's event-stream
/// framing uses for its prelude and message checksums.
///
/// Written here rather than imported: none of our dependencies exposes a CRC-32 (swift-crypto has
/// only cryptographic hashes, SwiftNIO's is internal to its compression module), and the table
/// version is a few lines.
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// Eight tables for reading eight bytes a step ("slicing by 8"): `tables[k * 256 + b]` is the
    /// CRC of byte `b` followed by `k` zero bytes.
    static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for n in 0..<256 { t[n] = table[n] }
        for k in 1..<8 {
            for n in 0..<256 {
                let prev = t[(k - 1) * 256 + n]
                t[k * 256 + n] = (prev >> 8) ^ t[Int(prev & 0xFF)]
            }
        }
        return t
    }()

    /// Continues `crc` (0 to start) over `bytes`.
    public static func update<C: Collection<UInt8>>(_ crc: UInt32, _ bytes: C) -> UInt32 {
        if let c = bytes.withContiguousStorageIfAvailable({ update(crc, UnsafeRawBufferPointer($0)) }) { return c }
        var c = ~crc
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return ~c
    }

    /// Continues `crc` over raw bytes, eight at a time.
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        var i = 0
        let n = bytes.count
        tables.withUnsafeBufferPointer { t in
            while n - i >= 8 {
                let lo = c ^ (UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
                c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)] ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(bytes[i + 4])] ^ t[2 * 256 + Int(bytes[i + 5])] ^ t[256 + Int(bytes[i + 6])] ^ t[Int(bytes[i + 7])]
                i += 8
            }
            while i < n {
                c = t[Int((c ^ UInt32(bytes[i])) & 0xFF)] ^ (c >> 8)
                i += 1
            }
        }
        return ~c
    }

    public static func checksum<C: Collection<UInt8>>(_ bytes: C) -> UInt32 { update(0, bytes) }
}

/// One `application/vnd.amazon.eventstream` message: typed headers and a payload.
public struct EventStreamMessage: Sendable, Hashable {
    public enum HeaderValue: Sendable, Hashable {
        case bool(Bool)
        case byte(Int8)
        case int16(Int16)
        case int32(Int32)
        case int64(Int64)
        case bytes([UInt8])
        case string(String)
        /// Milliseconds since 1970.
        case timestamp(Int64)
        case uuid([UInt8])

        public var stringValue: String? {
            if case .string(let s) = self { return s }
            return nil
        }
    }

    public var headers: [(name: String, value: HeaderValue)]
    public var payload: [UInt8]

    public init(headers: [(name: String, value: HeaderValue)], payload: [UInt8]) {
        self.headers = headers
        self.payload = payload
    }

    /// The first string header with this name.
    public subscript(header name: String) -> String? {
        headers.first { $0.name == name }?.value.stringValue
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.payload == b.payload && a.headers.count == b.headers.count
            && zip(a.headers, b.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    public func hash(into h: inout Hasher) {
        h.combine(payload)
        for (n, v) in headers {
            h.combine(n)
            h.combine(v)
        }
    }

    /// An event frame as Bedrock sends it: `:event-type`, `:content-type`, `:message-type: event`.
    public static func event(_ type: String, json: String) -> EventStreamMessage {
        EventStreamMessage(
            headers: [(":event-type", .string(type)), (":content-type", .string("application/json")), (":message-type", .string("event"))],
            payload: Array(json.utf8))
    }

    /// An exception frame: `:exception-type`, `:message-type: exception`, payload `{"message":…}`.
    public static func exception(_ type: String, json: String) -> EventStreamMessage {
        EventStreamMessage(
            headers: [(":exception-type", .string(type)), (":content-type", .string("application/json")), (":message-type", .string("exception"))],
            payload: Array(json.utf8))
    }
}

/// Writes event-stream frames (for the fake provider and tests).
public enum EventStreamEncoder {
    public static func encode(_ message: EventStreamMessage) -> [UInt8] {
        var headers: [UInt8] = []
        func be<T: FixedWidthInteger>(_ v: T, into out: inout [UInt8]) {
            withUnsafeBytes(of: v.bigEndian) { out.append(contentsOf: $0) }
        }
        for (name, value) in message.headers {
            let n = Array(name.utf8.prefix(255))
            headers.append(UInt8(n.count))
            headers.append(contentsOf: n)
            switch value {
            case .bool(let b): headers.append(b ? 0 : 1)
            case .byte(let v): headers.append(2); headers.append(UInt8(bitPattern: v))
            case .int16(let v): headers.append(3); be(v, into: &headers)
            case .int32(let v): headers.append(4); be(v, into: &headers)
            case .int64(let v): headers.append(5); be(v, into: &headers)
            case .bytes(let b):
                headers.append(6)
                be(UInt16(min(b.count, Int(UInt16.max))), into: &headers)
                headers.append(contentsOf: b.prefix(Int(UInt16.max)))
            case .string(let s):
                let u = Array(s.utf8.prefix(Int(UInt16.max)))
                headers.append(7)
                be(UInt16(u.count), into: &headers)
                headers.append(contentsOf: u)
            case .timestamp(let v): headers.append(8); be(v, into: &headers)
            case .uuid(let u):
                headers.append(9)
                headers.append(contentsOf: (u + [UInt8](repeating: 0, count: 16)).prefix(16))
            }
        }
        let total = 12 + headers.count + message.payload.count + 4
        var out: [UInt8] = []
        out.reserveCapacity(total)
        be(UInt32(total), into: &out)
        be(UInt32(headers.count), into: &out)
        be(CRC32.checksum(out), into: &out)
        out.append(contentsOf: headers)
        out.append(contentsOf: message.payload)
        be(CRC32.checksum(out), into: &out)
        return out
    }
}

/// Reads event-stream frames from bytes that arrive in any split: whole frames out, both CRCs
/// checked, frames above `maximumFrameSize` refused before they are buffered.
public struct EventStreamDecoder: Sendable {
    public enum Failure: Error, Sendable, Hashable, CustomStringConvertible {
        case preludeChecksum
        case messageChecksum
        case frameTooLarge(Int)
        case malformed(String)

        public var description: String {
            switch self {
            case .preludeChecksum: "event stream: prelude checksum mismatch"
            case .messageChecksum: "event stream: message checksum mismatch"
            case .frameTooLarge(let n): "event stream: frame of \(n) bytes exceeds the limit"
            case .malformed(let why): "event stream: \(why)"
            }
        }
    }

    /// AWS caps a frame's payload at 16 MiB (headers 128 KiB); ours is tighter by default, a
    /// chat event is small.
    public var maximumFrameSize: Int
    private var buffer: [UInt8] = []
    private var start = 0
    /// Once failed, the stream stays failed.
    private var failed: Failure?

    public init(maximumFrameSize: Int = 1 << 20) {
        self.maximumFrameSize = maximumFrameSize
    }

    /// Bytes held that do not make a whole frame yet.
    public var pendingByteCount: Int { buffer.count - start }

    /// Feeds `bytes`; returns every frame they complete.
    public mutating func feed<C: Collection<UInt8>>(_ bytes: C) throws(Failure) -> [EventStreamMessage] {
        if let failed { throw failed }
        buffer.append(contentsOf: bytes)
        var out: [EventStreamMessage] = []
        do {
            while let m = try next() { out.append(m) }
        } catch {
            failed = error
            throw error
        }
        if start > 0 && (start == buffer.count || start > 4096) {
            buffer.removeFirst(start)
            start = 0
        }
        return out
    }

    private static func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }

    private mutating func next() throws(Failure) -> EventStreamMessage? {
        let available = buffer.count - start
        guard available >= 12 else { return nil }
        let total = Int(Self.u32(buffer, start))
        let headersLength = Int(Self.u32(buffer, start + 4))
        let preludeCRC = CRC32.checksum(buffer[start..<(start + 8)])
        guard preludeCRC == Self.u32(buffer, start + 8) else { throw .preludeChecksum }
        guard total >= 16 else { throw .malformed("frame length \(total) is shorter than a frame") }
        guard total <= maximumFrameSize else { throw .frameTooLarge(total) }
        guard headersLength <= total - 16 else { throw .malformed("headers length \(headersLength) exceeds the frame") }
        guard available >= total else { return nil }
        let end = start + total
        // The message CRC covers the prelude too: continued from the prelude's.
        guard CRC32.update(preludeCRC, buffer[(start + 8)..<(end - 4)]) == Self.u32(buffer, end - 4) else { throw .messageChecksum }
        let headers = try Self.parseHeaders(buffer[(start + 12)..<(start + 12 + headersLength)])
        let payload = Array(buffer[(start + 12 + headersLength)..<(end - 4)])
        start = end
        return EventStreamMessage(headers: headers, payload: payload)
    }

    private static func parseHeaders(_ bytes: ArraySlice<UInt8>) throws(Failure) -> [(name: String, value: EventStreamMessage.HeaderValue)] {
        var out: [(name: String, value: EventStreamMessage.HeaderValue)] = []
        out.reserveCapacity(4)
        var i = bytes.startIndex
        func take(_ n: Int) throws(Failure) -> ArraySlice<UInt8> {
            guard n >= 0, bytes.endIndex - i >= n else { throw .malformed("header runs past its block") }
            defer { i += n }
            return bytes[i..<(i + n)]
        }
        func int(_ n: Int) throws(Failure) -> Int64 {
            var v: UInt64 = 0
            for b in try take(n) { v = v << 8 | UInt64(b) }
            // Sign-extend from n bytes.
            let shift = UInt64(64 - 8 * n)
            return Int64(bitPattern: v << shift) >> Int64(shift)
        }
        while i < bytes.endIndex {
            let nameLength = Int(try take(1).first!)
            guard nameLength > 0 else { throw .malformed("empty header name") }
            let name = String(decoding: try take(nameLength), as: UTF8.self)
            let type = try take(1).first!
            let value: EventStreamMessage.HeaderValue
            switch type {
            case 0: value = .bool(true)
            case 1: value = .bool(false)
            case 2: value = .byte(Int8(try int(1)))
            case 3: value = .int16(Int16(try int(2)))
            case 4: value = .int32(Int32(try int(4)))
            case 5: value = .int64(try int(8))
            case 6, 7:
                let n = Int(UInt16(truncatingIfNeeded: try int(2)))
                let raw = try take(n)
                value = type == 6 ? .bytes(Array(raw)) : .string(String(decoding: raw, as: UTF8.self))
            case 8: value = .timestamp(try int(8))
            case 9: value = .uuid(Array(try take(16)))
            default: throw .malformed("unknown header value type \(type)")
            }
            out.append((name, value))
        }
        return out
    }
}
