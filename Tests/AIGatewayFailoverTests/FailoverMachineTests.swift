import AIGatewayFailover
import AIGatewayRouting
import Synchronization
import Testing

/// A health oracle under the test's control.
final class FakeHealth: HealthOracle {
    struct State {
        var availability: [String: Availability] = [:]
        var retryTokens = 100
        var admitted: [String] = []
    }

    let state = Mutex(State())

    func set(_ id: String, _ a: Availability) { state.withLock { $0.availability[id] = a } }
    func setRetryTokens(_ n: Int) { state.withLock { $0.retryTokens = n } }
    var admitted: [String] { state.withLock { $0.admitted } }

    func availability(of entry: String, now: Instant) -> Availability {
        state.withLock { $0.availability[entry] ?? .available }
    }

    func admit(_ entry: String, now: Instant) -> Bool {
        state.withLock { s in
            switch s.availability[entry] ?? .available {
            case .available: s.admitted.append(entry); return true
            case .probe:
                s.admitted.append(entry)
                s.availability[entry] = .ejected(until: now + .seconds(60))
                return true
            default: return false
            }
        }
    }

    func withdrawRetry(backend: String) -> Bool {
        state.withLock { s in
            guard s.retryTokens > 0 else { return false }
            s.retryTokens -= 1
            return true
        }
    }
}

/// The guide's three models, one per priority level.
func guideLevels(_ problems: [String: String] = [:]) -> [[FailoverCandidate]] {
    ["gpt-4o", "gpt-4.0-turbo", "gpt-3.5-turbo"].enumerated().map { i, model in
        [FailoverCandidate(id: "b[\(i)][0]", backend: "ns/b", model: model, priority: i, problem: problems[model])]
    }
}

struct Harness {
    var machine: FailoverMachine
    let health = FakeHealth()
    var now = ContinuousClock.now
    let start: Instant

    init(levels: [[FailoverCandidate]] = guideLevels(), retries: Int = 1, codes: Set<Int> = RetryPolicy.defaultCodes, budget: Duration = .seconds(60)) {
        start = now
        machine = FailoverMachine(
            levels: levels, policy: FailoverPolicy(sameEntryRetries: retries, retryCodes: codes, backoff: .milliseconds(100), deadline: now + budget), seed: 42)
    }

    mutating func begin() -> FailoverMachine.Action { machine.start(now: now, health: health) }

    mutating func report(_ o: AttemptOutcome, after elapsed: Duration = .milliseconds(10)) -> FailoverMachine.Action {
        now = now + elapsed
        return machine.record(o, now: now, health: health)
    }

    func model(_ a: FailoverMachine.Action) -> String? {
        if case .attempt(let i, _, _) = a { return machine.candidates[i].model }
        return nil
    }

    func isRetry(_ a: FailoverMachine.Action) -> Bool {
        if case .attempt(_, _, let r) = a { return r }
        return false
    }

    func delay(_ a: FailoverMachine.Action) -> Duration? {
        if case .attempt(_, let d, _) = a { return d }
        return nil
    }

    var trail: [String] { machine.records.map { "\(machine.candidates[$0.index].model)=\($0.outcome.label)" } }
}

@Suite("Failover state machine: one test per row of failover-semantics.md")
struct FailoverMachineTests {
    @Test("healthy primary answers; nothing else is tried")
    func healthyPrimary() {
        var h = Harness()
        let a = h.begin()
        #expect(h.model(a) == "gpt-4o")
        #expect(h.report(.success) == .done)
        #expect(h.trail == ["gpt-4o=ok"])
    }

    @Test("connection refused / reset: one retry on the same entry, then the next candidate")
    func connectFailure() {
        var h = Harness()
        _ = h.begin()
        let retry = h.report(.connectFailed)
        #expect(h.model(retry) == "gpt-4o")
        #expect(h.isRetry(retry))
        let next = h.report(.connectFailed)
        #expect(h.model(next) == "gpt-4.0-turbo")
        #expect(!h.isRetry(next))
        #expect(h.report(.success) == .done)
        #expect(h.trail == ["gpt-4o=connect_error", "gpt-4o=connect_error", "gpt-4.0-turbo=ok"])
    }

    @Test("connection failure without retry budget goes straight to the next candidate", arguments: [0])
    func connectFailureNoBudget(tokens: Int) {
        var h = Harness()
        h.health.setRetryTokens(tokens)
        _ = h.begin()
        #expect(h.model(h.report(.connectFailed)) == "gpt-4.0-turbo")
    }

