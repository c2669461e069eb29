@testable import AIGatewayProxy
import AIGatewayTesting
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// One exchange of `head` through `client`, on `loop`.
private func send(_ client: UpstreamClient, port: Int, head: HTTPRequestHead, on loop: any EventLoop) async throws -> [RecordingReceiver.Event] {
    let body = ByteBuffer(string: #"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#)
    var withLength = head
    withLength.headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
    let h = withLength
    let receiver = RecordingReceiver(loop: loop)
    try await loop.submit {
        _ = client.execute(origin: UpstreamOrigin(tls: false, host: "127.0.0.1", port: port), head: h, body: body, on: loop, receiver: receiver)
    }.get()
    return try await receiver.done.futureResult.get()
}

/// A chat request head with the key, and `edit` applied.
private func head(port: Int, _ edit: (inout HTTPRequestHead) -> Void = { _ in }) -> HTTPRequestHead {
    var headers = HTTPHeaders()
    headers.add(name: "host", value: "127.0.0.1:\(port)")
    headers.add(name: "content-type", value: "application/json")
    headers.add(name: "authorization", value: "Bearer \(demoKey)")
    var h = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions", headers: headers)
    edit(&h)
    return h
}

@Suite("The upstream writer refuses a head that would end a line early", .serialized)
struct RequestHeadCheckTests {
    @Test("an injected header value, request target, method or header name fails the exchange; nothing reaches the provider")
    func refusesInjectedHeads() async throws {
        let provider = FakeProvider(configuration: .init(requiredKey: demoKey))
        let port = try await provider.start()
        let client = try UpstreamClient()
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let injected: [(String, (inout HTTPRequestHead) -> Void)] = [
            ("header value", { $0.headers.add(name: "anthropic-version", value: "2023-06-01\r\nX-Injected: yes") }),
            ("lone LF in a value", { $0.headers.add(name: "x-a", value: "a\nX-Injected: yes") }),
            ("NUL in a value", { $0.headers.add(name: "x-a", value: "a\u{0}b") }),
            ("request target", { $0.uri = "/v1/chat HTTP/1.1\r\nX-Injected: yes\r\nX-Pad: x" }),
            ("space in the target", { $0.uri = "/v1/chat completions" }),
            ("method", { $0.method = .RAW(value: "POST /x HTTP/1.1\r\nX-Injected: yes\r\n") }),
            ("header name", { $0.headers.add(name: "x-a\r\nX-Injected", value: "yes") }),
        ]
        for (what, edit) in injected {
            #expect(try await send(client, port: port, head: head(port: port, edit), on: loop) == [.failed("invalidRequest")], "\(what)")
        }
        #expect(provider.recordedRequests().isEmpty)
        #expect(provider.openConnections == 0, "not even a connection was opened")
        // The client carries on, and a tab in a value (allowed in a header field) goes through.
        let fine = try await send(client, port: port, head: head(port: port) { $0.headers.add(name: "x-note", value: "a\tb") }, on: loop)
        #expect(status(fine) == 200)
        #expect(provider.recordedRequests().count == 1)
        await client.shutdown()
        try await provider.stop()
    }

    @Test("the refusal names the header, never its value")
    func problemNamesNoValue() {
        var h = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions")
        h.headers.add(name: "authorization", value: "Bearer \(demoKey)\r\nX-Injected: yes")
        let problem = RequestHeadCheck.problem(h)
        #expect(problem == "the value of header authorization holds a control character")
        #expect(problem?.contains(demoKey) == false)
        #expect(RequestHeadCheck.problem(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/openai/deployments/d/chat/completions?api-version=2024-02-01")) == nil)
    }
}
