import AIGatewayFailover
import AIGatewayProviders
import AIGatewayRouting
import Testing

@Suite("Passive health")
struct HealthRegistryTests {
    let policy = HealthRegistry.Policy(threshold: 3, base: .seconds(5), max: .seconds(300))

    @Test("three consecutive failures eject for 5 s; a success in between resets the count")
    func ejection() {
        let r = HealthRegistry()
        let t0 = ContinuousClock.now
        #expect(r.record("e", outcome: .serverError(503), now: t0, policy: policy) == nil)
        #expect(r.record("e", outcome: .serverError(503), now: t0, policy: policy) == nil)
        #expect(r.record("e", outcome: .success, now: t0, policy: policy) == nil)
        #expect(r.record("e", outcome: .serverError(503), now: t0, policy: policy) == nil)
        #expect(r.record("e", outcome: .connectFailed, now: t0, policy: policy) == nil)
        #expect(r.record("e", outcome: .firstByteTimeout, now: t0, policy: policy) == .ejected(for: .seconds(5)))
        #expect(r.availability(of: "e", now: t0 + .seconds(4)) == .ejected(until: t0 + .seconds(5)))
        #expect(!r.admit("e", now: t0 + .seconds(4)))
    }

    @Test("after the cool-down exactly one request probes; success restores, failure doubles the cool-down")
    func probeAndDoubling() {
        let r = HealthRegistry()
        let t0 = ContinuousClock.now
        for _ in 0..<3 { r.record("e", outcome: .serverError(500), now: t0, policy: policy) }
        let t1 = t0 + .seconds(6)
        #expect(r.availability(of: "e", now: t1) == .probe)
        #expect(r.admit("e", now: t1))
        #expect(!r.admit("e", now: t1), "a single probe")
        #expect(r.record("e", outcome: .serverError(500), now: t1, policy: policy) == .ejected(for: .seconds(10)))
        let t2 = t1 + .seconds(11)
        #expect(r.admit("e", now: t2))
        #expect(r.record("e", outcome: .success, now: t2, policy: policy) == .restored)
        #expect(r.availability(of: "e", now: t2) == .available)
    }

    @Test("the cool-down is capped at the maximum")
    func cap() {
        let r = HealthRegistry()
        var t = ContinuousClock.now
        for _ in 0..<3 { r.record("e", outcome: .serverError(500), now: t, policy: policy) }
        var last: HealthEvent?
        for _ in 0..<12 {
            t = t + .seconds(400)
            _ = r.admit("e", now: t)
            last = r.record("e", outcome: .serverError(500), now: t, policy: policy)
        }
        #expect(last == .ejected(for: .seconds(300)))
    }

