import AIGatewayTesting
import AsyncHTTPClient
import Foundation
import Testing

@Suite("Fake provider: healthy answers, routing, recording, control")
struct FakeProviderTests {
    let fullText = FakeProvider.answerText(model: "gpt-4o", tokens: 12)

    @Test("non-streaming answer, usage and headers")
    func nonStreaming() async throws {
        try await withFakeProvider { provider in
            #expect(provider.port > 0)
            #expect(provider.baseURL == "http://127.0.0.1:\(provider.port)")
            let reply = try await send(
                provider,
                body: chatBody(model: "gpt-4o", messages: [("system", "You are  helpful."), ("user", "What is\nKubernetes?")])
            )
            #expect(reply.status == 200)
            #expect(reply.header("content-type") == "application/json")
            #expect(reply.header("content-length") == String(reply.body.utf8.count))
            let json = try reply.json()
            #expect(json["id"].string?.hasPrefix("chatcmpl-fake-") == true)
            #expect(json["object"].string == "chat.completion")
            #expect(json["model"].string == "gpt-4o")
            #expect(json["created"].int.map { $0 > 1_600_000_000 } == true)
            let choice = json["choices"][0]
            #expect(choice["index"].int == 0)
            #expect(choice["message"]["role"].string == "assistant")
            #expect(choice["message"]["content"].string == fullText)
            #expect(choice["message"]["refusal"].isNull)
            #expect(choice["finish_reason"].string == "stop")
            #expect(json["usage"]["prompt_tokens"].int == 6)
            #expect(json["usage"]["completion_tokens"].int == 12)
            #expect(json["usage"]["total_tokens"].int == 18)
        }
    }

    @Test("streaming event sequence with include_usage ends with [DONE]")
    func streamingWithUsage() async throws {
        try await withFakeProvider { provider in
            let reply = try await send(provider, body: chatBody(model: "gpt-4o", stream: true, includeUsage: true))
            #expect(reply.status == 200)
            #expect(reply.header("content-type") == "text/event-stream")
            #expect(reply.header("transfer-encoding") == "chunked")
            let payloads = ssePayloads(reply.body)
            // role, 12 tokens, finish, usage, [DONE]
            try #require(payloads.count == 16)
            #expect(payloads.last == "[DONE]")
            let chunks = try payloads.dropLast().map { try JSONValue(parsing: $0) }
            let ids = Set(chunks.compactMap { $0["id"].string })
            #expect(ids.count == 1)
            #expect(chunks.allSatisfy { $0["object"].string == "chat.completion.chunk" && $0["model"].string == "gpt-4o" })
            #expect(chunks[0]["choices"][0]["delta"] == .object(["role": .string("assistant"), "content": .string("")]))
            let tokens = chunks[1...12].map { $0["choices"][0]["delta"]["content"].string ?? "<missing>" }
            #expect(tokens.first == "Kubernetes")
            #expect(tokens.dropFirst().allSatisfy { $0.hasPrefix(" ") })
            #expect(tokens.joined() == fullText)
            #expect(chunks[13]["choices"][0]["delta"] == .object([:]))
            #expect(chunks[13]["choices"][0]["finish_reason"].string == "stop")
            #expect(chunks[14]["choices"] == .array([]))
            #expect(chunks[14]["usage"]["prompt_tokens"].int == 3)
            #expect(chunks[14]["usage"]["completion_tokens"].int == 12)
            #expect(chunks[14]["usage"]["total_tokens"].int == 15)
        }
    }

    @Test("streaming without include_usage has no usage chunk")
    func streamingWithoutUsage() async throws {
        try await withFakeProvider(.init(tokens: 3)) { provider in
            let reply = try await send(provider, body: chatBody(model: "m", stream: true))
            let payloads = ssePayloads(reply.body)
            #expect(payloads.count == 6)  // role, 3 tokens, finish, [DONE]
            #expect(payloads.last == "[DONE]")
            #expect(!reply.body.contains("usage"))
            #expect(contentDeltas(payloads).joined() == "Kubernetes is an")
        }
    }

    @Test("tokens and tokenInterval are honoured")
    func tokenInterval() async throws {
        try await withFakeProvider(.init(tokens: 5, tokenInterval: .milliseconds(40))) { provider in
            let started = ContinuousClock.now
            let reply = try await send(provider, body: chatBody(model: "m", stream: true))
            let elapsed = ContinuousClock.now - started
            #expect(contentDeltas(ssePayloads(reply.body)).count == 5)
            #expect(elapsed >= .milliseconds(4 * 40))
        }
    }

    @Test("a long stream is delivered completely")
    func longStream() async throws {
        try await withFakeProvider(.init(tokens: 5_000)) { provider in
            let reply = try await send(provider, body: chatBody(model: "m", stream: true, includeUsage: true))
            let payloads = ssePayloads(reply.body)
            #expect(contentDeltas(payloads).joined() == FakeProvider.answerText(model: "m", tokens: 5_000))
            #expect(payloads.last == "[DONE]")
            #expect(try JSONValue(parsing: payloads[payloads.count - 2])["usage"]["completion_tokens"].int == 5_000)
        }
    }

