import NIOCore

/// Writes an HTTP head (start line and fields) into a `ByteBuffer` at one go: the encoders count
/// its bytes first, then copy every piece into space reserved once, where a `writeString` per
/// piece checks the buffer's capacity and uniqueness some forty times per head.
struct HeadBytes {
    private let out: UnsafeMutableRawBufferPointer
    /// Bytes written so far.
    private(set) var count = 0

    private init(_ out: UnsafeMutableRawBufferPointer) {
        self.out = out
    }

    /// Bytes of `value` in decimal (non-negative).
    static func decimalCount(_ value: Int) -> Int {
        var digits = 1
        var v = value / 10
        while v > 0 {
            digits += 1
            v /= 10
        }
        return digits
    }

    mutating func put(_ s: StaticString) {
        put(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    mutating func put(_ s: String) {
        // Native and small strings lend their bytes as they are (no copy of the string, so no
        // retain); others (bridged) are made contiguous first.
        if s.utf8.withContiguousStorageIfAvailable({ put(UnsafeRawBufferPointer($0)) }) == nil {
            var s = s
            s.withUTF8 { put(UnsafeRawBufferPointer($0)) }
        }
    }

    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        precondition(count + bytes.count <= out.count, "head longer than counted")
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        (out.baseAddress! + count).copyMemory(from: base, byteCount: bytes.count)
        count += bytes.count
    }

    /// `value` in decimal (non-negative), `decimalCount(value)` bytes.
    mutating func putDecimal(_ value: Int) {
        let digits = Self.decimalCount(value)
        precondition(value >= 0 && count + digits <= out.count, "head longer than counted")
        var v = value
        for k in stride(from: digits - 1, through: 0, by: -1) {
            out[count + k] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: v % 10)
            v /= 10
        }
        count += digits
    }

    /// Writes exactly `size` bytes with `fill` at the buffer's writer index.
    static func write(into buffer: inout ByteBuffer, size: Int, _ fill: (inout HeadBytes) -> Void) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            var w = HeadBytes(UnsafeMutableRawBufferPointer(rebasing: raw[0..<size]))
            fill(&w)
            precondition(w.count == size, "head shorter than counted")
            return size
        }
    }
}
