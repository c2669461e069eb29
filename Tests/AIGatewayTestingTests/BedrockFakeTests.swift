import struct AIGatewayAPI.SecretString
import AIGatewayProviders
import AIGatewayTesting
import AsyncHTTPClient
import Foundation
import Testing

/// The fake's Bedrock API is as strict as Bedrock where the gateway could go wrong.
@Suite("Fake provider: Bedrock")
struct BedrockFakeTests {
    static let secret = "sk-test"
    static let path = "/model/anthropic.claude-v2%3A1/converse"

    /// Headers for a request signed the way the gateway signs it.
    static func signed(_ provider: FakeProvider, path: String = path, body: String, accessKey: String = FakeProviderConfiguration.defaultAWSAccessKeyID, secret: String = secret) -> [(String, String)] {
        let host = "127.0.0.1:\(provider.port)"
        let request = SigV4.Request(
            method: "POST", path: path, headers: [(name: "host", value: host), (name: "content-type", value: "application/json")], body: Array(body.utf8))
        let s = SigV4(region: "us-east-1", service: "bedrock").sign(
            request, credentials: AWSCredentials(accessKeyID: accessKey, secretAccessKey: SecretString(secret)), time: Date().timeIntervalSince1970)
        return s.headers.map { ($0.name, $0.value) }
    }

    static let hello = #"{"messages":[{"role":"user","content":[{"text":"Hello there"}]}],"inferenceConfig":{"maxTokens":100}}"#

    @Test("a signed Converse request is answered in Converse's shape with a request id; the ':' model id is decoded")
    func answered() async throws {
        try await withFakeProvider(.init(tokens: 3, requiredKey: Self.secret)) { provider in
            let r = try await send(provider, path: Self.path, body: Self.hello, headers: Self.signed(provider, body: Self.hello))
            #expect(r.status == 200)
            #expect(r.header("x-amzn-RequestId")?.hasPrefix("fake-req-") == true)
            let v = try r.json()
            #expect(v["output"]["message"]["content"][0]["text"].string == "Kubernetes is an")
            #expect(v["stopReason"].string == "end_turn")
            #expect(v["usage"]["inputTokens"].int == 2 && v["usage"]["outputTokens"].int == 3)
            #expect(provider.recordedRequests().last?.model == "anthropic.claude-v2:1")
        }
    }

    @Test("no signature, a wrong secret, an unknown key or a changed body: 403 with Bedrock's error type")
    func signature() async throws {
        try await withFakeProvider(.init(requiredKey: Self.secret)) { provider in
            let none = try await send(provider, path: Self.path, body: Self.hello)
            #expect(none.status == 403 && none.header("x-amzn-ErrorType")?.hasPrefix("MissingAuthenticationTokenException") == true)
            let wrong = try await send(provider, path: Self.path, body: Self.hello, headers: Self.signed(provider, body: Self.hello, secret: "nope"))
            #expect(wrong.status == 403 && wrong.header("x-amzn-ErrorType")?.hasPrefix("InvalidSignatureException") == true)
            #expect(try wrong.json()["message"].string?.contains("does not match") == true)
            let unknown = try await send(provider, path: Self.path, body: Self.hello, headers: Self.signed(provider, body: Self.hello, accessKey: "AKIDOTHER"))
            #expect(unknown.status == 403 && unknown.header("x-amzn-ErrorType")?.hasPrefix("UnrecognizedClientException") == true)
            let other = Self.hello.replacingOccurrences(of: "Hello", with: "Bye")
            let changed = try await send(provider, path: Self.path, body: other, headers: Self.signed(provider, body: Self.hello))
            #expect(changed.status == 403)
            // Signed over the path encoded once too few times (':' raw): the canonical URIs differ.
            let raw = try await send(
                provider, path: Self.path, body: Self.hello,
                headers: Self.signed(provider, path: "/model/anthropic.claude-v2:1/converse", body: Self.hello))
            #expect(raw.status == 403)
        }
    }

    @Test("Bedrock's validation: tool blocks need toolConfig, roles alternate, blank text and unknown fields are refused")
    func validation() async throws {
        try await withFakeProvider(.init(requiredKey: Self.secret)) { provider in
            func status(_ body: String) async throws -> (Int, String) {
                let r = try await send(provider, path: Self.path, body: body, headers: Self.signed(provider, body: body))
                return (r.status, (try? r.json()["message"].string) ?? "")
            }
            let toolTurns = #"""
                [{"role":"user","content":[{"text":"q"}]},
                 {"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"f","input":{}}}]},
                 {"role":"user","content":[{"toolResult":{"toolUseId":"t1","content":[{"text":"r"}]}}]}]
                """#
            let noConfig = try await status(#"{"messages":\#(toolTurns)}"#)
            #expect(noConfig.0 == 400 && noConfig.1.contains("toolConfig"))
            let withConfig = try await status(#"{"messages":\#(toolTurns),"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{}}}}]}}"#)
            #expect(withConfig.0 == 200)
            let unanswered = try await status(#"{"messages":[{"role":"user","content":[{"text":"q"}]},{"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"f","input":{}}}]},{"role":"user","content":[{"text":"x"}]}],"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{}}}}]}}"#)
            #expect(unanswered.0 == 400)
            let twice = try await status(#"{"messages":[{"role":"user","content":[{"text":"a"}]},{"role":"user","content":[{"text":"b"}]}]}"#)
            #expect(twice.0 == 400 && twice.1.contains("alternate"))
            #expect(try await status(#"{"messages":[{"role":"user","content":[{"text":""}]}]}"#).0 == 400)
            #expect(try await status(#"{"messages":[{"role":"user","content":[{"text":"a"}]}],"model":"m"}"#).0 == 400)
            #expect(try await status(#"{"messages":[{"role":"user","content":[{"text":"a"}]}],"toolConfig":{"tools":[{"toolSpec":{"name":"a.b","inputSchema":{"json":{}}}}]}}"#).0 == 400)
        }
    }

    @Test("ConverseStream answers in event-stream frames with both CRCs right")
    func stream() async throws {
        try await withFakeProvider(.init(tokens: 2, requiredKey: Self.secret)) { provider in
            let path = "/model/m/converse-stream"
            let request = makeRequest(provider, path: path, body: Self.hello, headers: Self.signed(provider, path: path, body: Self.hello))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            #expect(response.status.code == 200 && response.headers.first(name: "content-type") == "application/vnd.amazon.eventstream")
            let bytes = try await response.body.collect(upTo: 1 << 20)
            var decoder = EventStreamDecoder()
            let frames = try decoder.feed(Array(bytes.readableBytesView))
            #expect(frames.map { $0[header: ":event-type"] ?? "?" } == [
                "messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata",
            ])
        }
    }
}
