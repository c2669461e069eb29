import AIGatewayAPI
import Foundation
@testable import AIGatewayRouting
import Testing

/// A small deterministic generator (SplitMix64), so that a failing sequence replays.
private struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One valid object (YAML) of a random variant, from small pools of names, so that a sequence of
/// them adds, changes and replaces the same objects again and again.
private struct ObjectMaker {
    var rng: SeededRandom

    mutating func pick<T>(_ items: [T]) -> T { items.randomElement(using: &rng)! }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }

    static let namespaces = ["a", "b"]

    mutating func secret() -> String {
        let value = pick(["Bearer k1", "k2", "", "k3"])
        let data = value.isEmpty ? "{other: x}" : "{Authorization: \"\(value)\"}"
        return """
            apiVersion: v1
            kind: Secret
            metadata: {name: s\(pick([0, 1, 2])), namespace: \(pick(Self.namespaces))}
            stringData: \(data)
            """
    }

    mutating func auth() -> String {
        switch pick([0, 1, 2, 3]) {
        case 0: "{kind: Inline, inline: \"sk-\(pick([1, 2]))\"}"
        case 1: "{kind: Passthrough}"
        default: "{kind: SecretRef, secretRef: {name: s\(pick([0, 1, 2]))}}"
        }
    }

    mutating func entry(_ name: String? = nil) -> String {
        let where_ = chance(0.2) ? "host: \(pick(["10.0.0.1", "127.0.0.1"])), port: \(pick([80, 8080])), " : ""
        return "{\(name.map { "name: \($0), " } ?? "")\(where_)openai: {model: m\(pick([1, 2])), authToken: \(auth())}}"
    }

    mutating func backend() -> String {
        let ai: String
        if chance(0.5) {
            ai = "{llm: \(entry())}"
        } else {
            ai = "{priorityGroups: [{providers: [\(entry("e0"))]}, {providers: [\(entry("e1")), \(entry("e2"))]}]}"
        }
        let annotations = chance(0.2) ? "\n  annotations: {ai-gateway.kgateway.dev/retries: \"\(pick(["2", "9"]))\"}" : ""
        return """
            apiVersion: gateway.kgateway.dev/v1alpha1
            kind: Backend
            metadata:
              name: b\(pick([0, 1, 2, 3]))
              namespace: \(pick(Self.namespaces))\(annotations)
              generation: \(pick([1, 2]))
            spec:
              type: AI
              ai: \(ai)
            """
    }

    mutating func match() -> String {
        switch pick([0, 0, 0, 1, 2]) {
        case 0: "{path: {type: PathPrefix, value: /p\(pick([0, 1, 2]))}}"
        case 1: "{path: {type: Exact, value: /p\(pick([0, 1]))/x}}"
        default: "{path: {type: RegularExpression, value: \"/r\(pick([0, 1]))/.*\"}, headers: [{name: x-h, value: \"v.*\", type: RegularExpression}]}"
        }
    }

    mutating func ref() -> String {
        let ns = chance(0.3) ? ", namespace: \(pick(Self.namespaces))" : ""
        return "{name: b\(pick([0, 1, 2, 3, 4]))\(ns), group: gateway.kgateway.dev, kind: Backend, weight: \(pick([1, 2]))}"
    }

    mutating func route() -> String {
        let hosts = pick(["[]", "[x.example.com]", "[\"*.example.com\"]", "[y.other.org]"])
        let parent = pick(["{name: g0, namespace: a}", "{name: g1, namespace: a}", "{name: g0, namespace: a, sectionName: web}", "{name: gx}"])
        let created = pick(["", "\n  creationTimestamp: \"2026-01-0\(pick([1, 2]))T00:00:00Z\""])
        var rules: [String] = []
        for _ in 0..<pick([1, 2]) {
            let refs = (0..<pick([0, 1, 2])).map { _ in ref() }.joined(separator: ", ")
            rules.append("  - matches: [\(match())\(chance(0.3) ? ", \(match())" : "")]\n    backendRefs: [\(refs)]")
        }
        return """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata:
              name: r\(pick([0, 1, 2, 3, 4, 5]))
              namespace: \(pick(Self.namespaces))
              generation: \(pick([1, 2]))\(created)
            spec:
              parentRefs: [\(parent)]
              hostnames: \(hosts)
              rules:
            \(rules.joined(separator: "\n"))
            """
    }

    mutating func gateway() -> String {
        let hostname = pick(["", ", hostname: x.example.com", ", hostname: \"*.example.com\""])
        let from = pick(["All", "Same"])
        return """
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {name: g\(pick([0, 1])), namespace: a}
            spec:
              gatewayClassName: c\(pick([0, 1]))
              listeners:
              - {name: web, protocol: HTTP, port: 80\(hostname), allowedRoutes: {namespaces: {from: \(from)}}}
              - {name: other, protocol: \(pick(["HTTP", "TCP"])), port: 81}
            """
    }

    mutating func gatewayClass() -> String {
        let controller = chance(0.8) ? CompileOptions.defaultControllerName : "example.com/other"
        return """
            apiVersion: gateway.networking.k8s.io/v1
            kind: GatewayClass
            metadata: {name: c\(pick([0, 1]))}
            spec: {controllerName: \(controller)}
            """
    }

    mutating func grant() -> String {
        let to = chance(0.5) ? "" : ", name: b\(pick([0, 1]))"
        return """
            apiVersion: gateway.networking.k8s.io/v1beta1
            kind: ReferenceGrant
            metadata: {name: grant\(pick([0, 1])), namespace: \(pick(Self.namespaces))}
            spec:
              from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: \(pick(Self.namespaces))}]
              to: [{group: gateway.kgateway.dev, kind: Backend\(to)}]
            """
    }

    /// Mostly Backends, routes and Secrets, sometimes the rest.
    mutating func any() -> String {
        switch pick(Array(0..<20)) {
        case 0..<6: backend()
        case 6..<13: route()
        case 13..<17: secret()
        case 17: gateway()
        case 18: gatewayClass()
        default: grant()
        }
    }
}

