import AIGatewayRouting

/// Knobs of one request's failover, from the route and the Backend.
public struct FailoverPolicy: Sendable, Hashable {
    /// Same-entry retries after a 5xx (in `retryCodes`) or a connection failure.
    public var sameEntryRetries: Int
    public var retryCodes: Set<Int>
    /// Base of the jittered exponential backoff between same-entry retries.
    public var backoff: Duration
    /// Same-entry retries after a 429 that gave no hint of how long to wait.
    public var rateLimitRetries: Int
    /// The request's deadline: nothing is attempted or waited for past it.
    public var deadline: Instant
    /// The longest provider-requested wait honoured (`--retry-after-cap`).
    public var retryAfterCap: Duration

    public init(
        sameEntryRetries: Int = 1, retryCodes: Set<Int> = RetryPolicy.defaultCodes, backoff: Duration = .milliseconds(100), rateLimitRetries: Int = 2,
        deadline: Instant, retryAfterCap: Duration = HealthRegistry.Policy.defaultRetryAfterCap
    ) {
        self.sameEntryRetries = sameEntryRetries
        self.retryCodes = retryCodes
        self.backoff = backoff
        self.rateLimitRetries = rateLimitRetries
        self.deadline = deadline
        self.retryAfterCap = retryAfterCap
    }
}

/// Why a request failed after every candidate, and what to answer.
public struct FailoverFailure: Sendable, Hashable {
    public var status: Int
    /// OpenAI error `type` / `code`.
    public var code: String
    public var message: String
    /// For 503s caused by provider cool-downs: when to come back.
    public var retryAfter: Duration?
}

/// One candidate of the request: an entry of the Backend in the order it will be tried.
public struct FailoverCandidate: Sendable, Hashable {
    public var id: String
    public var backend: String
    public var model: String
    public var priority: Int
    /// Why it cannot be tried at all, if so.
    public var problem: String?
    /// The provider key (`openai`, `anthropic`, ...); empty when unknown.
    public var provider: String
    /// How the attempt trail names the candidate: `provider/model` (the model alone without a
    /// provider). Made when the trail is, for the candidates attempted only.
    public var trailName: String { provider.isEmpty ? model : provider + "/" + model }

    public init(id: String, backend: String, model: String, priority: Int, problem: String?, provider: String = "") {
        self.id = id
        self.backend = backend
        self.model = model
        self.priority = priority
        self.problem = problem
        self.provider = provider
    }

    /// `backendLabel` is `e.backend.description`, made once by the caller.
    public init(_ e: CompiledEntry, backendLabel: String) {
        self.init(
            id: e.id, backend: backendLabel, model: e.model, priority: e.priority, problem: e.isUsable ? nil : (e.problem ?? "no credentials"),
            provider: e.target.provider)
    }
}

/// The decisions of failover for one request, as a value-type state machine: the I/O shell
/// performs each action it returns and reports the outcome back. No sockets, no clocks of its
/// own: time and shared health come in as arguments, randomness from a seeded generator.
public struct FailoverMachine: Sendable {
    public enum Action: Sendable, Hashable {
        /// Send the request to candidate `index` after waiting `delay`.
        case attempt(index: Int, delay: Duration, isRetry: Bool)
        /// Return the upstream response just reported, as is (content filter, other 4xx,
        /// or a context-length error with nowhere left to go).
        case returnUpstreamResponse
        /// Everything failed: answer with this error.
        case fail(FailoverFailure)
        /// The last attempt succeeded.
        case done
    }

    /// One line of the attempt trail.
    public struct Record: Sendable, Hashable {
        public var index: Int
        public var outcome: AttemptOutcome
    }

    enum CandidateState: Sendable, Hashable {
        case pending
        case finished
        /// Asked to wait (429) until then; may be retried if nothing else is left.
        case waiting(until: Instant)
        /// Asked to wait longer than the cap: not waited for; its end is told to the client.
        case parked(until: Instant)
    }

    /// Per candidate: where it stands and the retries it has had (one array, not three).
    struct Slot: Sendable, Hashable {
        var state = CandidateState.pending
        var retries = 0
        var rateLimitRetries = 0
    }

    /// The candidates' slots, stored from the first change only: until then every candidate is
    /// pending with no retries, so the usual request (answered by the first candidate it tries)
    /// allocates no array for them.
    struct Slots: Sendable, Hashable {
        private var stored: [Slot] = []
        let count: Int

        init(count: Int) { self.count = count }

        /// `self[i].state` is `.pending` (read without making a slot).
        func isPending(_ i: Int) -> Bool {
            if stored.isEmpty { return true }
            if case .pending = stored[i].state { return true }
            return false
        }

        /// Sets `self[i].state` to `.pending` (nothing to store while every slot is fresh).
        mutating func setPending(_ i: Int) {
            if !stored.isEmpty { stored[i].state = .pending }
        }

