import AIGatewayAPI
import AIGatewayProviders

/// Where configuration comes from. Standalone mode reads manifest files; the Kubernetes controller
/// watches the API. Both hand complete resource sets to the same compiler and proxy.
public protocol ConfigurationSink: Sendable {
    /// A complete, valid set of resources. Returns what the compiler concluded about each object
    /// (its `problems` are worth telling: a missing Secret, ...).
    func apply(_ resources: ResourceSet, origin: String) -> TableStatus
    /// A table compiled by the source itself (`IncrementalCompiler`, with `options`), of
    /// `objects` objects. Returns the table's status.
    func install(_ table: RoutingTable, origin: String, objects: Int) -> TableStatus
    /// The compile options of `apply`, for a source that compiles by itself.
    var options: CompileOptions { get }
    /// A new configuration could not be used; the last good one stays in force.
    func rejected(_ errors: [String], origin: String)
}

/// Settings of the compilation that do not come from the resources themselves.
public struct CompileOptions: Sendable, Hashable {
    /// The `GatewayClass.spec.controllerName` this gateway implements.
    public var controllerName: String
    /// Standalone mode: routes whose parent Gateway is not among the resources attach to the
    /// built-in listener instead of being rejected.
    public var implicitGateway: Bool
    /// Provider default hosts redirected (`--provider-endpoint`).
    public var endpoints: [String: ProviderEndpoint]

    public static let defaultControllerName = "kgateway.dev/kgateway"

    public init(controllerName: String = CompileOptions.defaultControllerName, implicitGateway: Bool = false, endpoints: [String: ProviderEndpoint] = [:]) {
        self.controllerName = controllerName
        self.implicitGateway = implicitGateway
        self.endpoints = endpoints
    }
}

/// Compiles resources into an immutable `RoutingTable`. Pure: same input, same table.
public enum RouteCompiler {
    public static func compile(_ resources: ResourceSet, options: CompileOptions = .init()) -> RoutingTable {
        var status = TableStatus()
        let secrets = Dictionary(resources.secrets.map { ($0.metadata.namespacedName, $0) }, uniquingKeysWith: { a, _ in a })

        // Backends.
        var backends: [NamespacedName: CompiledBackend] = [:]
        for b in resources.backends {
            let (compiled, conditions, inClear) = compileBackend(b, secrets: secrets, options: options)
            backends[b.metadata.namespacedName] = compiled
            status.backends[b.metadata.namespacedName] = conditions
            status.keysInClear += inClear
        }

        // GatewayClasses and Gateways of ours.
        var ourClasses: Set<String> = []
        for gc in resources.gatewayClasses where gc.controllerName == options.controllerName {
            ourClasses.insert(gc.metadata.name)
            status.gatewayClasses[gc.metadata.name] = [
                Condition(type: "Accepted", status: true, reason: "Accepted", message: "GatewayClass accepted", observedGeneration: gc.metadata.generation)
            ]
        }
        var gateways: [NamespacedName: Gateway] = [:]
        for g in resources.gateways where ourClasses.contains(g.gatewayClassName) {
            gateways[g.metadata.namespacedName] = g
        }
        var attached: [NamespacedName: [String: Int]] = [:]
        for (name, g) in gateways {
            attached[name] = Dictionary(uniqueKeysWithValues: g.listeners.map { ($0.name, 0) })
        }

        // Routes.
        var rules: [MatchEntry] = []
        let context = RouteContext(
            backends: backends, grants: resources.referenceGrants, gateways: gateways,
            allGateways: Set(resources.gateways.map(\.metadata.namespacedName)), options: options)
        let sortedRoutes = resources.httpRoutes.sorted(by: routeOrder)
        for (order, route) in sortedRoutes.enumerated() {
            let compiled = compileRoute(route, tiebreak: order, context: context)
            if !compiled.parents.isEmpty { status.routes[route.metadata.namespacedName] = compiled.parents }
            for a in compiled.attachments { attached[a.gateway]?[a.listener, default: 0] += 1 }
            rules += compiled.entries
        }

        for (name, g) in gateways {
            status.gateways[name] = gatewayStatus(g, attached: attached[name] ?? [:])
        }
        return RoutingTable(entries: rules, backends: backends, status: status)
    }

