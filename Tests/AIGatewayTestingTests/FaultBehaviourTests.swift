import AIGatewayTesting
import AsyncHTTPClient
import Foundation
import Testing

@Suite("Fake provider: fault wire behaviour")
struct FaultBehaviourTests {
    @Test("status with retry-after, ratelimit-reset and code")
    func statusWithHints() async throws {
        let fault = try FaultSpec(parsing: "status=429,retry-after=2,ratelimit-reset=1m0s,code=slow_down")
        try await withFakeProvider(.init(faults: ["m": fault])) { provider in
            let reply = try await send(provider, body: chatBody(model: "m"))
            #expect(reply.status == 429)
            #expect(reply.header("retry-after") == "2")
            #expect(reply.header("x-ratelimit-reset-requests") == "1m0s")
            #expect(reply.header("content-type") == "application/json")
            let error = try reply.json()["error"]
            #expect(error["code"].string == "slow_down")
            #expect(error["type"].string == "requests")
            #expect(error["param"].isNull)
            #expect(error["message"].string?.isEmpty == false)
            #expect(try reply.json().object?.keys.sorted() == ["error"])

            provider.setFault(try FaultSpec(parsing: "status=429"), forModel: "m")
            let plain = try await send(provider, body: chatBody(model: "m", stream: true))
            #expect(plain.status == 429)
            #expect(plain.header("retry-after") == nil)
            #expect(plain.header("x-ratelimit-reset-requests") == nil)
            #expect(try plain.json()["error"]["code"].string == "rate_limit_exceeded")
        }
    }

    @Test(
        "error shortcuts",
        arguments: [
            ("context-length", 400, "context_length_exceeded", "maximum context length"),
            ("content-filter", 400, "content_filter", "content management policy"),
            ("unauthorized", 401, "invalid_api_key", "API key"),
            ("model-not-found", 404, "model_not_found", "does not exist"),
            ("bad-request", 400, "invalid_request_error", "rejected"),
            ("status=503", 503, nil, "overloaded"),
            ("status=500", 500, nil, "error"),
        ] as [(String, Int, String?, String)]
    )
    func errorShortcut(spec: String, status: Int, code: String?, messageFragment: String) async throws {
        try await withFakeProvider(.init(faults: ["m": try FaultSpec(parsing: spec)])) { provider in
            let reply = try await send(provider, body: chatBody(model: "m"))
            #expect(reply.status == status)
            let error = try reply.json()["error"]
            #expect(error["code"].string == code)
            #expect(error["type"].string?.isEmpty == false)
            #expect(error["message"].string?.contains(messageFragment) == true)
            // Other models stay healthy.
            #expect(try await send(provider, body: chatBody(model: "other")).status == 200)
        }
    }

