import Foundation

/// The leader-election fields of a `coordination.k8s.io/v1` Lease's `spec`, as client-go's
/// `LeaderElectionRecord` has them. An empty `holderIdentity` means nobody holds the lease
/// (a leader released it).
public struct LeaderElectionRecord: Sendable, Hashable {
    public var holderIdentity: String
    public var leaseDurationSeconds: Int
    /// MicroTime (`2006-01-02T15:04:05.000000Z`).
    public var acquireTime: String?
    /// MicroTime.
    public var renewTime: String?
    public var leaseTransitions: Int

    public init(
        holderIdentity: String, leaseDurationSeconds: Int, acquireTime: String?, renewTime: String?, leaseTransitions: Int
    ) {
        self.holderIdentity = holderIdentity
        self.leaseDurationSeconds = leaseDurationSeconds
        self.acquireTime = acquireTime
        self.renewTime = renewTime
        self.leaseTransitions = leaseTransitions
    }

    /// The record in a Lease object (missing fields read as empty / zero).
    public init(lease: JSONValue) {
        let spec = lease["spec"]
        self.init(
            holderIdentity: spec?["holderIdentity"]?.stringValue ?? "",
            leaseDurationSeconds: spec?["leaseDurationSeconds"]?.intValue ?? 0,
            acquireTime: spec?["acquireTime"]?.stringValue,
            renewTime: spec?["renewTime"]?.stringValue,
            leaseTransitions: spec?["leaseTransitions"]?.intValue ?? 0)
    }

    /// The Lease `spec` holding this record.
    public var spec: JSONValue {
        var spec: [String: JSONValue] = [
            "holderIdentity": .string(holderIdentity), "leaseDurationSeconds": .int(leaseDurationSeconds),
            "leaseTransitions": .int(leaseTransitions),
        ]
        if let acquireTime { spec["acquireTime"] = .string(acquireTime) }
        if let renewTime { spec["renewTime"] = .string(renewTime) }
        return .object(spec)
    }
}

/// Kubernetes `MicroTime`: UTC with exactly six fractional digits, `2006-01-02T15:04:05.000000Z`.
public enum MicroTime {
    public static func format(_ date: Date) -> String {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded(.down))
        let seconds = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
        let fraction = micros - seconds * 1_000_000
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2))"
            + ":\(pad(secondOfDay % 60, 2)).\(pad(fraction, 6))Z"
    }
}

/// How long a lease lasts and how often it is renewed; client-go's defaults.
public struct LeaderElectionTiming: Sendable, Hashable {
    /// How long non-leaders wait after they last saw the record change before taking over.
    /// Whole seconds (`leaseDurationSeconds`).
    public var leaseDuration: Duration
    /// A leader that has not renewed for this long steps down (stops acting as leader).
    public var renewDeadline: Duration
    /// Time between attempts (renewals by the leader, acquisition tries by the others; the
    /// latter jittered by up to `jitterFactor`).
    public var retryPeriod: Duration

    public static let jitterFactor = 1.2

    public init(leaseDuration: Duration = .seconds(15), renewDeadline: Duration = .seconds(10), retryPeriod: Duration = .seconds(2)) {
        self.leaseDuration = leaseDuration
        self.renewDeadline = renewDeadline
        self.retryPeriod = retryPeriod
    }

    /// client-go's checks: leaseDuration > renewDeadline > jitterFactor × retryPeriod > 0, and
    /// the lease duration in whole seconds. Nil when valid, else what is wrong.
    public var problem: String? {
        if retryPeriod <= .zero { return "the retry period must be positive" }
        if leaseDuration.components.attoseconds != 0 || leaseDuration < .seconds(1) {
            return "the lease duration must be a whole number of seconds"
        }
        if leaseDuration <= renewDeadline { return "the lease duration must be greater than the renew deadline" }
        if renewDeadline <= retryPeriod * Self.jitterFactor {
            return "the renew deadline must be greater than \(Self.jitterFactor) × the retry period"
        }
        return nil
    }

    var leaseDurationSeconds: Int { Int(leaseDuration.components.seconds) }
}

/// The decisions of leader election over a Lease, as client-go's `tryAcquireOrRenew`, without
/// I/O: the caller reads and writes the Lease and reports back with the time it did so.
///
/// - Expiry is judged by the local clock: a lease is valid until `leaseDurationSeconds` after
///   *we* observed its record change (never by comparing the holder's `renewTime` with our
///   wall clock, so clock skew between replicas does not matter).
/// - An absent lease is created; one that is expired or released (empty holder) is taken with
///   an update carrying the observed `resourceVersion` (a 409 Conflict means someone else won).
///   Taking it from another holder increments `leaseTransitions`.
/// - The leader renews every retry period, first optimistically on the cached record (no
///   read), and steps down when it has not renewed for `renewDeadline`, or at once when it
///   sees another holder's valid record.
public struct LeaderElectionMachine: Sendable {
    public typealias Instant = ContinuousClock.Instant

    public enum Observation: Sendable, Hashable {
        case absent
        case present(LeaderElectionRecord, resourceVersion: String)
    }