    @Test("500/502/503/504: retry the same entry once with jittered backoff, then next", arguments: [500, 502, 503, 504])
    func serverErrors(status: Int) throws {
        var h = Harness()
        _ = h.begin()
        let retry = h.report(.serverError(status))
        #expect(h.model(retry) == "gpt-4o")
        let d = try #require(h.delay(retry))
        #expect(d >= .milliseconds(50) && d <= .milliseconds(100), "full jitter between base/2 and base")
        #expect(h.model(h.report(.serverError(status))) == "gpt-4.0-turbo")
    }

    @Test("backoff grows with each same-entry retry")
    func backoffGrows() throws {
        var h = Harness(retries: 3)
        _ = h.begin()
        let d1 = try #require(h.delay(h.report(.serverError(503))))
        let d2 = try #require(h.delay(h.report(.serverError(503))))
        let d3 = try #require(h.delay(h.report(.serverError(503))))
        #expect(d1 <= .milliseconds(100))
        #expect(d2 >= .milliseconds(100) && d2 <= .milliseconds(200))
        #expect(d3 >= .milliseconds(200) && d3 <= .milliseconds(400))
    }

    @Test("route retry.attempts overrides the single same-entry retry; codes outside retry.codes move on at once")
    func routeRetryPolicy() {
        var h = Harness(retries: 0, codes: [503])
        _ = h.begin()
        #expect(h.model(h.report(.serverError(503))) == "gpt-4.0-turbo")
        #expect(h.model(h.report(.serverError(500))) == "gpt-3.5-turbo", "500 not in codes: no retry")
    }

    @Test("429 with Retry-After: next candidate now; the throttled entry is not retried sooner than asked")
    func rateLimitedWithHint() throws {
        var h = Harness()
        _ = h.begin()
        #expect(h.model(h.report(.rateLimited(retryAfter: .seconds(2)))) == "gpt-4.0-turbo")
        #expect(h.model(h.report(.serverError(400 + 100))) == "gpt-4.0-turbo")  // 500 retried once
        #expect(h.model(h.report(.serverError(500))) == "gpt-3.5-turbo")
        // Everything else failed: the throttled primary is tried again, but only when its wait ends.
        let waitAndRetry = h.report(.firstByteTimeout)
        #expect(h.model(waitAndRetry) == "gpt-4o")
        let d = try #require(h.delay(waitAndRetry))
        let elapsedSince429 = h.now - (h.start + .milliseconds(10))
        #expect(d + elapsedSince429 >= .seconds(2), "never sooner than Retry-After")
        #expect(h.report(.success) == .done)
    }

    @Test("429 with a Retry-After longer than the remaining budget is not waited for")
    func rateLimitedBeyondDeadline() {
        var h = Harness(levels: [guideLevels()[0]], budget: .seconds(5))
        _ = h.begin()
        let a = h.report(.rateLimited(retryAfter: .seconds(30)))
        guard case .fail(let f) = a else {
            Issue.record("expected failure, got \(a)")
            return
        }
        #expect(f.status == 503)
        #expect(f.retryAfter != nil && f.retryAfter! > .seconds(29))
    }

    @Test("a Retry-After beyond the cap: not waited for, even when the cap fits the deadline; the client is told to come back at the cap")
    func rateLimitedCapped() {
        let now = ContinuousClock.now
        let health = FakeHealth()
        for cap in [Duration.seconds(2), .seconds(300)] {
            var m = FailoverMachine(levels: [guideLevels()[0]], policy: FailoverPolicy(deadline: now + .seconds(60), retryAfterCap: cap), seed: 1)
            _ = m.start(now: now, health: health)
            let a = m.record(.rateLimited(retryAfter: .seconds(86400)), now: now, health: health)
            guard case .fail(let f) = a else {
                Issue.record("expected failure, got \(a)")
                continue
            }
            #expect(f.status == 503)
            #expect(f.retryAfter == cap)
        }
        // Another request finds the entry parked (by passive health): it is neither waited for nor
        // tried in panic; the next candidate serves, or the client hears when to come back.
        var next = Harness()
        next.health.set("b[0][0]", .parked(until: next.now + .seconds(2)))
        #expect(next.model(next.begin()) == "gpt-4.0-turbo")
        #expect(next.report(.success) == .done)
        #expect(next.trail == ["gpt-4.0-turbo=ok"])
        var only = Harness(levels: [guideLevels()[0]])
        only.health.set("b[0][0]", .parked(until: only.now + .seconds(2)))
        let a = only.begin()
        guard case .fail(let f) = a else {
            Issue.record("expected failure, got \(a)")
            return
        }
        #expect(f.status == 503)
        #expect(f.retryAfter == .seconds(2))
        #expect(only.health.admitted.isEmpty, "not tried in panic")
    }

