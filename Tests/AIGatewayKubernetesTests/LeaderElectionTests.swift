import Foundation
import Testing

@testable import AIGatewayKubernetes

private let wall = Date(timeIntervalSince1970: 1_136_214_245.5)  // 2006-01-02T15:04:05.5Z

private func record(_ holder: String, duration: Int = 15, transitions: Int = 0, renew: String = "2006-01-02T15:04:05.000000Z")
    -> LeaderElectionRecord
{
    LeaderElectionRecord(
        holderIdentity: holder, leaseDurationSeconds: duration, acquireTime: "2006-01-02T15:00:00.000000Z", renewTime: renew,
        leaseTransitions: transitions)
}

/// A machine that has just acquired the lease at `t0` (created it).
private func leader(at t0: ContinuousClock.Instant, timing: LeaderElectionTiming = .init()) -> LeaderElectionMachine {
    var m = LeaderElectionMachine(identity: "me", timing: timing)
    let write = m.observe(.absent, now: t0, wallClock: wall)!
    m.written(write, resourceVersion: "10", now: t0)
    return m
}

@Suite("Leader election decisions")
struct LeaderElectionMachineTests {
    let t0 = ContinuousClock.now

    @Test func anAbsentLeaseIsCreated() throws {
        var m = LeaderElectionMachine(identity: "me")
        let writeDecision = m.observe(.absent, now: t0, wallClock: wall)
        let write = try #require(writeDecision)
        let expected = LeaderElectionRecord(
            holderIdentity: "me", leaseDurationSeconds: 15, acquireTime: "2006-01-02T15:04:05.500000Z",
            renewTime: "2006-01-02T15:04:05.500000Z", leaseTransitions: 0)
        #expect(write == .create(expected))
        #expect(!m.isLeading)
        m.written(write, resourceVersion: "7", now: t0)
        #expect(m.isLeading)
        #expect(m.observedResourceVersion == "7")
        #expect(m.renewDeadline == t0 + .seconds(10))
    }

    @Test func aValidLeaseOfAnotherHolderIsLeftAloneUntilItExpiresByTheLocalClock() throws {
        var m = LeaderElectionMachine(identity: "me")
        // The holder's renewTime is years behind our wall clock: skew must not matter, only how
        // long *we* have seen the same record.
        let other = record("other", transitions: 3, renew: "2001-01-01T00:00:00.000000Z")
        #expect(m.observe(.present(other, resourceVersion: "5"), now: t0, wallClock: wall) == nil)
        #expect(m.observe(.present(other, resourceVersion: "5"), now: t0 + .seconds(14.9), wallClock: wall) == nil)
        #expect(!m.isLeading)

        let writeDecision = m.observe(.present(other, resourceVersion: "5"), now: t0 + .seconds(15), wallClock: wall)
        let write = try #require(writeDecision)
        guard case .update(let taken, let rv) = write else {
            Issue.record("expected an update, got \(write)")
            return
        }
        #expect(rv == "5")
        #expect(taken.holderIdentity == "me")
        #expect(taken.leaseTransitions == 4)
        #expect(taken.acquireTime == "2006-01-02T15:04:05.500000Z")
        #expect(taken.renewTime == taken.acquireTime)
        #expect(taken.leaseDurationSeconds == 15)
    }

    @Test func aRenewedRecordRestartsTheExpiryClock() {
        var m = LeaderElectionMachine(identity: "me")
        _ = m.observe(.present(record("other", renew: "r1"), resourceVersion: "5"), now: t0, wallClock: wall)
        // Renewed at t0+10: valid for 15 s from when we saw the change.
        #expect(m.observe(.present(record("other", renew: "r2"), resourceVersion: "6"), now: t0 + .seconds(10), wallClock: wall) == nil)
        #expect(m.observe(.present(record("other", renew: "r2"), resourceVersion: "6"), now: t0 + .seconds(20), wallClock: wall) == nil)
        #expect(m.observe(.present(record("other", renew: "r2"), resourceVersion: "6"), now: t0 + .seconds(25), wallClock: wall) != nil)
    }

