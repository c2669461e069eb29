@testable import AIGatewayProxy
import AIGatewayTesting
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// What one exchange reported, collected on its event loop.
final class RecordingReceiver: UpstreamResponseReceiver, @unchecked Sendable {
    // @unchecked: the client calls back on the loop the exchange started on; the test reads
    // `result` only once it is complete.
    enum Event: Equatable {
        case head(Int)
        case body(String)
        case end
        case failed(String)
    }

    var events: [Event] = []
    let done: EventLoopPromise<[Event]>

    init(loop: any EventLoop) {
        done = loop.makePromise()
    }

    func upstreamHead(_ head: HTTPResponseHead) { events.append(.head(Int(head.status.code))) }
    func upstreamBody(_ part: ByteBuffer) -> EventLoopFuture<Void>? {
        events.append(.body(String(buffer: part)))
        return nil
    }
    func upstreamEnd() {
        events.append(.end)
        done.succeed(events)
    }
    func upstreamFailed(_ error: UpstreamError) {
        events.append(.failed(error.label))
        done.succeed(events)
    }
}

/// One chat request through `client` to `provider`, on one of the singleton group's loops.
func exchange(
    _ client: UpstreamClient, port: Int, host: String = "127.0.0.1", tls: Bool = false, model: String = "gpt-4o",
    on loop: any EventLoop = MultiThreadedEventLoopGroup.singleton.any()
) async throws -> [RecordingReceiver.Event] {
    var headers = HTTPHeaders()
    headers.add(name: "host", value: "\(host):\(port)")
    headers.add(name: "content-type", value: "application/json")
    headers.add(name: "authorization", value: "Bearer \(demoKey)")
    let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions", headers: headers)
    let body = ByteBuffer(string: #"{"model":"\#(model)","messages":[{"role":"user","content":"hi"}]}"#)
    let receiver = RecordingReceiver(loop: loop)
    try await loop.submit {
        _ = client.execute(origin: UpstreamOrigin(tls: tls, host: host, port: port), head: head, body: body, on: loop, receiver: receiver)
    }.get()
    return try await receiver.done.futureResult.get()
}

func status(_ events: [RecordingReceiver.Event]) -> Int? {
    for case .head(let s) in events { return s }
    return nil
}

@Suite("The upstream client: keep-alive pool per event loop", .serialized)
struct UpstreamClientTests {
    @Test("sequential exchanges on one event loop share one kept-alive connection, and the whole body arrives")
    func reusesConnections() async throws {
        let provider = FakeProvider(configuration: .init(requiredKey: demoKey))
        let port = try await provider.start()
        let client = try UpstreamClient()
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        for _ in 0..<5 {
            let events = try await exchange(client, port: port, on: loop)
            #expect(status(events) == 200)
            #expect(events.last == .end)
            let body = events.compactMap { if case .body(let b) = $0 { b } else { nil } }.joined()
            #expect(body.contains(#""object":"chat.completion""#))
        }
        #expect(provider.openConnections == 1, "one connection carried all five requests")
        #expect(provider.recordedRequests().count == 5)
        #expect(await client.idleConnectionCount() == 1)
        // Another event loop has a pool of its own (when the machine has more than one).
        if let other = MultiThreadedEventLoopGroup.singleton.makeIterator().first(where: { $0 !== loop }) {
            #expect(status(try await exchange(client, port: port, on: other)) == 200)
            #expect(provider.openConnections == 2)
        }
        await client.shutdown()
        try await waitUntil { provider.openConnections == 0 }
        try await provider.stop()
    }

    @Test("a connection idle for longer than the idle timeout is closed")
    func closesIdleConnections() async throws {
        let provider = FakeProvider()
        let port = try await provider.start()
        var configuration = UpstreamClient.Configuration()
        configuration.idleTimeout = .milliseconds(300)
        let client = try UpstreamClient(configuration: configuration)
        #expect(status(try await exchange(client, port: port)) == 200)
        #expect(provider.openConnections == 1)
        try await waitUntil { provider.openConnections == 0 }
        #expect(await client.idleConnectionCount() == 0)
        // The next exchange simply opens a new connection.
        #expect(status(try await exchange(client, port: port)) == 200)
        await client.shutdown()
        try await provider.stop()
    }

    @Test("a pooled connection the server closed is not reused: the next exchange gets a fresh one")
    func skipsConnectionsTheServerClosed() async throws {
        let first = FakeProvider()
        let port = try await first.start()
        let client = try UpstreamClient()
        #expect(status(try await exchange(client, port: port)) == 200)
        try await first.stop()
        // The client notices the close on its event loop; a new server takes the port.
        try await waitUntil { await client.idleConnectionCount() == 0 }
        let second = FakeProvider(configuration: .init(port: port))
        _ = try await second.start()
        let events = try await exchange(client, port: port)
        #expect(status(events) == 200)
        #expect(second.recordedRequests().count == 1)
        await client.shutdown()
        try await second.stop()
    }

    @Test("a server that resets before answering fails the exchange before any head; nothing is pooled")
    func resetBeforeHead() async throws {
        let provider = FakeProvider(configuration: .init(faults: ["gpt-4o": try FaultSpec(parsing: "reset")]))
        let port = try await provider.start()
        let client = try UpstreamClient()
        let events = try await exchange(client, port: port)
        // A reset shows as an error or as the connection closing, depending on timing; either way
        // it is the one event, and no head came before it.
        #expect(events.count == 1, "\(events)")
        #expect(events.allSatisfy { if case .failed = $0 { true } else { false } }, "\(events)")
        #expect(await client.idleConnectionCount() == 0)
        // A healthy model on the same server works on a new connection.
        #expect(status(try await exchange(client, port: port, model: "gpt-3.5-turbo")) == 200)
        await client.shutdown()
        try await provider.stop()
    }

    @Test("nothing listening: a connect failure, reported at once")
    func connectRefused() async throws {
        let provider = FakeProvider()
        let port = try await provider.start()
        try await provider.stop()
        let client = try UpstreamClient()
        #expect(try await exchange(client, port: port) == [.failed("connect")])
        await client.shutdown()
    }

    @Test("after shutdown, idle connections are closed and new exchanges are refused")
    func shutdownRefuses() async throws {
        let provider = FakeProvider()
        let port = try await provider.start()
        let client = try UpstreamClient()
        #expect(status(try await exchange(client, port: port)) == 200)
        await client.shutdown()
        try await waitUntil { provider.openConnections == 0 }
        #expect(try await exchange(client, port: port) == [.failed("shutdown")])
        try await provider.stop()
    }

    @Test("an unreadable CA file is an error when the client is made, not on the first request")
    func badCAFile() {
        var configuration = UpstreamClient.Configuration()
        configuration.additionalCAFile = "/nonexistent/ca.pem"
        #expect(throws: (any Error).self) { try UpstreamClient(configuration: configuration) }
    }
}
