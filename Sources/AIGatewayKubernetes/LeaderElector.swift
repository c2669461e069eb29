import Foundation
import Logging
import Synchronization

/// Leader election over a `coordination.k8s.io/v1` Lease: the I/O shell around
/// `LeaderElectionMachine` (which makes every decision). Every replica runs one; at most one
/// is the leader at a time (as long as the replicas' clocks run at the same rate).
///
/// `run()` tries to acquire the lease, renews it while leading, and steps down when renewing
/// fails for the renew deadline; it keeps trying until its task is cancelled, then releases
/// the lease if it holds it (client-go's `ReleaseOnCancel`), so that a peer takes over at its
/// next attempt instead of after the lease duration. Read `isLeader`, or follow `changes()`.
public final class LeaderElector: Sendable {
    public struct Configuration: Sendable {
        /// Where the Lease lives and its name.
        public var namespace: String
        public var name: String
        /// This replica's identity (`holderIdentity`); unique per process.
        public var identity: String
        public var timing: LeaderElectionTiming
        /// A random number in 0..<1 for the candidates' jitter (injectable for tests).
        public var random: @Sendable () -> Double

        public init(
            namespace: String, name: String, identity: String, timing: LeaderElectionTiming = LeaderElectionTiming(),
            random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
        ) {
            self.namespace = namespace
            self.name = name
            self.identity = identity
            self.timing = timing
            self.random = random
        }

        /// `hostname_suffix` as client-go setups use: the pod name (POD_NAME, else the host
        /// name) and a random suffix, so two processes never share an identity.
        public static func defaultIdentity(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
            let host = environment["POD_NAME"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.hostname()
            let suffix = UUID().uuidString.lowercased().prefix(8)
            return "\(host)_\(suffix)"
        }

        static func hostname() -> String {
            var buffer = [CChar](repeating: 0, count: 256)
            guard gethostname(&buffer, buffer.count) == 0 else { return "ai-gateway" }
            let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return name.isEmpty ? "ai-gateway" : name
        }
    }

    public let configuration: Configuration
    private let client: KubernetesClient
    private let logger: Logger
    private let onChange: @Sendable (Bool) -> Void
    private let state = Mutex(Published())

    private struct Published {
        var leading = false
        var nextID: UInt64 = 0
        var subscribers: [UInt64: AsyncStream<Bool>.Continuation] = [:]
    }

    /// - Parameter onChange: called with the new value whenever leadership changes (and not
    ///   concurrently with itself).
    public init(
        client: KubernetesClient, configuration: Configuration, logger: Logger,
        onChange: @escaping @Sendable (Bool) -> Void = { _ in }
    ) {
        self.client = client
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "lease"] = "\(configuration.namespace)/\(configuration.name)"
        logger[metadataKey: "identity"] = "\(configuration.identity)"
        self.logger = logger
        self.onChange = onChange
    }

    /// Whether this replica is the leader now.
    public var isLeader: Bool { state.withLock { $0.leading } }