private func decode(_ yaml: String) throws -> Resource {
    let docs = try ManifestLoader.parse(yaml, source: "test.yaml")
    guard docs.errorLines.isEmpty, let r = docs.resources.first else {
        throw SetupFailure(description: "does not decode: \(docs.errorLines)\n\(yaml)")
    }
    return r
}

/// The key of an object among those held: kind and namespace/name.
private struct Key: Hashable, Comparable {
    var kind: String
    var name: NamespacedName
    init(_ r: Resource) {
        kind = r.kind
        name = r.metadata.namespacedName
    }
    static func < (a: Key, b: Key) -> Bool { (a.kind, a.name) < (b.kind, b.name) }
}

/// The full compile of the objects held, Backends in name order (the order an informer lists them).
private func fromScratch(_ held: [Key: Resource], options: CompileOptions) -> RoutingTable {
    RouteCompiler.compile(ResourceSet(held.sorted { $0.key < $1.key }.map(\.value)), options: options)
}

private func expectSame(_ incremental: RoutingTable, _ full: RoutingTable, _ step: String) {
    #expect(incremental.dump() == full.dump(), "\(step)")
    #expect(incremental.status == full.status, "\(step)")
    #expect(incremental.backends == full.backends, "\(step)")
    #expect(incremental.ruleCount == full.ruleCount, "\(step)")
    #expect(incremental.entryIDs == full.entryIDs, "\(step)")
    #expect(incremental.backendLabels == full.backendLabels, "\(step)")
}

@Suite("Incremental compiler")
struct IncrementalCompilerTests {
    /// Random sequences of adds, changes and deletes of every kind (mostly Backends, routes and
    /// Secrets): after each step the incremental table is the table a full compile gives.
    @Test(arguments: [(seed: UInt64(1), implicit: false), (2, false), (3, false), (4, true), (5, true)])
    func sameTableAsFullCompile(seed: UInt64, implicit: Bool) async throws {
        var maker = ObjectMaker(rng: SeededRandom(state: seed))
        let options = CompileOptions(implicitGateway: implicit)
        var compiler = IncrementalCompiler(options: options)
        var held: [Key: Resource] = [:]
        // The Gateway and class most routes name, at first.
        for yaml in [maker.gatewayClass(), maker.gateway()] {
            let r = try decode(yaml)
            held[Key(r)] = r
            compiler.insert(r)
        }
        for step in 0..<400 {
            // Seconds of CPU in all: leave the test pool's threads to the other suites now and
            // then (their waits would otherwise time out on a 2-core machine).
            await Task.yield()
            // Sometimes several changes before one table (a burst).
            for _ in 0..<(maker.chance(0.2) ? 4 : 1) {
                let r = try decode(maker.any())
                let key = Key(r)
                if held[key] != nil && maker.chance(0.3) {
                    compiler.remove(held[key]!)
                    held[key] = nil
                } else {
                    compiler.insert(r)
                    held[key] = r
                }
            }
            let table = compiler.table()
            expectSame(table, fromScratch(held, options: options), "seed \(seed) step \(step)")
            // The path index finds what a scan of the whole list finds.
            for host in ["h", "x.example.com", "a.example.com", "y.other.org"] {
                for path in ["/", "/p0", "/p0/", "/p0/x", "/p1/x/y", "/p2x", "/p1//z", "/r0/a", "/r1/", "/q", "/p\u{301}/x"] {
                    for headers in [[], [(name: "x-h", value: "v1")]] {
                        let request = RequestFacts(method: "POST", host: host, path: path, headers: headers)
                        let found = table.match(request), scanned = table.matchByScan(request)
                        #expect(found?.rule == scanned?.rule && found?.rewrittenPath == scanned?.rewrittenPath, "\(host)\(path) step \(step)")
                    }
                }
            }
        }
        #expect(compiler.objectCount == held.count)
    }

