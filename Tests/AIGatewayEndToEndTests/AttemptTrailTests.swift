@testable import AIGatewayFailover
@testable import AIGatewayProxy
import NIOCore
import Testing

/// The attempt trail as `FailoverRun.trail` built it before it was kept as records: a string
/// appended to part by part. The reference for the differential test.
enum AttemptTrailReference {
    static func header(records: [FailoverMachine.Record], candidates: [FailoverCandidate]) -> String {
        var header = ""
        for (k, rec) in records.enumerated() {
            if k > 0 { header += "," }
            let c = candidates[rec.index]
            if !c.provider.isEmpty {
                header += TrailToken.make(c.provider)
                header += "/"
            }
            header += TrailToken.make(c.model)
            header += "="
            header += rec.outcome.label
        }
        return header
    }
}

@Suite("Attempt trail")
struct AttemptTrailTests {
    /// `trail` written into a head's bytes, as `ForwardedResponseHead` writes it.
    private func written(_ trail: AttemptTrail) -> [UInt8] {
        var buffer = ByteBuffer()
        HeadBytes.write(into: &buffer, size: trail.count) { trail.write(into: &$0) }
        return Array(buffer.readableBytesView)
    }

    @Test("over 5,000 generated trails: the text the string trail made, counted and written byte for byte")
    func differential() async {
        var rng = SeededRandom(state: 33)
        let names = ["gpt-4o", "claude-3-5-sonnet", "m", "a,b", "x=y", "semi;colon", "with space", "caf\u{E9}", "tab\tbed", "", "\u{1F600}", "a/b"]
        let providers = ["", "", "openai", "anthropic", "bed rock", "x,y"]
        let outcomes: [AttemptOutcome] = [
            .success, .connectFailed, .serverError(503), .rateLimited(retryAfter: nil), .rateLimited(retryAfter: .seconds(2)), .firstByteTimeout,
            .firstTokenTimeout, .attemptTimeout, .truncated, .contextLengthExceeded(400), .contentFiltered(400), .misconfigured(401), .clientError(422),
            .unusable("no key"), .incompatible(parameter: "n", reason: "r"), .ejected,
        ]
        var filtered = 0
        for round in 0..<5000 {
            // Leave the test pool's threads to the other suites now and then (see the note in
            // IncrementalCompilerTests): their waits would otherwise time out on a 2-core machine.
            if round % 500 == 0 { await Task.yield() }
            let candidates = (0..<Int.random(in: 1...4, using: &rng)).map { k in
                FailoverCandidate(
                    id: "e\(k)", backend: "ns/b", model: names.randomElement(using: &rng)!, priority: k, problem: nil,
                    provider: providers.randomElement(using: &rng)!)
            }
            let records = (0..<Int.random(in: 0...4, using: &rng)).map { _ in
                FailoverMachine.Record(index: Int.random(in: 0..<candidates.count, using: &rng), outcome: outcomes.randomElement(using: &rng)!)
            }
            let expected = AttemptTrailReference.header(records: records, candidates: candidates)
            let trail = AttemptTrail(records: records, candidates: candidates)
            #expect(trail.text == expected)
            #expect(trail.count == expected.utf8.count)
            #expect(trail.isEmpty == expected.isEmpty)
            #expect(written(trail) == Array(expected.utf8), "\(expected.debugDescription)")
            if records.contains(where: { TrailToken.make(candidates[$0.index].model) != candidates[$0.index].model }) { filtered += 1 }
        }
        // Names with bytes the trail leaves out were among them.
        #expect(filtered > 1000, "\(filtered)")
    }

    @Test("a trail given as text is written as it is")
    func text() {
        let trail = AttemptTrail("openai/gpt-4o=503,gpt-4o-mini=ok")
        #expect(trail.text == "openai/gpt-4o=503,gpt-4o-mini=ok")
        #expect(written(trail) == Array("openai/gpt-4o=503,gpt-4o-mini=ok".utf8))
        #expect(AttemptTrail("").isEmpty)
    }
}
