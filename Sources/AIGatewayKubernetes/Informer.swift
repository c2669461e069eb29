import Logging
import Synchronization

/// Keeps an in-memory copy of all objects of one `ResourceType` (optionally one namespace,
/// optionally filtered by selectors), like client-go's reflector + informer:
///
/// - LIST (paged), then WATCH from the list's resourceVersion with `allowWatchBookmarks`
///   and a jittered `timeoutSeconds`;
/// - when a watch ends or drops, resume from the last seen resourceVersion (bookmarks only
///   move it); events not newer than the cached object are skipped, so none applies twice;
/// - on 410 Gone/Expired (HTTP or an ERROR event), relist and emit the difference against
///   the cache (deletes for objects gone, modifications for changed ones);
/// - on other errors, back off exponentially with jitter (and at least `Retry-After` on
///   429); the backoff resets after a successful watch.
///
/// `run()` does the work until its task is cancelled. Read the cache with `snapshot()`,
/// follow changes with `changes()`.
public final class Informer: Sendable {
    public struct Options: Sendable {
        public var labelSelector: String?
        public var fieldSelector: String?
        /// Base server-side watch timeout; each watch asks for a random value in
        /// `watchTimeout ... watchTimeout * (1 + watchTimeoutJitter)`.
        public var watchTimeout: Duration
        public var watchTimeoutJitter: Double
        public var backoff: Backoff
        /// A watch that ends cleanly without any event sooner than this counts as a failure
        /// (backs off), so a server that ends watches at once is not hammered.
        public var minimumHealthyWatch: Duration
        /// How to wait between attempts (injectable for tests); must throw on cancellation.
        public var sleep: @Sendable (Duration) async throws -> Void
        /// A random number in 0..<1 for jitter (injectable for tests).
        public var random: @Sendable () -> Double
        /// Applied to every object before it enters the cache (listed, watched or `refresh`ed),
        /// like client-go's transform: how to keep less of an object than the API sends. It
        /// must keep `metadata.name`, `namespace` and `resourceVersion`. It runs under the
        /// cache's lock, so that a transform whose rule changes (then `reapplyTransform`) never
        /// lets an object transformed by the old rule in afterwards.
        public var transform: (@Sendable (JSONValue) -> JSONValue)?

        public init(
            labelSelector: String? = nil,
            fieldSelector: String? = nil,
            watchTimeout: Duration = .seconds(300),
            watchTimeoutJitter: Double = 0.5,
            backoff: Backoff = Backoff(),
            minimumHealthyWatch: Duration = .seconds(1),
            sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
            random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
            transform: (@Sendable (JSONValue) -> JSONValue)? = nil
        ) {
            self.labelSelector = labelSelector
            self.fieldSelector = fieldSelector
            self.watchTimeout = watchTimeout
            self.watchTimeoutJitter = watchTimeoutJitter
            self.backoff = backoff
            self.minimumHealthyWatch = minimumHealthyWatch
            self.sleep = sleep
            self.random = random
            self.transform = transform
        }
    }

