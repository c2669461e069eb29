import AIGatewayAPI

/// A `metav1.Condition` the controller writes (and standalone mode logs).
public struct Condition: Sendable, Hashable, CustomStringConvertible {
    public var type: String
    public var status: Bool
    public var reason: String
    public var message: String
    public var observedGeneration: Int

    public init(type: String, status: Bool, reason: String, message: String, observedGeneration: Int) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
        self.observedGeneration = observedGeneration
    }

    public var description: String { "\(type)=\(status ? "True" : "False") (\(reason)): \(message)" }
}

/// Status for one parent of an HTTPRoute.
public struct RouteParentStatus: Sendable, Hashable {
    public var parent: ParentReference
    public var parentNamespace: String
    public var conditions: [Condition]
}

public struct GatewayStatus: Sendable, Hashable {
    public var conditions: [Condition]
    /// Listener name → attached route count.
    public var attachedRoutes: [String: Int]
}

/// Everything the compiler concluded about each object.
public struct TableStatus: Sendable, Hashable {
    public var backends: [NamespacedName: [Condition]] = [:]
    public var routes: [NamespacedName: [RouteParentStatus]] = [:]
    public var gateways: [NamespacedName: GatewayStatus] = [:]
    public var gatewayClasses: [String: [Condition]] = [:]

    public init() {}

    /// Lines worth telling an operator: every condition that is False.
    public var problems: [String] {
        var out: [String] = []
        for (name, conds) in backends.sorted(by: { $0.key < $1.key }) {
            for c in conds where !c.status { out.append("Backend \(name): \(c.message)") }
        }
        for (name, parents) in routes.sorted(by: { $0.key < $1.key }) {
            for p in parents {
                for c in p.conditions where !c.status { out.append("HTTPRoute \(name): \(c.message)") }
            }
        }
        for (name, g) in gateways.sorted(by: { $0.key < $1.key }) {
            for c in g.conditions where !c.status { out.append("Gateway \(name): \(c.message)") }
        }
        return out
    }
}
