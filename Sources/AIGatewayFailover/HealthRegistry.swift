import AIGatewayRouting
import Synchronization

public typealias Instant = ContinuousClock.Instant

/// Whether an entry may be tried now, as passive health sees it.
public enum Availability: Sendable, Hashable {
    case available
    /// The ejection ended and nobody is probing: the next attempt is the probe.
    case probe
    /// Ejected until then (or a probe is in flight).
    case ejected(until: Instant)
    /// The provider asked us to wait until then.
    case coolingDown(until: Instant)
    /// The provider asked for longer than the cap (`--retry-after-cap`): unavailable until then,
    /// and not worth waiting for (its end is when one request probes, not when the provider said
    /// it would be back).
    case parked(until: Instant)
}

/// What the failover machine asks of shared health state. `HealthRegistry` is the real one;
/// tests supply their own.
public protocol HealthOracle: Sendable {
    func availability(of entry: String, now: Instant) -> Availability
    /// Claims the right to send a request to the entry: false if another request took the probe slot.
    func admit(_ entry: String, now: Instant) -> Bool
    /// Takes one token from the backend's retry budget; false when exhausted.
    func withdrawRetry(backend: String) -> Bool
}

/// A change in an entry's passive health, for logs and metrics.
public enum HealthEvent: Sendable, Hashable {
    case ejected(for: Duration)
    case restored
}

/// Passive health of every entry, shared by all requests: consecutive failures eject an entry for
/// a cool-down that doubles on each repeat; when it ends a single live request probes it and a
/// success restores it. Also holds provider-requested cool-downs (429 `Retry-After`, honoured up to
/// `Policy.retryAfterCap`, after which a single request probes as after an ejection), round-robin
/// counters and per-backend retry budgets.
public final class HealthRegistry: HealthOracle {
    public struct Policy: Sendable, Hashable {
        public var threshold: Int
        public var base: Duration
        public var max: Duration
        /// The longest provider-requested cool-down honoured (`--retry-after-cap`): a longer one ends
        /// at the cap, and a single request then probes the entry, as after an ejection.
        public var retryAfterCap: Duration

        public static let defaultRetryAfterCap: Duration = .seconds(300)

        public init(threshold: Int = 3, base: Duration = .seconds(5), max: Duration = .seconds(20), retryAfterCap: Duration = Policy.defaultRetryAfterCap) {
            self.threshold = threshold
            self.base = base
            self.max = max
            self.retryAfterCap = retryAfterCap
        }

        public init(_ s: BackendSettings, retryAfterCap: Duration = Policy.defaultRetryAfterCap) {
            self.init(threshold: s.ejectionThreshold, base: s.ejectionBase, max: s.ejectionMax, retryAfterCap: retryAfterCap)
        }
    }

    struct EntryState: Equatable {
        var consecutiveFailures = 0
        var ejections = 0
        var ejectedUntil: Instant?
        var probeStarted: Instant?
        var coolingUntil: Instant?
        /// The provider asked for longer than the cap: when the cool-down ends, one request probes.
        var coolingCapped = false
    }

    struct Budget {
        var tokens: Double
    }

    /// Only what differs from the start holds a place: an entry with no failure, cool-down or
    /// probe (`EntryState()`) has none, nor has a budget at its burst. So while none has, every
    /// request's questions have the answers of a fresh registry, and two counts say so without
    /// the lock that all event loops would otherwise take several times per request.
    struct State {
        var entries: [String: EntryState] = [:]
        var counters: [String: RoundRobin] = [:]
        var budgets: [String: Budget] = [:]
        /// The entry ids of the table in force, once one was installed (`retain`): an outcome of an
        /// entry outside it (a request that started on an older table) is not recorded.
        var known: Set<String>?
    }

    /// Retry budget: each request deposits `retryRatio` tokens, each retry spends one, up to `retryBurst`.
    public let retryRatio: Double
    public let retryBurst: Double
    /// A probe that never reported back frees its slot after this long.
    public let probeTimeout: Duration
    private let state = Mutex(State())
    /// How many entries hold state, and how many budgets are below their burst: written under the
    /// lock whenever `entries` or `budgets` change, read without it. While the first is zero every
    /// entry is available and a success changes nothing; while the second is, every budget is
    /// full. (A reader that sees zero just before another loop records a failure is served as if
    /// it came just before it, as it would have been had it won the lock.)
    private let troubledEntries = Atomic<Int>(0)
    private let spentBudgets = Atomic<Int>(0)

    private var entriesCalm: Bool { troubledEntries.load(ordering: .acquiring) == 0 }

    /// Runs `body` on the state under the lock and republishes the two counts.
    private func update<R>(_ body: (inout State) -> R) -> R {
        state.withLock { s in
            let r = body(&s)
            troubledEntries.store(s.entries.count, ordering: .releasing)
            spentBudgets.store(s.budgets.count, ordering: .releasing)
            return r
        }
    }

    public init(retryRatio: Double = 0.2, retryBurst: Double = 10, probeTimeout: Duration = .seconds(60)) {
        self.retryRatio = retryRatio
        self.retryBurst = retryBurst
        self.probeTimeout = probeTimeout
    }

    public func availability(of entry: String, now: Instant) -> Availability {
        if entriesCalm { return .available }
        return state.withLock { s in Self.availability(s.entries[entry], now: now, probeTimeout: probeTimeout) }
    }

    static func availability(_ e: EntryState?, now: Instant, probeTimeout: Duration) -> Availability {
        guard let e else { return .available }
        if let until = e.coolingUntil, until > now { return e.coolingCapped ? .parked(until: until) : .coolingDown(until: until) }
        if let until = e.ejectedUntil ?? (e.coolingCapped ? e.coolingUntil : nil) {
            if until > now { return .ejected(until: until) }
            if let started = e.probeStarted, now - started < probeTimeout { return .ejected(until: started + probeTimeout) }
            return .probe
        }
        return .available
    }