    @Test("reset: TCP RST before any response byte")
    func reset() async throws {
        try await withFakeProvider(.init(faults: ["m": try FaultSpec(parsing: "reset")])) { provider in
            await #expect(throws: (any Error).self) {
                _ = try await send(provider, body: chatBody(model: "m"))
            }
            let outcome = try await rawExchange(port: provider.port, request: rawPost(body: chatBody(model: "m")), idleMilliseconds: 5_000)
            #expect(outcome == .reset(""))
            // Recorded before the fault was applied (and the client did not retry).
            #expect(provider.recordedRequests().count == 2)
            #expect(provider.recordedRequests().allSatisfy { $0.model == "m" })
        }
    }

    @Test("silence: no response headers, socket kept open until stop()", .timeLimit(.minutes(1)))
    func silence() async throws {
        let provider = FakeProvider(configuration: .init(faults: ["m": try FaultSpec(parsing: "silence")]))
        _ = try await provider.start()
        do {
            // On the wire: nothing at all, and no FIN. (A busy machine can only make the server
            // later, which reads the same: still open, nothing received.)
            let outcome = try await rawExchange(port: provider.port, request: rawPost(body: chatBody(model: "m")), idleMilliseconds: 300)
            #expect(outcome == .stillOpen(""))
            try await waitFor("the raw request was read") { provider.recordedRequests().count == 1 }
        } catch {
            try? await provider.stop()
            throw error
        }

        // Through an HTTP client that waits without a deadline: once the server has read the
        // request (an event, not a timer), stop() closes the silent connection, and the client
        // fails without ever having had a response head.
        let answered = Flag()
        let waiting = Task {
            _ = try await HTTPClient.shared.execute(makeRequest(provider, body: chatBody(model: "m")), deadline: .distantFuture)
            answered.set()
        }
        try await waitFor("the request was read") { provider.recordedRequests().count == 2 }
        #expect(provider.openConnections == 1)
        #expect(!answered.value, "the request was read, and not answered")
        try await provider.stop()
        await #expect(throws: (any Error).self) {
            _ = try await waiting.value
        }
        #expect(!answered.value)
    }

    @Test("slow-first-token: headers and role chunk at once, then the wait")
    func slowFirstToken() async throws {
        try await withFakeProvider(.init(faults: ["m": try FaultSpec(parsing: "slow-first-token=300")])) { provider in
            let started = ContinuousClock.now
            let response = try await HTTPClient.shared.execute(
                makeRequest(provider, body: chatBody(model: "m", stream: true)),
                timeout: .seconds(10)
            )
            var text = ""
            var roleAt: Duration?
            var firstTokenAt: Duration?
            for try await chunk in response.body {
                text += String(decoding: chunk.readableBytesView, as: UTF8.self)
                if roleAt == nil, text.contains("\"role\":\"assistant\"") { roleAt = ContinuousClock.now - started }
                if firstTokenAt == nil, text.contains("Kubernetes") { firstTokenAt = ContinuousClock.now - started }
            }
            let role = try #require(roleAt)
            let firstToken = try #require(firstTokenAt)
            #expect(firstToken >= .milliseconds(300))
            // The role chunk came in an earlier read than the first token (not a wall-clock gap,
            // which a loaded machine can shrink).
            #expect(role < firstToken)
            #expect(contentDeltas(ssePayloads(text)).joined() == FakeProvider.answerText(model: "m", tokens: 12))

            let plainStarted = ContinuousClock.now
            let plain = try await send(provider, body: chatBody(model: "m"))
            #expect(plain.status == 200)
            #expect(ContinuousClock.now - plainStarted >= .milliseconds(300))
        }
    }

    @Test("delay: waits before the response headers")
    func delay() async throws {
        try await withFakeProvider(.init(faults: ["m": try FaultSpec(parsing: "status=502,delay=200")])) { provider in
            let started = ContinuousClock.now
            let reply = try await send(provider, body: chatBody(model: "m"))
            #expect(reply.status == 502)
            #expect(ContinuousClock.now - started >= .milliseconds(200))
        }
    }

    @Test("cut-after: streamed body ends without its last chunk")
    func cutAfterStreaming() async throws {
        try await withFakeProvider(.init(faults: ["m": try FaultSpec(parsing: "cut-after=3")])) { provider in
            // Through an HTTP client: the body fails. (How much of it the client hands over before
            // the error depends on when it sees the close: the wire is checked below.)
            let partial = try await sendAndReadUntilEnd(provider, body: chatBody(model: "m", stream: true, includeUsage: true))
            #expect(partial.status == 200)
            #expect(partial.error != nil)
            let expected = ["Kubernetes", " is", " an"]
            let seen = contentDeltas(ssePayloads(partial.text))
            #expect(Array(expected.prefix(seen.count)) == seen)
            #expect(!partial.text.contains("finish_reason\":\"stop"))
            #expect(!partial.text.contains("[DONE]"))

            // On the wire: FIN after the third token, no zero-length chunk.
            let outcome = try await rawExchange(
                port: provider.port,
                request: rawPost(body: chatBody(model: "m", stream: true)),
                idleMilliseconds: 5_000
            )
            guard case .closed(let raw) = outcome else {
                Issue.record("expected a FIN, got \(outcome)")
                return
            }
            #expect(raw.hasPrefix("HTTP/1.1 200 OK"))
            #expect(contentDeltas(ssePayloads(dechunked(raw))) == expected)
            #expect(!raw.contains(" open-source"))
            #expect(!raw.contains("[DONE]"))
            #expect(!raw.hasSuffix("0\r\n\r\n"))
        }
    }

    @Test("cut-after: non-streamed body shorter than its Content-Length")
    func cutAfterNonStreaming() async throws {
        try await withFakeProvider(.init(faults: ["m": try FaultSpec(parsing: "cut-after=1")])) { provider in
            await #expect(throws: (any Error).self) {
                _ = try await send(provider, body: chatBody(model: "m"))
            }
            let outcome = try await rawExchange(port: provider.port, request: rawPost(body: chatBody(model: "m")), idleMilliseconds: 5_000)
            guard case .closed(let raw) = outcome, let split = raw.range(of: "\r\n\r\n") else {
                Issue.record("expected a FIN after a partial body, got \(outcome)")
                return
            }
            let head = raw[..<split.lowerBound].lowercased()
            let body = raw[split.upperBound...]
            let lengthLine = try #require(head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") })
            let declared = try #require(Int(lengthLine.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)))
            #expect(body.utf8.count == declared / 2)
        }
    }

    @Test("stall-after: n tokens, then silence with the socket open", .timeLimit(.minutes(1)))
    func stallAfter() async throws {
        // Events, not a read deadline: read until the two tokens are in, see the connection still
        // open and the body not ended, then stop the provider (which closes stalled connections)
        // and see what the body held until then: the two tokens, and no proper end.
        let provider = FakeProvider(configuration: .init(faults: ["m": try FaultSpec(parsing: "stall-after=2")]))
        _ = try await provider.start()
        do {
            let response = try await HTTPClient.shared.execute(
                makeRequest(provider, body: chatBody(model: "m", stream: true)), deadline: .distantFuture)
            #expect(response.status.code == 200)
            var body = response.body.makeAsyncIterator()
            var text = ""
            while contentDeltas(ssePayloads(text)).count < 2, let chunk = try await body.next() {
                text += String(decoding: chunk.readableBytesView, as: UTF8.self)
            }
            #expect(contentDeltas(ssePayloads(text)) == ["Kubernetes", " is"])
            #expect(provider.openConnections == 1, "the stalled connection stays open")

            try await provider.stop()
            var ending: (any Error)?
            do {
                while let chunk = try await body.next() {
                    text += String(decoding: chunk.readableBytesView, as: UTF8.self)
                }
            } catch {
                ending = error
            }
            #expect(ending != nil, "the body had no last chunk: it fails when the connection is closed")
            #expect(contentDeltas(ssePayloads(text)) == ["Kubernetes", " is"])
            #expect(!text.contains("[DONE]"))
        } catch {
            try? await provider.stop()
            throw error
        }
    }

    @Test("malformed-event: one invalid JSON event, then the stream continues")
    func malformedEvent() async throws {
        try await withFakeProvider(.init(faults: ["m": try FaultSpec(parsing: "malformed-event=2")])) { provider in
            let reply = try await send(provider, body: chatBody(model: "m", stream: true))
            #expect(reply.status == 200)
            let payloads = ssePayloads(reply.body)
            #expect(payloads.count == 16)  // role, 12 tokens, malformed, finish, [DONE]
            #expect(payloads[3] == #"{"choices": ["#)
            #expect(payloads.filter { (try? JSONValue(parsing: $0)) == nil && $0 != "[DONE]" } == [#"{"choices": ["#])
            #expect(contentDeltas(payloads).joined() == FakeProvider.answerText(model: "m", tokens: 12))
            #expect(payloads.last == "[DONE]")
        }
    }

    @Test("no-done: proper end of the body, usage included, no [DONE]")
    func noDone() async throws {
        try await withFakeProvider(.init(faults: ["m": try FaultSpec(parsing: "no-done")])) { provider in
            let partial = try await sendAndReadUntilEnd(provider, body: chatBody(model: "m", stream: true, includeUsage: true))
            #expect(partial.error == nil)
            let payloads = ssePayloads(partial.text)
            #expect(!payloads.contains("[DONE]"))
            let last = try JSONValue(parsing: try #require(payloads.last))
            #expect(last["usage"]["completion_tokens"].int == 12)
            #expect(payloads.contains { $0.contains("\"finish_reason\":\"stop\"") })
            #expect(contentDeltas(payloads).count == 12)
        }
    }

    @Test("no-prefill: rejects a last assistant message only")
    func noPrefill() async throws {
        try await withFakeProvider(.init(faults: ["m": try FaultSpec(parsing: "no-prefill")])) { provider in
            #expect(try await send(provider, body: chatBody(model: "m")).status == 200)
            let rejected = try await send(provider, body: chatBody(model: "m", messages: [("user", "q"), ("assistant", "Kubernetes")]))
            #expect(rejected.status == 400)
            let error = try rejected.json()["error"]
            #expect(error["code"].string == "invalid_request_error")
            #expect(error["type"].string == "invalid_request_error")
            #expect(error["message"].string?.lowercased().contains("prefill is not supported") == true)
        }
    }

    @Test("times=k: the fault applies to the next k requests, then the model recovers")
    func times() async throws {
        try await withFakeProvider { provider in
            provider.setFault(try FaultSpec(parsing: "status=503,times=2"), forModel: "m")
            #expect(try await send(provider, body: chatBody(model: "m")).status == 503)
            #expect(provider.currentFaults()["m"]?.times == 1)
            #expect(try await send(provider, body: chatBody(model: "m", stream: true)).status == 503)
            #expect(provider.currentFaults()["m"] == nil)
            #expect(try await send(provider, body: chatBody(model: "m")).status == 200)

            provider.setFault(try FaultSpec(parsing: "reset,times=1"), forModel: "m")
            await #expect(throws: (any Error).self) {
                _ = try await send(provider, body: chatBody(model: "m"))
            }
            #expect(try await send(provider, body: chatBody(model: "m")).status == 200)

            provider.setFault(try FaultSpec(parsing: "status=500"), forModel: "m")
            provider.setFault(nil, forModel: "m")
            #expect(try await send(provider, body: chatBody(model: "m")).status == 200)
            provider.setFault(try FaultSpec(parsing: "status=500"), forModel: "m")
            provider.resetFaults()
            #expect(try await send(provider, body: chatBody(model: "m")).status == 200)
        }
    }
}