    public enum Write: Sendable, Hashable {
        case create(LeaderElectionRecord)
        case update(LeaderElectionRecord, resourceVersion: String)

        public var record: LeaderElectionRecord {
            switch self {
            case .create(let r), .update(let r, _): r
            }
        }
    }

    public let identity: String
    public let timing: LeaderElectionTiming
    /// Whether this replica acts as the leader now.
    public private(set) var isLeading = false
    /// The record last read or written, when it was first seen, and its resourceVersion.
    public private(set) var observed: LeaderElectionRecord?
    public private(set) var observedTime: Instant?
    public private(set) var observedResourceVersion: String?
    /// When this replica last acquired or renewed the lease.
    public private(set) var lastRenewal: Instant?

    public init(identity: String, timing: LeaderElectionTiming = LeaderElectionTiming()) {
        self.identity = identity
        self.timing = timing
    }

    /// Whether the observed lease has not expired by `now` (local clock).
    public func observedLeaseIsValid(at now: Instant) -> Bool {
        guard let observed, let observedTime else { return false }
        return observedTime + .seconds(observed.leaseDurationSeconds) > now
    }

    /// When the leader must have renewed by, else it steps down; nil when not leading.
    public var renewDeadline: Instant? {
        guard isLeading, let lastRenewal else { return nil }
        return lastRenewal + timing.renewDeadline
    }

    /// client-go's fast path: a leader whose lease is still valid renews the cached record
    /// without reading it first. Nil: read the lease, then call `observe`.
    public func optimisticRenewal(now: Instant, wallClock: Date) -> Write? {
        guard isLeading, let observed, observed.holderIdentity == identity, let rv = observedResourceVersion,
            observedLeaseIsValid(at: now)
        else { return nil }
        var record = observed
        record.renewTime = MicroTime.format(wallClock)
        record.leaseDurationSeconds = timing.leaseDurationSeconds
        return .update(record, resourceVersion: rv)
    }

    /// The lease as just read: what to write to acquire or renew it, or nil when another
    /// holder's lease is still valid (wait; a leader that sees this steps down at once).
    public mutating func observe(_ observation: Observation, now: Instant, wallClock: Date) -> Write? {
        let stamp = MicroTime.format(wallClock)
        let mine = LeaderElectionRecord(
            holderIdentity: identity, leaseDurationSeconds: timing.leaseDurationSeconds, acquireTime: stamp, renewTime: stamp,
            leaseTransitions: 0)
        switch observation {
        case .absent:
            observed = nil
            observedTime = nil
            observedResourceVersion = nil
            return .create(mine)
        case .present(let record, let resourceVersion):
            if record != observed {
                observed = record
                observedTime = now
            }
            observedResourceVersion = resourceVersion
            if !record.holderIdentity.isEmpty && record.holderIdentity != identity && observedLeaseIsValid(at: now) {
                isLeading = false
                return nil
            }
            var next = mine
            if record.holderIdentity == identity {
                next.acquireTime = record.acquireTime ?? stamp
                next.leaseTransitions = record.leaseTransitions
            } else {
                next.leaseTransitions = record.leaseTransitions + 1
            }
            return .update(next, resourceVersion: resourceVersion)
        }
    }

    /// `write` succeeded at `now`; the server gave the Lease `resourceVersion`.
    public mutating func written(_ write: Write, resourceVersion: String, now: Instant) {
        observed = write.record
        observedTime = now
        observedResourceVersion = resourceVersion
        isLeading = write.record.holderIdentity == identity
        if isLeading { lastRenewal = now }
    }

    /// An attempt failed (a read or a write: conflict, error, timeout) or time passed: a leader
    /// that has not renewed within the renew deadline steps down.
    public mutating func tick(now: Instant) {
        if let deadline = renewDeadline, now >= deadline { isLeading = false }
    }

    /// Stops acting as leader without touching the lease (before releasing it).
    public mutating func stepDown() {
        isLeading = false
    }

    /// On shutdown (client-go's ReleaseOnCancel): when the observed lease is ours, an update
    /// that empties the holder and shortens the duration to one second, so that a peer takes
    /// over at its next attempt. `leaseTransitions` is kept; the next holder increments it.
    public func release(wallClock: Date) -> Write? {
        guard let observed, observed.holderIdentity == identity, let rv = observedResourceVersion else { return nil }
        let stamp = MicroTime.format(wallClock)
        return .update(
            LeaderElectionRecord(
                holderIdentity: "", leaseDurationSeconds: 1, acquireTime: stamp, renewTime: stamp,
                leaseTransitions: observed.leaseTransitions),
            resourceVersion: rv)
    }

    /// How long to wait before the next attempt: the retry period for the leader, jittered
    /// (`retryPeriod × (1 + jitterFactor × random)`, random in 0..<1) for the others.
    public func delayBeforeNextAttempt(random: Double) -> Duration {
        if isLeading { return timing.retryPeriod }
        return timing.retryPeriod * (1 + LeaderElectionTiming.jitterFactor * min(max(random, 0), 1))
    }
}
