import AIGatewayAPI
import AIGatewayFailover
import AIGatewayRouting
import AIGatewayTelemetry
import Logging
import Synchronization

/// Compiles each new resource set into a routing table and swaps it into the proxy. Shared by every
/// configuration source (files, the Kubernetes API).
public final class TableUpdater: ConfigurationSink {
    public let store: TableStore
    public let options: CompileOptions
    let metrics: GatewayMetrics
    let logger: Logger
    /// The keys in clear already warned about: each entry is logged once, not on every reload
    /// (and again if it goes away and comes back).
    private let warnedInClear = Mutex<Set<KeyInClear>>([])
    /// Passive health, told of each new table so that it drops the state of entries that are gone.
    let health: HealthRegistry?

    public init(store: TableStore, options: CompileOptions, metrics: GatewayMetrics, logger: Logger, health: HealthRegistry? = nil) {
        self.store = store
        self.options = options
        self.metrics = metrics
        self.logger = logger
        self.health = health
    }

    /// Compiles and swaps; returns the compiled table's status.
    @discardableResult
    public func apply(_ resources: ResourceSet, origin: String) -> TableStatus {
        let start = ContinuousClock.now
        let table = RouteCompiler.compile(resources, options: options)
        return install(table, origin: origin, objects: resources.count, compileTime: ContinuousClock.now - start)
    }

    /// Swaps in a table compiled elsewhere; returns its status.
    @discardableResult
    public func install(_ table: RoutingTable, origin: String, objects: Int) -> TableStatus {
        install(table, origin: origin, objects: objects, compileTime: nil)
    }

    private func install(_ table: RoutingTable, origin: String, objects: Int, compileTime: Duration?) -> TableStatus {
        store.swap(table)
        health?.retain(table)
        store.markReady()
        metrics.configReload(result: "ok")
        var metadata: Logger.Metadata = [
            "origin": "\(origin)", "objects": "\(objects)", "rules": "\(table.ruleCount)", "backends": "\(table.backends.count)",
        ]
        if let compileTime { metadata["compile-time"] = "\(compileTime)" }
        logger.info("configuration applied", metadata: metadata)
        let fresh = warnedInClear.withLock { warned in
            let current = Set(table.status.keysInClear)
            defer { warned = current }
            return table.status.keysInClear.filter { !warned.contains($0) }
        }
        for k in fresh {
            logger.warning(
                "provider key sent in clear",
                metadata: [
                    "backend": "\(k.backend)", "model": "\(k.model)", "host": "\(k.host)", "port": "\(k.port)", "entry": "\(k.entry)",
                    "hint": "plaintext HTTP to a host that is not loopback; use port 443 (TLS)",
                ])
        }
        return table.status
    }

    public func rejected(_ errors: [String], origin: String) {
        metrics.configReload(result: "error")
        logger.error("configuration rejected; keeping the last good one", metadata: ["origin": "\(origin)", "errors": .array(errors.map { .string($0) })])
    }
}
