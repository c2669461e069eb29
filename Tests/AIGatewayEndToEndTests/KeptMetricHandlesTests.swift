import AIGatewayAPI
import AIGatewayFailover
@testable import AIGatewayProxy
import AIGatewayRouting
import AIGatewayTelemetry
import Testing

@Suite("Metric handles and candidates kept with the compiled route, entry and Backend")
struct KeptMetricHandlesTests {
    final class Box: Sendable {
        let n: Int
        init(_ n: Int) { self.n = n }
    }

    func rule(_ name: String) -> CompiledRule {
        CompiledRule(
            route: NamespacedName(namespace: "ns", name: name), ruleIndex: 0, requestHeaders: [], responseHeaders: [], rewrite: nil, targets: [],
            requestTimeout: nil, backendRequestTimeout: nil, retry: RetryPolicy())
    }

    func lines(_ m: GatewayMetrics, _ prefix: String) -> [String] {
        String(decoding: m.exposition(), as: UTF8.self).split(separator: "\n").map(String.init).filter { $0.hasPrefix(prefix) }.sorted()
    }

    @Test("a slot keeps the first object stored, is shared by copies of the value, and is no part of its equality")
    func slot() {
        let s = DerivedSlot()
        #expect(s.load() == nil)
        let first = Box(1)
        #expect((s.storeIfEmpty(first) as? Box) === first)
        #expect((s.storeIfEmpty(Box(2)) as? Box) === first)
        #expect((s.load() as? Box) === first)
        #expect(DerivedSlot() == s)

        let a = rule("r")
        var b = a
        #expect(a.derived === b.derived)
        b.ruleIndex = 1
        #expect(a != b)
        #expect(rule("r") == a, "a fresh slot does not make the values differ")
    }

    @Test("requests counted through the rule: the same series and values, each metrics object its own, no 200 series before a 200")
    func routeCounts() {
        let r = rule("chat")
        let one = GatewayMetrics()
        let two = GatewayMetrics()
        one.request(rule: r, status: 502)
        #expect(lines(one, "aigw_requests_total{") == [#"aigw_requests_total{route="ns/chat",status="502"} 1"#])
        for _ in 0..<3 { one.request(rule: r, status: 200) }
        two.request(rule: r, status: 200)
        // A copy of the rule shares the kept handle.
        var copy = r
        copy.ruleIndex = 2
        one.request(rule: copy, status: 200)
        #expect(
            lines(one, "aigw_requests_total{") == [
                #"aigw_requests_total{route="ns/chat",status="200"} 4"#, #"aigw_requests_total{route="ns/chat",status="502"} 1"#,
            ])
        #expect(lines(two, "aigw_requests_total{") == [#"aigw_requests_total{route="ns/chat",status="200"} 1"#])
    }

    @Test("entry handles say what they were made for")
    func entryHandles() {
        let one = GatewayMetrics()
        let e = one.entry(backend: "ns/b", model: "m", provider: "openai")
        #expect(e.isFor(one, backend: "ns/b", model: "m", provider: "openai"))
        #expect(!e.isFor(GatewayMetrics(), backend: "ns/b", model: "m", provider: "openai"))
        #expect(!e.isFor(one, backend: "ns/b", model: "m2", provider: "openai"))
        #expect(!e.isFor(one, backend: "ns/c", model: "m", provider: "openai"))
        #expect(!e.isFor(one, backend: "ns/b", model: "m", provider: "anthropic"))
    }

    func backend(_ levels: [[String]]) throws -> CompiledBackend {
        let pools = levels.map { models in
            "{pool: [" + models.map { "{provider: {openai: {model: \($0), authToken: {kind: Passthrough}}}}" }.joined(separator: ", ") + "]}"
        }
        let yaml = """
            apiVersion: gateway.kgateway.dev/v1alpha1
            kind: Backend
            metadata: {name: b, namespace: ns}
            spec:
              type: AI
              ai: {multipool: {priorities: [\(pools.joined(separator: ", "))]}}
            """
        let docs = try ManifestLoader.parse(yaml, source: "test.yaml")
        let table = RouteCompiler.compile(ResourceSet(docs.resources), options: CompileOptions(implicitGateway: true))
        return try #require(table.backends[NamespacedName(namespace: "ns", name: "b")])
    }

    /// The candidates as `FailoverRun` made them per request before they were kept.
    func madePerRequest(_ b: CompiledBackend, _ health: HealthRegistry) -> [FailoverCandidate] {
        var list: [FailoverCandidate] = []
        for (p, level) in b.priorities.enumerated() {
            let offset = level.count > 1 ? health.nextRoundRobin("\(b.label)#\(p)", count: level.count) : 0
            for k in level.indices { list.append(FailoverCandidate(level[(offset + k) % level.count], backendLabel: b.label)) }
        }
        return list
    }

    @Test("one entry per priority: the same candidates as made per request, one list kept for all; a changed copy is not served from it")
    func fixedCandidates() throws {
        let b = try backend([["m1"], ["m2"], ["m3"]])
        let health = HealthRegistry()
        let kept = try #require(KeptCandidates.of(b, health: health))
        #expect(kept.fixed != nil)
        #expect(kept.candidates() == madePerRequest(b, health))
        #expect(kept.candidates().map(\.model) == ["m1", "m2", "m3"])
        #expect(KeptCandidates.of(b, health: health) === kept)
        #expect(KeptCandidates.of(b, health: HealthRegistry()) == nil, "kept for one registry only")

        // A copy whose entries changed shares the slot, but not what is kept.
        var changed = b
        changed.priorities.swapAt(0, 2)
        #expect(KeptCandidates.of(changed, health: health) == nil)
    }

    @Test("pools rotate as before: request after request, the same order as the registry's counters give, shared with them")
    func rotatingCandidates() throws {
        let b = try backend([["a1", "a2", "a3"], ["b"], ["c1", "c2"]])
        let kept = try #require(KeptCandidates.of(b, health: HealthRegistry()))
        #expect(kept.fixed == nil)
        let reference = HealthRegistry()
        for _ in 0..<7 {
            #expect(kept.candidates() == madePerRequest(b, reference))
        }
        // The counters are the registry's: turning one way shows the other way.
        #expect(kept.health.nextRoundRobin("ns/b#0", count: 3) == 7 % 3)
        // Level 0 is at its ninth turn (offset 8 % 3), level 2 at its eighth (offset 7 % 2).
        #expect(kept.candidates().map(\.model) == ["a3", "a1", "a2", "b", "c2", "c1"])
    }
}
