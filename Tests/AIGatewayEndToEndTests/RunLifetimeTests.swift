@testable import AIGatewayProxy
import Testing

@Suite("A finished request leaves nothing behind")
struct RunLifetimeTests {
    /// Every streamed answer used to leak its failover run and stream sink (about 5 kB each: the
    /// sink's header closure held the run, which held the sink), so a gateway relaying streams grew
    /// by hundreds of MiB under load.
    @Test("streamed and complete answers free their failover run once answered")
    func runsAreFreed() async throws {
        try await withGateway { h in
            let handler = try #require(h.gatewayHandler)
            for _ in 0..<10 {
                let streamed = try await h.send(body: Harness.question(stream: true))
                #expect(streamed.status == 200 && streamed.body.contains("[DONE]"))
                let complete = try await h.send()
                #expect(complete.status == 200)
            }
            // A run ends on its loop just after the answer's end is written: wait for that.
            try await waitUntil { handler.liveRuns.load(ordering: .relaxed) == 0 }
            #expect(handler.liveRuns.load(ordering: .relaxed) == 0)
        }
    }
}