    @Test func aReleasedLeaseIsTakenAtOnce() throws {
        var m = LeaderElectionMachine(identity: "me")
        let released = record("", duration: 1, transitions: 2)
        let writeDecision = m.observe(.present(released, resourceVersion: "9"), now: t0, wallClock: wall)
        let write = try #require(writeDecision)
        #expect(write.record.holderIdentity == "me")
        #expect(write.record.leaseTransitions == 3)
        #expect(write == .update(write.record, resourceVersion: "9"))
    }

    @Test func theLeaderRenewsOptimisticallyKeepingAcquireTimeAndTransitions() throws {
        var m = leader(at: t0)
        let first = try #require(m.observed)
        let later = Date(timeIntervalSince1970: 1_136_214_247)
        let renewal = try #require(m.optimisticRenewal(now: t0 + .seconds(2), wallClock: later))
        #expect(renewal == .update(
            LeaderElectionRecord(
                holderIdentity: "me", leaseDurationSeconds: 15, acquireTime: first.acquireTime,
                renewTime: "2006-01-02T15:04:07.000000Z", leaseTransitions: 0),
            resourceVersion: "10"))
        m.written(renewal, resourceVersion: "11", now: t0 + .seconds(2))
        #expect(m.renewDeadline == t0 + .seconds(12))
        #expect(m.optimisticRenewal(now: t0 + .seconds(4), wallClock: later) == .update(renewal.record, resourceVersion: "11"))

        // Not leading: nothing to renew blindly.
        #expect(LeaderElectionMachine(identity: "me").optimisticRenewal(now: t0, wallClock: wall) == nil)
    }

    @Test func theLeaderStepsDownWhenItCannotRenewWithinTheRenewDeadline() {
        var m = leader(at: t0)
        m.tick(now: t0 + .seconds(9.9))
        #expect(m.isLeading)
        m.tick(now: t0 + .seconds(10))
        #expect(!m.isLeading)
        #expect(m.renewDeadline == nil)
        // Past its own lease expiry nothing is renewed blindly either.
        #expect(m.optimisticRenewal(now: t0 + .seconds(10), wallClock: wall) == nil)
    }

    @Test func theLeaderStepsDownAtOnceWhenAnotherHolderHasTheLease() {
        var m = leader(at: t0)
        #expect(m.observe(.present(record("other", transitions: 1), resourceVersion: "12"), now: t0 + .seconds(1), wallClock: wall) == nil)
        #expect(!m.isLeading)
    }

    @Test func reacquiringItsOwnLeaseKeepsAcquireTimeAndTransitions() throws {
        var m = leader(at: t0)
        m.tick(now: t0 + .seconds(11))
        #expect(!m.isLeading)
        let mine = try #require(m.observed)
        let writeDecision = m.observe(.present(mine, resourceVersion: "10"), now: t0 + .seconds(12), wallClock: wall)
        let write = try #require(writeDecision)
        #expect(write.record.acquireTime == mine.acquireTime)
        #expect(write.record.leaseTransitions == mine.leaseTransitions)
        m.written(write, resourceVersion: "13", now: t0 + .seconds(12))
        #expect(m.isLeading)
    }

    @Test func releaseEmptiesTheHolderAndShortensTheLease() throws {
        var m = leader(at: t0)
        m.stepDown()
        #expect(!m.isLeading)
        let release = try #require(m.release(wallClock: wall))
        guard case .update(let r, let rv) = release else {
            Issue.record("expected an update")
            return
        }
        #expect(rv == "10")
        #expect(r.holderIdentity == "")
        #expect(r.leaseDurationSeconds == 1)
        #expect(r.leaseTransitions == 0)
        m.written(release, resourceVersion: "14", now: t0)
        #expect(!m.isLeading)
        // Not ours (any more): nothing to release.
        #expect(m.release(wallClock: wall) == nil)
        var other = LeaderElectionMachine(identity: "me")
        _ = other.observe(.present(record("other"), resourceVersion: "5"), now: t0, wallClock: wall)
        #expect(other.release(wallClock: wall) == nil)
    }

    @Test func candidatesRetryWithJitterAndTheLeaderAtTheRetryPeriod() {
        let candidate = LeaderElectionMachine(identity: "me")
        #expect(candidate.delayBeforeNextAttempt(random: 0) == .seconds(2))
        let half = candidate.delayBeforeNextAttempt(random: 0.5)
        #expect(half > .milliseconds(3199) && half < .milliseconds(3201))
        #expect(candidate.delayBeforeNextAttempt(random: 1) < .milliseconds(4401))
        #expect(leader(at: t0).delayBeforeNextAttempt(random: 0.9) == .seconds(2))
    }

    @Test func timingIsValidatedAsClientGoDoes() {
        #expect(LeaderElectionTiming().problem == nil)
        #expect(LeaderElectionTiming(leaseDuration: .seconds(10), renewDeadline: .seconds(10)).problem != nil)
        #expect(LeaderElectionTiming(renewDeadline: .seconds(2), retryPeriod: .seconds(2)).problem != nil)
        #expect(LeaderElectionTiming(leaseDuration: .milliseconds(15_500)).problem != nil)
        #expect(LeaderElectionTiming(retryPeriod: .zero).problem != nil)
        #expect(LeaderElectionTiming(leaseDuration: .seconds(2), renewDeadline: .seconds(1.5), retryPeriod: .milliseconds(200)).problem == nil)
    }

    @Test func microTimeHasSixFractionalDigitsInUTC() {
        #expect(MicroTime.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000000Z")
        #expect(MicroTime.format(Date(timeIntervalSince1970: 1_136_214_245.25)) == "2006-01-02T15:04:05.250000Z")
        #expect(MicroTime.format(Date(timeIntervalSince1970: 1_709_251_199.5)) == "2024-02-29T23:59:59.500000Z")
        #expect(MicroTime.format(Date(timeIntervalSince1970: 951_868_800)) == "2000-03-01T00:00:00.000000Z")
        #expect(MicroTime.format(Date(timeIntervalSince1970: -1)) == "1969-12-31T23:59:59.000000Z")
    }

    @Test func recordsRoundTripThroughALeaseSpec() {
        let r = record("pod-1_abc", transitions: 5)
        #expect(LeaderElectionRecord(lease: ["spec": r.spec]) == r)
        #expect(LeaderElectionRecord(lease: ["metadata": ["name": "x"]]) == LeaderElectionRecord(
            holderIdentity: "", leaseDurationSeconds: 0, acquireTime: nil, renewTime: nil, leaseTransitions: 0))
    }
}

