import AIGatewayAPI
import AIGatewayTesting
import Foundation
import Testing

/// Each row of failover-semantics.md, against the fake provider over loopback.
@Suite("Failover rows end to end", .serialized)
struct FailoverRowsTests {
    static let fast = [
        // Short enough to keep the suite quick, long enough that a healthy model on a loaded CI
        // machine is never mistaken for a silent one.
        "ai-gateway.kgateway.dev/first-byte-timeout": "1s",
        "ai-gateway.kgateway.dev/first-token-timeout": "1s",
        "ai-gateway.kgateway.dev/stream-idle-timeout": "1s",
    ]
    static let answer = FakeProvider.answerText(model: "gpt-4o", tokens: 12)

    @Test("TCP reset before any response byte: one retry, then the next model")
    func resetBeforeHeaders() async throws {
        try await withGateway(faults: ["gpt-4o": "reset"]) { h in
            let r = try await h.send()
            #expect(r.status == 200)
            #expect(r.attempts == "openai/gpt-4o=connect_error,openai/gpt-4o=connect_error,openai/gpt-4.0-turbo=ok")
        }
    }

    @Test("connection refused: the next entry answers (priorityGroups shape, host/port override)")
    func connectionRefused() async throws {
        let closedPort = try freePort()
        let backend = """
            apiVersion: gateway.kgateway.dev/v1alpha1
            kind: Backend
            metadata: {name: model-failover, namespace: kgateway-system}
            spec:
              type: AI
              ai:
                priorityGroups:
                - providers:
                  - name: local-down
                    host: 127.0.0.1
                    port: \(closedPort)
                    openai:
                      model: gpt-4o
                      authToken: {kind: SecretRef, secretRef: {name: openai-secret}}
                - providers:
                  - name: fallback
                    openai:
                      model: gpt-4.0-turbo
                      authToken: {kind: SecretRef, secretRef: {name: openai-secret}}
            """
        try await withGateway(files: try Self.files(backend: backend)) { h in
            let r = try await h.send()
            #expect(r.status == 200)
            #expect(r.attempts == "openai/gpt-4o=connect_error,openai/gpt-4o=connect_error,openai/gpt-4.0-turbo=ok")
        }
    }

    @Test("5xx: the same entry once more, then the next", arguments: ["500", "502", "504"])
    func serverError(status: String) async throws {
        try await withGateway(faults: ["gpt-4o": "status=\(status)"]) { h in
            let r = try await h.send()
            #expect(r.status == 200)
            #expect(r.attempts == "openai/gpt-4o=\(status),openai/gpt-4o=\(status),openai/gpt-4.0-turbo=ok")
        }
    }

    @Test("429 with Retry-After: the next model now, and the cool-down holds for later requests")
    func rateLimitedWithRetryAfter() async throws {
        try await withGateway(faults: ["gpt-4o": "status=429,retry-after=30"]) { h in
            let r1 = try await h.send()
            #expect(r1.status == 200)
            #expect(r1.attempts == "openai/gpt-4o=429,openai/gpt-4.0-turbo=ok")
            let r2 = try await h.send()
            #expect(r2.status == 200)
            #expect(r2.servedModel == "gpt-4.0-turbo")
            #expect(h.providerModels.filter { $0 == "gpt-4o" }.count == 1, "never retried sooner than asked")
        }
    }

    @Test("429 with a short Retry-After and nothing else healthy: wait, then retry the same model")
    func rateLimitedWaitAndRetry() async throws {
        let files = try Self.files(backend: guideBackend(models: ["gpt-4o"]))
        try await withGateway(files: files) { h in
            try h.setFault("gpt-4o", "status=429,retry-after=1,times=1")
            let start = ContinuousClock.now
            let r = try await h.send()
            #expect(r.status == 200)
            #expect(r.attempts == "openai/gpt-4o=429,openai/gpt-4o=ok")
            #expect(ContinuousClock.now - start >= .seconds(1), "not sooner than asked")
        }
    }

    @Test("x-ratelimit-reset-requests is honoured like Retry-After")
    func rateLimitResetHeader() async throws {
        try await withGateway(faults: ["gpt-4o": "status=429,ratelimit-reset=1m0s"]) { h in
            _ = try await h.send()
            let r = try await h.send()
            #expect(r.servedModel == "gpt-4.0-turbo")
            #expect(h.providerModels.filter { $0 == "gpt-4o" }.count == 1)
        }
    }

