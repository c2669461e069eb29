import AIGatewayAPI
import AIGatewayFailover
import AIGatewayRouting
import AIGatewayTesting
import Foundation
import Testing

/// Passive health follows the model, not its position in the Backend.
@Suite("Health across reloads", .serialized)
struct HealthIdentityTests {
    static let guideName = NamespacedName(namespace: "kgateway-system", name: "model-failover")
    /// Long enough that no ejection ends during the test, however loaded the machine.
    static let annotations = ["ai-gateway.kgateway.dev/ejection-base": "300s"]

    /// Rewrites the Backend with these models, one per priority, and waits until the gateway serves it.
    static func reorder(_ h: Harness, _ models: [String]) async throws {
        try h.write("backend.yaml", guideBackend(annotations: annotations, models: models))
        try await waitUntil { h.store.current.backends[guideName]?.priorities.map { $0.map(\.model) } == models.map { [$0] } }
    }

    @Test("an ejected model stays ejected when the priorities are reordered, the healthy one in its old slot is used, and a removed model comes back clean")
    func ejectionFollowsTheModel() async throws {
        try await withGateway(faults: ["gpt-4o": "status=503"], backendAnnotations: Self.annotations) { h in
            _ = try await h.send()  // two failures (one retry)
            _ = try await h.send()  // the third: ejected
            #expect(try await h.send().attempts == "openai/gpt-4o=ejected,openai/gpt-4.0-turbo=ok")
            let sentToPrimary = h.providerModels.filter { $0 == "gpt-4o" }.count

            // gpt-4.0-turbo now sits where the ejected gpt-4o was: it is healthy and is used.
            try await Self.reorder(h, ["gpt-4.0-turbo", "gpt-4o", "gpt-3.5-turbo"])
            #expect(try await h.send().attempts == "openai/gpt-4.0-turbo=ok")
            // gpt-4o, now second, is still ejected: skipped without a request.
            try h.setFault("gpt-4.0-turbo", "context-length")
            #expect(try await h.send().attempts == "openai/gpt-4.0-turbo=context_length_exceeded,openai/gpt-4o=ejected,openai/gpt-3.5-turbo=ok")
            #expect(h.providerModels.filter { $0 == "gpt-4o" }.count == sentToPrimary, "no traffic to the ejected model")
            try h.setFault("gpt-4.0-turbo", nil)

            // Removed from the Backend, its state goes; added back, it starts healthy.
            try await Self.reorder(h, ["gpt-4.0-turbo", "gpt-3.5-turbo"])
            try h.setFault("gpt-4o", nil)
            try await Self.reorder(h, ["gpt-4o", "gpt-4.0-turbo", "gpt-3.5-turbo"])
            #expect(try await h.send().attempts == "openai/gpt-4o=ok")
        }
    }
}

/// `Retry-After` is honoured up to `--retry-after-cap`.
@Suite("Provider cool-downs are capped", .serialized)
struct RetryAfterCapTests {
    @Test("429 with Retry-After: 86400 parks the model for the cap, not a day; then one request probes it, and it serves again once healthy")
    func retryAfterCapped() async throws {
        let cap = Duration.seconds(1)
        try await withGateway(faults: ["gpt-4o": "status=429,retry-after=86400"], retryAfterCap: cap) { h in
            let first = try await h.send()
            #expect(first.attempts == "openai/gpt-4o=429,openai/gpt-4.0-turbo=ok")
            let id = try #require(h.store.current.backends[HealthIdentityTests.guideName]?.entries.first?.id)
            // The cool-down in force ends within the cap (or already did, on a slow machine).
            let now = ContinuousClock.now
            switch h.health.availability(of: id, now: now) {
            case .parked(let until): #expect(until <= now + cap, "parked for \(until - now)")
            case .probe: break
            case let other: Issue.record("gpt-4o is \(other)")
            }
            // Once the cap has passed, a request tries gpt-4o again; still throttled, it answers 429
            // and the next model serves.
            try await waitUntil { try await h.send().attempts.hasPrefix("openai/gpt-4o=429,") }
            #expect(h.providerModels.filter { $0 == "gpt-4o" }.count == 2, "one probe, not a retry storm")
            // The provider recovers: within a cap or so, gpt-4o serves again.
            try h.setFault("gpt-4o", nil)
            try await waitUntil { try await h.send().servedModel == "gpt-4o" }
            #expect(try await h.send().attempts == "openai/gpt-4o=ok")
        }
    }
}
