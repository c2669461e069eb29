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
}