    @Test("429 without a hint: bounded backoff retries, then the next model")
    func rateLimitedNoHint() async throws {
        try await withGateway(faults: ["gpt-4o": "status=429"]) { h in
            let r = try await h.send()
            #expect(r.status == 200)
            #expect(r.attempts == "openai/gpt-4o=429,openai/gpt-4o=429,openai/gpt-4o=429,openai/gpt-4.0-turbo=ok")
        }
    }

    @Test("silence: no headers within the first-byte timeout; not retried; the next model answers")
    func silence() async throws {
        try await withGateway(faults: ["gpt-4o": "silence"], backendAnnotations: Self.fast) { h in
            let r = try await h.send()
            #expect(r.status == 200)
            #expect(r.attempts == "openai/gpt-4o=first_byte_timeout,openai/gpt-4.0-turbo=ok")
            #expect(h.providerModels.filter { $0 == "gpt-4o" }.count == 1)
        }
    }

    @Test("headers but no first token in time: abandoned before anything reached the client")
    func slowFirstToken() async throws {
        try await withGateway(faults: ["gpt-4o": "slow-first-token=5000"], backendAnnotations: Self.fast) { h in
            let r = try await h.send(body: Harness.question(stream: true))
            #expect(r.status == 200)
            #expect(r.attempts == "openai/gpt-4o=first_token_timeout")
            #expect(r.servedModel == "gpt-4.0-turbo")
            let s = StreamResult(r.body)
            #expect(s.done)
            #expect(s.text == Self.answer)
            #expect(!r.body.contains(#""model":"gpt-4o""#), "nothing from the abandoned model reached the client")
        }
    }

    @Test("context_length_exceeded: the next model; when all refuse, the provider's error as is")
    func contextLength() async throws {
        try await withGateway(faults: ["gpt-4o": "context-length"]) { h in
            let r1 = try await h.send()
            #expect(r1.attempts == "openai/gpt-4o=context_length_exceeded,openai/gpt-4.0-turbo=ok")
            try h.setFault("gpt-4.0-turbo", "context-length")
            try h.setFault("gpt-3.5-turbo", "context-length")
            let r2 = try await h.send()
            #expect(r2.status == 400)
            #expect(r2.json?["error"]?["code"]?.stringValue == "context_length_exceeded")
            #expect(r2.attempts == "openai/gpt-4o=context_length_exceeded,openai/gpt-4.0-turbo=context_length_exceeded,openai/gpt-3.5-turbo=context_length_exceeded")
        }
    }

    @Test("content filter: the provider's error as is; no retry, no failover")
    func contentFilter() async throws {
        try await withGateway(faults: ["gpt-4o": "content-filter"]) { h in
            let r = try await h.send()
            #expect(r.status == 400)
            #expect(r.json?["error"]?["code"]?.stringValue == "content_filter")
            #expect(h.providerModels == ["gpt-4o"])
        }
    }

    @Test("401 / 404 model-not-found: misconfigured entry; the next model; counted in metrics", arguments: ["unauthorized", "model-not-found"])
    func misconfigured(fault: String) async throws {
        try await withGateway(faults: ["gpt-4o": fault]) { h in
            let r = try await h.send()
            #expect(r.status == 200)
            #expect(r.servedModel == "gpt-4.0-turbo")
            #expect(h.providerModels.filter { $0 == "gpt-4o" }.count == 1)
            let metrics = try await h.admin("/metrics").body
            #expect(metrics.contains("aigw_misconfigured_total{"))
            #expect(metrics.contains(#"model="gpt-4o""#))
        }
    }

    @Test("other 4xx: the request is wrong; returned, no retry")
    func badRequest() async throws {
        try await withGateway(faults: ["gpt-4o": "bad-request"]) { h in
            let r = try await h.send()
            #expect(r.status == 400)
            #expect(h.providerModels == ["gpt-4o"])
        }
    }

    @Test("a non-streamed body cut short is never a success: retried, then the next model")
    func truncatedBody() async throws {
        try await withGateway(faults: ["gpt-4o": "cut-after=3"]) { h in
            let r = try await h.send()
            #expect(r.status == 200)
            #expect(r.attempts == "openai/gpt-4o=truncated,openai/gpt-4o=truncated,openai/gpt-4.0-turbo=ok")
            #expect(r.content == Self.answer)
        }
    }

