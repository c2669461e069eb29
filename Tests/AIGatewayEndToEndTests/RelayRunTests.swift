@testable import AIGatewayProxy
import NIOCore
import Testing

@Suite("The relay copies a read's events a run at a time")
struct RelayRunTests {
    @Test("what is added comes out in order: runs of neighbouring events joined, gaps skipped, outside bytes copied as they come")
    func order() {
        let input = Array("aaBBccDDeeFF".utf8)
        let outside = Array("xy".utf8)
        var out = ByteBuffer()
        input.withUnsafeBytes { b in
            outside.withUnsafeBytes { o in
                var run = RelayRun(input: b)
                let piece = { (r: Range<Int>) in UnsafeRawBufferPointer(rebasing: b[r]) }
                run.add(piece(0..<2), into: &out)  // aa
                run.add(piece(2..<4), into: &out)  // BB, joined
                run.add(piece(6..<8), into: &out)  // DD, after a gap (cc dropped)
                run.add(o, into: &out)  // from elsewhere
                run.add(piece(8..<10), into: &out)  // ee
                run.add(UnsafeRawBufferPointer(start: nil, count: 0), into: &out)  // nothing
                run.add(piece(10..<12), into: &out)  // FF
                #expect(out.readableBytes == 8, "aaBB, DD and xy written; eeFF held until the flush")
                run.flush(into: &out)
            }
        }
        #expect(String(buffer: out) == "aaBBDDxyeeFF")
    }

    @Test("a read whose events are one run is handed on as a slice of its buffer; anything else is copied")
    func finishSlices() {
        var source = ByteBuffer(string: "xxaaBBccyy")
        source.moveReaderIndex(forwardBy: 1)  // "xaaBBccyy": the readable bytes are the input
        source.withUnsafeReadableBytes { b in
            let piece = { (r: Range<Int>) in UnsafeRawBufferPointer(rebasing: b[r]) }
            // Alone: a slice, sharing the read's storage.
            var run = RelayRun(input: b)
            var out = ByteBuffer()
            run.add(piece(1..<3), into: &out)
            run.add(piece(3..<5), into: &out)
            run.finish(into: &out, from: source)
            #expect(String(buffer: out) == "aaBB")
            let shared = out.withUnsafeReadableBytes { o in o.baseAddress == b.baseAddress.map { $0 + 1 } }
            #expect(shared, "the slice points into the read's bytes")
            // After other bytes: appended, in order.
            var run2 = RelayRun(input: b)
            var out2 = ByteBuffer(string: "held:")
            run2.add(piece(5..<7), into: &out2)
            run2.finish(into: &out2, from: source)
            #expect(String(buffer: out2) == "held:cc")
            // Two runs: the first copied at the gap, the second after it.
            var run3 = RelayRun(input: b)
            var out3 = ByteBuffer()
            run3.add(piece(1..<3), into: &out3)
            run3.add(piece(5..<7), into: &out3)
            run3.finish(into: &out3, from: source)
            #expect(String(buffer: out3) == "aacc")
        }
    }
}