    /// Large changes (a first sync) compile their Backends and routes on every core (from 512
    /// objects): the table is still the full compile's, first for 600 of each, then with 520 of
    /// each changed.
    @Test func largeBatchesCompiledInParallelGiveTheFullCompile() async throws {
        // Seconds of CPU in a debug build: on a thread of its own, not the test pool's (suites
        // that wait for an event would otherwise time out on a 2-core machine).
        let tables = try await withCheckedThrowingContinuation { (done: CheckedContinuation<[(RoutingTable, RoutingTable, String)], any Error>) in
            DispatchQueue.global().async { done.resume(with: Result { try Self.largeBatches() }) }
        }
        #expect(tables.count == 2)
        for (incremental, full, step) in tables { expectSame(incremental, full, step) }
    }

    /// The incremental and the full compile's tables after each batch.
    private static func largeBatches() throws -> [(RoutingTable, RoutingTable, String)] {
        var tables: [(RoutingTable, RoutingTable, String)] = []
        let options = CompileOptions(implicitGateway: true)
        var compiler = IncrementalCompiler(options: options)
        var held: [Key: Resource] = [:]
        func put(_ yaml: String) throws {
            let r = try decode(yaml)
            held[Key(r)] = r
            compiler.insert(r)
        }
        func backend(_ i: Int, model: String) -> String {
            let auth = i % 3 == 0 ? "{kind: SecretRef, secretRef: {name: s\(i % 4)}}" : "{kind: Inline, inline: sk-\(i)}"
            return """
                apiVersion: gateway.kgateway.dev/v1alpha1
                kind: Backend
                metadata: {name: b\(i), namespace: n\(i % 3)}
                spec: {type: AI, ai: {multipool: {priorities: [{pool: [{openai: {model: \(model), authToken: \(auth)}}]}, {pool: [{openai: {model: m2, authToken: \(auth)}}]}]}}}
                """
        }
        func route(_ i: Int, prefix: String) -> String {
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: r\(i), namespace: n\(i % 3)}
            spec:
              rules:
              - matches: [{path: {type: PathPrefix, value: /\(prefix)/\(i)}}]
                backendRefs: [{name: b\((i * 7) % 650), group: gateway.kgateway.dev, kind: Backend}]
            """
        }
        for s in 0..<4 {
            try put("apiVersion: v1\nkind: Secret\nmetadata: {name: s\(s), namespace: n\(s % 3)}\nstringData: {Authorization: \"Bearer k\(s)\"}")
        }
        for i in 0..<600 {
            try put(backend(i, model: "m1"))
            try put(route(i, prefix: "p"))
        }
        tables.append((compiler.table(), fromScratch(held, options: options), "first table"))
        for i in 0..<520 {
            try put(backend(i, model: "m3"))
            try put(route(i, prefix: "q"))
        }
        tables.append((compiler.table(), fromScratch(held, options: options), "520 of each changed"))
        return tables
    }

    @Test func concurrentMapKeepsTheOrder() {
        for count in [0, 1, 255, 512, 1_000, 4_099] {
            let items = Array(0..<count)
            #expect(items.concurrentMap(minimumPerSlice: 64) { $0 * 3 + 1 } == items.map { $0 * 3 + 1 })
        }
    }

    /// A table with nothing changed is the same table (nothing recompiled, nothing to swap).
    @Test func unchangedGivesTheSameTable() throws {
        var compiler = IncrementalCompiler()
        compiler.insert(try decode(guideBackendYAML))
        let first = compiler.table()
        #expect(compiler.table() === first)
        compiler.insert(try decode(guideBackendYAML))  // equal: no change
        #expect(!compiler.hasChanges)
        #expect(compiler.table() === first)
    }

    private static let gatewayYAML = """
        apiVersion: gateway.networking.k8s.io/v1
        kind: GatewayClass
        metadata: {name: kgateway}
        spec: {controllerName: \(CompileOptions.defaultControllerName)}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: ai-gateway, namespace: kgateway-system}
        spec:
          gatewayClassName: kgateway
          listeners: [{name: http, protocol: HTTP, port: 8080}]
        """

    private static func secretYAML(_ key: String) -> String {
        """
        apiVersion: v1
        kind: Secret
        metadata: {name: openai-secret, namespace: kgateway-system}
        stringData: {Authorization: "Bearer \(key)"}
        """
    }

    private static func routeYAML(_ name: String, path: String, backend: String) -> String {
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: \(name), namespace: kgateway-system}
        spec:
          parentRefs: [{name: ai-gateway}]
          rules:
          - matches: [{path: {type: PathPrefix, value: \(path)}}]
            backendRefs: [{name: \(backend), group: gateway.kgateway.dev, kind: Backend}]
        """
    }

    private static func keys(_ table: RoutingTable, _ backend: String) -> [String] {
        (table.backends[NamespacedName(namespace: "kgateway-system", name: backend)]?.entries ?? []).map {
            if case .key(let s)? = $0.auth { s.value } else { "-" }
        }
    }

    private func load(_ compiler: inout IncrementalCompiler, _ yaml: String) throws {
        for r in try resources(yaml).all { compiler.insert(r) }
    }

    /// The guide's Backend (three entries naming one Secret) behind two routes: a Secret
    /// rotation reaches every entry, a Backend change reaches both routes, deleting one route
    /// leaves the other; the Backend's compiled value is shared by the tables where it did not change.
    @Test func secretRotationRouteDeleteAndSharedBackend() throws {
        var compiler = IncrementalCompiler()
        try load(&compiler, yamlDocs(Self.gatewayYAML, guideBackendYAML, Self.secretYAML("k1"),
            Self.routeYAML("one", path: "/one", backend: "model-failover"), Self.routeYAML("two", path: "/two", backend: "model-failover")))
        let t1 = compiler.table()
        #expect(Self.keys(t1, "model-failover") == ["k1", "k1", "k1"])
        for path in ["/one", "/two"] {
            #expect(t1.match(RequestFacts(method: "POST", host: "h", path: path))?.rule.targets.first?.target
                == .backend(NamespacedName(namespace: "kgateway-system", name: "model-failover")))
        }

        // Rotation.
        try load(&compiler, Self.secretYAML("k2"))
        let t2 = compiler.table()
        #expect(Self.keys(t2, "model-failover") == ["k2", "k2", "k2"])
        #expect(Self.keys(t1, "model-failover") == ["k1", "k1", "k1"], "the old table is untouched")

        // The Backend deleted: both routes now name a missing Backend.
        let backend = try decode(guideBackendYAML)
        compiler.remove(backend)
        let t3 = compiler.table()
        for name in ["one", "two"] {
            let parents = t3.status.routes[NamespacedName(namespace: "kgateway-system", name: name)] ?? []
            #expect(parents.first?.conditions.last?.reason == "BackendNotFound", "\(name)")
            #expect(t3.match(RequestFacts(method: "POST", host: "h", path: "/\(name)"))?.rule.targets.first?.target.isInvalid == true)
        }
        compiler.insert(backend)
        let t4 = compiler.table()
        #expect(t4.status.routes[NamespacedName(namespace: "kgateway-system", name: "two")]?.first?.conditions.last?.reason == "ResolvedRefs")

        // One route deleted: the other stays, the Gateway counts one.
        compiler.remove(try decode(Self.routeYAML("one", path: "/one", backend: "model-failover")))
        let t5 = compiler.table()
        #expect(t5.match(RequestFacts(method: "POST", host: "h", path: "/one")) == nil)
        #expect(t5.match(RequestFacts(method: "POST", host: "h", path: "/two")) != nil)
        #expect(t5.status.routes[NamespacedName(namespace: "kgateway-system", name: "one")] == nil)
        #expect(t5.status.gateways[NamespacedName(namespace: "kgateway-system", name: "ai-gateway")]?.attachedRoutes == ["http": 1])
        #expect(t5.ruleCount == 1)

        // Each step equals the full compile.
        var held = try resources(yamlDocs(Self.gatewayYAML, guideBackendYAML, Self.secretYAML("k2"),
            Self.routeYAML("two", path: "/two", backend: "model-failover")))
        held.backends.sort { $0.metadata.namespacedName < $1.metadata.namespacedName }
        expectSame(t5, RouteCompiler.compile(held), "after the steps")
    }
}

extension RuleTarget {
    fileprivate var isInvalid: Bool { if case .invalid = self { true } else { false } }
}

extension ResourceSet {
    fileprivate var all: [Resource] {
        backends.map(Resource.backend) + httpRoutes.map(Resource.httpRoute) + gateways.map(Resource.gateway)
            + gatewayClasses.map(Resource.gatewayClass) + secrets.map(Resource.secret) + referenceGrants.map(Resource.referenceGrant)
    }
}
