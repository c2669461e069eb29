import AIGatewayAPI
import AIGatewayProxy
import AIGatewayTesting
import Foundation
import Testing

/// The guide's Backend as one entry whose `pathOverride` tries to end the request line and add a
/// header of its own, next to the key the gateway adds.
private let injectedBackend = """
    apiVersion: gateway.kgateway.dev/v1alpha1
    kind: Backend
    metadata: {name: model-failover, namespace: kgateway-system}
    spec:
      type: AI
      ai:
        llm:
          provider:
            openai:
              model: gpt-3.5-turbo
              authToken: {kind: SecretRef, secretRef: {name: openai-secret}}
          pathOverride:
            fullPath: "/v1/chat/completions HTTP/1.1\\r\\nX-Injected: yes\\r\\nX-Pad: x"
    """

private let fieldError = "spec.ai.llm.pathOverride.fullPath: must be a URL path: spaces are not allowed (write %20)"

@Suite("A Backend cannot write lines of its own to the provider", .serialized)
struct ManifestInjectionTests {
    @Test("on reload, an injected pathOverride is rejected with its field path and the last good table stays")
    func reloadKeepsLastGood() async throws {
        try await withGateway { h in
            #expect(try await h.send().servedModel == "gpt-4o")
            try h.write("backend.yaml", injectedBackend)
            try await waitUntil { (try await h.admin("/metrics").body).contains(#"aigw_config_reloads_total{result="error"}"#) }
            #expect(h.logs.all.contains { $0.contains(fieldError) })
            #expect(try await h.send().servedModel == "gpt-4o", "still the last good table")
            for r in h.provider.recordedRequests() {
                #expect(r.header("x-injected") == nil)
                #expect(r.path == "/v1/chat/completions")
            }
        }
    }

    @Test("at start, an injected pathOverride stops the gateway with its field path")
    func startRefuses() async throws {
        let files = [
            "backend.yaml": injectedBackend,
            "httproute.yaml": try repositoryFile("examples/model-failover/httproute.yaml"),
            "secret.yaml": try repositoryFile("examples/model-failover/secret.yaml"),
        ]
        do {
            let h = try await Harness.start(files: files)
            await h.stop()
            Issue.record("the gateway started with an injected pathOverride")
        } catch {
            #expect("\(error)".contains(fieldError), "\(error)")
        }
    }
}