    static func gatewayStatus(_ g: Gateway, attached: [String: Int]) -> GatewayStatus {
        let gen = g.metadata.generation
        return GatewayStatus(
            conditions: [
                Condition(type: "Accepted", status: true, reason: "Accepted", message: "Gateway accepted", observedGeneration: gen),
                Condition(type: "Programmed", status: true, reason: "Programmed", message: "Gateway programmed", observedGeneration: gen),
            ],
            attachedRoutes: attached)
    }

    /// What a route is compiled against: whether Backends exist (not what they hold), the
    /// ReferenceGrants, the Gateways of ours and the names of all Gateways.
    struct RouteContext {
        var backends: [NamespacedName: CompiledBackend]
        var grants: [ReferenceGrant]
        var gateways: [NamespacedName: Gateway]
        var allGateways: Set<NamespacedName>
        var options: CompileOptions
    }

    /// One HTTPRoute, compiled on its own: its match entries (none unless accepted), its parents'
    /// status, the listeners it attached to, and the Backends it names (whether they exist or not).
    struct CompiledRoute: Sendable {
        struct Attachment: Sendable, Hashable {
            var gateway: NamespacedName
            var listener: String
        }

        var entries: [MatchEntry]
        var parents: [RouteParentStatus]
        var attachments: [Attachment]
        var backendRefs: Set<NamespacedName>
    }

