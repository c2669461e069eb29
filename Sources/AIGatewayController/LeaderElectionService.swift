import AIGatewayKubernetes
import ServiceLifecycle

/// Runs a `LeaderElector` as a service: it campaigns and renews until graceful shutdown, then
/// steps down and releases the lease. Put it last in the service group, so that it is shut down
/// first: a peer takes over status while this replica still drains its requests.
public struct LeaderElectionService: Service {
    public let elector: LeaderElector

    public init(elector: LeaderElector) {
        self.elector = elector
    }

    public func run() async throws {
        let elector = self.elector
        await cancelWhenGracefulShutdown { await elector.run() }
    }
}
