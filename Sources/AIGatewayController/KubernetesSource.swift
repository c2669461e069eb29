import AIGatewayAPI
import AIGatewayKubernetes
import AIGatewayRouting
import Dispatch
import Logging
import ServiceLifecycle
import Synchronization

/// The kinds the controller watches.
public enum WatchedKinds {
    public static let backends = ResourceType(group: "gateway.kgateway.dev", version: "v1alpha1", plural: "backends", namespaced: true)
    public static let httpRoutes = ResourceType(group: "gateway.networking.k8s.io", version: "v1", plural: "httproutes", namespaced: true)
    public static let gateways = ResourceType(group: "gateway.networking.k8s.io", version: "v1", plural: "gateways", namespaced: true)
    public static let gatewayClasses = ResourceType(group: "gateway.networking.k8s.io", version: "v1", plural: "gatewayclasses", namespaced: false)
    public static let referenceGrants = ResourceType(group: "gateway.networking.k8s.io", version: "v1beta1", plural: "referencegrants", namespaced: true)
    public static let secrets = ResourceType.secrets

    public static let all = [backends, httpRoutes, gateways, gatewayClasses, referenceGrants, secrets]
}

/// What one reconcile did, for metrics and the controller benchmark.
public struct ReconcileReport: Sendable {
    /// Objects in the resource set (valid ones), and HTTPRoutes among them.
    public var objects: Int
    public var routes: Int
    /// Reading and decoding the caches (and reading any Secret a Backend newly references).
    public var decodeTime: Duration
    /// Compiling the table and swapping it into the proxy.
    public var compileTime: Duration
}

/// Configuration from the Kubernetes API: one informer per watched kind (and namespace), and a
/// level-based reconcile that rebuilds the whole resource set from the caches after each burst of
/// changes and hands it to the same compiler and proxy as standalone mode. Until the first full
/// sync nothing is applied (the proxy is not ready); while the API is unreachable the informers
/// retry and the proxy keeps serving the last table.
public final class KubernetesSource: Service, Sendable {
    let client: KubernetesClient
    let sink: any ConfigurationSink
    /// Every informer, the Secret ones (`secrets.informers`) last.
    let informers: [Informer]
    /// The Secrets, with the data of those a Backend references only.
    let secrets: ReferencedSecrets
    /// Time after a change before reconciling, so that a burst compiles once or twice; changes
    /// during a reconcile are folded into the next one.
    let debounce: Duration
    let logger: Logger
    /// Writes status conditions back; nil when this process never writes status.
    let statusWriter: StatusWriter?
    /// When set, status is written only while it is the leader, and all of it again each time
    /// it becomes the leader.
    let leaderElector: LeaderElector?
    let onReconcile: @Sendable (ReconcileReport) -> Void
    private let reconcileQueue = DispatchQueue(label: "ai-gateway.reconcile")
    private let reported = Mutex<Set<String>>([])
    /// Each cached object's decoding, reused while its resourceVersion stays the same: a change
    /// to one object among thousands decodes that one only.
    private let decoded = Mutex<[DecodeKey: DecodeEntry]>([:])

    struct DecodeKey: Hashable {
        var informer: Int
        var key: ObjectKey
    }

    struct DecodeEntry {
        var resourceVersion: String
        var outcome: DecodeOutcome
        /// The names of the Secrets the object references (a Backend's `secretRef`s).
        var secretNames: [String]
    }

    /// A change of status alone keeps the object's decoding (which ignores status): the entry
    /// moves to the new resourceVersion. (An entry that missed it is decoded again.)
    func statusChanged(informer index: Int, old: JSONValue, new: JSONValue) {
        guard let key = ObjectKey(object: new), let from = old.resourceVersion, let to = new.resourceVersion else { return }
        decoded.withLock { entries in
            let cacheKey = DecodeKey(informer: index, key: key)
            if entries[cacheKey]?.resourceVersion == from { entries[cacheKey]?.resourceVersion = to }
        }
    }

    /// - Parameters:
    ///   - namespaces: namespaces to watch; empty means all.
    ///   - writeStatus: whether to write status at all.
    ///   - leaderElector: if given, only its leader writes status (it is run elsewhere).
    ///   - onReconcile: told after each reconcile (metrics).
    public init(
        client: KubernetesClient, sink: any ConfigurationSink, namespaces: [String] = [], debounce: Duration = .milliseconds(10),
        controllerName: String, writeStatus: Bool = true, leaderElector: LeaderElector? = nil, logger: Logger,
        onReconcile: @escaping @Sendable (ReconcileReport) -> Void = { _ in }
    ) {
        self.client = client
        self.leaderElector = leaderElector
        self.onReconcile = onReconcile
        self.statusWriter =
            writeStatus
            ? StatusWriter(client: client, controllerName: controllerName, logger: logger, mayWrite: { leaderElector?.isLeader ?? true })
            : nil
        self.sink = sink
        self.debounce = debounce
        self.logger = logger
        var informers: [Informer] = []
        for kind in WatchedKinds.all where kind != WatchedKinds.secrets {
            if kind.namespaced && !namespaces.isEmpty {
                for ns in namespaces { informers.append(Informer(client: client, resource: kind, namespace: ns, logger: logger)) }
            } else {
                informers.append(Informer(client: client, resource: kind, logger: logger))
            }
        }
        self.secrets = ReferencedSecrets(client: client, namespaces: namespaces, logger: logger)
        self.informers = informers + secrets.informers
    }

