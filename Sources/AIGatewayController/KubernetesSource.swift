import AIGatewayAPI
import AIGatewayKubernetes
import AIGatewayRouting
import Dispatch
import Foundation
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
    /// Time after a reconcile before its status is written. Status is not on the serving path:
    /// a beat later, a burst's changes are written in one pass, and the API write and the CPU
    /// that writing takes are out of the way while the new table takes its first requests.
    let statusDelay: Duration
    let logger: Logger
    /// Writes status conditions back; nil when this process never writes status.
    let statusWriter: StatusWriter?
    /// When set, status is written only while it is the leader, and all of it again each time
    /// it becomes the leader.
    let leaderElector: LeaderElector?
    let onReconcile: @Sendable (ReconcileReport) -> Void
    private let reconcileQueue = DispatchQueue(label: "ai-gateway.reconcile")
    /// The keys of the objects that changed since the last reconcile, by informer.
    private let pending = Mutex<[Int: Set<ObjectKey>]>([:])
    /// What the reconciles keep from one to the next; used on the reconcile queue only.
    private let state: Mutex<ReconcileState>

    struct DecodeKey: Hashable {
        var informer: Int
        var key: ObjectKey
    }

    /// One cached object's decoding, kept while its resourceVersion stays the same.
    struct DecodeEntry {
        var resourceVersion: String?
        /// What it decoded to, as handed to the compiler.
        var resource: Resource?
        /// The Secrets it references (a Backend's `secretRef`s).
        var secrets: [ObjectKey]
        /// Why it is invalid, if so (logged once).
        var problem: String?
        /// A Backend that does not decode: it serves nothing, and its status says why.
        var invalidBackend: (NamespacedName, Condition)?
    }

    struct ReconcileState: Sendable {
        var compiler: IncrementalCompiler
        var decoded: [DecodeKey: DecodeEntry] = [:]
        /// How many decoded Backends reference each Secret.
        var secretUsers: [ObjectKey: Int] = [:]
        /// The Secrets last handed to `ReferencedSecrets` (nil: not yet, or its read failed).
        var referenced: Set<ObjectKey>?
        /// The Secrets in the compiler, as decoded.
        var secretsHeld: [ObjectKey: Resource] = [:]
        var invalidSecrets: [ObjectKey: String] = [:]
        var invalidBackends: [NamespacedName: Condition] = [:]
        /// False until the first full pass over the caches.
        var synced = false
        /// The table installed last, and the status the sink returned for it.
        var installed: (table: RoutingTable, status: TableStatus)?
    }

    /// - Parameters:
    ///   - namespaces: namespaces to watch; empty means all.
    ///   - writeStatus: whether to write status at all.
    ///   - leaderElector: if given, only its leader writes status (it is run elsewhere).
    ///   - onReconcile: told after each reconcile (metrics).
    public init(
        client: KubernetesClient, sink: any ConfigurationSink, namespaces: [String] = [], debounce: Duration = .milliseconds(10),
        statusDelay: Duration = .milliseconds(100),
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
        self.state = Mutex(ReconcileState(compiler: IncrementalCompiler(options: sink.options)))
        self.debounce = debounce
        self.statusDelay = statusDelay
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

    /// What the status loop is to write: the latest conclusions, and the objects to look at
    /// (those whose conclusions or cached copy changed since the last pass), or all of them.
    struct StatusWork: Sendable {
        var status: TableStatus?
        var all = true
        var keys: Set<StatusWriter.MemoKey> = []
    }

    private let statusWork = Mutex(StatusWork())

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
        await withGracefulShutdownHandler {
            try? await withThrowingDiscardingTaskGroup { group in
                for informer in self.informers {
                    group.addTask { await informer.run() }
                }
                // Every change (from any informer) that can change the table marks the object
                // pending; one loop reconciles. Changes of status alone (ours, mostly) cannot, but
                // the status loop looks at the object again.
                for (index, stream) in streams.enumerated() {
                    let kind = self.informers[index].resource
                    group.addTask {
                        // The events before the first `.synced` are the first list's, one per
                        // object (thousands at start): the first reconcile, which waits for every
                        // informer to sync, decodes all that the caches hold, and the first status
                        // pass looks at every object, so they need no bookkeeping.
                        var listed = false
                        for await event in stream {
                            guard listed else {
                                if event == .synced {
                                    listed = true
                                    dirty.continuation.yield()
                                }
                                continue
                            }
                            if let key = event.key, kind != WatchedKinds.secrets {
                                let name = NamespacedName(namespace: key.namespace, name: key.name)
                                self.statusWork.withLock { _ = $0.keys.insert(StatusWriter.MemoKey(kind: kind.plural, name: name)) }
                            }
                            if event.isStatusOnly { continue }
                            if let key = event.key {
                                self.pending.withLock { _ = $0[index, default: []].insert(key) }
                            }
                            dirty.continuation.yield()
                        }
                    }
                }
                group.addTask {
                    var last: (end: ContinuousClock.Instant, duration: Duration)?
                    var secretRetry = Backoff(initial: .milliseconds(500), maximum: .seconds(10))
                    for await _ in dirty.stream {
                        guard self.informers.allSatisfy(\.hasSynced) else { continue }
                        // A change after a quiet spell is reconciled at once; under a stream of
                        // changes, reconciles are at least the debounce apart, and at least as far
                        // apart as the last one took (at most half the time goes to reconciling).
                        // Changes meanwhile are folded into the next one.
                        if let last {
                            let since = ContinuousClock.now - last.end
                            let gap = max(self.debounce, last.duration)
                            if since < gap { try? await Task.sleep(for: gap - since) }
                        }
                        let started = ContinuousClock.now
                        let secretsRead = await self.reconcileOffLoop()
                        last = (.now, .now - started)
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
                            for await leading in leadership where leading {
                                self.statusWork.withLock { $0.all = true }
                                statusDue.continuation.yield()
                            }
                        }
                    }
                    group.addTask {
                        var backoff = Backoff(initial: .seconds(1), maximum: .seconds(30))
                        for await _ in statusDue.stream {
                            guard writer.mayWrite() else { continue }
                            // Reconciles meanwhile add to the same pass (statusDue holds one signal).
                            try? await Task.sleep(for: self.statusDelay)
                            let work = self.statusWork.withLock { work -> StatusWork? in
                                guard work.status != nil else { return nil }
                                defer {
                                    work.all = false
                                    work.keys = []
                                }
                                return work
                            }
                            guard let work, let status = work.status else { continue }
                            let failures = await writer.write(status, only: work.all ? nil : work.keys, informers: self.informers)
                            guard failures > 0 else {
                                backoff.reset()
                                continue
                            }
                            // Writes are compared with the caches again on the next pass (of all).
                            self.statusWork.withLock { $0.all = true }
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

    /// Reconciles on a thread of its own: the tasks of this process run on the proxy's event
    /// loops (the NIO executor), which must keep serving requests meanwhile. Only what changed
    /// is decoded (each object once per resourceVersion) and compiled (`IncrementalCompiler`);
    /// the first pass takes every cached object. Between decoding and compiling, the Secrets the
    /// Backends reference become the ones whose data is kept (and any of them held without its
    /// data is read). Leaves the status for the status loop; returns whether every referenced
    /// Secret could be read.
    func reconcileOffLoop() async -> Bool {
        let started = ContinuousClock.now
        // Usually no Backend starts or stops naming a Secret: then the table is compiled and
        // installed in the same trip to the reconcile thread (each trip is a thread hop, which on
        // a busy machine can wait milliseconds for a core).
        let changes = await onReconcileQueue { () -> Changes? in
            let changes = self.decodeChanges()
            guard changes.referenced != nil else {
                self.apply(changes, secretsRead: true, started: started)
                return nil
            }
            return changes
        }
        guard let changes, let referenced = changes.referenced else { return true }
        let secretsRead = await secrets.reference(referenced)
        await onReconcileQueue {
            self.apply(changes, secretsRead: secretsRead, started: started)
        }
        return secretsRead
    }

    private func onReconcileQueue<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            reconcileQueue.async { continuation.resume(returning: work()) }
        }
    }

    /// What `decodeChanges` leaves for `apply`.
    struct Changes: Sendable {
        /// The referenced Secrets, when they changed (or the last read of them failed).
        var referenced: Set<ObjectKey>?
        /// Secrets whose cached copy changed.
        var secretKeys: Set<ObjectKey>
        /// Every referenced Secret is to be read from the cache again.
        var allSecrets: Bool
    }

    /// Decodes the objects (not Secrets) that changed since the last call (all of them the
    /// first time) and hands them to the compiler.
    func decodeChanges() -> Changes {
        // Taken before the caches are read: a change after this point is seen again next time.
        let changed = pending.withLock { keys in
            defer { keys = [:] }
            return keys
        }
        return state.withLock { state in
            let first = !state.synced
            state.synced = true
            var secretKeys: Set<ObjectKey> = []
            var referencedChanged = first
            if first {
                // The first pass decodes every cached object of every kind, on every core
                // (decoding is pure), then puts them into the compiler.
                var objects: [(informer: Int, object: JSONValue)] = []
                for (index, informer) in informers.enumerated() where informer.resource != WatchedKinds.secrets {
                    objects += informer.snapshot().lazy.map { (index, $0) }
                }
                let backendInformers = Set(informers.indices.filter { informers[$0].resource == WatchedKinds.backends })
                let decoded = Self.decodeAll(objects.map { ($0.object, backendInformers.contains($0.informer)) })
                state.decoded.reserveCapacity(state.decoded.count + objects.count)
                for ((index, object), prepared) in zip(objects, decoded) {
                    guard let key = ObjectKey(object: object) else { continue }
                    if update(&state, DecodeKey(informer: index, key: key), object, informer: informers[index], prepared: prepared) {
                        referencedChanged = true
                    }
                }
            }
            for (index, informer) in informers.enumerated() {
                if informer.resource == WatchedKinds.secrets {
                    secretKeys.formUnion(changed[index] ?? [])
                    continue
                }
                if !first {
                    for key in changed[index] ?? [] {
                        if update(&state, DecodeKey(informer: index, key: key), informer.get(key), informer: informer) {
                            referencedChanged = true
                        }
                    }
                }
            }
            let referenced = Set(state.secretUsers.keys)
            let ask = referencedChanged || state.referenced == nil || state.referenced != referenced
            return Changes(referenced: ask ? referenced : nil, secretKeys: secretKeys, allSecrets: first || ask)
        }
    }

    /// What decoding one cached object gives: the resource (or why not), and for a Backend the
    /// Secrets it references.
    struct Prepared: Sendable {
        var outcome: DecodeOutcome
        var secrets: [ObjectKey]
    }

    /// Decodes one object (`isBackend`: and finds the Secrets it references); pure.
    static func prepare(_ object: JSONValue, isBackend: Bool) -> Prepared {
        var secrets: [ObjectKey] = []
        if isBackend {
            let namespace = object.namespace ?? "default"
            secrets = Self.secretReferences(in: object["spec"]).map { ObjectKey(namespace: namespace, name: $0) }
        }
        return Prepared(outcome: ResourceDecoder.decode(object, defaultNamespace: "default"), secrets: secrets)
    }

    /// Prepares objects in parallel, in as many slices as there are cores (one for a few).
    static func decodeAll(_ objects: [(object: JSONValue, isBackend: Bool)]) -> [Prepared] {
        objects.concurrentMap { prepare($0.object, isBackend: $0.isBackend) }
    }

    /// Decodes one object as the cache holds it now (nil: gone) into the compiler (`prepared`:
    /// decoded already); returns whether the Secrets it references changed.
    private func update(
        _ state: inout ReconcileState, _ key: DecodeKey, _ object: JSONValue?, informer: Informer, prepared: Prepared? = nil
    ) -> Bool {
        let old = state.decoded[key]
        if let object, let old, let rv = object.resourceVersion, !rv.isEmpty, old.resourceVersion == rv { return false }
        var entry: DecodeEntry?
        if let object {
            let prepared = prepared ?? Self.prepare(object, isBackend: informer.resource == WatchedKinds.backends)
            var new = DecodeEntry(resourceVersion: object.resourceVersion, resource: nil, secrets: prepared.secrets)
            switch prepared.outcome {
            case .resource(let r):
                new.resource = r
            case .invalid(let kind, let name, let errors):
                let message = errors.map(\.description).joined(separator: "; ")
                new.problem = "\(kind) \(name): " + message
                if kind == "Backend", !name.name.isEmpty {
                    new.invalidBackend = (
                        name,
                        Condition(
                            type: "Accepted", status: false, reason: "Invalid", message: message,
                            observedGeneration: object["metadata"]?["generation"]?.intValue ?? 1)
                    )
                }
            case .ignored:
                break
            }
            entry = new
        }
        state.decoded[key] = entry
        // The compiler: the old resource out, the new one in (an equal one changes nothing).
        if let previous = old?.resource, previous.kind != entry?.resource?.kind || previous.metadata.namespacedName != entry?.resource?.metadata.namespacedName {
            state.compiler.remove(previous)
        }
        if let resource = entry?.resource { state.compiler.insert(resource) }
        if let (name, _) = old?.invalidBackend { state.invalidBackends[name] = nil }
        if let (name, condition) = entry?.invalidBackend { state.invalidBackends[name] = condition }
        // Say once per distinct problem, not on every reconcile.
        if let problem = entry?.problem, problem != old?.problem {
            logger.warning("invalid object ignored", metadata: ["problem": "\(problem)"])
        }
        // The Secrets referenced.
        let before = old?.secrets ?? [], after = entry?.secrets ?? []
        guard before != after else { return false }
        var changed = false
        for secret in before {
            state.secretUsers[secret, default: 1] -= 1
            if state.secretUsers[secret] == 0 {
                state.secretUsers[secret] = nil
                changed = true
            }
        }
        for secret in after {
            state.secretUsers[secret, default: 0] += 1
            if state.secretUsers[secret] == 1 { changed = true }
        }
        return changed
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

    /// Puts the referenced Secrets that changed (as the cache holds them now, with their data)
    /// into the compiler, and those no longer referenced out; compiles what changed and
    /// installs the table. Secrets no Backend references are never decoded.
    func apply(_ changes: Changes, secretsRead: Bool, started: ContinuousClock.Instant) {
        let (table, objects, invalidBackends, decoded, statusChanges) = state.withLock { state in
            if changes.referenced != nil { state.referenced = secretsRead ? changes.referenced : nil }
            let referenced = Set(state.secretUsers.keys)
            var keys = changes.secretKeys
            if changes.allSecrets { keys.formUnion(referenced) }
            for key in state.secretsHeld.keys where !referenced.contains(key) { keys.insert(key) }
            for key in keys {
                var resource: Resource?
                if referenced.contains(key), let object = secrets.cached(key), SecretScope.holdsData(object) {
                    switch ResourceDecoder.decode(object, defaultNamespace: "default") {
                    case .resource(let r):
                        resource = r
                        state.invalidSecrets[key] = nil
                    case .invalid(let kind, let name, let errors):
                        let problem = "\(kind) \(name): " + errors.map(\.description).joined(separator: "; ")
                        if state.invalidSecrets.updateValue(problem, forKey: key) != problem {
                            logger.warning("invalid object ignored", metadata: ["problem": "\(problem)"])
                        }
                    case .ignored:
                        break
                    }
                } else {
                    state.invalidSecrets[key] = nil
                }
                if let old = state.secretsHeld[key], resource == nil { state.compiler.remove(old) }
                state.secretsHeld[key] = resource
                if let resource { state.compiler.insert(resource) }
            }
            let decoded = ContinuousClock.now
            let table = state.compiler.table()
            return (table, state.compiler.objectCount, state.invalidBackends, decoded, state.compiler.takeStatusChanges())
        }
        // Nothing that the table holds changed (a Secret read back, say): nothing to install.
        let installed = state.withLock { $0.installed.flatMap { $0.table === table ? $0.status : nil } }
        var status = installed ?? sink.install(table, origin: "kubernetes", objects: objects)
        if installed == nil { state.withLock { $0.installed = (table, status) } }
        for (name, condition) in invalidBackends where status.backends[name] == nil {
            status.backends[name] = [condition]
        }
        let compiled = ContinuousClock.now
        var keys: [StatusWriter.MemoKey] = []
        keys += statusChanges.backends.map { .init(kind: WatchedKinds.backends.plural, name: $0) }
        keys += statusChanges.routes.map { .init(kind: WatchedKinds.httpRoutes.plural, name: $0) }
        keys += statusChanges.gateways.map { .init(kind: WatchedKinds.gateways.plural, name: $0) }
        keys += statusChanges.gatewayClasses.map { .init(kind: WatchedKinds.gatewayClasses.plural, name: NamespacedName(namespace: "", name: $0)) }
        statusWork.withLock { work in
            work.status = status
            work.keys.formUnion(keys)
        }
        onReconcile(
            ReconcileReport(objects: objects, routes: state.withLock { $0.compiler.routeCount }, decodeTime: decoded - started, compileTime: compiled - decoded))
        logger.debug(
            "reconciled",
            metadata: ["objects": "\(objects)", "decode-time": "\(decoded - started)", "compile-time": "\(compiled - decoded)"])
        if logger.logLevel <= .debug {
            for p in status.problems { logger.debug("configuration problem", metadata: ["problem": "\(p)"]) }
        }
    }
}