    @Test("429 without a hint: bounded backoff retries on the same entry, then the next candidate; never a tight loop")
    func rateLimitedWithoutHint() throws {
        var h = Harness()
        _ = h.begin()
        let r1 = h.report(.rateLimited(retryAfter: nil))
        #expect(h.model(r1) == "gpt-4o")
        let d1 = try #require(h.delay(r1))
        #expect(d1 >= .milliseconds(100))
        let r2 = h.report(.rateLimited(retryAfter: nil))
        #expect(h.model(r2) == "gpt-4o")
        let d2 = try #require(h.delay(r2))
        #expect(d2 >= .milliseconds(200), "the second wait is drawn from a doubled window")
        #expect(h.model(h.report(.rateLimited(retryAfter: nil))) == "gpt-4.0-turbo")
    }

    @Test("no headers within the first-byte timeout: the silent model is not retried")
    func silent() {
        var h = Harness()
        _ = h.begin()
        let a = h.report(.firstByteTimeout, after: .seconds(30))
        #expect(h.model(a) == "gpt-4.0-turbo")
        #expect(!h.isRetry(a))
    }

    @Test("headers but no first token in time: abandon and go to the next candidate")
    func noFirstToken() {
        var h = Harness()
        _ = h.begin()
        #expect(h.model(h.report(.firstTokenTimeout)) == "gpt-4.0-turbo")
    }

    @Test("400 context_length_exceeded: never resent to the same model; next candidate; else the provider's error")
    func contextLength() {
        var h = Harness()
        _ = h.begin()
        #expect(h.model(h.report(.contextLengthExceeded(400))) == "gpt-4.0-turbo")
        #expect(h.model(h.report(.contextLengthExceeded(400))) == "gpt-3.5-turbo")
        #expect(h.report(.contextLengthExceeded(400)) == .returnUpstreamResponse)
        #expect(h.trail.count == 3)
    }

    @Test("400 content filter: the provider's error as is; no retry, no failover")
    func contentFilter() {
        var h = Harness()
        _ = h.begin()
        #expect(h.report(.contentFiltered(400)) == .returnUpstreamResponse)
        #expect(h.health.admitted == ["b[0][0]"])
    }

    @Test("401 / 403 / 404 model-not-found: that entry is misconfigured; next candidate", arguments: [401, 403, 404])
    func misconfigured(status: Int) {
        var h = Harness()
        _ = h.begin()
        let a = h.report(.misconfigured(status))
        #expect(h.model(a) == "gpt-4.0-turbo")
        #expect(h.trail == ["gpt-4o=\(status)"])
    }

    @Test("other 4xx: the request is wrong; returned, no retry", arguments: [400, 409, 413, 422])
    func otherClientError(status: Int) {
        var h = Harness()
        _ = h.begin()
        #expect(h.report(.clientError(status)) == .returnUpstreamResponse)
    }

    @Test("a body cut before anything reached the client is a failure like a reset: retried, then failed over")
    func truncatedBeforeCommit() {
        var h = Harness()
        _ = h.begin()
        #expect(h.isRetry(h.report(.truncated)))
        #expect(h.model(h.report(.truncated)) == "gpt-4.0-turbo")
    }

    @Test("stream cut after tokens: continuation goes to the next available candidate, never the one that broke")
    func continuation() {
        var h = Harness()
        _ = h.begin()
        _ = h.report(.truncated)  // recorded; the proxy then asks for a continuation
        h.health.set("b[1][0]", .ejected(until: h.now + .seconds(5)))
        let c = h.machine.continuationCandidate(now: h.now, health: h.health)
        #expect(c.map { h.machine.candidates[$0].model } == "gpt-3.5-turbo")
        h.machine.recordContinuation(.truncated)
        #expect(h.trail.last == "gpt-3.5-turbo=truncated")
        h.health.set("b[1][0]", .available)
        let c2 = h.machine.continuationCandidate(now: h.now, health: h.health)
        #expect(c2.map { h.machine.candidates[$0].model } == "gpt-4.0-turbo")
        h.machine.recordContinuation(.success)
        #expect(h.machine.continuationCandidate(now: h.now, health: h.health) == nil, "each candidate continues at most once")
    }

