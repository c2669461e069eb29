import AIGatewayAPI
import AIGatewayProviders

/// How a compiled entry authenticates to its provider.
public enum CompiledAuth: Sendable, Hashable {
    /// A key from a Secret or inline; sent as `<authHeaderName>: <authPrefix><key>`.
    case key(SecretString)
    /// The client's own bearer token is forwarded in the provider's header form.
    case passthrough
    /// AWS keys from the entry's Secret (`accessKey`, `secretKey`, `sessionToken`); a changed
    /// Secret recompiles the table, so rotation needs no restart.
    case aws(AWSCredentials)
    /// No Secret named: the gateway's own AWS credentials (environment variables, else web
    /// identity through STS), resolved and refreshed by the proxy.
    case awsDefaultChain
}

/// One model endpoint of a Backend, ready to call.
public struct CompiledEntry: Sendable, Hashable, Identifiable {
    /// Identity used for passive health: what the entry is, not where it sits, so that reordering
    /// a Backend's priorities keeps each model's health with the model. See `CompiledEntry.identity`.
    public var id: String
    public var backend: NamespacedName
    public var priority: Int
    public var index: Int
    /// The entry's path in the Backend spec, for messages (`spec.ai.multipool.priorities[1].pool[0]`).
    public var fieldPath: String
    public var target: UpstreamTarget
    public var auth: CompiledAuth?
    /// Why this entry cannot be used (missing Secret, provider not served yet), if so.
    public var problem: String?
    /// What the data plane derives from the entry once (its metric handles); not part of the value.
    public let derived = DerivedSlot()

    public var model: String { target.displayModel }
    public var isUsable: Bool { problem == nil && auth != nil }

    /// `namespace/backend provider scheme://host:port/path model #n`: the Backend, the provider, the
    /// endpoint and the model (or deployment, which Azure carries in the path), and `n`, the
    /// occurrence of that same combination in the Backend (priority by priority), so that two
    /// identical entries of one Backend stay distinguishable. No key or header is part of it.
    public static func identity(backend: NamespacedName, target: UpstreamTarget, occurrence: Int) -> String {
        identity(stem: identityStem(backend: backend, target: target), occurrence: occurrence)
    }

    /// The identity less its occurrence (`#n`): what two identical entries of a Backend share.
    static func identityStem(backend: NamespacedName, target: UpstreamTarget) -> String {
        let host = target.host.utf8.contains(UInt8(ascii: ":")) ? "[\(target.host)]" : target.host
        return "\(backend) \(target.provider) \(target.tls ? "https" : "http")://\(host):\(target.port)\(target.path) \(target.model ?? "(client's)")"
    }

    static func identity(stem: String, occurrence: Int) -> String { "\(stem) #\(occurrence)" }
}

/// Per-Backend knobs, set with `ai-gateway.kgateway.dev/*` annotations (the Backend schema is kgateway's).
public struct BackendSettings: Sendable, Hashable {
    public static let annotationPrefix = "ai-gateway.kgateway.dev/"

    /// Continue a stream cut after tokens were sent on the next candidate, with the partial answer as an
    /// assistant prefill. Off by default: OpenAI-style models do not honour a prefill.
    public var streamContinuation = false
    public var connectTimeout: Duration = .seconds(5)
    public var firstByteTimeout: Duration = .seconds(30)
    public var firstTokenTimeout: Duration = .seconds(10)
    public var streamIdleTimeout: Duration = .seconds(10)
    /// Same-entry retries on 5xx / connection failure, unless the route's `retry.attempts` says otherwise.
    public var retries = 1
    /// Consecutive failures before an entry is ejected.
    public var ejectionThreshold = 3
    public var ejectionBase: Duration = .seconds(5)
    /// The longest ejection. A recovered entry waits at most this long for its probe (plus the gap
    /// to the next request), so the default keeps it under 30 s for traffic of one request every
    /// 10 s or more, while a dead entry still costs only one probe per cool-down.
    public var ejectionMax: Duration = .seconds(20)

    public init() {}