    @Test("stream cut after tokens, continuation off: an explicit error event, no [DONE]")
    func streamCutNoContinuation() async throws {
        try await withGateway(faults: ["gpt-4o": "cut-after=3"]) { h in
            let r = try await h.send(body: Harness.question(stream: true))
            #expect(r.status == 200)
            let s = StreamResult(r.body)
            #expect(!s.done)
            #expect(s.error?["type"]?.stringValue == "upstream_stream_interrupted")
            #expect(s.error?["message"]?.stringValue?.contains("gpt-4o") == true)
            #expect(s.text == Self.answer.split(separator: " ").prefix(3).joined(separator: " "))
            #expect(!h.providerModels.contains("gpt-4.0-turbo"))
        }
    }

    @Test("stream cut after tokens, continuation on: the next model finishes the answer from the prefill")
    func streamCutContinued() async throws {
        let annotations = ["ai-gateway.kgateway.dev/stream-continuation": "true"]
        try await withGateway(faults: ["gpt-4o": "cut-after=4"], backendAnnotations: annotations) { h in
            let r = try await h.send(body: Harness.question(stream: true))
            let s = StreamResult(r.body)
            #expect(s.done)
            #expect(s.text == Self.answer, "the whole answer, no repeats, no gaps")
            let continuation = try #require(h.provider.recordedRequests().last)
            #expect(continuation.model == "gpt-4.0-turbo")
            let messages = try JSONParser.parse(Array(continuation.body.utf8))["messages"]?.arrayValue ?? []
            #expect(messages.last?["role"]?.stringValue == "assistant")
            #expect(messages.last?["content"]?.stringValue == Self.answer.split(separator: " ").prefix(4).joined(separator: " "))
        }
    }

    @Test("a continuation whose prefill is rejected: the client hears of the original cut, not the rejection")
    func continuationRejected() async throws {
        let annotations = ["ai-gateway.kgateway.dev/stream-continuation": "true"]
        try await withGateway(faults: ["gpt-4o": "cut-after=2", "gpt-4.0-turbo": "no-prefill", "gpt-3.5-turbo": "no-prefill"], backendAnnotations: annotations) { h in
            let r = try await h.send(body: Harness.question(stream: true))
            let s = StreamResult(r.body)
            #expect(!s.done)
            let message = s.error?["message"]?.stringValue ?? ""
            #expect(message.contains("gpt-4o"))
            #expect(!message.lowercased().contains("prefill"))
            #expect(h.providerModels == ["gpt-4o", "gpt-4.0-turbo", "gpt-3.5-turbo"], "one continuation try per model, no loop")
        }
    }

    @Test("stream stalled after tokens: an explicit error event after the idle timeout, never a hang")
    func streamStalled() async throws {
        // Only the idle timeout is short: a shorter deadline armed mid-attempt must take effect.
        let annotations = ["ai-gateway.kgateway.dev/stream-idle-timeout": "1s"]
        try await withGateway(faults: ["gpt-4o": "stall-after=3"], backendAnnotations: annotations) { h in
            let start = ContinuousClock.now
            let r = try await h.send(body: Harness.question(stream: true))
            let s = StreamResult(r.body)
            #expect(!s.done)
            #expect(s.error != nil)
            #expect(ContinuousClock.now - start < .seconds(10), "the idle timeout, not the 30 s first-byte timeout")
        }
    }

    @Test("an SSE event that is not JSON is dropped; the stream goes on; counted")
    func malformedEvent() async throws {
        try await withGateway(faults: ["gpt-4o": "malformed-event=3"]) { h in
            let r = try await h.send(body: Harness.question(stream: true))
            let s = StreamResult(r.body)
            #expect(s.done)
            #expect(s.text == Self.answer)
            #expect(!r.body.contains(#"{"choices": ["#))
            let metrics = try await h.admin("/metrics").body
            #expect(metrics.contains("aigw_malformed_stream_events_total{"))
        }
    }

