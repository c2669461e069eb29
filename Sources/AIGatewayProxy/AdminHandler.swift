import AIGatewayFailover
import AIGatewayTelemetry
import NIOCore
import NIOHTTP1

/// The admin port: `/healthz` (the process serves), `/readyz` (a configuration is loaded),
/// `/metrics` (Prometheus), `/debug/table` (the compiled routing table, keys redacted).
public struct AdminHandler: HTTPHandler {
    let store: TableStore
    let metrics: GatewayMetrics
    let health: HealthRegistry

    public init(store: TableStore, metrics: GatewayMetrics, health: HealthRegistry) {
        self.store = store
        self.metrics = metrics
        self.health = health
    }

    public func handle(_ request: ServerRequest, _ writer: ResponseWriter, done: @escaping @Sendable () -> Void) {
        defer { done() }
        let path = request.head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/"
        var h = HTTPHeaders()
        switch (request.head.method, path) {
        case (.GET, "/healthz"), (.HEAD, "/healthz"):
            h.add(name: "content-type", value: "text/plain")
            writer.respond(status: .ok, headers: h, body: Array("ok\n".utf8))
        case (.GET, "/readyz"), (.HEAD, "/readyz"):
            h.add(name: "content-type", value: "text/plain")
            if store.isReady {
                writer.respond(status: .ok, headers: h, body: Array("ready\n".utf8))
            } else {
                writer.respond(status: .serviceUnavailable, headers: h, body: Array("configuration not loaded yet\n".utf8))
            }
        case (.GET, "/metrics"):
            h.add(name: "content-type", value: "text/plain; version=0.0.4")
            writer.respond(status: .ok, headers: h, body: metrics.exposition())
        case (.GET, "/debug/table"):
            h.add(name: "content-type", value: "text/plain")
            var text = store.current.dump()
            let ejected = health.ejectedEntries(now: .now)
            text += "ejected:\n" + ejected.map { "- \($0)\n" }.joined()
            writer.respond(status: .ok, headers: h, body: Array(text.utf8))
        default:
            h.add(name: "content-type", value: "text/plain")
            writer.respond(status: .notFound, headers: h, body: Array("not found\n".utf8))
        }
    }

    public func reject(status: HTTPResponseStatus, message: String, requestHead: HTTPRequestHead, _ writer: ResponseWriter) {
        var h = HTTPHeaders()
        h.add(name: "content-type", value: "text/plain")
        writer.respond(status: status, headers: h, body: Array((message + "\n").utf8))
    }
}