    public func admit(_ entry: String, now: Instant) -> Bool {
        if entriesCalm { return true }
        return update { s in
            switch Self.availability(s.entries[entry], now: now, probeTimeout: probeTimeout) {
            case .available: return true
            case .probe:
                s.entries[entry, default: .init()].probeStarted = now
                return true
            case .ejected, .coolingDown, .parked: return false
            }
        }
    }

    /// Records an attempt's outcome; returns the health change it caused, if any.
    @discardableResult
    public func record(_ entry: String, outcome: AttemptOutcome, now: Instant, policy: Policy = .init()) -> HealthEvent? {
        // A success of an entry without state leaves it without state.
        if case .success = outcome, entriesCalm { return nil }
        return update { s in
            if let known = s.known, !known.contains(entry) { return nil }
            var e = s.entries[entry] ?? EntryState()
            defer { s.entries[entry] = e == EntryState() ? nil : e }
            switch outcome {
            case .success:
                let wasEjected = e.ejectedUntil != nil || e.coolingCapped
                e = EntryState()
                return wasEjected ? .restored : nil
            case .rateLimited(let after):
                // Remember the provider's cool-down for later requests; without a hint, a short one.
                // Up to the cap: a provider cannot park a model for a day.
                let asked = after ?? .milliseconds(500)
                let capped = asked > policy.retryAfterCap
                let until = now + min(asked, policy.retryAfterCap)
                if e.coolingUntil.map({ $0 < until }) ?? true {
                    e.coolingUntil = until
                    e.coolingCapped = capped
                } else if capped {
                    e.coolingCapped = true
                }
                e.probeStarted = nil
                return nil
            case _ where outcome.isHealthFailure:
                e.consecutiveFailures += 1
                let wasProbe = e.probeStarted != nil
                e.probeStarted = nil
                // Already ejected: a late failure of a request that started before says nothing new.
                if let until = e.ejectedUntil, until > now { return nil }
                guard wasProbe || e.consecutiveFailures >= policy.threshold else { return nil }
                // Cool-down doubles with each ejection in a row: base, 2×base, … up to max.
                let factor = 1 << min(e.ejections, 20)
                let d = min(policy.base * factor, policy.max)
                e.ejections += 1
                e.ejectedUntil = now + d
                return .ejected(for: d)
            default:
                // The request's own fault (content filter, bad request): says nothing of the entry.
                if e.probeStarted != nil {
                    e.probeStarted = nil
                }
                return nil
            }
        }
    }

    /// Rotates the start of a priority level: each call returns the next offset modulo `count`.
    public func nextRoundRobin(_ key: String, count: Int) -> Int {
        guard count > 1 else { return 0 }
        return roundRobin(key).next(count: count)
    }

    /// The counter of a priority level that rotates (`key` is `label#priority`), shared by every
    /// request: a caller that keeps it turns it without the registry's lock.
    public final class RoundRobin: Sendable {
        private let turns = Atomic<Int>(0)

        init() {}

        /// The next offset modulo `count` (what `nextRoundRobin` returns).
        public func next(count: Int) -> Int {
            guard count > 1 else { return 0 }
            return turns.wrappingAdd(1, ordering: .relaxed).oldValue % count
        }
    }

    /// The counter behind `nextRoundRobin(key, count:)` (made on first use; dropped by `retain`
    /// with its Backend).
    public func roundRobin(_ key: String) -> RoundRobin {
        state.withLock { s in
            if let r = s.counters[key] { return r }
            let r = RoundRobin()
            s.counters[key] = r
            return r
        }
    }

    /// Called once per request routed to `backend`: feeds its retry budget.
    public func depositRequest(backend: String) {
        // No budget below its burst: this one is full.
        if spentBudgets.load(ordering: .acquiring) == 0 { return }
        update { s in
            var b = s.budgets[backend] ?? Budget(tokens: retryBurst)
            b.tokens = min(retryBurst, b.tokens + retryRatio)
            s.budgets[backend] = b.tokens >= retryBurst ? nil : b
        }
    }

    public func withdrawRetry(backend: String) -> Bool {
        update { s in
            var b = s.budgets[backend] ?? Budget(tokens: retryBurst)
            defer { s.budgets[backend] = b.tokens >= retryBurst ? nil : b }
            guard b.tokens >= 1 else { return false }
            b.tokens -= 1
            return true
        }
    }

    /// A new table is in force: keeps the state of its entries (ids are identities, so a model keeps
    /// its health when the Backend is reordered or reloaded) and drops that of entries and Backends
    /// it no longer has.
    public func retain(_ table: RoutingTable) {
        retain(entries: table.entryIDs, backends: table.backendLabels)
    }

    /// Keeps the state of these entry ids and backend labels only (round-robin counters are keyed
    /// `label#priority`).
    public func retain(entries ids: Set<String>, backends labels: Set<String>) {
        update { s in
            s.known = ids
            s.entries = s.entries.filter { ids.contains($0.key) }
            s.budgets = s.budgets.filter { labels.contains($0.key) }
            s.counters = s.counters.filter { key, _ in
                guard let hash = key.lastIndex(of: "#") else { return false }
                return labels.contains(String(key[..<hash]))
            }
        }
    }

    /// Entries currently ejected, for the admin endpoint and tests.
    public func ejectedEntries(now: Instant) -> [String] {
        state.withLock { s in
            s.entries.filter { if let u = $0.value.ejectedUntil { u > now } else { false } }.map(\.key).sorted()
        }
    }
}