    /// Reads the annotations; unknown keys under the prefix and bad values are errors.
    public static func parse(_ annotations: [String: String]) -> (BackendSettings, [String]) {
        var s = BackendSettings()
        var errors: [String] = []
        for (key, value) in annotations.sorted(by: { $0.key < $1.key }) where key.hasPrefix(annotationPrefix) {
            let name = String(key.dropFirst(annotationPrefix.count))
            func duration(_ assign: (Duration) -> Void) {
                if let d = GatewayDuration(parsing: value), d.milliseconds > 0 { assign(d.duration) } else {
                    errors.append("metadata.annotations[\(key)]: invalid duration \"\(value)\"")
                }
            }
            func count(_ range: ClosedRange<Int>, _ assign: (Int) -> Void) {
                if let n = Int(value), range.contains(n) { assign(n) } else {
                    errors.append("metadata.annotations[\(key)]: must be an integer between \(range.lowerBound) and \(range.upperBound)")
                }
            }
            switch name {
            case "stream-continuation":
                switch value.lowercased() {
                case "true": s.streamContinuation = true
                case "false": s.streamContinuation = false
                default: errors.append("metadata.annotations[\(key)]: must be \"true\" or \"false\"")
                }
            case "connect-timeout": duration { s.connectTimeout = $0 }
            case "first-byte-timeout": duration { s.firstByteTimeout = $0 }
            case "first-token-timeout": duration { s.firstTokenTimeout = $0 }
            case "stream-idle-timeout": duration { s.streamIdleTimeout = $0 }
            case "ejection-base": duration { s.ejectionBase = $0 }
            case "ejection-max": duration { s.ejectionMax = $0 }
            case "retries": count(0...5) { s.retries = $0 }
            case "ejection-threshold": count(1...100) { s.ejectionThreshold = $0 }
            default: errors.append("metadata.annotations[\(key)]: unknown setting")
            }
        }
        return (s, errors)
    }
}

/// A Backend compiled for serving.
public struct CompiledBackend: Sendable, Hashable {
    public let name: NamespacedName
    /// `namespace/name`, for metrics, headers and logs (made once: every request uses it).
    public let label: String
    /// Priority levels in order; empty when the Backend cannot be served at all.
    public var priorities: [[CompiledEntry]]
    public var settings: BackendSettings
    /// Why the Backend is not served (unsupported type), if so.
    public var problem: String?
    /// What the data plane derives from the Backend once (its failover candidates); not part of the value.
    public let derived = DerivedSlot()

    public init(name: NamespacedName, priorities: [[CompiledEntry]], settings: BackendSettings, problem: String?) {
        self.name = name
        self.label = name.description
        self.priorities = priorities
        self.settings = settings
        self.problem = problem
    }

    public var entries: [CompiledEntry] { priorities.flatMap { $0 } }
    public var entryCount: Int { priorities.reduce(0) { $0 + $1.count } }
}

/// The route's retry policy, with the gateway's defaults.
public struct RetryPolicy: Sendable, Hashable {
    public static let defaultCodes: Set<Int> = [500, 502, 503, 504]
    /// Status codes retried on the same entry.
    public var codes: Set<Int>
    /// Same-entry retries; nil means the Backend's default.
    public var attempts: Int?
    /// Base of the jittered exponential backoff between retries.
    public var backoff: Duration

    public init(codes: Set<Int> = RetryPolicy.defaultCodes, attempts: Int? = nil, backoff: Duration = .milliseconds(100)) {
        self.codes = codes
        self.attempts = attempts
        self.backoff = backoff
    }
}

/// Where a rule sends a request.
public enum RuleTarget: Sendable, Hashable {
    case backend(NamespacedName)
    /// An unresolved reference; requests to it get a 500 naming the problem (Gateway API semantics).
    case invalid(String)
}

public struct WeightedTarget: Sendable, Hashable {
    public var weight: Int
    public var target: RuleTarget
}

/// One rule of one HTTPRoute, compiled.
public struct CompiledRule: Sendable, Hashable {
    public let route: NamespacedName
    /// `namespace/name` of the route, for metrics and logs (made once: every request uses it).
    public let routeLabel: String
    public var ruleIndex: Int
    public var requestHeaders: [HeaderModifier]
    public var responseHeaders: [HeaderModifier]
    public var rewrite: URLRewrite?
    public var targets: [WeightedTarget]
    public var requestTimeout: Duration?
    public var backendRequestTimeout: Duration?
    public var retry: RetryPolicy
    /// What the data plane derives from the rule once (its metric handles); not part of the value.
    public let derived = DerivedSlot()

    public init(
        route: NamespacedName, ruleIndex: Int, requestHeaders: [HeaderModifier], responseHeaders: [HeaderModifier], rewrite: URLRewrite?,
        targets: [WeightedTarget], requestTimeout: Duration?, backendRequestTimeout: Duration?, retry: RetryPolicy
    ) {
        self.route = route
        self.routeLabel = route.description
        self.ruleIndex = ruleIndex
        self.requestHeaders = requestHeaders
        self.responseHeaders = responseHeaders
        self.rewrite = rewrite
        self.targets = targets
        self.requestTimeout = requestTimeout
        self.backendRequestTimeout = backendRequestTimeout
        self.retry = retry
    }

    /// Picks a target by weight; `roll` is a uniform random number in `0..<totalWeight`.
    public func pickTarget(roll: Int) -> RuleTarget? {
        var r = roll
        for t in targets where t.weight > 0 {
            if r < t.weight { return t.target }
            r -= t.weight
        }
        return nil
    }

    public var totalWeight: Int { targets.reduce(0) { $0 + max(0, $1.weight) } }
}