    @Test("prefill continuation answers only the remainder")
    func prefill() async throws {
        try await withFakeProvider { provider in
            let prefix = "Kubernetes is an open-source"
            let messages: [(role: String, content: String)] = [("user", "What is Kubernetes?"), ("assistant", prefix)]

            let reply = try await send(provider, body: chatBody(model: "m", messages: messages))
            let json = try reply.json()
            let content = try #require(json["choices"][0]["message"]["content"].string)
            #expect(prefix + content == fullText)
            #expect(content == " system for automating deployment, scaling, and management of")
            #expect(json["usage"]["completion_tokens"].int == 8)
            #expect(json["usage"]["prompt_tokens"].int == 3 + 4)

            let streamed = try await send(provider, body: chatBody(model: "m", stream: true, includeUsage: true, messages: messages))
            let payloads = ssePayloads(streamed.body)
            #expect(contentDeltas(payloads) == [" system", " for", " automating", " deployment,", " scaling,", " and", " management", " of"])
            #expect(try JSONValue(parsing: payloads[payloads.count - 2])["usage"]["completion_tokens"].int == 8)

            // A prefill ending inside a token continues with the rest of that token.
            let partial = try await send(provider, body: chatBody(model: "m", messages: [("user", "q"), ("assistant", "Kubernetes is an open-sou")]))
            #expect(try partial.json()["choices"][0]["message"]["content"].string == "rce system for automating deployment, scaling, and management of")

            // Not a prefix of the answer: the full answer.
            let other = try await send(provider, body: chatBody(model: "m", messages: [("user", "q"), ("assistant", "Docker is")]))
            #expect(try other.json()["choices"][0]["message"]["content"].string == fullText)
            #expect(try other.json()["usage"]["completion_tokens"].int == 12)

            // The whole answer as prefill: nothing left to say.
            let whole = try await send(provider, body: chatBody(model: "m", messages: [("user", "q"), ("assistant", fullText)]))
            #expect(try whole.json()["choices"][0]["message"]["content"].string == "")
            #expect(try whole.json()["usage"]["completion_tokens"].int == 0)
        }
    }

    @Test("Azure deployment paths and /chat/completions are accepted")
    func azurePath() async throws {
        try await withFakeProvider { provider in
            let path = "/openai/deployments/my-deploy/chat/completions?api-version=2024-06-01"
            let reply = try await send(provider, path: path, body: chatBody(model: nil), headers: [("api-key", "k")])
            #expect(reply.status == 200)
            #expect(try reply.json()["model"].string == "my-deploy")

            // The deployment name wins over the body's model, also for faults.
            provider.setFault(try FaultSpec(parsing: "status=503"), forModel: "my-deploy")
            let failed = try await send(provider, path: path, body: chatBody(model: "gpt-4o"))
            #expect(failed.status == 503)

            let plain = try await send(provider, path: "/chat/completions", body: chatBody(model: "gpt-4o"))
            #expect(plain.status == 200)

            let recorded = provider.recordedRequests()
            #expect(recorded.map(\.model) == ["my-deploy", "my-deploy", "gpt-4o"])
            #expect(recorded[0].path == path)
            #expect(recorded[0].header("API-KEY") == "k")
        }
    }

