import CoreMetrics
import Metrics
import Prometheus
import Synchronization

/// The gateway's metrics, emitted through swift-metrics into a Prometheus registry that `/metrics`
/// exposes. Labels carry names only (route, backend, model, outcome), never a key or a payload.
public final class GatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    static let latencyBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120),
    ]

    /// Metric handles by metric and label values, so the hot path looks a handle up (one hash of
    /// a few strings, no allocation) instead of asking the registry for it again (which sorts,
    /// formats and locks) on every request.
    private struct Key: Hashable {
        var label: Label
        var a: String
        var b = ""
        var c = ""
        var d = ""
        /// A number label (a status code), kept as a number so the hot path makes no string.
        var n = 0
    }

    /// The metric (hashed as a small number: a `String` raw value would hash the whole name).
    private enum Label {
        case requests, attempts, failovers, ejections, misconfigured, tokens, malformed, interruptions, reloads, latency, timeToFirstToken

        var name: String {
            switch self {
            case .requests: "aigw_requests_total"
            case .attempts: "aigw_upstream_attempts_total"
            case .failovers: "aigw_failovers_total"
            case .ejections: "aigw_ejections_total"
            case .misconfigured: "aigw_misconfigured_total"
            case .tokens: "aigw_tokens_total"
            case .malformed: "aigw_malformed_stream_events_total"
            case .interruptions: "aigw_stream_interruptions_total"
            case .reloads: "aigw_config_reloads_total"
            case .latency: "aigw_upstream_latency_seconds"
            case .timeToFirstToken: "aigw_time_to_first_token_seconds"
            }
        }
    }

    private let counters = Mutex<[Key: CoreMetrics.Counter]>([:])
    private let timers = Mutex<[Key: CoreMetrics.Timer]>([:])
    private let inFlightMeter: CoreMetrics.Meter

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.latencyBuckets
        self.factory = factory
        inFlightMeter = CoreMetrics.Meter(label: "aigw_requests_in_flight", dimensions: [], factory: factory)
    }

    /// The counter for `key`; `names` are its label names, in the order of `a`, `b`, `c`.
    private func counter(_ key: Key, _ names: [String]) -> CoreMetrics.Counter {
        if let c = counters.withLock({ $0[key] }) { return c }
        let c = CoreMetrics.Counter(label: key.label.name, dimensions: Self.dimensions(key, names), factory: factory)
        counters.withLock { $0[key] = c }
        return c
    }

    private func timer(_ key: Key, _ names: [String]) -> CoreMetrics.Timer {
        if let t = timers.withLock({ $0[key] }) { return t }
        let t = CoreMetrics.Timer(label: key.label.name, dimensions: Self.dimensions(key, names), preferredDisplayUnit: .seconds, factory: factory)
        timers.withLock { $0[key] = t }
        return t
    }

    private static func dimensions(_ key: Key, _ names: [String]) -> [(String, String)] {
        // The status of `request` is its second label.
        Array(zip(names, [key.a, key.label == .requests ? String(key.n) : key.b, key.c, key.d]))
    }

    /// The handles a successful attempt of one entry updates, looked up once per attempt (or kept
    /// with the compiled entry: `isFor` tells whether they are this entry's of these metrics).
    public final class EntryMetrics: Sendable {
        let ok: CoreMetrics.Counter
        let latency: CoreMetrics.Timer
        let tokensIn: CoreMetrics.Counter
        let tokensOut: CoreMetrics.Counter
        /// What the handles were made for (the registry: its own, not the metrics object, which
        /// holds these and would then never be freed).
        private let registry: PrometheusCollectorRegistry
        private let backend: String
        private let model: String
        private let provider: String

        init(
            ok: CoreMetrics.Counter, latency: CoreMetrics.Timer, tokensIn: CoreMetrics.Counter, tokensOut: CoreMetrics.Counter,
            registry: PrometheusCollectorRegistry, backend: String, model: String, provider: String
        ) {
            self.ok = ok
            self.latency = latency
            self.tokensIn = tokensIn
            self.tokensOut = tokensOut
            self.registry = registry
            self.backend = backend
            self.model = model
            self.provider = provider
        }

        /// Whether these are the handles `metrics.entry(backend:model:provider:)` gives. (Strings
        /// that share their storage compare without reading their bytes.)
        public func isFor(_ metrics: GatewayMetrics, backend: String, model: String, provider: String) -> Bool {
            registry === metrics.registry && self.backend == backend && self.model == model && self.provider == provider
        }

        /// The same as `GatewayMetrics.attempt(... outcome: "ok")`.
        public func succeeded() { ok.increment() }
        /// The same as `GatewayMetrics.upstreamLatency`.
        public func upstreamLatency(_ d: Duration) { latency.recordNanoseconds(d.nanoseconds) }
        /// The same as `GatewayMetrics.tokens`.
        public func tokens(input: Int, output: Int) {
            if input > 0 { tokensIn.increment(by: input) }
            if output > 0 { tokensOut.increment(by: output) }
        }
    }

    private let entries = Mutex<[Key: EntryMetrics]>([:])

    /// The handles of `backend`'s entry `model` of `provider` (made on first use).
    public func entry(backend: String, model: String, provider: String) -> EntryMetrics {
        let key = Key(label: .attempts, a: backend, b: model, d: provider)
        if let e = entries.withLock({ $0[key] }) { return e }
        let e = EntryMetrics(
            ok: counter(Key(label: .attempts, a: backend, b: model, c: "ok", d: provider), ["backend", "model", "outcome", "provider"]),
            latency: timer(Key(label: .latency, a: backend, b: model, c: provider), ["backend", "model", "provider"]),
            tokensIn: counter(Key(label: .tokens, a: backend, b: model, c: "input", d: provider), ["backend", "model", "direction", "provider"]),
            tokensOut: counter(Key(label: .tokens, a: backend, b: model, c: "output", d: provider), ["backend", "model", "direction", "provider"]),
            registry: registry, backend: backend, model: model, provider: provider)
        entries.withLock { $0[key] = e }
        return e
    }

    /// The handle of a route's requests answered 200 (the usual status; the others are looked
    /// up when counted), to be kept with the compiled route: `isFor` tells whether it is
    /// this route's of these metrics. Made when a 200 is counted: the series appears with it.
    public final class RouteMetrics: Sendable {
        let ok: CoreMetrics.Counter
        let route: String
        private let registry: PrometheusCollectorRegistry

        init(ok: CoreMetrics.Counter, route: String, registry: PrometheusCollectorRegistry) {
            self.ok = ok
            self.route = route
            self.registry = registry
        }

        public func isFor(_ metrics: GatewayMetrics, route: String) -> Bool {
            registry === metrics.registry && self.route == route
        }
    }

    /// The handles of `route`'s requests (made on first use; the series of a 200 appears now).
    public func route(_ route: String) -> RouteMetrics {
        RouteMetrics(ok: counter(Key(label: .requests, a: route, b: "", n: 200), ["route", "status"]), route: route, registry: registry)
    }

    /// One client request finished with `status`.
    public func request(route: String, status: Int) {
        counter(Key(label: .requests, a: route, b: "", n: status), ["route", "status"]).increment()
    }

    /// The same as `request(route: handles' route, status:)`.
    public func request(_ handles: RouteMetrics, status: Int) {
        if status == 200 { handles.ok.increment() } else { request(route: handles.route, status: status) }
    }

    /// One attempt against an entry finished with `outcome` (a stable label such as `ok`, `503`, `first_byte_timeout`).
    public func attempt(backend: String, model: String, provider: String, outcome: String) {
        counter(Key(label: .attempts, a: backend, b: model, c: outcome, d: provider), ["backend", "model", "outcome", "provider"]).increment()
    }

    /// The request moved from one model to the next.
    public func failover(backend: String, from: String, to: String) {
        counter(Key(label: .failovers, a: backend, b: from, c: to), ["backend", "from_model", "to_model"]).increment()
    }

    /// An entry was ejected by passive health checks.
    public func ejection(backend: String, model: String) {
        counter(Key(label: .ejections, a: backend, b: model), ["backend", "model"]).increment()
    }

    /// An entry reported as misconfigured (401, 403, 404 model not found) or unusable (missing Secret).
    public func misconfigured(backend: String, model: String, reason: String) {
        counter(Key(label: .misconfigured, a: backend, b: model, c: reason), ["backend", "model", "reason"]).increment()
    }

    /// Time from sending an attempt to its response headers.
    public func upstreamLatency(backend: String, model: String, provider: String, _ d: Duration) {
        timer(Key(label: .latency, a: backend, b: model, c: provider), ["backend", "model", "provider"]).recordNanoseconds(d.nanoseconds)
    }

    /// Time from sending a streaming attempt to its first token.
    public func timeToFirstToken(backend: String, model: String, provider: String, _ d: Duration) {
        timer(Key(label: .timeToFirstToken, a: backend, b: model, c: provider), ["backend", "model", "provider"]).recordNanoseconds(d.nanoseconds)
    }

    /// Tokens reported by the answering model.
    public func tokens(backend: String, model: String, provider: String, input: Int, output: Int) {
        if input > 0 {
            counter(Key(label: .tokens, a: backend, b: model, c: "input", d: provider), ["backend", "model", "direction", "provider"]).increment(by: input)
        }
        if output > 0 {
            counter(Key(label: .tokens, a: backend, b: model, c: "output", d: provider), ["backend", "model", "direction", "provider"]).increment(by: output)
        }
    }

    /// An SSE event that was not valid JSON was dropped.
    public func malformedEvent(backend: String, model: String) {
        counter(Key(label: .malformed, a: backend, b: model), ["backend", "model"]).increment()
    }

    /// A stream broke after tokens reached the client.
    public func streamInterrupted(backend: String, model: String, resolution: String) {
        counter(Key(label: .interruptions, a: backend, b: model, c: resolution), ["backend", "model", "resolution"]).increment()
    }

    /// A configuration reload was applied (`ok`) or rejected (`error`).
    public func configReload(result: String) {
        counter(Key(label: .reloads, a: result), ["result"]).increment()
    }

    /// Requests in flight.
    public func inFlight(_ delta: Int) {
        inFlightMeter.increment(by: Double(delta))
    }

    /// Kubernetes mode: 1 while this replica is the elected leader (it writes status), else 0.
    public func leader(_ isLeader: Bool) {
        Gauge(label: "aigw_leader", dimensions: [], factory: factory).record(isLeader ? 1 : 0)
    }

    /// Kubernetes mode: one reconcile of the caches into a new table: how long decoding the
    /// cached objects and compiling (and swapping) the table took, and what the table holds.
    public func reconciled(objects: Int, routes: Int, decode: Duration, compile: Duration) {
        Gauge(label: "aigw_table_objects", dimensions: [], factory: factory).record(objects)
        Gauge(label: "aigw_table_routes", dimensions: [], factory: factory).record(routes)
        Gauge(label: "aigw_table_decode_seconds", dimensions: [], factory: factory).record(decode.secondsValue)
        Gauge(label: "aigw_table_compile_seconds", dimensions: [], factory: factory).record(compile.secondsValue)
    }

    /// The Prometheus text exposition.
    public func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let c = components
        return c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000
    }
}

extension Duration {
    var secondsValue: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}
