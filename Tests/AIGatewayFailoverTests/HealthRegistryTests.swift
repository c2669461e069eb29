import AIGatewayFailover
import AIGatewayProviders
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
