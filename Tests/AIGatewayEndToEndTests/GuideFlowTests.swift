import AIGatewayAPI
import AIGatewayTesting
import Foundation
import NIOHTTP1
import Testing

@Suite("The guide's model failover, end to end over loopback", .serialized)
struct GuideFlowTests {
    @Test("no model in the request: gpt-4o answers, with the Secret's key and the injected model")
    func primaryAnswers() async throws {
        try await withGateway { h in
            let r = try await h.send(headers: [("content-type", "application/json"), ("authorization", "Bearer client-own-key")])
            #expect(r.status == 200)
            #expect(r.json?["model"]?.stringValue == "gpt-4o")
            #expect(r.content == FakeProvider.answerText(model: "gpt-4o", tokens: 12))
            #expect(r.servedModel == "gpt-4o")
            #expect(r.attempts == "openai/gpt-4o=ok")
            let sent = try #require(h.provider.recordedRequests().first)
            #expect(sent.path == "/v1/chat/completions", "the provider's path, whatever the route rewrote")
            #expect(sent.header("authorization") == "Bearer \(demoKey)", "the Secret's key; the client's own never reaches the provider")
            #expect(sent.model == "gpt-4o")
            #expect(!sent.headers.contains { $0.last?.contains("client-own-key") == true })
            #expect(sent.header("host") == "127.0.0.1:\(h.provider.port)")
        }
    }

    @Test("gpt-4o fails: gpt-4.0-turbo answers; both fail: gpt-3.5-turbo answers")
    func failoverInOrder() async throws {
        try await withGateway(faults: ["gpt-4o": "status=503"]) { h in
            let r1 = try await h.send()
            #expect(r1.status == 200)
            #expect(r1.json?["model"]?.stringValue == "gpt-4.0-turbo")
            #expect(r1.attempts == "openai/gpt-4o=503,openai/gpt-4o=503,openai/gpt-4.0-turbo=ok")
            try h.setFault("gpt-4.0-turbo", "status=500")
            let r2 = try await h.send()
            #expect(r2.status == 200)
            #expect(r2.json?["model"]?.stringValue == "gpt-3.5-turbo")
            #expect(r2.servedModel == "gpt-3.5-turbo")
            #expect(r2.attempts.hasSuffix("openai/gpt-3.5-turbo=ok"))
            // Every attempt carried the right model and key.
            for req in h.provider.recordedRequests() {
                #expect(req.header("authorization") == "Bearer \(demoKey)")
            }
            #expect(Array(h.providerModels.prefix(3)) == ["gpt-4o", "gpt-4o", "gpt-4.0-turbo"])
        }
    }

    @Test("a model the client names is replaced by the entry's model")
    func entryModelOverrides() async throws {
        try await withGateway { h in
            let r = try await h.send(body: #"{"model":"something-else","messages":[{"role":"user","content":"hi"}],"temperature":0.7}"#)
            #expect(r.status == 200)
            let sent = try #require(h.provider.recordedRequests().first)
            #expect(sent.model == "gpt-4o")
            #expect(sent.body.contains(#""temperature":0.7"#), "everything else the client sent is kept byte for byte")
        }
    }

    @Test("curl, as in the guide, sees the failover")
    func curlSeesFailover() async throws {
        try await withGateway(faults: ["gpt-4o": "status=503"]) { h in
            let out = try runProcess("/usr/bin/curl", [
                "-sS", "-i", "http://127.0.0.1:\(h.port)/model", "-H", "content-type:application/json", "-d",
                #"{"messages": [{"role": "user", "content": "What is kubernetes?"}]}"#,
            ])
            #expect(out.contains("HTTP/1.1 200"))
            #expect(out.lowercased().contains("x-aigw-model: gpt-4.0-turbo"))
            #expect(out.contains(#""model":"gpt-4.0-turbo""#))
        }
    }
}

/// Runs a command to completion and returns its standard output.
func runProcess(_ path: String, _ args: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}
