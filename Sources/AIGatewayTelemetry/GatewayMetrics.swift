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

    /// Metric handles by label and label values, so the hot path looks a handle up instead of
    /// asking the registry for it again (which sorts, formats and locks) on every request.
    private struct Key: Hashable {
        var label: String
        var values: [String]
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

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
        let key = Key(label: label, values: dimensions.map(\.1))
        if let c = counters.withLock({ $0[key] }) { return c }
        let c = CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory)
        counters.withLock { $0[key] = c }
        return c
    }

    private func timer(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Timer {
        let key = Key(label: label, values: dimensions.map(\.1))
        if let t = timers.withLock({ $0[key] }) { return t }
        let t = CoreMetrics.Timer(label: label, dimensions: dimensions, preferredDisplayUnit: .seconds, factory: factory)
        timers.withLock { $0[key] = t }
        return t
    }

    /// One client request finished with `status`.
    public func request(route: String, status: Int) {
        counter("aigw_requests_total", [("route", route), ("status", String(status))]).increment()
    }

    /// One attempt against an entry finished with `outcome` (a stable label such as `ok`, `503`, `first_byte_timeout`).
    public func attempt(backend: String, model: String, outcome: String) {
        counter("aigw_upstream_attempts_total", [("backend", backend), ("model", model), ("outcome", outcome)]).increment()
    }

    /// The request moved from one model to the next.
    public func failover(backend: String, from: String, to: String) {
        counter("aigw_failovers_total", [("backend", backend), ("from_model", from), ("to_model", to)]).increment()
    }

    /// An entry was ejected by passive health checks.
    public func ejection(backend: String, model: String) {
        counter("aigw_ejections_total", [("backend", backend), ("model", model)]).increment()
    }

    /// An entry reported as misconfigured (401, 403, 404 model not found) or unusable (missing Secret).
    public func misconfigured(backend: String, model: String, reason: String) {
        counter("aigw_misconfigured_total", [("backend", backend), ("model", model), ("reason", reason)]).increment()
    }

    /// Time from sending an attempt to its response headers.
    public func upstreamLatency(backend: String, model: String, _ d: Duration) {
        timer("aigw_upstream_latency_seconds", [("backend", backend), ("model", model)]).recordNanoseconds(d.nanoseconds)
    }

    /// Time from sending a streaming attempt to its first token.
    public func timeToFirstToken(backend: String, model: String, _ d: Duration) {
        timer("aigw_time_to_first_token_seconds", [("backend", backend), ("model", model)]).recordNanoseconds(d.nanoseconds)
    }

    /// Tokens reported by the answering model.
    public func tokens(backend: String, model: String, input: Int, output: Int) {
        if input > 0 {
            counter("aigw_tokens_total", [("backend", backend), ("model", model), ("direction", "input")]).increment(by: input)
        }
        if output > 0 {
            counter("aigw_tokens_total", [("backend", backend), ("model", model), ("direction", "output")]).increment(by: output)
        }
    }

    /// An SSE event that was not valid JSON was dropped.
    public func malformedEvent(backend: String, model: String) {
        counter("aigw_malformed_stream_events_total", [("backend", backend), ("model", model)]).increment()
    }

    /// A stream broke after tokens reached the client.
    public func streamInterrupted(backend: String, model: String, resolution: String) {
        counter("aigw_stream_interruptions_total", [("backend", backend), ("model", model), ("resolution", resolution)]).increment()
    }

    /// A configuration reload was applied (`ok`) or rejected (`error`).
    public func configReload(result: String) {
        counter("aigw_config_reloads_total", [("result", result)]).increment()
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
