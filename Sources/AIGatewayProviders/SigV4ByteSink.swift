/// Where SigV4 writes its canonical forms: a growing `[UInt8]` (the general path, `SigV4.sign`) or
/// a `SigV4BoundedBuffer` sized beforehand (the per-request path, `SigV4FixedHeaderSigner`). One
/// implementation of each canonical form (URI, trimmed value, hex) writes into either.
protocol SigV4ByteSink {
    mutating func append(_ byte: UInt8)
    mutating func append(raw bytes: UnsafeRawBufferPointer)
}

extension SigV4ByteSink {
    /// The string's UTF-8 bytes, copied in one piece when they are contiguous (a native string,
    /// a literal).
    mutating func append(utf8 s: String) {
        let copied: Void? = s.utf8.withContiguousStorageIfAvailable { append(raw: UnsafeRawBufferPointer($0)) }
        if copied == nil {
            for b in s.utf8 { append(b) }
        }
    }
}

extension Array: SigV4ByteSink where Element == UInt8 {
    mutating func append(raw bytes: UnsafeRawBufferPointer) {
        append(contentsOf: bytes)
    }
}

/// Bytes written into memory whose size was fixed beforehand as an upper bound of what will be
/// written: no reallocation, and each write is one bound check and a copy (an array append also
/// checks uniqueness and capacity). A write past the end stops the process rather than corrupt
/// memory; the callers' bounds leave room to spare.
struct SigV4BoundedBuffer: SigV4ByteSink {
    private let memory: UnsafeMutableRawBufferPointer
    private(set) var count = 0

    init(_ memory: UnsafeMutableRawBufferPointer) {
        self.memory = memory
    }

    mutating func append(_ byte: UInt8) {
        precondition(count < memory.count, "SigV4BoundedBuffer: the bound was too small")
        memory[count] = byte
        count += 1
    }

    mutating func append(raw bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count <= memory.count - count, "SigV4BoundedBuffer: the bound was too small")
        UnsafeMutableRawBufferPointer(rebasing: memory[count..<(count + bytes.count)]).copyMemory(from: bytes)
        count += bytes.count
    }

    /// The bytes written at `range` (within `0..<count`).
    func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        precondition(range.upperBound <= count)
        return UnsafeRawBufferPointer(rebasing: memory[range])
    }
}