    /// One primary behind the default per-Backend policy, a request every 4 s, and an outage from
    /// `start` for `length`: each request tries the primary when health admits it (a 503 is retried
    /// once while the entry is still available, as the failover machine does). Returns how long after
    /// recovering the primary got its first request, and checks that while it was down it got at
    /// most one request (the probe) per cool-down.
    static func outage(start: Duration, length: Duration) -> Duration? {
        let r = HealthRegistry()
        let policy = HealthRegistry.Policy(BackendSettings())
        let t0 = ContinuousClock.now
        let recovery = t0 + start + length
        var ejectedUntil: Instant?
        var t = t0
        while t < recovery + .seconds(600) {
            defer { t = t + .seconds(4) }
            guard r.admit("primary", now: t) else { continue }
            if let until = ejectedUntil { #expect(t >= until, "a request while ejected (until \(until - t0), at \(t - t0))") }
            if t >= recovery { return t - recovery }
            let down = t >= t0 + start
            var event = r.record("primary", outcome: down ? .serverError(503) : .success, now: t, policy: policy)
            if down, event == nil, r.availability(of: "primary", now: t) == .available {
                event = r.record("primary", outcome: .serverError(503), now: t, policy: policy)
            }
            if case .ejected(let d)? = event {
                ejectedUntil = t + d
            } else if down, ejectedUntil != nil {
                Issue.record("a probe that failed did not eject the entry again (at \(t - t0))")
            }
        }
        return nil
    }

    @Test("back to the preferred model promptly: after an outage of any length, a request every 4 s reaches the recovered primary within 30 s, and the down primary got at most one probe per cool-down")
    func promptReturn() throws {
        // The issue's 60 s outage, and outages up to a quarter of an hour, each at every phase
        // (in half seconds) against the request clock.
        var worst: (back: Duration, length: Duration, start: Duration) = (.zero, .zero, .zero)
        for seconds in [60] + Array(stride(from: 61, through: 900, by: 7)) {
            let length = Duration.seconds(seconds)
            for half in 0..<8 {
                let start = Duration.seconds(10) + .milliseconds(500 * half)
                let back = try #require(Self.outage(start: start, length: length), "never used again after a \(length) outage")
                if back > worst.back { worst = (back, length, start) }
            }
        }
        #expect(worst.back <= .seconds(30), "first request \(worst.back) after recovering from a \(worst.length) outage starting at \(worst.start)")
    }

    @Test("failures arriving while already ejected do not extend or double the ejection")
    func lateFailures() {
        let r = HealthRegistry()
        let t0 = ContinuousClock.now
        for _ in 0..<3 { r.record("e", outcome: .serverError(500), now: t0, policy: policy) }
        #expect(r.record("e", outcome: .serverError(500), now: t0 + .seconds(1), policy: policy) == nil)
        #expect(r.availability(of: "e", now: t0 + .seconds(5) + .milliseconds(1)) == .probe)
    }

    @Test("a lost probe frees its slot after the probe timeout")
    func lostProbe() {
        let r = HealthRegistry(probeTimeout: .seconds(10))
        let t0 = ContinuousClock.now
        for _ in 0..<3 { r.record("e", outcome: .serverError(500), now: t0, policy: policy) }
        #expect(r.admit("e", now: t0 + .seconds(6)))
        #expect(!r.admit("e", now: t0 + .seconds(7)))
        #expect(r.admit("e", now: t0 + .seconds(17)))
    }

    @Test("Retry-After is remembered for later requests")
    func coolDown() {
        let r = HealthRegistry()
        let t0 = ContinuousClock.now
        r.record("e", outcome: .rateLimited(retryAfter: .seconds(2)), now: t0, policy: policy)
        #expect(r.availability(of: "e", now: t0 + .seconds(1)) == .coolingDown(until: t0 + .seconds(2)))
        #expect(r.availability(of: "e", now: t0 + .seconds(3)) == .available)
    }

    @Test("a Retry-After beyond the cap cools the entry down for the cap only; then a single request probes it")
    func retryAfterCap() {
        #expect(HealthRegistry.Policy().retryAfterCap == .seconds(300), "the documented default")
        let r = HealthRegistry()
        let capped = HealthRegistry.Policy(retryAfterCap: .seconds(300))
        let t0 = ContinuousClock.now
        r.record("e", outcome: .rateLimited(retryAfter: .seconds(86400)), now: t0, policy: capped)
        #expect(r.availability(of: "e", now: t0 + .seconds(299)) == .parked(until: t0 + .seconds(300)))
        let t1 = t0 + .seconds(300)
        #expect(r.availability(of: "e", now: t1) == .probe)
        #expect(r.admit("e", now: t1))
        #expect(!r.admit("e", now: t1), "a single probe")
        // Still throttled: another capped cool-down, another single probe.
        r.record("e", outcome: .rateLimited(retryAfter: .seconds(86400)), now: t1 + .seconds(1), policy: capped)
        #expect(r.availability(of: "e", now: t1 + .seconds(2)) == .parked(until: t1 + .seconds(301)))
        let t2 = t1 + .seconds(301)
        #expect(r.admit("e", now: t2))
        #expect(!r.admit("e", now: t2), "a single probe")
        #expect(r.record("e", outcome: .success, now: t2, policy: capped) == .restored)
        #expect(r.availability(of: "e", now: t2) == .available)
        // Every reset hint the classifier reads is capped alike.
        for header in [("Retry-After", "86400"), ("retry-after-ms", "86400000"), ("x-ratelimit-reset-requests", "24h0m0s"), ("x-ratelimit-reset-tokens", "1440m")] {
            let outcome = AttemptOutcome.classify(status: 429, headers: [(name: header.0, value: header.1)], body: [], now: t0)
            #expect(outcome == .rateLimited(retryAfter: .seconds(86400)))
            r.record("g", outcome: outcome, now: t0, policy: capped)
            #expect(r.availability(of: "g", now: t0) == .parked(until: t0 + .seconds(300)), "\(header.0)")
            r.record("g", outcome: .success, now: t0, policy: capped)
        }
        // A wait within the cap is honoured in full, and then every request may go.
        r.record("f", outcome: .rateLimited(retryAfter: .seconds(120)), now: t0, policy: capped)
        #expect(r.availability(of: "f", now: t0 + .seconds(119)) == .coolingDown(until: t0 + .seconds(120)))
        #expect(r.availability(of: "f", now: t0 + .seconds(120)) == .available)
    }

    @Test("request faults (content filter, bad request, context length) do not count against the entry")
    func neutralOutcomes() {
        let r = HealthRegistry()
        let t0 = ContinuousClock.now
        for _ in 0..<5 {
            r.record("e", outcome: .contentFiltered(400), now: t0, policy: policy)
            r.record("e", outcome: .clientError(400), now: t0, policy: policy)
            r.record("e", outcome: .contextLengthExceeded(400), now: t0, policy: policy)
        }
        #expect(r.availability(of: "e", now: t0) == .available)
    }

    @Test("a new table keeps the state of its entries and drops the rest; late outcomes of dropped entries are ignored")
    func retainOnNewTable() {
        let r = HealthRegistry()
        let t0 = ContinuousClock.now
        for _ in 0..<3 {
            r.record("kept", outcome: .serverError(500), now: t0, policy: policy)
            r.record("gone", outcome: .serverError(500), now: t0, policy: policy)
        }
        r.record("cooling", outcome: .rateLimited(retryAfter: .seconds(30)), now: t0, policy: policy)
        _ = r.nextRoundRobin("ns/b#0", count: 2)
        _ = r.nextRoundRobin("ns/old#0", count: 2)
        r.retain(entries: ["kept", "cooling", "new"], backends: ["ns/b"])
        #expect(r.availability(of: "kept", now: t0 + .seconds(1)) == .ejected(until: t0 + .seconds(5)))
        #expect(r.availability(of: "cooling", now: t0 + .seconds(1)) == .coolingDown(until: t0 + .seconds(30)))
        #expect(r.availability(of: "gone", now: t0 + .seconds(1)) == .available)
        #expect(r.nextRoundRobin("ns/b#0", count: 2) == 1, "kept")
        #expect(r.nextRoundRobin("ns/old#0", count: 2) == 0, "dropped")
        // A request that started on the old table reports late: nothing is recorded for an entry
        // the table no longer has, so it cannot come back with stale state.
        for _ in 0..<3 { #expect(r.record("gone", outcome: .serverError(500), now: t0, policy: policy) == nil) }
        r.retain(entries: ["kept", "cooling", "gone"], backends: ["ns/b"])
        #expect(r.availability(of: "gone", now: t0 + .seconds(1)) == .available)
    }

    @Test("retry budget: bursts up to the cap, then refills at 20% of requests")
    func retryBudget() {
        let r = HealthRegistry(retryRatio: 0.5, retryBurst: 2)
        #expect(r.withdrawRetry(backend: "b"))
        #expect(r.withdrawRetry(backend: "b"))
        #expect(!r.withdrawRetry(backend: "b"))
        r.depositRequest(backend: "b")
        #expect(!r.withdrawRetry(backend: "b"))
        r.depositRequest(backend: "b")
        #expect(r.withdrawRetry(backend: "b"))
    }

    @Test("a budget refilled to its burst is full, not fuller; a full one is spent from its burst again")
    func budgetRefilledToBurst() {
        let r = HealthRegistry(retryRatio: 1, retryBurst: 2)
        #expect(r.withdrawRetry(backend: "b"))
        r.depositRequest(backend: "b")
        r.depositRequest(backend: "b")
        r.depositRequest(backend: "b")
        #expect(r.withdrawRetry(backend: "b"))
        #expect(r.withdrawRetry(backend: "b"))
        #expect(!r.withdrawRetry(backend: "b"))
        #expect(r.withdrawRetry(backend: "other"), "each backend has its own budget")
    }

    @Test("entries without trouble are available and unchanged by successes, whether or not another entry is ejected; a restored entry starts afresh")
    func untroubledEntries() {
        let r = HealthRegistry()
        let t0 = ContinuousClock.now
        // Nothing recorded yet.
        #expect(r.availability(of: "a", now: t0) == .available)
        #expect(r.admit("a", now: t0))
        #expect(r.record("a", outcome: .success, now: t0, policy: policy) == nil)
        // Another entry ejected: the untroubled one answers the same.
        for _ in 0..<3 { r.record("e", outcome: .serverError(500), now: t0, policy: policy) }
        #expect(r.availability(of: "a", now: t0) == .available)
        #expect(r.admit("a", now: t0))
        #expect(r.record("a", outcome: .success, now: t0, policy: policy) == nil)
        #expect(r.ejectedEntries(now: t0) == ["e"])
        // One failure and a success: no trace of the failure is left.
        r.record("a", outcome: .serverError(500), now: t0, policy: policy)
        r.record("a", outcome: .success, now: t0, policy: policy)
        // The ejected entry probes, and its success restores it.
        let t1 = t0 + .seconds(6)
        #expect(r.admit("e", now: t1))
        #expect(r.record("e", outcome: .success, now: t1, policy: policy) == .restored)
        #expect(r.availability(of: "e", now: t1) == .available)
        #expect(r.ejectedEntries(now: t1).isEmpty)
        // Both start afresh: two failures do not eject, a third does.
        for entry in ["a", "e"] {
            #expect(r.record(entry, outcome: .serverError(500), now: t1, policy: policy) == nil)
            #expect(r.record(entry, outcome: .serverError(500), now: t1, policy: policy) == nil)
            #expect(r.availability(of: entry, now: t1) == .available)
            #expect(r.record(entry, outcome: .serverError(500), now: t1, policy: policy) == .ejected(for: .seconds(5)))
        }
    }

    @Test("round robin rotates through a pool")
    func roundRobin() {
        let r = HealthRegistry()
        #expect((0..<6).map { _ in r.nextRoundRobin("k", count: 3) } == [0, 1, 2, 0, 1, 2])
        #expect(r.nextRoundRobin("single", count: 1) == 0)
    }
}

@Suite("Classifying provider responses")
struct ClassificationTests {
    let now = ContinuousClock.now

    @Test("status codes and error bodies map to the failover table's rows")
    func classify() {
        func c(_ s: Int, _ body: String = "{}", _ headers: [(String, String)] = []) -> AttemptOutcome {
            AttemptOutcome.classify(status: s, headers: headers.map { (name: $0.0, value: $0.1) }, body: Array(body.utf8), now: now)
        }
        #expect(c(503) == .serverError(503))
        #expect(c(429, "{}", [("Retry-After", "3")]) == .rateLimited(retryAfter: .seconds(3)))
        #expect(c(429) == .rateLimited(retryAfter: nil))
        #expect(c(400, #"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#) == .contextLengthExceeded(400))
        #expect(c(400, #"{"error":{"message":"filtered","code":"content_filter"}}"#) == .contentFiltered(400))
        #expect(c(400, #"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy."}}"#) == .contentFiltered(400))
        #expect(c(401) == .misconfigured(401))
        #expect(c(403) == .misconfigured(403))
        #expect(c(404, #"{"error":{"code":"model_not_found","message":"The model `x` does not exist"}}"#) == .misconfigured(404))
        #expect(c(400, #"{"error":{"message":"bad"}}"#) == .clientError(400))
        #expect(c(422) == .clientError(422))
    }

    @Test("Retry-After forms: seconds, HTTP date, retry-after-ms, x-ratelimit-reset-*")
    func retryAfter() {
        #expect(RetryAfter.parse(headers: [("Retry-After", "2")]) == .seconds(2))
        #expect(RetryAfter.parse(headers: [("retry-after-ms", "1500")]) == .milliseconds(1500))
        #expect(RetryAfter.parse(headers: [("x-ratelimit-reset-requests", "6m0s")]) == .seconds(360))
        #expect(RetryAfter.parse(headers: [("x-ratelimit-reset-tokens", "20ms"), ("x-ratelimit-reset-requests", "1s")]) == .seconds(1))
        #expect(RetryAfter.parse(headers: [("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")], now: 784_111_770) == .seconds(7))
        #expect(RetryAfter.parse(headers: [("retry-after", "soon")]) == nil)
        #expect(RetryAfter.parse(headers: []) == nil)
    }
}
