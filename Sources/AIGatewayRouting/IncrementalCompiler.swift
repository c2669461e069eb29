import AIGatewayAPI

/// Compiles a set of resources that changes a few objects at a time into the same table that
/// `RouteCompiler.compile` of the whole set gives (tested so), doing only the work a change
/// touches:
///
/// - a Backend is compiled again when it changes, or a Secret it names does;
/// - an HTTPRoute when it changes, or a Backend it names comes or goes (a route depends on a
///   Backend's existence, not on what it holds);
/// - every route when a Gateway, GatewayClass or ReferenceGrant changes (rare).
///
/// Each table is immutable; the next one shares its lists and dictionaries until they change
/// (copy on write: a change costs a copy of the containers it touches, never a compile of
/// what it does not). Names are unique per kind, as in the Kubernetes API: inserting an object
/// replaces the one of that kind and name. A value type: one owner mutates it.
public struct IncrementalCompiler: Sendable {
    public let options: CompileOptions

    // What it was given.
    private var backends: [NamespacedName: Backend] = [:]
    private var routes: [NamespacedName: HTTPRoute] = [:]
    private var gateways: [NamespacedName: Gateway] = [:]
    private var gatewayClasses: [String: GatewayClass] = [:]
    private var grants: [NamespacedName: ReferenceGrant] = [:]
    private var secrets: [NamespacedName: Secret] = [:]

    // What it compiled.
    private var compiledBackends: [NamespacedName: CompiledBackend] = [:]
    private var inClear: [NamespacedName: [KeyInClear]] = [:]
    private var entryIDs: Set<String> = []
    private var backendLabels: Set<String> = []
    private var compiledRoutes: [NamespacedName: RouteCompiler.CompiledRoute] = [:]
    private var ourGateways: [NamespacedName: Gateway] = [:]
    private var gatewayNames: Set<NamespacedName> = []
    private var grantList: [ReferenceGrant] = []
    /// Our Gateways' listeners → attached route count.
    private var attached: [NamespacedName: [String: Int]] = [:]
    private var status = TableStatus()
    private var index = MatchIndex()
    private var regexes = RegexCache(patterns: [])
    private var current = RoutingTable.empty

    // Who depends on whom.
    /// Secret → the Backends that name it; Backend → the Secrets it names.
    private var secretUsers: [NamespacedName: Set<NamespacedName>] = [:]
    private var backendSecrets: [NamespacedName: Set<NamespacedName>] = [:]
    /// Backend → the routes that name it (whether it exists or not).
    private var backendUsers: [NamespacedName: Set<NamespacedName>] = [:]

    // What changed since the last table.
    private var dirtyBackends: Set<NamespacedName> = []
    private var dirtyRoutes: Set<NamespacedName> = []
    private var topologyChanged = true
    private var statusChanges = StatusChanges()

    /// The objects whose status (what the compiler concluded) may have changed.
    public struct StatusChanges: Sendable, Hashable {
        public var backends: Set<NamespacedName> = []
        public var routes: Set<NamespacedName> = []
        public var gateways: Set<NamespacedName> = []
        public var gatewayClasses: Set<String> = []
        public init() {}
    }

    /// The objects whose status may have changed in the tables since the last call.
    public mutating func takeStatusChanges() -> StatusChanges {
        defer { statusChanges = StatusChanges() }
        return statusChanges
    }

    public init(options: CompileOptions = .init()) {
        self.options = options
    }

    /// Objects held, of every kind.
    public var objectCount: Int {
        backends.count + routes.count + gateways.count + gatewayClasses.count + grants.count + secrets.count
    }

    public var routeCount: Int { routes.count }

    /// Whether a change awaits `table()`.
    public var hasChanges: Bool { topologyChanged || !dirtyBackends.isEmpty || !dirtyRoutes.isEmpty }

