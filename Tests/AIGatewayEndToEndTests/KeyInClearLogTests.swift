import AIGatewayAPI
import AIGatewayProxy
import AIGatewayRouting
import AIGatewayTelemetry
import Logging
import Testing

/// A Backend whose entry sends an inline key over plaintext HTTP to a host that is not loopback.
private func backend(name: String, host: String) -> String {
    """
    apiVersion: gateway.kgateway.dev/v1alpha1
    kind: Backend
    metadata: {name: \(name), namespace: ns}
    spec:
      type: AI
      ai:
        llm:
          provider:
            openai: {model: gpt-4o, authToken: {kind: Inline, inline: sk-live-logged-never}}
          hostOverride: {host: \(host), port: 8080}
    """
}

private func resources(_ yaml: String...) throws -> ResourceSet {
    ResourceSet(try ManifestLoader.parse(yaml.joined(separator: "\n---\n"), source: "t.yaml").resources)
}

@Suite("The key-in-clear warning is logged once per entry")
struct KeyInClearLogTests {
    @Test("once per entry over reloads, naming backend, model and host, never the key; again when the entry comes back")
    func loggedOnce() throws {
        let logs = LogCapture()
        var logger = Logger(label: "t") { label in logs.handler(label: label) }
        logger.logLevel = .debug
        let updater = TableUpdater(store: TableStore(), options: CompileOptions(implicitGateway: true), metrics: GatewayMetrics(), logger: logger)
        let warnings = { logs.all.filter { $0.contains("provider key sent in clear") } }

        let both = try resources(backend(name: "a", host: "llm.internal"), backend(name: "b", host: "10.0.0.9"))
        updater.apply(both, origin: "initial")
        #expect(warnings().count == 2)
        updater.apply(both, origin: "reload")
        updater.apply(both, origin: "reload")
        #expect(warnings().count == 2, "not again on every reload")
        let line = try #require(warnings().first { $0.contains("ns/a") })
        #expect(line.hasPrefix("warning "))
        #expect(line.contains("gpt-4o") && line.contains("llm.internal") && line.contains("8080"))
        #expect(!logs.all.joined().contains("sk-live-logged-never"))

        // b fixed (loopback), then back in clear: warned again; a stays quiet.
        updater.apply(try resources(backend(name: "a", host: "llm.internal"), backend(name: "b", host: "127.0.0.1")), origin: "reload")
        #expect(warnings().count == 2)
        updater.apply(both, origin: "reload")
        #expect(warnings().count == 3)
        #expect(warnings().last?.contains("ns/b") == true)
    }
}
