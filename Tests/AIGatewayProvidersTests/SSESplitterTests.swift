import AIGatewayProviders
import Testing

/// The event boundaries of a server-sent-event stream, whatever the chunking.
@Suite("SSE splitting: events found in place")
struct SSESplitterTests {
    /// The events of `pieces` fed in turn (their raw bytes as text), and what `finish` leaves.
    static func split(_ pieces: [[UInt8]], limit: Int = 1 << 20) -> (events: [String], rest: String?, oversize: Bool) {
        var s = SSESplitter(maxEventBytes: limit)
        var events: [String] = []
        for p in pieces {
            let fits = p.withUnsafeBytes { b in
                do {
                    try s.feed(b) { raw in
                        events.append(String(decoding: raw, as: UTF8.self))
                        return true
                    }
                    return true
                } catch {
                    return false
                }
            }
            if !fits { return (events, nil, true) }
        }
        return (events, s.finish().map { String(decoding: $0, as: UTF8.self) }, false)
    }

    /// The boundaries by definition: the shortest prefix ending in `\n\n` or `\n\r\n`, again and again.
    static func reference(_ input: [UInt8]) -> (events: [String], rest: [UInt8]) {
        var events: [String] = []
        var start = 0
        var i = start
        while i < input.count {
            let e = i + 1
            let endsBlank =
                (e - start >= 2 && input[e - 2] == 0x0A && input[e - 1] == 0x0A)
                || (e - start >= 3 && input[e - 3] == 0x0A && input[e - 2] == 0x0D && input[e - 1] == 0x0A)
            if endsBlank {
                events.append(String(decoding: input[start..<e], as: UTF8.self))
                start = e
            }
            i = e
        }
        return (events, Array(input[start...]))
    }

    @Test("every two-piece split and the byte-by-byte feed find the same events as the whole input")
    func splitAnywhere() {
        let input = Array("data: a\n\n: keep\r\n\r\n\n\ndata: b\ndata: c\n\r\nevent: x\ndata: d\n\ndata: tail".utf8)
        let whole = Self.split([input])
        #expect(whole.events == ["data: a\n\n", ": keep\r\n\r\n", "\n\n", "data: b\ndata: c\n\r\n", "event: x\ndata: d\n\n"])
        #expect(whole.rest == "data: tail\n\n", "an unfinished event gets its blank line at the end")
        for cut in 1..<input.count {
            let split = Self.split([Array(input[..<cut]), Array(input[cut...])])
            #expect(split.events == whole.events && split.rest == whole.rest, "split at \(cut)")
        }
        let bytes = Self.split(input.map { [$0] })
        #expect(bytes.events == whole.events && bytes.rest == whole.rest)
    }

    @Test("random streams of line breaks cut at random places agree with the definition")
    func randomAgainstReference() {
        var rng = SplitMix(seed: 7)
        let alphabet: [UInt8] = [0x0A, 0x0A, 0x0D, UInt8(ascii: "a"), UInt8(ascii: " ")]
        for _ in 0..<2000 {
            let input = (0..<rng.below(40)).map { _ in alphabet[rng.below(alphabet.count)] }
            var pieces: [[UInt8]] = []
            var at = 0
            while at < input.count {
                let n = 1 + rng.below(5)
                pieces.append(Array(input[at..<min(input.count, at + n)]))
                at += n
            }
            let got = Self.split(pieces)
            let want = Self.reference(input)
            #expect(got.events == want.events, "\(input)")
            let restIsBlank = want.rest.allSatisfy { $0 == 0x0A || $0 == 0x0D || $0 == 0x20 }
            #expect(got.rest == (restIsBlank ? nil : String(decoding: want.rest + [0x0A, 0x0A], as: UTF8.self)), "\(input)")
        }
    }

    @Test("an unfinished event larger than the limit is refused; a long finished one is not")
    func oversize() {
        #expect(Self.split([Array(repeating: UInt8(ascii: "a"), count: 20)], limit: 16).oversize)
        #expect(Self.split([Array(repeating: UInt8(ascii: "a"), count: 10), Array(repeating: UInt8(ascii: "a"), count: 10)], limit: 16).oversize)
        let finished = Self.split([Array(repeating: UInt8(ascii: "a"), count: 20) + [0x0A, 0x0A]], limit: 16)
        #expect(!finished.oversize && finished.events.count == 1)
    }

    @Test("a visitor that stops ends the feed: no further event is handed out")
    func stop() {
        var s = SSESplitter()
        var seen = 0
        Array("a\n\nb\n\nc\n\n".utf8).withUnsafeBytes { b in
            do {
                try s.feed(b) { _ in
                    seen += 1
                    return seen < 2
                }
            } catch {
                Issue.record("not over the limit")
            }
        }
        #expect(seen == 2)
    }

    @Test("an event's data is read in place, as the parser reads it")
    func data() {
        func data(_ s: String) -> String? {
            Array(s.utf8).withUnsafeBytes { raw in SSEParser.withData(raw) { $0.map { String(decoding: $0, as: UTF8.self) } } }
        }
        #expect(data("data: {\"a\":1}\n\n") == "{\"a\":1}")
        #expect(data("data:[DONE]\r\n\r\n") == "[DONE]")
        #expect(data("event: x\ndata: a\ndata:  b\n\n") == "a\n b", "lines joined, one space dropped")
        #expect(data(": comment\n\n") == nil)
        #expect(data("data\n\n") == nil, "a line without its colon is not data")
        #expect(data("data:\n\n") == "")
        func done(_ s: String) -> Bool { Array(s.utf8).withUnsafeBytes { SSEParser.isDone($0) } }
        #expect(done("[DONE]") && !done("[DONE] ") && !done("[DONe]") && !done(""))
        var rng = SplitMix(seed: 11)
        let parts = ["data:", "data: ", "x", "\n", "\r\n", "event: e", ": c", "datax", " "]
        for _ in 0..<2000 {
            let s = (0..<rng.below(8)).map { _ in parts[rng.below(parts.count)] }.joined() + "\n\n"
            #expect(data(s) == SSEParser.event(Array(s.utf8)).data, "\(s.debugDescription)")
        }
    }
}

/// A small deterministic generator for the randomised tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}