    public let resource: ResourceType
    public let namespace: String?
    private let client: KubernetesClient
    private let options: Options
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var store = InformerStore()
        var synced = false
        var running = false
        var stopped = false
        var nextID: UInt64 = 0
        var subscribers: [UInt64: AsyncStream<InformerEvent>.Continuation] = [:]
        var syncWaiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]

        mutating func emit(_ event: InformerEvent) {
            for subscriber in subscribers.values { subscriber.yield(event) }
        }
    }

    /// - Parameter namespace: one namespace, or nil for all namespaces (or a cluster-scoped type).
    public init(
        client: KubernetesClient, resource: ResourceType, namespace: String? = nil, options: Options = Options(),
        logger: Logger = Logger(label: "ai-gateway.kubernetes.informer")
    ) {
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.options = options
        var logger = logger
        logger[metadataKey: "resource"] = "\(resource)"
        self.logger = logger
    }

    // MARK: - Reading

    /// Whether the cache has been filled by a complete list.
    public var hasSynced: Bool { state.withLock { $0.synced } }

    /// The resourceVersion the next watch would resume from.
    public var lastResourceVersion: String { state.withLock { $0.store.resourceVersion } }

    /// All cached objects, sorted by namespace/name.
    public func snapshot() -> [JSONValue] {
        state.withLock { $0.store.sortedObjects() }
    }

    /// One cached object.
    public func get(_ key: ObjectKey) -> JSONValue? {
        state.withLock { $0.store.objects[key] }
    }

    /// Puts an object read by other means (a GET) into the cache, through the transform, in
    /// place of the cached copy when it is not older (see `InformerStore.refresh`); a change is
    /// emitted as `.modified`. Returns whether the cache changed.
    @discardableResult
    public func refresh(_ object: JSONValue) -> Bool {
        state.withLock { state in
            guard let change = state.store.refresh(options.transform?(object) ?? object) else { return false }
            state.emit(change)
            return true
        }
    }

    /// Runs the transform again over the cached objects with these keys (when what it keeps has
    /// changed), without emitting anything.
    public func reapplyTransform(to keys: some Sequence<ObjectKey> & Sendable) {
        guard let transform = options.transform else { return }
        state.withLock { $0.store.transform(keys, with: transform) }
    }

    /// A new stream of the changes applied to the cache from now on, in order (unbounded
    /// buffer: consume it). Ends when `run()` returns.
    public func changes() -> AsyncStream<InformerEvent> {
        let (stream, continuation) = AsyncStream<InformerEvent>.makeStream()
        let registered = state.withLock { state -> UInt64? in
            guard !state.stopped else { return nil }
            let id = state.nextID
            state.nextID += 1
            state.subscribers[id] = continuation
            return id
        }
        if let id = registered {
            continuation.onTermination = { [weak self] _ in
                _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
            }
        } else {
            continuation.finish()
        }
        return stream
    }

    /// Returns once the cache has synced; throws `CancellationError` if the task is
    /// cancelled or `run()` ends first.
    public func waitForSync() async throws {
        let id = state.withLock { state -> UInt64 in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Now { case ready, cancelled, wait }
                let now = state.withLock { state -> Now in
                    if state.synced { return .ready }
                    if state.stopped || Task.isCancelled { return .cancelled }
                    state.syncWaiters[id] = continuation
                    return .wait
                }
                switch now {
                case .ready: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .wait: break
                }
            }
        } onCancel: {
            let waiter = state.withLock { $0.syncWaiters.removeValue(forKey: id) }
            waiter?.resume(throwing: CancellationError())
        }
    }

    // MARK: - Running

    /// Lists and watches until the calling task is cancelled, then returns (and ends the
    /// `changes()` streams). Call it once per informer.
    public func run() async {
        let first = state.withLock { state -> Bool in
            guard !state.running, !state.stopped else { return false }
            state.running = true
            return true
        }
        guard first else {
            logger.error("informer run() called twice")
            return
        }
        defer { stop() }
        await reflect()
    }

    private func stop() {
        let (subscribers, waiters) = state.withLock { state in
            state.stopped = true
            state.running = false
            defer {
                state.subscribers = [:]
                state.syncWaiters = [:]
            }
            return (Array(state.subscribers.values), Array(state.syncWaiters.values))
        }
        for subscriber in subscribers { subscriber.finish() }
        for waiter in waiters { waiter.resume(throwing: CancellationError()) }
    }

    private enum WatchEnd {
        case ended(sawEvent: Bool)
        case expired
    }

    private func reflect() async {
        var backoff = options.backoff
        var needsList = true
        var consecutiveGone = 0
        var consecutiveFailures = 0
        while !Task.isCancelled {
            do {
                if needsList {
                    try await relist()
                    needsList = false
                }
                let started = ContinuousClock.now
                // A watch that delivers anything but an error (bookmarks included) is healthy.
                let end = try await watchOnce(onFirstEvent: {
                    backoff.reset()
                    consecutiveFailures = 0
                    consecutiveGone = 0
                })
                switch end {
                case .expired:
                    throw KubernetesError.gone
                case .ended(let sawEvent):
                    if Task.isCancelled { return }
                    if !sawEvent && ContinuousClock.now - started < options.minimumHealthyWatch {
                        try await options.sleep(backoff.next(random: options.random))
                    } else {
                        backoff.reset()
                        consecutiveFailures = 0
                    }
                }
            } catch is CancellationError {
                return
            } catch let error as KubernetesError where error == .gone {
                // The resourceVersion is too old: relist at once (but not in a tight loop).
                logger.debug("kubernetes watch expired, relisting")
                needsList = true
                consecutiveGone += 1
                if consecutiveGone > 1 {
                    do { try await options.sleep(backoff.next(random: options.random)) } catch { return }
                }
            } catch {
                if Task.isCancelled { return }
                consecutiveFailures += 1
                var delay = backoff.next(random: options.random)
                if let retryAfter = (error as? KubernetesError)?.retryAfter, retryAfter > delay { delay = retryAfter }
                let metadata: Logger.Metadata = [
                    "error": "\(error)", "delay-ms": "\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)",
                    "failures": "\(consecutiveFailures)",
                ]
                if consecutiveFailures % 10 == 0 {
                    logger.warning("kubernetes list/watch keeps failing", metadata: metadata)
                } else {
                    logger.debug("kubernetes list/watch failed, backing off", metadata: metadata)
                }
                do { try await options.sleep(delay) } catch { return }
            }
        }
    }

    /// Lists everything and replaces the cache, emitting the difference and `.synced`.
    private func relist() async throws {
        let list = try await client.listAll(
            resource, namespace: namespace, labelSelector: options.labelSelector, fieldSelector: options.fieldSelector)
        try Task.checkCancellation()
        let waiters = state.withLock { state in
            let items = options.transform.map { list.items.map($0) } ?? list.items
            for event in state.store.replace(items: items, resourceVersion: list.resourceVersion) {
                state.emit(event)
            }
            state.synced = true
            state.emit(.synced)
            defer { state.syncWaiters = [:] }
            return Array(state.syncWaiters.values)
        }
        for waiter in waiters { waiter.resume() }
        logger.debug(
            "kubernetes list done", metadata: ["items": "\(list.items.count)", "resource-version": "\(list.resourceVersion)"])
    }

    /// One watch from the current resourceVersion, applied to the cache until it ends.
    private func watchOnce(onFirstEvent: () -> Void) async throws -> WatchEnd {
        let resourceVersion = state.withLock { $0.store.resourceVersion }
        let base = Double(options.watchTimeout.components.seconds)
        let timeout = max(1, Int(base * (1 + max(0, options.watchTimeoutJitter) * options.random())))
        let stream = try await client.watch(
            resource, namespace: namespace, resourceVersion: resourceVersion, labelSelector: options.labelSelector,
            fieldSelector: options.fieldSelector, allowBookmarks: true, timeoutSeconds: timeout)
        var sawEvent = false
        for try await received in stream {
            if !sawEvent && received.type != .error {
                sawEvent = true
                onFirstEvent()
            }
            let result = state.withLock { state -> InformerStore.ApplyResult in
                var event = received
                if let transform = options.transform, [.added, .modified, .deleted].contains(event.type) {
                    event.object = transform(event.object)
                }
                let result = state.store.apply(event)
                if case .applied(let change?) = result { state.emit(change) }
                return result
            }
            switch result {
            case .applied: continue
            case .expired: return .expired
            case .failed(let error): throw error
            }
        }
        return .ended(sawEvent: sawEvent)
    }
}