    final class Latest<Value: Sendable>: Sendable {
        private let storage = Mutex<Value?>(nil)
        var value: Value? { storage.withLock { $0 } }
        func set(_ value: Value) { storage.withLock { $0 = value } }
    }

    final class Flag: Sendable {
        private let value = Mutex(false)
        var isSet: Bool { value.withLock { $0 } }
        func set() { value.withLock { $0 = true } }
    }

    public func run() async throws {
        let streams = informers.map { $0.changes() }
        // Subscribed before anything runs, so that no change of leadership is missed.
        let leadership = statusWriter == nil ? nil : leaderElector?.changes()
        let stopping = Flag()
        let dirty = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        // Status is written by its own loop from the latest reconcile's conclusions, so that a
        // slow API (or thousands of writes) never holds up the next table.
        let statusDue = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let latestStatus = Latest<TableStatus>()
        await withGracefulShutdownHandler {
            try? await withThrowingDiscardingTaskGroup { group in
                for informer in self.informers {
                    group.addTask { await informer.run() }
                }
                // Every change (from any informer) that can change the table marks the set
                // dirty; one loop reconciles. Changes of status alone (ours, mostly) cannot.
                for (index, stream) in streams.enumerated() {
                    group.addTask {
                        for await event in stream {
                            if case .modified(let old, let new) = event, event.isStatusOnly {
                                self.statusChanged(informer: index, old: old, new: new)
                            } else {
                                dirty.continuation.yield()
                            }
                        }
                    }
                }
                group.addTask {
                    var last: (end: ContinuousClock.Instant, duration: Duration)?
                    var secretRetry = Backoff(initial: .milliseconds(500), maximum: .seconds(10))
                    for await _ in dirty.stream {
                        guard self.informers.allSatisfy(\.hasSynced) else { continue }
                        // Wait the debounce, and under a stream of changes at least as long as the
                        // last reconcile took (at most half the time goes to reconciling).
                        var wait = self.debounce
                        if let last, last.duration - (.now - last.end) > wait { wait = last.duration - (.now - last.end) }
                        try? await Task.sleep(for: wait)
                        let started = ContinuousClock.now
                        let (status, secretsRead) = await self.reconcileOffLoop()
                        last = (.now, .now - started)
                        latestStatus.set(status)
                        statusDue.continuation.yield()
                        if secretsRead {
                            secretRetry.reset()
                        } else {
                            // A referenced Secret could not be read: try again (the API is failing).
                            try? await Task.sleep(for: secretRetry.next())
                            dirty.continuation.yield()
                        }
                    }
                }
                if let writer = self.statusWriter {
                    if let leadership {
                        // A new leader writes all of the status again, not only what changes
                        // next: the previous leader may have missed some, or written an older view.
                        group.addTask {
                            for await leading in leadership where leading { statusDue.continuation.yield() }
                        }
                    }
                    group.addTask {
                        var backoff = Backoff(initial: .seconds(1), maximum: .seconds(30))
                        for await _ in statusDue.stream {
                            guard writer.mayWrite(), let status = latestStatus.value else { continue }
                            let failures = await writer.write(status, informers: self.informers)
                            guard failures > 0 else {
                                backoff.reset()
                                continue
                            }
                            // Writes are compared with the caches again on the next pass.
                            try? await Task.sleep(for: backoff.next())
                            statusDue.continuation.yield()
                        }
                    }
                }
                group.addTask {
                    // Ends the group (by throwing) when shutdown starts.
                    while !stopping.isSet {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    dirty.continuation.finish()
                    statusDue.continuation.finish()
                    throw CancellationError()
                }
            }
        } onGracefulShutdown: {
            stopping.set()
        }
    }

    /// Reconciles on a thread of its own: with thousands of objects, decoding and compiling
    /// take a while, and the tasks of this process run on the proxy's event loops (the NIO
    /// executor), which must keep serving requests meanwhile. Between decoding and applying,
    /// the Secrets the Backends reference become the ones whose data is kept (and any of them
    /// held without its data is read). Returns the status, and whether every referenced Secret
    /// could be read.
    func reconcileOffLoop() async -> (TableStatus, secretsRead: Bool) {
        let started = ContinuousClock.now
        let decoded = await onReconcileQueue { self.decodeObjects() }
        let secretsRead = await secrets.reference(decoded.referencedSecrets)
        let status = await onReconcileQueue { self.apply(decoded, started: started) }
        return (status, secretsRead)
    }

    private func onReconcileQueue<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            reconcileQueue.async { continuation.resume(returning: work()) }
        }
    }

    /// Every cached object but the Secrets, decoded, and the Secrets they reference.
    struct Decoded: Sendable {
        var set: ResourceSet
        var invalid: [String]
        var invalidBackends: [NamespacedName: Condition]
        var referencedSecrets: Set<ObjectKey>
    }

    /// Rebuilds the resource set from every cache but the Secrets' (see `apply`).
    func decodeObjects() -> Decoded {
        var set = ResourceSet()
        var invalid: [String] = []
        var referenced: Set<ObjectKey> = []
        /// Backends that do not decode: they serve nothing, and their status says why.
        var invalidBackends: [NamespacedName: Condition] = [:]
        let previous = decoded.withLock { $0 }
        var current: [DecodeKey: DecodeEntry] = [:]
        current.reserveCapacity(previous.count)
        for (index, informer) in informers.enumerated() where informer.resource != WatchedKinds.secrets {
            let isBackend = informer.resource == WatchedKinds.backends
            for object in informer.snapshot() {
                let outcome: DecodeOutcome
                let secretNames: [String]
                if let key = ObjectKey(object: object), let rv = object.resourceVersion, !rv.isEmpty {
                    let cacheKey = DecodeKey(informer: index, key: key)
                    if let hit = previous[cacheKey], hit.resourceVersion == rv {
                        outcome = hit.outcome
                        secretNames = hit.secretNames
                    } else {
                        outcome = ResourceDecoder.decode(object, defaultNamespace: "default")
                        secretNames = isBackend ? Self.secretReferences(in: object["spec"]) : []
                    }
                    current[cacheKey] = DecodeEntry(resourceVersion: rv, outcome: outcome, secretNames: secretNames)
                } else {
                    outcome = ResourceDecoder.decode(object, defaultNamespace: "default")
                    secretNames = isBackend ? Self.secretReferences(in: object["spec"]) : []
                }
                for name in secretNames {
                    referenced.insert(ObjectKey(namespace: object.namespace ?? "default", name: name))
                }
                switch outcome {
                case .resource(let r):
                    set.insert(r)
                case .invalid(let kind, let name, let errors):
                    invalid.append("\(kind) \(name): " + errors.map(\.description).joined(separator: "; "))
                    if kind == "Backend", !name.name.isEmpty {
                        invalidBackends[name] = Condition(
                            type: "Accepted", status: false, reason: "Invalid", message: errors.map(\.description).joined(separator: "; "),
                            observedGeneration: object["metadata"]?["generation"]?.intValue ?? 1)
                    }
                case .ignored:
                    break
                }
            }
        }
        decoded.withLock { $0 = current }
        return Decoded(set: set, invalid: invalid, invalidBackends: invalidBackends, referencedSecrets: referenced)
    }

    /// The names in every `secretRef: {name: ...}` under a Backend's spec: the kgateway
    /// convention for a Secret in the Backend's namespace, whichever provider or field holds it.
    static func secretReferences(in spec: JSONValue?) -> [String] {
        var names: [String] = []
        func walk(_ value: JSONValue) {
            switch value {
            case .object(let fields):
                for (key, child) in fields {
                    if key == "secretRef", let name = child["name"]?.stringValue, !name.isEmpty {
                        names.append(name)
                    } else {
                        walk(child)
                    }
                }
            case .array(let items):
                items.forEach(walk)
            default:
                break
            }
        }
        if let spec { walk(spec) }
        return names
    }

    /// Adds the referenced Secrets (as the cache holds them now, with their data) to the
    /// decoded set and applies it. Secrets no Backend references are never decoded.
    func apply(_ decoded: Decoded, started: ContinuousClock.Instant) -> TableStatus {
        var set = decoded.set
        var invalid = decoded.invalid
        let invalidBackends = decoded.invalidBackends
        for key in decoded.referencedSecrets.sorted() {
            guard let object = secrets.cached(key), SecretScope.holdsData(object) else { continue }
            switch ResourceDecoder.decode(object, defaultNamespace: "default") {
            case .resource(let r):
                set.insert(r)
            case .invalid(let kind, let name, let errors):
                invalid.append("\(kind) \(name): " + errors.map(\.description).joined(separator: "; "))
            case .ignored:
                break
            }
        }
        // Say once per distinct problem, not on every reconcile.
        let fresh = reported.withLock { seen in
            let new = invalid.filter { !seen.contains($0) }
            seen = Set(invalid)
            return new
        }
        for line in fresh { logger.warning("invalid object ignored", metadata: ["problem": "\(line)"]) }
        let decoded = ContinuousClock.now
        var status = sink.apply(set, origin: "kubernetes")
        for (name, condition) in invalidBackends where status.backends[name] == nil {
            status.backends[name] = [condition]
        }
        let compiled = ContinuousClock.now
        onReconcile(
            ReconcileReport(
                objects: set.count, routes: set.httpRoutes.count, decodeTime: decoded - started, compileTime: compiled - decoded))
        logger.debug(
            "reconciled",
            metadata: ["objects": "\(set.count)", "decode-time": "\(decoded - started)", "compile-time": "\(compiled - decoded)"])
        if logger.logLevel <= .debug {
            for p in status.problems { logger.debug("configuration problem", metadata: ["problem": "\(p)"]) }
        }
        return status
    }
}