        subscript(i: Int) -> Slot {
            get {
                precondition(i >= 0 && i < count, "slot index out of range")
                return stored.isEmpty ? Slot() : stored[i]
            }
            set {
                precondition(i >= 0 && i < count, "slot index out of range")
                if stored.isEmpty {
                    // Still all fresh: writing a fresh slot changes nothing.
                    if case .pending = newValue.state, newValue.retries == 0, newValue.rateLimitRetries == 0 { return }
                    stored = Array(repeating: Slot(), count: count)
                }
                stored[i] = newValue
            }
        }
    }

    public let candidates: [FailoverCandidate]
    public let policy: FailoverPolicy
    public private(set) var records: [Record] = []
    private var slots: Slots
    private var current: Int?
    private var attemptedAny = false
    private var rng: SplitMix64

    /// - Parameters:
    ///   - levels: priority levels in order, each already rotated for round robin.
    public init(levels: [[FailoverCandidate]], policy: FailoverPolicy, seed: UInt64) {
        self.init(candidates: levels.flatMap { $0 }, policy: policy, seed: seed)
    }

    /// - Parameters:
    ///   - candidates: every candidate in the order of trying: priority by priority, each
    ///     priority already rotated for round robin.
    public init(candidates: [FailoverCandidate], policy: FailoverPolicy, seed: UInt64) {
        self.candidates = candidates
        self.policy = policy
        self.slots = Slots(count: candidates.count)
        self.rng = SplitMix64(seed: seed)
    }

    /// The first action of the request.
    public mutating func start(now: Instant, health: some HealthOracle) -> Action {
        nextCandidate(now: now, health: health)
    }

    /// Reports the outcome of the attempt last asked for and returns what to do next.
    public mutating func record(_ outcome: AttemptOutcome, now: Instant, health: some HealthOracle) -> Action {
        guard let c = current else { return .fail(summary(now: now)) }
        records.append(Record(index: c, outcome: outcome))
        switch outcome {
        case .success:
            current = nil
            return .done
        case .contentFiltered, .clientError:
            // The request itself is at fault; no other model would answer differently.
            current = nil
            return .returnUpstreamResponse
        case .contextLengthExceeded:
            slots[c].state = .finished
            let next = nextCandidate(now: now, health: health)
            if case .fail = next { return .returnUpstreamResponse }
            return next
        case .connectFailed, .truncated:
            return retryOrMoveOn(c, now: now, health: health)
        case .serverError(let status):
            if policy.retryCodes.contains(status) { return retryOrMoveOn(c, now: now, health: health) }
            slots[c].state = .finished
            return nextCandidate(now: now, health: health)
        case .rateLimited(let after):
            if let after {
                // Never sooner than asked; other candidates first. Beyond the cap, the entry is
                // probed again when the cap ends, by a later request: not worth waiting for.
                slots[c].state = after > policy.retryAfterCap ? .parked(until: now + policy.retryAfterCap) : .waiting(until: now + after)
                return nextCandidate(now: now, health: health)
            }
            if slots[c].rateLimitRetries < policy.rateLimitRetries, health.withdrawRetry(backend: candidates[c].backend) {
                slots[c].rateLimitRetries += 1
                let delay = backoff(attempt: slots[c].rateLimitRetries, base: max(policy.backoff, .milliseconds(200)))
                if now + delay < policy.deadline {
                    return .attempt(index: c, delay: delay, isRetry: true)
                }
            }
            slots[c].state = .finished
            return nextCandidate(now: now, health: health)
        case .firstByteTimeout, .firstTokenTimeout, .attemptTimeout, .misconfigured, .unusable, .incompatible, .ejected:
            // Silent, stalled or misconfigured: retrying the same entry would only wait again.
            slots[c].state = .finished
            return nextCandidate(now: now, health: health)
        }
    }

    /// After a stream was cut once tokens reached the client: the candidate to continue on, if any
    /// is available now (no waiting: the client is mid-answer).
    public mutating func continuationCandidate(now: Instant, health: some HealthOracle) -> Int? {
        if let c = current { slots[c].state = .finished }
        for i in candidates.indices where slots.isPending(i) && candidates[i].problem == nil {
            guard health.availability(of: candidates[i].id, now: now) == .available || health.availability(of: candidates[i].id, now: now) == .probe else { continue }
            guard health.admit(candidates[i].id, now: now) else { continue }
            // Each candidate gets one chance to continue the answer.
            slots[i].state = .finished
            current = i
            return i
        }
        return nil
    }

    /// Reports the outcome of a continuation attempt (for the trail only).
    public mutating func recordContinuation(_ outcome: AttemptOutcome) {
        if let c = current { records.append(Record(index: c, outcome: outcome)) }
        current = nil
    }

    private mutating func retryOrMoveOn(_ c: Int, now: Instant, health: some HealthOracle) -> Action {
        // An entry this very failure ejected is not retried.
        let stillAvailable = health.availability(of: candidates[c].id, now: now) == .available
        if stillAvailable, slots[c].retries < policy.sameEntryRetries, health.withdrawRetry(backend: candidates[c].backend) {
            slots[c].retries += 1
            let delay = backoff(attempt: slots[c].retries, base: policy.backoff)
            if now + delay < policy.deadline {
                return .attempt(index: c, delay: delay, isRetry: true)
            }
        }
        slots[c].state = .finished
        return nextCandidate(now: now, health: health)
    }

