import AIGatewayAPI
import AIGatewayProviders
import AIGatewayRouting
import Testing

/// A Backend with one `llm` entry given as YAML (indented under `llm:`).
private func llm(_ entry: String, name: String = "b") -> String {
    """
    apiVersion: gateway.kgateway.dev/v1alpha1
    kind: Backend
    metadata: {name: \(name), namespace: ns}
    spec:
      type: AI
      ai:
        llm:
    \(entry.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n"))
    """
}

private let inline = "authToken: {kind: Inline, inline: sk-live-in-clear}"
private let b = NamespacedName(namespace: "ns", name: "b")

@Suite("Keys sent in clear")
struct KeyInClearTests {
    @Test("a key over plaintext HTTP to a host that is not loopback: accepted, with a warning in the status that never shows the key")
    func plaintextToRemoteHost() throws {
        let t = try compile(llm("provider: {openai: {model: gpt-4o, \(inline)}}\nhostOverride: {host: llm.internal, port: 8080}"))
        let expected = "spec.ai.llm (model gpt-4o) sends its key in clear (plaintext HTTP) to llm.internal:8080, which is not loopback: use port 443 (TLS)"
        #expect(t.status.backends[b] == [Condition(type: "Accepted", status: true, reason: "Accepted", message: "Backend accepted; warning: " + expected, observedGeneration: 1)])
        #expect(t.status.keysInClear == [KeyInClear(backend: b, entry: "spec.ai.llm", model: "gpt-4o", host: "llm.internal", port: 8080)])
        #expect(t.status.keysInClear.first?.description == "Backend ns/b: " + expected)
        #expect(t.backends[b]?.entries.first?.isUsable == true, "still served")
        #expect(!"\(t.status)".contains("sk-live-in-clear"))
    }

    @Test("the client's own key (Passthrough) and a --provider-endpoint redirect count too")
    func passthroughAndEndpoints() throws {
        let passthrough = try compile(llm("openai: {authToken: {kind: Passthrough}}\nhost: 10.1.2.3\nport: 80"))
        #expect(passthrough.status.keysInClear.map(\.host) == ["10.1.2.3"])
        let redirected = try compile(
            llm("openai: {model: m, \(inline)}"), endpoints: ["openai": ProviderEndpoint(tls: false, host: "mirror.internal", port: 9000)])
        #expect(redirected.status.keysInClear.map { "\($0.host):\($0.port)" } == ["mirror.internal:9000"])
    }

    @Test(
        "no warning for TLS, loopback hosts, or entries without a key",
        arguments: [
            "provider: {openai: {\(inline)}}\nhostOverride: {host: llm.internal, port: 443}",
            "provider: {openai: {\(inline)}}\nhostOverride: {host: 127.0.0.1, port: 8080}",
            "provider: {openai: {\(inline)}}\nhostOverride: {host: 127.9.9.9, port: 8080}",
            "provider: {openai: {\(inline)}}\nhostOverride: {host: localhost, port: 8080}",
            "provider: {openai: {\(inline)}}\nhostOverride: {host: \"::1\", port: 8080}",
            "provider: {openai: {authToken: {kind: SecretRef, secretRef: {name: missing}}}}\nhostOverride: {host: llm.internal, port: 8080}",
            "openai: {\(inline)}",
        ])
    func noWarning(entry: String) throws {
        let t = try compile(llm(entry))
        #expect(t.status.keysInClear.isEmpty)
        #expect(t.status.backends[b]?.first?.message.contains("in clear") == false)
    }

    @Test("loopback is told apart from look-alikes")
    func loopback() {
        for h in ["localhost", "LOCALHOST", "api.localhost", "127.0.0.1", "127.255.0.9", "::1", "[::1]", "::ffff:127.0.0.1", "localhost."] {
            #expect(WireSyntax.isLoopback(h), "\(h)")
        }
        for h in ["localhost.example.com", "128.0.0.1", "10.0.0.1", "::2", "::", "0.0.0.0", "127.0.0.1.nip.io", "mylocalhost"] {
            #expect(!WireSyntax.isLoopback(h), "\(h)")
        }
    }
}