    /// Compiles one route; `tiebreak` orders routes that are otherwise equal (the same name twice
    /// in a set of manifests).
    static func compileRoute(_ route: HTTPRoute, tiebreak: Int, context: RouteContext) -> CompiledRoute {
        let options = context.options
        var parentStatuses: [RouteParentStatus] = []
        var attachments: [CompiledRoute.Attachment] = []
        var accepted = false
        let routeHosts = route.hostnames.map { $0.lowercased() }
        // The hostnames the route is served on: its own, narrowed by each listener it attached
        // to (nil: any host).
        var servedHosts: Set<String>? = []
        let (compiledRules, resolved) = compileRules(route, backends: context.backends, grants: context.grants)
        for parent in route.parentRefs {
            let parentNS = parent.namespace ?? route.metadata.namespace
            let key = NamespacedName(namespace: parentNS, name: parent.name)
            guard parent.group == ResourceDecoder.gatewayGroup, parent.kind == "Gateway" else { continue }
            var conditions: [Condition] = []
            let gen = route.metadata.generation
            if let gateway = context.gateways[key] {
                let listeners = gateway.listeners.filter { l in
                    (parent.sectionName == nil || parent.sectionName == l.name) && (parent.port == nil || parent.port == l.port)
                }
                if listeners.isEmpty {
                    conditions.append(Condition(type: "Accepted", status: false, reason: "NoMatchingParent", message: "no listener of Gateway \(key) matches sectionName/port", observedGeneration: gen))
                } else {
                    let allowing = listeners.filter { l in
                        guard l.protocol == "HTTP" || l.protocol == "HTTPS" else { return false }
                        switch l.allowedRoutesFrom {
                        case .all: return true
                        case .same: return route.metadata.namespace == gateway.metadata.namespace
                        case .selector: return false
                        }
                    }
                    // Listeners whose hostname the route's hostnames intersect (Gateway API:
                    // a route with no intersecting hostname does not attach to the listener).
                    let intersecting = allowing.map { l in (l, Self.intersect(route: routeHosts, listener: l.hostname?.lowercased())) }
                        .filter { $0.1 != .none }
                    if !allowing.isEmpty && intersecting.isEmpty {
                        let names = allowing.compactMap(\.hostname).joined(separator: ", ")
                        conditions.append(Condition(
                            type: "Accepted", status: false, reason: "NoMatchingListenerHostname",
                            message: "no hostname of the route matches the hostname of the listeners of Gateway \(key) (\(names))", observedGeneration: gen))
                    } else if allowing.isEmpty {
                        // Say why: no listener speaks HTTP at all, or none admits the route's namespace.
                        let speaksHTTP = listeners.contains { $0.protocol == "HTTP" || $0.protocol == "HTTPS" }
                        let message = speaksHTTP
                            ? "no listener of Gateway \(key) allows routes from namespace \(route.metadata.namespace)"
                            : "no listener of Gateway \(key) accepts HTTPRoutes (protocol HTTP or HTTPS)"
                        conditions.append(Condition(type: "Accepted", status: false, reason: "NotAllowedByListeners", message: message, observedGeneration: gen))
                    } else {
                        accepted = true
                        for (l, hosts) in intersecting {
                            attachments.append(CompiledRoute.Attachment(gateway: key, listener: l.name))
                            switch hosts {
                            case .anyHost: servedHosts = nil
                            case .only(let names): servedHosts?.formUnion(names)
                            case .none: break
                            }
                        }
                        conditions.append(Condition(type: "Accepted", status: true, reason: "Accepted", message: "Route accepted", observedGeneration: gen))
                    }
                }
            } else if options.implicitGateway && !context.allGateways.contains(key) {
                accepted = true
                if routeHosts.isEmpty { servedHosts = nil } else { servedHosts?.formUnion(routeHosts) }
                conditions.append(Condition(type: "Accepted", status: true, reason: "Accepted", message: "Route accepted (standalone listener)", observedGeneration: gen))
            } else {
                // Not a Gateway of ours (or absent): another controller's business.
                continue
            }
            conditions.append(resolved.condition(generation: gen))
            parentStatuses.append(RouteParentStatus(parent: parent, parentNamespace: parentNS, conditions: conditions))
        }
        if route.parentRefs.isEmpty && options.implicitGateway {
            accepted = true
            if routeHosts.isEmpty { servedHosts = nil } else { servedHosts?.formUnion(routeHosts) }
        }
        var backendRefs: Set<NamespacedName> = []
        for rule in route.rules {
            for ref in rule.backendRefs { backendRefs.insert(NamespacedName(namespace: ref.namespace ?? route.metadata.namespace, name: ref.name)) }
        }
        var entries: [MatchEntry] = []
        if accepted {
            let hostnames = servedHosts.map { $0.sorted() } ?? []
            let order = MatchEntry.RouteKey(route, tiebreak: tiebreak)
            for (ruleIndex, rule) in route.rules.enumerated() {
                for (matchIndex, m) in rule.matches.enumerated() {
                    entries.append(MatchEntry(
                        hostnames: hostnames, match: CompiledMatch(m), rule: compiledRules[ruleIndex],
                        order: MatchEntry.Order(route: order, rule: ruleIndex, match: matchIndex)))
                }
            }
        }
        return CompiledRoute(entries: entries, parents: parentStatuses, attachments: attachments, backendRefs: backendRefs)
    }

    /// Oldest first, then namespace/name (Gateway API tie-breaking).
    static func routeOrder(_ a: HTTPRoute, _ b: HTTPRoute) -> Bool {
        let ta = a.metadata.creationTimestamp ?? "", tb = b.metadata.creationTimestamp ?? ""
        if ta != tb {
            if ta.isEmpty { return false }
            if tb.isEmpty { return true }
            return ta < tb
        }
        return a.metadata.namespacedName < b.metadata.namespacedName
    }

    struct Resolution {
        var problems: [(reason: String, message: String)] = []

        func condition(generation: Int) -> Condition {
            if let first = problems.first {
                return Condition(type: "ResolvedRefs", status: false, reason: first.reason, message: problems.map(\.message).joined(separator: "; "), observedGeneration: generation)
            }
            return Condition(type: "ResolvedRefs", status: true, reason: "ResolvedRefs", message: "All references resolved", observedGeneration: generation)
        }
    }