@Suite("LeaderElector against the fake API server", fakeServerTrait)
struct LeaderElectorTests {
    /// For the test of the renew deadline itself.
    static let fast = LeaderElectionTiming(leaseDuration: .seconds(2), renewDeadline: .milliseconds(1500), retryPeriod: .milliseconds(200))
    /// For the tests that expect leadership to stay put: a renew deadline far beyond what a slow
    /// request on a busy machine takes (a 1.5 s one could pass unrenewed and change the leader),
    /// while the short retry period still lets a peer take a released lease at once.
    static let steady = LeaderElectionTiming(leaseDuration: .seconds(15), renewDeadline: .seconds(10), retryPeriod: .milliseconds(200))

    func elector(_ server: FakeAPIServer, _ identity: String, timing: LeaderElectionTiming = Self.steady) -> LeaderElector {
        LeaderElector(
            client: server.client(), configuration: .init(namespace: "default", name: "test-lease", identity: identity, timing: timing),
            logger: .init(label: "test"))
    }

    func lease(_ server: FakeAPIServer) async throws -> JSONValue {
        try await server.client().get(.leases, namespace: "default", name: "test-lease")
    }

    @Test func oneLeadsAndAReleasedLeaseGoesToThePeer() async throws {
        let server = try await FakeAPIServer()
        let a = elector(server, "a"), b = elector(server, "b")
        let runA = Task { await a.run() }
        let runB = Task { await b.run() }
        defer {
            runA.cancel()
            runB.cancel()
        }
        try await eventually("a leader") { a.isLeader || b.isLeader }
        let (leader, follower, leaderTask) = a.isLeader ? (a, b, runA) : (b, a, runB)
        #expect(!follower.isLeader)
        let held = try await lease(server)
        #expect(held["spec"]?["holderIdentity"]?.stringValue == leader.configuration.identity)
        #expect(held["spec"]?["leaseDurationSeconds"]?.intValue == 15)
        #expect(held["spec"]?["leaseTransitions"]?.intValue == 0)
        let renewTime = try #require(held["spec"]?["renewTime"]?.stringValue)
        #expect(renewTime.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z/) != nil)
        // The leader keeps renewing.
        try await eventually("a renewal") { try await lease(server)["spec"]?["renewTime"]?.stringValue != renewTime }
        #expect(leader.isLeader && !follower.isLeader)

        // Shutting the leader down releases the lease; the peer takes it at its next attempt,
        // long before the 15 s lease would have expired, and counts a transition.
        leaderTask.cancel()
        await leaderTask.value
        #expect(!leader.isLeader)
        try await eventually("the peer leads") { follower.isLeader }
        let taken = try await lease(server)
        #expect(taken["spec"]?["holderIdentity"]?.stringValue == follower.configuration.identity)
        #expect(taken["spec"]?["leaseTransitions"]?.intValue == 1)
    }