    /// A stream of leadership: the current value first, then every change. Ends when the
    /// consumer's task is cancelled.
    public func changes() -> AsyncStream<Bool> {
        let (stream, continuation) = AsyncStream<Bool>.makeStream(bufferingPolicy: .unbounded)
        let id = state.withLock { s in
            defer { s.nextID += 1 }
            s.subscribers[s.nextID] = continuation
            continuation.yield(s.leading)
            return s.nextID
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    private func publish(_ leading: Bool, reason: String) {
        let changed = state.withLock { s -> Bool in
            guard s.leading != leading else { return false }
            s.leading = leading
            for subscriber in s.subscribers.values { subscriber.yield(leading) }
            return true
        }
        guard changed else { return }
        if leading {
            logger.info("leadership acquired")
        } else {
            logger.info("leadership lost", metadata: ["reason": "\(reason)"])
        }
        onChange(leading)
    }

    // MARK: - Running

    /// Acquires, renews and (on cancellation) releases the lease. Never throws: errors are
    /// logged and retried; the process keeps serving whoever leads.
    public func run() async {
        var machine = LeaderElectionMachine(identity: configuration.identity, timing: configuration.timing)
        logger.info("leader election started")
        while !Task.isCancelled {
            let failure = await attempt(&machine)
            publish(machine.isLeading, reason: failure ?? "renewal failed")
            do {
                try await Task.sleep(for: machine.delayBeforeNextAttempt(random: configuration.random()))
            } catch {
                break
            }
            machine.tick(now: .now)
            publish(machine.isLeading, reason: "renew deadline passed")
        }
        // Stop acting as leader before giving the lease up, then release it outside the
        // cancelled task (a cancelled task would abort the request at once).
        machine.stepDown()
        publish(false, reason: "shutting down")
        guard machine.release(wallClock: Date()) != nil else { return }
        let released = machine
        await Task { await self.release(released) }.value
    }

    /// Releases the lease if it is ours. A conflict (a renewal that the cancellation cut off may
    /// have reached the server) is resolved by reading the lease again.
    private func release(_ machine: LeaderElectionMachine) async {
        var machine = machine
        let deadline = ContinuousClock.now + configuration.timing.renewDeadline
        for _ in 0..<3 {
            guard let release = machine.release(wallClock: Date()) else { return }
            do {
                _ = try await perform(release, within: deadline - .now)
                logger.info("lease released")
                return
            } catch let error as KubernetesError where error == .conflict {
                guard let observation = try? await read(within: deadline - .now) else { break }
                _ = machine.observe(observation, now: .now, wallClock: Date())
            } catch {
                logger.warning("lease release failed", metadata: ["error": "\(error)"])
                return
            }
        }
        logger.warning("lease release failed", metadata: ["error": "conflict"])
    }

    /// One `tryAcquireOrRenew`, bounded by the renew deadline (a hung request must not keep a
    /// leader leading). Returns why it did not acquire or renew, nil when it did.
    private func attempt(_ machine: inout LeaderElectionMachine) async -> String? {
        let started = ContinuousClock.now
        let limit = machine.renewDeadline.map { max(.zero, $0 - started) } ?? configuration.timing.renewDeadline
        // Optimistic renewal on the cached record; on failure fall back to reading.
        if let write = machine.optimisticRenewal(now: started, wallClock: Date()) {
            do {
                let rv = try await perform(write, within: limit)
                machine.written(write, resourceVersion: rv, now: .now)
                return nil
            } catch {
                logger.debug("lease renewal failed, reading it", metadata: ["error": "\(error)"])
            }
        }
        do {
            let remaining = max(.zero, limit - (ContinuousClock.now - started))
            let observation = try await read(within: remaining)
            guard let write = machine.observe(observation, now: .now, wallClock: Date()) else {
                if case .present(let record, _) = observation {
                    logger.trace("lease held by another replica", metadata: ["holder": "\(record.holderIdentity)"])
                }
                machine.tick(now: .now)
                return "held by another replica"
            }
            let rv = try await perform(write, within: max(.zero, limit - (ContinuousClock.now - started)))
            machine.written(write, resourceVersion: rv, now: .now)
            return nil
        } catch let error as KubernetesError where error == .conflict || error == .alreadyExists {
            logger.debug("lease taken by another replica meanwhile")
            machine.tick(now: .now)
            return "taken by another replica"
        } catch {
            logger.debug("lease attempt failed", metadata: ["error": "\(error)"])
            if machine.isLeading && !Task.isCancelled { logger.warning("lease renewal failed", metadata: ["error": "\(error)"]) }
            machine.tick(now: .now)
            return "renewal failed: \(error)"
        }
    }

    private func read(within limit: Duration) async throws -> LeaderElectionMachine.Observation {
        let client = self.client
        let configuration = self.configuration
        return try await Self.withTimeout(limit) {
            do {
                let lease = try await client.get(.leases, namespace: configuration.namespace, name: configuration.name)
                return .present(LeaderElectionRecord(lease: lease), resourceVersion: lease.resourceVersion ?? "")
            } catch let error as KubernetesError where error == .notFound {
                return .absent
            }
        }
    }

    private func perform(_ write: LeaderElectionMachine.Write, within limit: Duration) async throws -> String {
        let client = self.client
        let configuration = self.configuration
        return try await Self.withTimeout(limit) { try await Self.perform(write, client: client, configuration: configuration) }
    }

    /// Creates or updates the Lease; returns its new resourceVersion.
    private static func perform(
        _ write: LeaderElectionMachine.Write, client: KubernetesClient, configuration: Configuration
    ) async throws -> String {
        var metadata: [String: JSONValue] = ["name": .string(configuration.name), "namespace": .string(configuration.namespace)]
        if case .update(_, let rv) = write { metadata["resourceVersion"] = .string(rv) }
        let lease: JSONValue = .object([
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": .object(metadata), "spec": write.record.spec,
        ])
        let result: JSONValue
        switch write {
        case .create: result = try await client.create(.leases, namespace: configuration.namespace, lease)
        case .update: result = try await client.update(.leases, lease)
        }
        return result.resourceVersion ?? ""
    }

    struct Timeout: Error, CustomStringConvertible {
        var description: String { "timed out" }
    }

    /// Runs `operation`, cancelling it (which aborts its requests) after `limit`.
    static func withTimeout<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        guard limit > .zero else { throw Timeout() }
        return try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                try await Task.sleep(for: limit)
                throw Timeout()
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }
}