    static func compileRules(_ route: HTTPRoute, backends: [NamespacedName: CompiledBackend], grants: [ReferenceGrant]) -> ([CompiledRule], Resolution) {
        var resolution = Resolution()
        var out: [CompiledRule] = []
        for (ruleIndex, rule) in route.rules.enumerated() {
            var targets: [WeightedTarget] = []
            for (i, ref) in rule.backendRefs.enumerated() {
                let path = "spec.rules[\(ruleIndex)].backendRefs[\(i)]"
                let ns = ref.namespace ?? route.metadata.namespace
                let key = NamespacedName(namespace: ns, name: ref.name)
                guard ref.group == ResourceDecoder.backendGroup, ref.kind == "Backend" else {
                    let kind = ref.group.isEmpty ? ref.kind : "\(ref.kind).\(ref.group)"
                    let msg = "\(path): unsupported backend kind \(kind); this gateway routes to Backend.gateway.kgateway.dev"
                    resolution.problems.append(("InvalidKind", msg))
                    targets.append(WeightedTarget(weight: ref.weight, target: .invalid(msg)))
                    continue
                }
                if ns != route.metadata.namespace && !permitted(from: route.metadata.namespace, to: key, grants: grants) {
                    let msg = "\(path): reference to Backend \(key) is not permitted by any ReferenceGrant in namespace \(ns)"
                    resolution.problems.append(("RefNotPermitted", msg))
                    targets.append(WeightedTarget(weight: ref.weight, target: .invalid(msg)))
                    continue
                }
                guard backends[key] != nil else {
                    let msg = "\(path): Backend \(key) not found"
                    resolution.problems.append(("BackendNotFound", msg))
                    targets.append(WeightedTarget(weight: ref.weight, target: .invalid(msg)))
                    continue
                }
                targets.append(WeightedTarget(weight: ref.weight, target: .backend(key)))
            }
            var retry = RetryPolicy()
            if let r = rule.retry {
                if !r.codes.isEmpty { retry.codes = Set(r.codes) }
                retry.attempts = r.attempts
                if let b = r.backoff { retry.backoff = b.duration }
            }
            var reqMods: [HeaderModifier] = []
            var respMods: [HeaderModifier] = []
            var rewrite: URLRewrite?
            for f in rule.filters {
                switch f {
                case .requestHeaderModifier(let m): reqMods.append(m)
                case .responseHeaderModifier(let m): respMods.append(m)
                case .urlRewrite(let u): rewrite = u
                }
            }
            func positive(_ d: GatewayDuration?) -> Duration? {
                guard let d, d.milliseconds > 0 else { return nil }  // 0s means no timeout
                return d.duration
            }
            out.append(CompiledRule(
                route: route.metadata.namespacedName, ruleIndex: ruleIndex, requestHeaders: reqMods, responseHeaders: respMods,
                rewrite: rewrite, targets: targets, requestTimeout: positive(rule.timeouts?.request),
                backendRequestTimeout: positive(rule.timeouts?.backendRequest), retry: retry))
        }
        return (out, resolution)
    }

    /// The hostnames a route serves on a listener.
    enum ServedHosts: Equatable {
        /// Neither names a hostname.
        case anyHost
        case only([String])
        /// None of the route's hostnames falls under the listener's: the route does not attach.
        case none
    }

    /// A wildcard (`*.example.com`) stands for any name under its suffix; of two intersecting
    /// names the more specific is kept.
    static func intersect(route: [String], listener: String?) -> ServedHosts {
        guard let listener else { return route.isEmpty ? .anyHost : .only(route) }
        if route.isEmpty { return .only([listener]) }
        let hosts = route.compactMap { intersect($0, listener) }
        return hosts.isEmpty ? .none : .only(hosts)
    }

    static func intersect(_ a: String, _ b: String) -> String? {
        if a == b { return a }
        func covers(_ wildcard: String, _ name: String) -> Bool {
            wildcard.hasPrefix("*.") && name.hasSuffix(String(wildcard.dropFirst(1))) && name.count > wildcard.count - 1
        }
        if covers(a, b) { return b }
        if covers(b, a) { return a }
        return nil
    }