    /// Adds an object, or replaces the one of its kind and name (an equal one changes nothing).
    public mutating func insert(_ resource: Resource) {
        switch resource {
        case .backend(let b):
            let name = b.metadata.namespacedName
            guard backends[name] != b else { return }
            backends[name] = b
            dirtyBackends.insert(name)
        case .httpRoute(let r):
            let name = r.metadata.namespacedName
            guard routes[name] != r else { return }
            routes[name] = r
            dirtyRoutes.insert(name)
        case .secret(let s):
            let name = s.metadata.namespacedName
            guard secrets[name] != s else { return }
            secrets[name] = s
            dirtyBackends.formUnion(secretUsers[name] ?? [])
        case .gateway(let g):
            guard gateways[g.metadata.namespacedName] != g else { return }
            gateways[g.metadata.namespacedName] = g
            topologyChanged = true
        case .gatewayClass(let c):
            guard gatewayClasses[c.metadata.name] != c else { return }
            gatewayClasses[c.metadata.name] = c
            topologyChanged = true
        case .referenceGrant(let g):
            guard grants[g.metadata.namespacedName] != g else { return }
            grants[g.metadata.namespacedName] = g
            topologyChanged = true
        }
    }

    /// Removes the object of this resource's kind and name, if held.
    public mutating func remove(_ resource: Resource) {
        let name = resource.metadata.namespacedName
        switch resource {
        case .backend:
            if backends.removeValue(forKey: name) != nil { dirtyBackends.insert(name) }
        case .httpRoute:
            if routes.removeValue(forKey: name) != nil { dirtyRoutes.insert(name) }
        case .secret:
            if secrets.removeValue(forKey: name) != nil { dirtyBackends.formUnion(secretUsers[name] ?? []) }
        case .gateway:
            if gateways.removeValue(forKey: name) != nil { topologyChanged = true }
        case .gatewayClass:
            if gatewayClasses.removeValue(forKey: name.name) != nil { topologyChanged = true }
        case .referenceGrant:
            if grants.removeValue(forKey: name) != nil { topologyChanged = true }
        }
    }

    /// The table of everything held now, compiling what changed since the last call.
    public mutating func table() -> RoutingTable {
        guard hasChanges else { return current }
        let topology = topologyChanged
        if topology { compileTopology() }

        // Backends (and the routes that name one that came or went).
        var keysInClearChanged = false
        statusChanges.backends.formUnion(dirtyBackends)
        // Compiling is pure: many Backends at once (the first table) are compiled on every core.
        let backendOrder = Array(dirtyBackends)
        let (secrets, options) = (self.secrets, self.options)
        var compiledInOrder = backendOrder.compactMap { backends[$0] }.concurrentMap {
            (compiled: RouteCompiler.compileBackend($0, secrets: secrets, options: options), secrets: Self.secretNames(of: $0))
        }.makeIterator()
        for name in backendOrder {
            let existed = compiledBackends[name] != nil
            if let old = compiledBackends[name] {
                for e in old.entries { entryIDs.remove(e.id) }
                backendLabels.remove(old.label)
            }
            for secret in backendSecrets.removeValue(forKey: name) ?? [] {
                secretUsers[secret]?.remove(name)
                if secretUsers[secret]?.isEmpty == true { secretUsers[secret] = nil }
            }
            if backends[name] != nil, let result = compiledInOrder.next() {
                let (compiled, conditions, clear) = result.compiled
                compiledBackends[name] = compiled
                for e in compiled.entries { entryIDs.insert(e.id) }
                backendLabels.insert(compiled.label)
                status.backends[name] = conditions
                if inClear[name] != (clear.isEmpty ? nil : clear) {
                    inClear[name] = clear.isEmpty ? nil : clear
                    keysInClearChanged = true
                }
                let named = result.secrets
                if !named.isEmpty { backendSecrets[name] = named }
                for secret in named { secretUsers[secret, default: []].insert(name) }
                if !existed { dirtyRoutes.formUnion(backendUsers[name] ?? []) }
            } else {
                compiledBackends[name] = nil
                status.backends[name] = nil
                if inClear.removeValue(forKey: name) != nil { keysInClearChanged = true }
                if existed { dirtyRoutes.formUnion(backendUsers[name] ?? []) }
            }
        }
        dirtyBackends = []
        if keysInClearChanged {
            status.keysInClear = inClear.sorted { $0.key < $1.key }.flatMap(\.value)
        }

        // Routes: placed one by one, or all re-sorted at once when many changed.
        let rebuild = topology || dirtyRoutes.count > max(64, compiledRoutes.count / 8)
        var patternsChanged = false
        var touchedGateways: Set<NamespacedName> = []
        let context = RouteCompiler.RouteContext(
            backends: compiledBackends, grants: grantList, gateways: ourGateways, allGateways: gatewayNames, options: options)
        statusChanges.routes.formUnion(dirtyRoutes)
        let routeOrder = Array(dirtyRoutes)
        var routesInOrder = routeOrder.compactMap { routes[$0] }.concurrentMap {
            RouteCompiler.compileRoute($0, tiebreak: 0, context: context)
        }.makeIterator()
        for name in routeOrder {
            if let old = compiledRoutes.removeValue(forKey: name) {
                if !rebuild {
                    for e in old.entries where index.remove(e) { patternsChanged = true }
                }
                if !topology {
                    for a in old.attachments {
                        attached[a.gateway]?[a.listener]? -= 1
                        touchedGateways.insert(a.gateway)
                    }
                }
                for backend in old.backendRefs {
                    backendUsers[backend]?.remove(name)
                    if backendUsers[backend]?.isEmpty == true { backendUsers[backend] = nil }
                }
                status.routes[name] = nil
            }
            guard routes[name] != nil, let compiled = routesInOrder.next() else { continue }
            if !rebuild {
                for e in compiled.entries where index.insert(e) { patternsChanged = true }
            }
            for a in compiled.attachments {
                attached[a.gateway]?[a.listener, default: 0] += 1
                touchedGateways.insert(a.gateway)
            }
            for backend in compiled.backendRefs { backendUsers[backend, default: []].insert(name) }
            if !compiled.parents.isEmpty { status.routes[name] = compiled.parents }
            compiledRoutes[name] = compiled
        }
        dirtyRoutes = []
        if rebuild {
            let before = Set(index.patterns.keys)
            index = MatchIndex(entries: compiledRoutes.values.lazy.flatMap(\.entries))
            patternsChanged = Set(index.patterns.keys) != before
        }
        if patternsChanged { regexes = RegexCache(patterns: Set(index.patterns.keys)) }

        // Our Gateways' status (attached route counts).
        if topology {
            status.gateways = [:]
            touchedGateways = Set(ourGateways.keys)
        }
        statusChanges.gateways.formUnion(touchedGateways)
        for name in touchedGateways {
            guard let g = ourGateways[name] else { continue }
            status.gateways[name] = RouteCompiler.gatewayStatus(g, attached: attached[name] ?? [:])
        }

        current = RoutingTable(
            index: index, regexes: regexes, backends: compiledBackends, status: status, entryIDs: entryIDs, backendLabels: backendLabels)
        return current
    }

