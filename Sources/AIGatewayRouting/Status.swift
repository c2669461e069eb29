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

/// A provider entry whose key goes over plaintext HTTP to a host that is not this machine: anyone
/// on the path can read it. Worth a warning (the Backend is still accepted). Never holds the key.
public struct KeyInClear: Sendable, Hashable, CustomStringConvertible {
    public var backend: NamespacedName
    /// The entry's field path (`spec.ai.llm`).
    public var entry: String
    public var model: String
    public var host: String
    public var port: Int

    public init(backend: NamespacedName, entry: String, model: String, host: String, port: Int) {
        self.backend = backend
        self.entry = entry
        self.model = model
        self.host = host
        self.port = port
    }

    /// What the Backend's status says.
    public var message: String {
        "\(entry) (model \(model)) sends its key in clear (plaintext HTTP) to \(host.contains(":") ? "[\(host)]" : host):\(port), which is not loopback: use port 443 (TLS)"
    }

    public var description: String { "Backend \(backend): \(message)" }
}

/// Everything the compiler concluded about each object.
public struct TableStatus: Sendable, Hashable {
    public var backends: [NamespacedName: [Condition]] = [:]
    /// Entries that send a key over plaintext to a host that is not loopback, in Backend order.
    public var keysInClear: [KeyInClear] = []
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