    static func permitted(from namespace: String, to target: NamespacedName, grants: [ReferenceGrant]) -> Bool {
        grants.contains { g in
            g.metadata.namespace == target.namespace
                && g.from.contains { $0.group == ResourceDecoder.gatewayGroup && $0.kind == "HTTPRoute" && $0.namespace == namespace }
                && g.to.contains { $0.group == ResourceDecoder.backendGroup && $0.kind == "Backend" && ($0.name == nil || $0.name == target.name) }
        }
    }

    static func compileBackend(_ b: Backend, secrets: [NamespacedName: Secret], options: CompileOptions) -> (CompiledBackend, [Condition], [KeyInClear]) {
        let name = b.metadata.namespacedName
        let gen = b.metadata.generation
        let (settings, settingErrors) = BackendSettings.parse(b.metadata.annotations)
        guard b.spec.type == .ai, let ai = b.spec.ai else {
            let msg = "Backend type \(b.spec.type.rawValue) is not supported by this gateway; only type AI is served"
            return (
                CompiledBackend(name: name, priorities: [], settings: settings, problem: msg),
                [Condition(type: "Accepted", status: false, reason: "Invalid", message: msg, observedGeneration: gen)], []
            )
        }
        var problems: [String] = settingErrors
        var unserved: Set<String> = []
        var inClear: [KeyInClear] = []
        var levels: [[CompiledEntry]] = []
        // How often each identity (less its occurrence) was seen so far in this Backend.
        var occurrences: [String: Int] = [:]
        for (p, level) in ai.priorities.enumerated() {
            var entries: [CompiledEntry] = []
            for (i, e) in level.enumerated() {
                let fieldPath: String
                switch ai.shape {
                case .llm: fieldPath = "spec.ai.llm"
                case .multipool: fieldPath = "spec.ai.multipool.priorities[\(p)].pool[\(i)]"
                case .priorityGroups: fieldPath = "spec.ai.priorityGroups[\(p)].providers[\(i)]"
                }
                let target = ProviderCatalog.target(for: e, endpoints: options.endpoints)
                let stem = CompiledEntry.identityStem(backend: name, target: target)
                let occurrence = occurrences[stem, default: 0]
                occurrences[stem] = occurrence + 1
                var entry = CompiledEntry(
                    id: CompiledEntry.identity(stem: stem, occurrence: occurrence), backend: name, priority: p, index: i, fieldPath: fieldPath, target: target, auth: nil, problem: nil)
                switch e.provider.authToken {
                case .inline(let s)?:
                    let key = stripBearer(s.value)
                    if key.isEmpty {
                        entry.problem = "authToken.inline holds no key"
                    } else if !HTTPText.isFieldValue(key) {
                        entry.problem = "authToken.inline holds a control character (a line break?), which no header can carry"
                    } else {
                        entry.auth = .key(SecretString(key))
                    }
                case .passthrough?:
                    entry.auth = .passthrough
                case .secretRef(let secretName)?:
                    let key = NamespacedName(namespace: name.namespace, name: secretName)
                    if let secret = secrets[key] {
                        if let value = secret.data["Authorization"].map({ stripBearer($0.value) }), !value.isEmpty {
                            if HTTPText.isFieldValue(value) {
                                entry.auth = .key(SecretString(value))
                            } else {
                                entry.problem = "Secret \(key) key Authorization holds a control character (a line break?), which no header can carry"
                            }
                        } else {
                            entry.problem = "Secret \(key) has no non-empty key Authorization"
                        }
                    } else {
                        entry.problem = "Secret \(key) not found"
                    }
                case nil:
                    if case .bedrock(let p) = e.provider {
                        switch p.auth {
                        case .secret(let secretName)?:
                            let key = NamespacedName(namespace: name.namespace, name: secretName)
                            switch awsCredentials(secrets[key], key) {
                            case .success(let c): entry.auth = .aws(c)
                            case .failure(let problem): entry.problem = problem.description
                            }
                        case nil:
                            entry.auth = .awsDefaultChain
                        }
                    }
                }
                if let problem = entry.problem { problems.append("\(fieldPath): \(problem)") }
                if entry.auth != nil, target.served, !target.tls, !WireSyntax.isLoopback(target.host) {
                    inClear.append(KeyInClear(backend: name, entry: fieldPath, model: target.displayModel, host: target.host, port: target.port))
                }
                if !target.served {
                    unserved.insert(target.provider)
                    if entry.problem == nil {
                        entry.problem = "provider \(target.provider) is not served by this gateway yet"
                    }
                }
                entries.append(entry)
            }
            levels.append(entries)
        }
        let compiled = CompiledBackend(name: name, priorities: levels, settings: settings, problem: nil)
        // A key in clear does not stop the Backend (a lab's plaintext mirror is legitimate), but
        // its status says so.
        let warnings = inClear.map { "; warning: \($0.message)" }.joined()
        let condition: Condition
        if problems.isEmpty {
            var msg = "Backend accepted"
            if !unserved.isEmpty {
                msg += "; provider(s) \(unserved.sorted().joined(separator: ", ")) are validated but not served yet"
            }
            condition = Condition(type: "Accepted", status: true, reason: "Accepted", message: msg + warnings, observedGeneration: gen)
        } else {
            condition = Condition(type: "Accepted", status: false, reason: "Invalid", message: problems.joined(separator: "; ") + warnings, observedGeneration: gen)
        }
        return (compiled, [condition], inClear)
    }

    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    /// AWS keys from a Bedrock entry's Secret: `accessKey` and `secretKey` required,
    /// `sessionToken` optional. A problem names the Secret and the key, never a value.
    static func awsCredentials(_ secret: Secret?, _ key: NamespacedName) -> Result<AWSCredentials, Problem> {
        guard let secret else { return .failure(Problem(description: "Secret \(key) not found")) }
        func value(_ name: String, required: Bool) -> Result<String?, Problem> {
            let v = secret.data[name].map { trimmed($0.value) } ?? ""
            if v.isEmpty {
                return required ? .failure(Problem(description: "Secret \(key) has no non-empty key \(name)")) : .success(nil)
            }
            guard HTTPText.isFieldValue(v) else {
                return .failure(Problem(description: "Secret \(key) key \(name) holds a control character (a line break?), which no header can carry"))
            }
            return .success(v)
        }
        do {
            guard let access = try value("accessKey", required: true).get(), let secretKey = try value("secretKey", required: true).get() else {
                return .failure(Problem(description: "Secret \(key) has no accessKey/secretKey"))
            }
            let token = try value("sessionToken", required: false).get()
            return .success(AWSCredentials(accessKeyID: access, secretAccessKey: SecretString(secretKey), sessionToken: token.map(SecretString.init)))
        } catch {
            return .failure(error)
        }
    }

    static func trimmed(_ s: String) -> String {
        var t = Substring(s)
        while let f = t.first, f.isWhitespace { t = t.dropFirst() }
        while let l = t.last, l.isWhitespace { t = t.dropLast() }
        return String(t)
    }

    /// The Secret holds the raw key; a leading `Bearer ` is tolerated and removed.
    static func stripBearer(_ s: String) -> String {
        var t = Substring(s)
        while let f = t.first, f.isWhitespace { t = t.dropFirst() }
        while let l = t.last, l.isWhitespace { t = t.dropLast() }
        // `Bearer ` with nothing after it (the guide's command run with an unset variable) is an empty key,
        // not the key "Bearer": the trailing space is already trimmed here.
        if t.lowercased() == "bearer" { return "" }
        if t.lowercased().hasPrefix("bearer ") { t = t.dropFirst(7) }
        while let f = t.first, f.isWhitespace { t = t.dropFirst() }
        return String(t)
    }
}
