import AIGatewayProviders
import Testing

func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = s.startIndex
    while i < s.endIndex {
        let j = s.index(i, offsetBy: 2)
        out.append(UInt8(s[i..<j], radix: 16)!)
        i = j
    }
    return out
}

@Suite("Event stream")
struct EventStreamTests {
    /// Frames computed with Python's zlib.crc32, independently of this code.
    static let emptyFrame = hexBytes("000000100000000005c248eb7d98c8ff")
    static let messageStart = hexBytes(
        "0000003f0000001bcc3639d20b3a6576656e742d7479706507000c6d65737361676553746172747b22726f6c65223a22617373697374616e74227d13bcddda")

    @Test("CRC-32 is zlib's")
    func crc() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
        #expect(CRC32.update(CRC32.checksum(Array("1234".utf8)), Array("56789".utf8)) == 0xCBF4_3926)
        // Eight bytes a step gives the bit-by-bit CRC for any length and any split.
        func bitwise(_ bytes: [UInt8]) -> UInt32 {
            var c: UInt32 = 0xFFFF_FFFF
            for b in bytes {
                c ^= UInt32(b)
                for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            }
            return ~c
        }
        var rng = SystemRandomNumberGenerator()
        for length in [1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 200] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            #expect(CRC32.checksum(bytes) == bitwise(bytes))
            #expect(CRC32.checksum(bytes[1...]) == bitwise(Array(bytes[1...])))
            let cut = length / 3
            #expect(CRC32.update(CRC32.checksum(bytes[..<cut]), bytes[cut...]) == bitwise(bytes))
            #expect(CRC32.checksum(AnySequenceOfBytes(bytes)) == bitwise(bytes))
        }
    }

    @Test("the encoder writes the frames zlib's checksums predict")
    func encoderMatchesReference() {
        #expect(EventStreamEncoder.encode(EventStreamMessage(headers: [], payload: [])) == Self.emptyFrame)
        let m = EventStreamMessage(headers: [(":event-type", .string("messageStart"))], payload: Array(#"{"role":"assistant"}"#.utf8))
        #expect(EventStreamEncoder.encode(m) == Self.messageStart)
    }

    static let sample: [EventStreamMessage] = [
        .event("messageStart", json: #"{"role":"assistant","p":"abcdefghij"}"#),
        .event("contentBlockDelta", json: #"{"contentBlockIndex":0,"delta":{"text":"Hé ✓"}}"#),
        EventStreamMessage(
            headers: [
                ("t", .bool(true)), ("f", .bool(false)), ("b", .byte(-2)), ("s", .int16(-300)), ("i", .int32(-70000)),
                ("l", .int64(-5_000_000_000)), ("x", .bytes([0, 255, 7])), ("ts", .timestamp(1_700_000_000_000)),
                ("u", .uuid(Array(0..<16))),
            ],
            payload: []),
        .exception("throttlingException", json: #"{"message":"Too many requests"}"#),
    ]

    @Test("every header type round-trips, and any split of the bytes decodes the same frames")
    func everySplit() throws {
        let bytes = Self.sample.flatMap(EventStreamEncoder.encode)
        for cut in 0...bytes.count {
            var d = EventStreamDecoder()
            var got = try d.feed(bytes[..<cut])
            got += try d.feed(bytes[cut...])
            #expect(got == Self.sample, "split at \(cut)")
            #expect(d.pendingByteCount == 0)
        }
        // Byte by byte, too.
        var d = EventStreamDecoder()
        var got: [EventStreamMessage] = []
        for b in bytes { got += try d.feed([b]) }
        #expect(got == Self.sample)
        #expect(got[0][header: ":event-type"] == "messageStart")
        #expect(got[3][header: ":message-type"] == "exception")
    }

    @Test("a corrupted prelude or message checksum is an error, and the decoder stays failed")
    func corrupted() throws {
        var prelude = Self.messageStart
        prelude[9] ^= 0x01
        var d = EventStreamDecoder()
        #expect(throws: EventStreamDecoder.Failure.preludeChecksum) { try d.feed(prelude) }
        #expect(throws: EventStreamDecoder.Failure.preludeChecksum) { try d.feed(Self.emptyFrame) }

        var payload = Self.messageStart
        payload[40] ^= 0x20
        var d2 = EventStreamDecoder()
        // Split before the corrupted byte: nothing until the frame is whole, then the error.
        #expect(try d2.feed(payload[..<30]).isEmpty)
        #expect(throws: EventStreamDecoder.Failure.messageChecksum) { try d2.feed(payload[30...]) }

        var trailer = Self.emptyFrame
        trailer[15] ^= 0xFF
        var d3 = EventStreamDecoder()
        #expect(throws: EventStreamDecoder.Failure.messageChecksum) { try d3.feed(trailer) }
    }

    @Test("a frame above the cap is refused from its prelude, before its body is buffered")
    func cap() throws {
        let big = EventStreamEncoder.encode(.event("contentBlockDelta", json: String(repeating: "x", count: 5000)))
        var d = EventStreamDecoder(maximumFrameSize: 4096)
        #expect(throws: EventStreamDecoder.Failure.frameTooLarge(big.count)) { try d.feed(big[..<12]) }
        var ok = EventStreamDecoder(maximumFrameSize: 8192)
        #expect(try ok.feed(big).count == 1)
    }

    @Test("inconsistent lengths and unknown header types are errors, never a crash")
    func malformed() {
        func frame(total: UInt32, headers: UInt32, body: [UInt8]) -> [UInt8] {
            var p: [UInt8] = []
            for v in [total, headers] { withUnsafeBytes(of: v.bigEndian) { p.append(contentsOf: $0) } }
            withUnsafeBytes(of: CRC32.checksum(p).bigEndian) { p.append(contentsOf: $0) }
            p += body
            withUnsafeBytes(of: CRC32.checksum(p).bigEndian) { p.append(contentsOf: $0) }
            return p
        }
        var a = EventStreamDecoder()
        #expect(throws: EventStreamDecoder.Failure.self) { try a.feed(frame(total: 8, headers: 0, body: [])) }
        var b = EventStreamDecoder()
        #expect(throws: EventStreamDecoder.Failure.self) { try b.feed(frame(total: 20, headers: 10, body: [1, 2, 3, 4])) }
        var c = EventStreamDecoder()
        // A header of unknown type 42.
        #expect(throws: EventStreamDecoder.Failure.self) { try c.feed(frame(total: 19, headers: 3, body: [1, 0x61, 42])) }
        var e = EventStreamDecoder()
        // A string header whose length runs past the block.
        #expect(throws: EventStreamDecoder.Failure.self) { try e.feed(frame(total: 21, headers: 5, body: [1, 0x61, 7, 0, 9])) }
    }
}

/// A collection without contiguous storage (the CRC's byte-at-a-time path).
struct AnySequenceOfBytes: Collection {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var startIndex: Int { bytes.startIndex }
    var endIndex: Int { bytes.endIndex }
    func index(after i: Int) -> Int { i + 1 }
    subscript(i: Int) -> UInt8 { bytes[i] }
}