    @Test("request errors: missing model, malformed JSON, unknown path")
    func requestErrors() async throws {
        try await withFakeProvider { provider in
            let missing = try await send(provider, body: chatBody(model: nil))
            #expect(missing.status == 400)
            #expect(
                try missing.json()
                    == JSONValue(
                        parsing:
                            #"{"error":{"message":"you must provide a model parameter","type":"invalid_request_error","param":null,"code":null}}"#
                    )
            )

            let malformed = try await send(provider, body: #"{"model": "gpt-4o", "messages": ["#)
            #expect(malformed.status == 400)
            let error = try malformed.json()["error"]
            #expect(error["type"].string == "invalid_request_error")
            #expect(error["message"].string?.contains("could not parse the JSON body") == true)
            #expect(error["param"].isNull)

            let wrongType = try await send(provider, body: #"{"model": 42}"#)
            #expect(wrongType.status == 400)

            let unknown = try await send(provider, path: "/v1/embeddings", body: chatBody(model: "m"))
            #expect(unknown.status == 404)
            #expect(try unknown.json()["error"]["message"].string == "Invalid URL (POST /v1/embeddings)")

            #expect(provider.recordedRequests().count == 4)
            #expect(provider.recordedRequests()[1].model == nil)
        }
    }

    @Test("required key: Bearer or api-key, else 401 invalid_api_key")
    func requiredKey() async throws {
        try await withFakeProvider(.init(requiredKey: "sk-test")) { provider in
            let body = chatBody(model: "m")
            let none = try await send(provider, body: body)
            #expect(none.status == 401)
            #expect(try none.json()["error"]["code"].string == "invalid_api_key")
            let wrong = try await send(provider, body: body, headers: [("Authorization", "Bearer nope")])
            #expect(wrong.status == 401)
            #expect(try wrong.json()["error"]["code"].string == "invalid_api_key")
            #expect(try await send(provider, body: body, headers: [("Authorization", "Bearer sk-test")]).status == 200)
            #expect(try await send(provider, body: body, headers: [("api-key", "sk-test")]).status == 200)
        }
    }

    @Test("requests are recorded as received, before faults, control requests excluded")
    func recording() async throws {
        try await withFakeProvider(.init(faults: ["broken": try FaultSpec(parsing: "status=500")])) { provider in
            let body = chatBody(model: "broken", stream: true)
            let reply = try await send(
                provider,
                path: "/v1/chat/completions?trace=1",
                body: body,
                headers: [("X-Custom-Header", "Value One"), ("Authorization", "Bearer abc")]
            )
            #expect(reply.status == 500)
            _ = try await send(provider, path: "/_fake/health", verb: .get)

            let recorded = provider.recordedRequests()
            try #require(recorded.count == 1)
            let request = recorded[0]
            #expect(request.method == "POST")
            #expect(request.path == "/v1/chat/completions?trace=1")
            #expect(request.model == "broken")
            #expect(request.stream)
            #expect(request.body == body)
            #expect(request.headers.contains(["x-custom-header", "Value One"]))
            #expect(request.headers.allSatisfy { $0.count == 2 && $0[0] == $0[0].lowercased() })
            #expect(request.header("x-CUSTOM-header") == "Value One")
            #expect(request.header("authorization") == "Bearer abc")
            #expect(request.header("absent") == nil)

            provider.clearRecordedRequests()
            #expect(provider.recordedRequests().isEmpty)
        }
        try await withFakeProvider(.init(recordRequests: false)) { provider in
            let reply = try await send(provider, body: chatBody(model: "m"))
            #expect(reply.status == 200)
            #expect(provider.recordedRequests().isEmpty)
        }
    }

    @Test("control endpoints")
    func controlEndpoints() async throws {
        try await withFakeProvider { provider in
            let health = try await send(provider, path: "/_fake/health", verb: .get)
            #expect(health.status == 200)

            let put = try await send(provider, path: "/_fake/faults/gpt-4o", verb: .put, body: "status=429,retry-after=3")
            #expect(put.status == 200)
            #expect(try put.json()["fault"].string == "status=429,retry-after=3")
            let limited = try await send(provider, body: chatBody(model: "gpt-4o"))
            #expect(limited.status == 429)
            #expect(limited.header("retry-after") == "3")

            let listed = try await send(provider, path: "/_fake/faults", verb: .get)
            #expect(try listed.json() == .object(["gpt-4o": .string("status=429,retry-after=3")]))

            let bad = try await send(provider, path: "/_fake/faults/gpt-4o", verb: .put, body: "status=abc")
            #expect(bad.status == 400)
            #expect(try bad.json()["error"]["message"].string?.contains("status=abc") == true)

            // A model name with a slash, percent-encoded or not.
            _ = try await send(provider, path: "/_fake/faults/meta%2Fllama-3", verb: .put, body: "status=502")
            #expect(try await send(provider, body: chatBody(model: "meta/llama-3")).status == 502)

            _ = try await send(provider, path: "/_fake/faults/gpt-4o", verb: .put, body: "ok")
            #expect(try await send(provider, body: chatBody(model: "gpt-4o")).status == 200)
            #expect(provider.currentFaults().keys.sorted() == ["meta/llama-3"])

            #expect(try await send(provider, path: "/_fake/faults", verb: .delete).status == 200)
            #expect(provider.currentFaults().isEmpty)
            #expect(try await send(provider, body: chatBody(model: "meta/llama-3")).status == 200)

            let requests = try await send(provider, path: "/_fake/requests", verb: .get)
            #expect(requests.status == 200)
            let decoded = try JSONDecoder().decode([RecordedRequest].self, from: Data(requests.body.utf8))
            #expect(decoded == provider.recordedRequests())
            #expect(decoded.map(\.model) == ["gpt-4o", "meta/llama-3", "gpt-4o", "meta/llama-3"])

            #expect(try await send(provider, path: "/_fake/requests", verb: .delete).status == 200)
            #expect(provider.recordedRequests().isEmpty)
            #expect(try await send(provider, path: "/_fake/nothing", verb: .get).status == 404)
        }
    }

    @Test("keep-alive connections serve many and concurrent requests")
    func manyRequests() async throws {
        try await withFakeProvider(.init(tokens: 4, recordRequests: false)) { provider in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        var ok = 0
                        for i in 0..<25 {
                            let reply = try await send(provider, body: chatBody(model: "m", stream: (worker + i) % 2 == 0))
                            if reply.status == 200 { ok += 1 }
                        }
                        return ok
                    }
                }
                var total = 0
                for try await ok in group { total += ok }
                #expect(total == 200)
            }
        }
    }

    @Test("stop() then start() again; start() is idempotent while running")
    func restart() async throws {
        let provider = FakeProvider()
        let port = try await provider.start()
        #expect(try await provider.start() == port)
        #expect(try await send(provider, body: chatBody(model: "m")).status == 200)
        try await provider.stop()
        _ = try await provider.start()
        #expect(try await send(provider, body: chatBody(model: "m")).status == 200)
        try await provider.stop()
    }
}