    /// GatewayClasses, Gateways and ReferenceGrants changed: our classes and Gateways again, their
    /// listeners' counts from zero, and every route is compiled again.
    private mutating func compileTopology() {
        topologyChanged = false
        statusChanges.gatewayClasses.formUnion(gatewayClasses.keys)
        statusChanges.gateways.formUnion(gateways.keys)
        var ourClasses: Set<String> = []
        status.gatewayClasses = [:]
        for gc in gatewayClasses.values where gc.controllerName == options.controllerName {
            ourClasses.insert(gc.metadata.name)
            status.gatewayClasses[gc.metadata.name] = [
                Condition(type: "Accepted", status: true, reason: "Accepted", message: "GatewayClass accepted", observedGeneration: gc.metadata.generation)
            ]
        }
        ourGateways = gateways.filter { ourClasses.contains($0.value.gatewayClassName) }
        gatewayNames = Set(gateways.keys)
        grantList = grants.sorted { $0.key < $1.key }.map(\.value)
        attached = ourGateways.mapValues { g in Dictionary(uniqueKeysWithValues: g.listeners.map { ($0.name, 0) }) }
        dirtyRoutes.formUnion(routes.keys)
        dirtyRoutes.formUnion(compiledRoutes.keys)
    }

    /// The Secrets a Backend's entries name (in the Backend's namespace), which its compilation reads.
    static func secretNames(of b: Backend) -> Set<NamespacedName> {
        var out: Set<NamespacedName> = []
        for level in b.spec.ai?.priorities ?? [] {
            for e in level {
                if case .secretRef(let name)? = e.provider.authToken {
                    out.insert(NamespacedName(namespace: b.metadata.namespace, name: name))
                }
                if case .bedrock(let p) = e.provider, case .secret(let name)? = p.auth {
                    out.insert(NamespacedName(namespace: b.metadata.namespace, name: name))
                }
            }
        }
        return out
    }
}