    @Test("everything failed: one error naming each attempt, 502 for errors")
    func allFailed() {
        var h = Harness(retries: 0)
        _ = h.begin()
        _ = h.report(.serverError(503))
        _ = h.report(.connectFailed)
        let a = h.report(.misconfigured(401))
        guard case .fail(let f) = a else {
            Issue.record("expected failure, got \(a)")
            return
        }
        #expect(f.status == 502)
        #expect(f.message.contains("gpt-4o: 503") && f.message.contains("gpt-4.0-turbo: connect_error") && f.message.contains("gpt-3.5-turbo: 401"))
    }

    @Test("everything timed out: 504")
    func allTimedOut() {
        var h = Harness()
        _ = h.begin()
        _ = h.report(.firstByteTimeout)
        _ = h.report(.firstTokenTimeout)
        guard case .fail(let f) = h.report(.attemptTimeout) else {
            Issue.record("expected failure")
            return
        }
        #expect(f.status == 504)
    }

    @Test("the request deadline bounds everything: no attempt starts after it")
    func deadline() {
        var h = Harness(budget: .seconds(1))
        _ = h.begin()
        guard case .fail(let f) = h.report(.serverError(503), after: .seconds(2)) else {
            Issue.record("expected failure")
            return
        }
        #expect(f.status == 504)
    }

    @Test("unusable entries (missing Secret) are skipped and named in the trail")
    func unusable() {
        var h = Harness(levels: guideLevels(["gpt-4o": "Secret ns/openai-secret not found"]))
        let a = h.begin()
        #expect(h.model(a) == "gpt-4.0-turbo")
        #expect(h.trail == ["gpt-4o=unusable"])
    }

    @Test("all unusable: 503, nothing attempted")
    func allUnusable() {
        let problems = ["gpt-4o": "x", "gpt-4.0-turbo": "x", "gpt-3.5-turbo": "x"]
        var h = Harness(levels: guideLevels(problems))
        guard case .fail(let f) = h.begin() else {
            Issue.record("expected failure")
            return
        }
        #expect(f.status == 503)
        #expect(h.health.admitted.isEmpty)
    }

    @Test("an ejected entry is skipped; the next priority serves")
    func ejectedSkipped() {
        var h = Harness()
        h.health.set("b[0][0]", .ejected(until: h.now + .seconds(5)))
        let a = h.begin()
        #expect(h.model(a) == "gpt-4.0-turbo")
        #expect(h.trail == ["gpt-4o=ejected"])
    }

    @Test("all ejected: the first is tried anyway rather than failing without asking anyone")
    func panicMode() {
        var h = Harness()
        for i in 0..<3 { h.health.set("b[\(i)][0]", .ejected(until: h.now + .seconds(5))) }
        let a = h.begin()
        #expect(h.model(a) == "gpt-4o")
        #expect(h.report(.success) == .done)
    }

    @Test("a probe-ready entry is tried (it becomes the single probe)")
    func probe() {
        var h = Harness()
        h.health.set("b[0][0]", .probe)
        #expect(h.model(h.begin()) == "gpt-4o")
        #expect(h.health.availability(of: "b[0][0]", now: h.now) != .probe, "the probe slot is taken")
    }

    @Test("an entry ejected by its own failure is not retried; the request moves on")
    func ejectedByOwnFailure() {
        var h = Harness()
        _ = h.begin()
        h.health.set("b[0][0]", .ejected(until: h.now + .seconds(5)))
        #expect(h.model(h.report(.serverError(503))) == "gpt-4.0-turbo")
    }

    @Test("within a pool, load spreads: the machine tries entries in the rotated order it is given")
    func poolOrder() {
        let pool = [
            FailoverCandidate(id: "p[0][1]", backend: "ns/b", model: "b", priority: 0, problem: nil),
            FailoverCandidate(id: "p[0][0]", backend: "ns/b", model: "a", priority: 0, problem: nil),
        ]
        var h = Harness(levels: [pool, [FailoverCandidate(id: "p[1][0]", backend: "ns/b", model: "c", priority: 1, problem: nil)]], retries: 0)
        #expect(h.model(h.begin()) == "b")
        #expect(h.model(h.report(.serverError(503))) == "a", "the same pool before a lower priority")
        #expect(h.model(h.report(.serverError(503))) == "c")
    }
}
