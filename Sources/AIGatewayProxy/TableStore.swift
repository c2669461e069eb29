import AIGatewayRouting
import Synchronization

/// The routing table in force. A new table is built off the hot path and swapped in whole;
/// a request reads the reference once and keeps that table to its end.
public final class TableStore: Sendable {
    private let table: Mutex<RoutingTable>
    private let readyState = Mutex(false)

    public init(_ initial: RoutingTable = .empty) {
        table = Mutex(initial)
    }

    public var current: RoutingTable { table.withLock { $0 } }

    public func swap(_ new: RoutingTable) {
        table.withLock { $0 = new }
    }

    private let drainingState = Mutex(false)

    /// Ready once the first complete configuration was loaded, and until draining starts.
    public var isReady: Bool { readyState.withLock { $0 } && !drainingState.withLock { $0 } }

    public func markReady() { readyState.withLock { $0 = true } }

    /// Draining: `/readyz` fails so load balancers stop sending new traffic.
    public func markDraining() { drainingState.withLock { $0 = true } }
}