    @Test func anUnrenewedLeaseIsTakenOverAfterItExpires() async throws {
        let server = try await FakeAPIServer()
        // A holder that died without releasing.
        let ghost = LeaderElectionRecord(
            holderIdentity: "ghost", leaseDurationSeconds: 1, acquireTime: MicroTime.format(Date()), renewTime: MicroTime.format(Date()),
            leaseTransitions: 4)
        try await server.client().create(
            .leases, namespace: "default",
            ["apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": ["name": "test-lease", "namespace": "default"], "spec": ghost.spec])
        let b = elector(server, "b")
        let leadership = Collector<Bool>()
        let changes = b.changes()
        let follow = Task { for await value in changes { leadership.append(value) } }
        let run = Task { await b.run() }
        defer {
            run.cancel()
            follow.cancel()
        }
        try await eventually("b leads") { b.isLeader }
        let taken = try await lease(server)
        #expect(taken["spec"]?["holderIdentity"]?.stringValue == "b")
        #expect(taken["spec"]?["leaseTransitions"]?.intValue == 5)
        #expect(taken["spec"]?["leaseDurationSeconds"]?.intValue == 15)
        try await eventually("the change was published") { leadership.values == [false, true] }
    }

    @Test func theLeaderStepsDownWhenTheAPIFailsPastTheRenewDeadlineAndComesBack() async throws {
        let server = try await FakeAPIServer()
        let a = elector(server, "a", timing: Self.fast)
        let leadership = Collector<Bool>()
        let changes = a.changes()
        let follow = Task { for await value in changes { leadership.append(value) } }
        let run = Task { await a.run() }
        defer {
            run.cancel()
            follow.cancel()
        }
        try await eventually("a leads") { a.isLeader }
        // Every lease request fails until the leader has stepped down (past the 1.5 s renew deadline).
        try await server.fault("/_fake/fail-next?count=1000000&code=500&path=/apis/coordination.k8s.io")
        try await eventually("a steps down") { !a.isLeader }
        // Once the API answers again, it re-acquires its own (never taken) lease.
        try await server.fault("/_fake/clear-failures")
        try await eventually("a leads again") { a.isLeader }
        // `isLeader` flips before the change reaches the stream's consumer: wait for it.
        try await eventually("the changes were published") { leadership.values == [false, true, false, true] }
        #expect(try await lease(server)["spec"]?["leaseTransitions"]?.intValue == 0)
    }
}