    @Test("a stream that ends without [DONE] finishes promptly with the provider's usage")
    func noDone() async throws {
        try await withGateway(faults: ["gpt-4o": "no-done"]) { h in
            let r = try await h.send(body: Harness.question(stream: true, extra: #","stream_options":{"include_usage":true}"#))
            let s = StreamResult(r.body)
            #expect(s.done)
            #expect(s.text == Self.answer)
            #expect(s.usage?["completion_tokens"]?.intValue == 12)
        }
    }

    @Test("usage the gateway asked for (to count tokens) is not shown to a client that did not ask")
    func usageStripped() async throws {
        try await withGateway { h in
            let r = try await h.send(body: Harness.question(stream: true))
            let s = StreamResult(r.body)
            #expect(s.done)
            #expect(s.usage == nil)
            #expect(h.provider.recordedRequests().first?.body.contains("include_usage") == true)
            let metrics = try await h.admin("/metrics").body
            #expect(metrics.contains(#"aigw_tokens_total{backend="kgateway-system/model-failover",model="gpt-4o",direction="output",provider="openai"} 12"#))
        }
    }

    @Test("a complete answer's usage is counted, read without parsing the whole answer")
    func completeAnswerTokens() async throws {
        try await withGateway { h in
            let r = try await h.send()
            #expect(r.status == 200)
            #expect(r.content == Self.answer)
            let metrics = try await h.admin("/metrics").body
            #expect(metrics.contains(#"aigw_tokens_total{backend="kgateway-system/model-failover",model="gpt-4o",direction="output",provider="openai"} 12"#))
        }
    }

    @Test("everything failed: one OpenAI-shaped error naming every attempt")
    func everythingFailed() async throws {
        try await withGateway(faults: ["gpt-4o": "status=503", "gpt-4.0-turbo": "reset", "gpt-3.5-turbo": "unauthorized"]) { h in
            let r = try await h.send()
            #expect(r.status == 502)
            let attempts = r.json?["error"]?["attempts"]?.arrayValue ?? []
            #expect(attempts.map { "\($0["model"]?.stringValue ?? "")=\($0["outcome"]?.stringValue ?? "")" } == [
                "gpt-4o=503", "gpt-4o=503", "gpt-4.0-turbo=connect_error", "gpt-4.0-turbo=connect_error", "gpt-3.5-turbo=401",
            ])
            #expect(r.errorMessage?.contains("gpt-3.5-turbo: 401") == true)
        }
    }

    @Test("every model silent: 504 within the route's request timeout, never a hang")
    func deadline() async throws {
        let route = try repositoryFile("examples/model-failover/httproute.yaml").replacingOccurrences(
            of: "    backendRefs:", with: "    timeouts:\n      request: 1s\n    backendRefs:")
        var files = try Self.files(backend: guideBackend())
        files["httproute.yaml"] = route
        try await withGateway(faults: ["gpt-4o": "silence", "gpt-4.0-turbo": "silence", "gpt-3.5-turbo": "silence"], files: files) { h in
            let start = ContinuousClock.now
            let r = try await h.send()
            #expect(r.status == 504)
            #expect(ContinuousClock.now - start < .seconds(5))
        }
    }

    @Test("passive health: a failing primary is ejected, skipped, probed once after the cool-down, and used again")
    func ejectionAndProbe() async throws {
        let annotations = ["ai-gateway.kgateway.dev/ejection-base": "1s"]
        try await withGateway(faults: ["gpt-4o": "status=503"], backendAnnotations: annotations) { h in
            _ = try await h.send()  // two failures (one retry)
            _ = try await h.send()  // the third: ejected
            let before = h.providerModels.filter { $0 == "gpt-4o" }.count
            let skipped = try await h.send()
            #expect(skipped.attempts == "openai/gpt-4o=ejected,openai/gpt-4.0-turbo=ok")
            #expect(h.providerModels.filter { $0 == "gpt-4o" }.count == before, "no traffic to an ejected entry")
            try h.setFault("gpt-4o", nil)
            // The primary comes back; within seconds a single probe finds it healthy.
            let deadline = ContinuousClock.now + .seconds(10)
            var served = ""
            while ContinuousClock.now < deadline {
                let r = try await h.send()
                served = r.servedModel ?? ""
                if served == "gpt-4o" { break }
            }
            #expect(served == "gpt-4o")
            let after = try await h.send()
            #expect(after.attempts == "openai/gpt-4o=ok")
            let metrics = try await h.admin("/metrics").body
            #expect(metrics.contains("aigw_ejections_total{"))
            #expect(metrics.contains("aigw_failovers_total{"))
        }
    }

    static func files(backend: String) throws -> [String: String] {
        [
            "backend.yaml": backend,
            "httproute.yaml": try repositoryFile("examples/model-failover/httproute.yaml"),
            "secret.yaml": try repositoryFile("examples/model-failover/secret.yaml"),
        ]
    }
}

/// A loopback port with nothing listening on it.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}