    /// Full jitter: uniform in [base×2^(n-1)/2, base×2^(n-1)].
    private mutating func backoff(attempt: Int, base: Duration) -> Duration {
        let ceiling = base * (1 << min(attempt - 1, 10))
        let ms = Double(ceiling.components.seconds) * 1000 + Double(ceiling.components.attoseconds) / 1e15
        let jittered = ms / 2 + rng.nextUnit() * ms / 2
        return .microseconds(Int64(jittered * 1000))
    }

    private mutating func nextCandidate(now: Instant, health: some HealthOracle) -> Action {
        current = nil
        guard now < policy.deadline else { return .fail(summary(now: now)) }
        var skippedEjected: [Int] = []
        for i in candidates.indices where slots.isPending(i) {
            if let problem = candidates[i].problem {
                slots[i].state = .finished
                records.append(Record(index: i, outcome: .unusable(problem)))
                continue
            }
            switch health.availability(of: candidates[i].id, now: now) {
            case .available, .probe:
                if health.admit(candidates[i].id, now: now) {
                    markSkipped(skippedEjected)
                    return begin(i)
                }
                skippedEjected.append(i)
            case .ejected:
                skippedEjected.append(i)
            case .coolingDown(let until):
                slots[i].state = .waiting(until: until)
            case .parked(let until):
                slots[i].state = .parked(until: until)
            }
        }
        markSkipped(skippedEjected)
        // Nothing healthy is left: wait for a provider cool-down if it ends within the deadline.
        let waiting = candidates.indices.compactMap { i -> (Int, Instant)? in
            if case .waiting(let until) = slots[i].state { return (i, until) }
            return nil
        }.sorted { $0.1 < $1.1 }
        if let (i, until) = waiting.first, until < policy.deadline {
            slots[i].state = .pending
            current = i
            attemptedAny = true
            return .attempt(index: i, delay: max(.zero, until - now), isRetry: records.contains { $0.index == i })
        }
        // Every candidate was ejected and none was tried: rather than fail without asking anyone,
        // try the first one anyway (like Envoy's panic threshold).
        if !attemptedAny, let first = skippedEjected.first {
            records.removeAll { $0.index == first && $0.outcome == .ejected }
            return begin(first)
        }
        return .fail(summary(now: now))
    }

    private mutating func markSkipped(_ ejected: [Int]) {
        for i in ejected {
            slots[i].state = .finished
            records.append(Record(index: i, outcome: .ejected))
        }
    }

    private mutating func begin(_ i: Int) -> Action {
        current = i
        attemptedAny = true
        slots.setPending(i)
        return .attempt(index: i, delay: .zero, isRetry: false)
    }

    /// The final error: 504 when time ran out, 503 when every candidate was throttled, ejected
    /// or unusable, 502 otherwise.
    public func summary(now: Instant) -> FailoverFailure {
        let tried = records.filter {
            switch $0.outcome {
            case .unusable, .incompatible, .ejected: false
            default: true
            }
        }
        let trail = records.map { "\(candidates[$0.index].model): \($0.outcome.label)" }.joined(separator: ", ")
        let detail = trail.isEmpty ? "no model could be tried" : "attempts: \(trail)"
        // No candidate could take the request as asked: the client must change it.
        let refused = records.compactMap { r -> String? in
            if case .incompatible(let parameter, _) = r.outcome { return parameter }
            return nil
        }
        if tried.isEmpty, !refused.isEmpty {
            var names: [String] = []
            for p in refused where !names.contains(p) { names.append(p) }
            let list = names.map { "'\($0)'" }.joined(separator: ", ")
            return FailoverFailure(
                status: 400, code: "unsupported_parameter",
                message: "No model of this backend can honour \(list) (\(detail)); remove or change it.", retryAfter: nil)
        }
        if now >= policy.deadline {
            return FailoverFailure(status: 504, code: "gateway_timeout", message: "The request deadline passed before any model answered (\(detail)).", retryAfter: nil)
        }
        let waits = candidates.indices.compactMap { i -> Instant? in
            switch slots[i].state {
            case .waiting(let until), .parked(let until): return until
            case .pending, .finished: return nil
            }
        }
        let allTimeouts = !tried.isEmpty && tried.allSatisfy {
            switch $0.outcome {
            case .firstByteTimeout, .firstTokenTimeout, .attemptTimeout: true
            default: false
            }
        }
        if allTimeouts {
            return FailoverFailure(status: 504, code: "upstream_timeout", message: "Every model timed out (\(detail)).", retryAfter: nil)
        }
        let throttledOnly = tried.allSatisfy { if case .rateLimited = $0.outcome { true } else { false } }
        if throttledOnly {
            let retryAfter = waits.min().map { max(.zero, $0 - now) }
            let what = tried.isEmpty ? "No model is available right now" : "Every model is rate limited"
            return FailoverFailure(status: 503, code: "service_unavailable", message: "\(what) (\(detail)).", retryAfter: retryAfter)
        }
        return FailoverFailure(status: 502, code: "upstream_error", message: "Every model failed (\(detail)).", retryAfter: nil)
    }
}

/// A small, fast, seedable generator for jitter.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
