import AIGatewayAPI
import AIGatewayProxy
import AIGatewayTesting
import Foundation
import NIOHTTP1
import Testing

@Suite("Bad input gets a clear error and loses nothing", .serialized)
struct BadInputTests {
    @Test("malformed JSON: 400 in the OpenAI error shape; nothing reaches a provider")
    func malformedJSON() async throws {
        try await withGateway { h in
            let r = try await h.send(body: #"{"messages": [ "#)
            #expect(r.status == 400)
            #expect(r.json?["error"]?["code"]?.stringValue == "invalid_json")
            #expect(r.errorMessage?.contains("not valid JSON") == true)
            #expect(h.provider.recordedRequests().isEmpty)
            let notObject = try await h.send(body: "[1,2]")
            #expect(notObject.status == 400)
            #expect(notObject.errorMessage?.contains("must be a JSON object") == true)
            // The connection and the gateway carry on.
            #expect(try await h.send().status == 200)
        }
    }

    @Test("oversize body: 413 with a clear message")
    func oversize() async throws {
        var limits = ServerLimits()
        limits.maxBodyBytes = 2048
        try await withGateway(limits: limits) { h in
            let big = #"{"messages":[{"role":"user","content":""# + String(repeating: "x", count: 4096) + #""}]}"#
            let r = try await h.send(body: big)
            #expect(r.status == 413)
            #expect(r.json?["error"]?["code"]?.stringValue == "request_too_large")
            #expect(h.provider.recordedRequests().isEmpty)
            #expect(try await h.send().status == 200)
        }
    }

    @Test("unknown route: 404 JSON naming the path")
    func unknownRoute() async throws {
        try await withGateway { h in
            let r = try await h.send("/nowhere")
            #expect(r.status == 404)
            #expect(r.json?["error"]?["code"]?.stringValue == "route_not_found")
            #expect(r.errorMessage?.contains("/nowhere") == true)
        }
    }

    @Test("wrong method: 405 with Allow")
    func wrongMethod() async throws {
        try await withGateway { h in
            let r = try await h.send(method: .GET, body: nil)
            #expect(r.status == 405)
            #expect(r.headers.first(name: "allow") == "POST")
        }
    }

    @Test("missing Secret: a clear error naming it, and the key never appears anywhere")
    func missingSecret() async throws {
        let files = [
            "backend.yaml": guideBackend(secret: "no-such-secret"),
            "httproute.yaml": try repositoryFile("examples/model-failover/httproute.yaml"),
        ]
        try await withGateway(files: files) { h in
            let r = try await h.send()
            #expect(r.status == 503)
            #expect(r.errorMessage?.contains("No model is available") == true)
            let details = r.json?["error"]?["attempts"]?.arrayValue?.compactMap { $0["detail"]?.stringValue } ?? []
            #expect(details.count == 3)
            #expect(details.allSatisfy { $0 == "Secret kgateway-system/no-such-secret not found" })
            #expect(h.provider.recordedRequests().isEmpty)
            let table = try await h.admin("/debug/table").body
            #expect(table.contains("Accepted=False (Invalid)"))
        }
    }

    @Test("oversize headers: rejected, the gateway carries on")
    func oversizeHeaders() async throws {
        var limits = ServerLimits()
        limits.maxHeaderBytes = 1024
        try await withGateway(limits: limits) { h in
            let out = try runProcess("/usr/bin/curl", [
                "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(h.port)/model", "-H", "x-big: " + String(repeating: "y", count: 4096),
                "-H", "content-type: application/json", "-d", Harness.question(),
            ])
            #expect(out == "400" || out == "431" || out == "000", "rejected, got \(out)")
            #expect(try await h.send().status == 200)
        }
    }

    @Test("x-request-id is kept when sent, generated when not, and passed to the provider")
    func requestID() async throws {
        try await withGateway { h in
            let r = try await h.send(headers: [("content-type", "application/json"), ("x-request-id", "abc-123")])
            #expect(r.headers.first(name: "x-request-id") == "abc-123")
            #expect(h.provider.recordedRequests().first?.header("x-request-id") == "abc-123")
            let generated = try await h.send()
            #expect((generated.headers.first(name: "x-request-id") ?? "").count == 32)
        }
    }

    @Test("an invalid edit keeps the last good configuration and says why; a fixed one applies")
    func brokenEditKeepsLastGood() async throws {
        try await withGateway { h in
            #expect(try await h.send().servedModel == "gpt-4o")
            try h.write("backend.yaml", guideBackend().replacingOccurrences(of: "model: \"gpt-4o\"", with: "modle: \"gpt-4o\""))
            try await waitUntil { (try await h.admin("/metrics").body).contains(#"aigw_config_reloads_total{result="error"}"#) }
            #expect(try await h.send().servedModel == "gpt-4o", "still the last good table")
            #expect(h.logs.all.contains { $0.contains("spec.ai.multipool.priorities[0].pool[0].provider.openai.modle: unknown field") })
            try h.write("backend.yaml", guideBackend(models: ["gpt-3.5-turbo", "gpt-4o"]))
            try await waitUntil { try await h.send().servedModel == "gpt-3.5-turbo" }
        }
    }

    @Test("secrets never appear in logs, errors or metrics")
    func noSecretsAnywhere() async throws {
        try await withGateway(faults: ["gpt-4o": "status=503", "gpt-4.0-turbo": "unauthorized", "gpt-3.5-turbo": "reset"]) { h in
            let r = try await h.send(headers: [("content-type", "application/json"), ("authorization", "Bearer client-secret-token")])
            let metrics = try await h.admin("/metrics").body
            let table = try await h.admin("/debug/table").body
            for text in [r.body, metrics, table] + h.logs.all {
                #expect(!text.contains(demoKey))
                #expect(!text.contains("client-secret-token"))
            }
        }
    }

    @Test("admin endpoints: healthz, readyz, metrics")
    func admin() async throws {
        try await withGateway { h in
            #expect(try await h.admin("/healthz").status == 200)
            #expect(try await h.admin("/readyz").status == 200)
            _ = try await h.send()
            let metrics = try await h.admin("/metrics").body
            #expect(metrics.contains(#"aigw_requests_total{route="kgateway-system/model-failover",status="200"} 1"#))
            #expect(metrics.contains(#"aigw_upstream_attempts_total{backend="kgateway-system/model-failover",model="gpt-4o",outcome="ok",provider="openai"} 1"#))
            #expect(metrics.contains("aigw_upstream_latency_seconds_bucket{"))
            #expect(try await h.admin("/nope").status == 404)
        }
    }
}

/// Polls `condition` until it holds, failing after `timeout`. A wait for an outcome, not a sleep;
/// the bound is wide because other suites can hold the test pool's threads for seconds.
func waitUntil(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("condition not met within \(timeout)")
    throw CancellationError()
}
