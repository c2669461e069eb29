@testable import AIGatewayProxy
import AIGatewayRouting
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

/// A chat request's head and body for `model`.
func chatRequest(host: String = "127.0.0.1", port: Int, model: String = "gpt-4o") -> (HTTPRequestHead, ByteBuffer) {
    var headers = HTTPHeaders()
    headers.add(name: "host", value: "\(host):\(port)")
    headers.add(name: "content-type", value: "application/json")
    headers.add(name: "authorization", value: "Bearer \(demoKey)")
    let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions", headers: headers)
    return (head, ByteBuffer(string: #"{"model":"\#(model)","messages":[{"role":"user","content":"hi"}]}"#))
}

/// Starts one exchange per model, all in the same event-loop turn (so none can find a connection
/// another has finished with), cancels those at `cancelled` (still in that turn), and returns
/// their receivers and exchanges in order.
func startBurst(
    _ client: UpstreamClient, port: Int, models: [String], cancelled: [Int] = [], on loop: any EventLoop
) async throws -> [(receiver: RecordingReceiver, exchange: UpstreamExchange)] {
    try await loop.submit {
        let burst = models.map { model in
            let (head, body) = chatRequest(port: port, model: model)
            let receiver = RecordingReceiver(loop: loop)
            let exchange = client.execute(origin: UpstreamOrigin(tls: false, host: "127.0.0.1", port: port), head: head, body: body, on: loop, receiver: receiver)
            return (receiver, exchange)
        }
        for i in cancelled { burst[i].1.cancel() }
        return burst
    }.get()
}

/// One chat request through `client` to `provider`, on one of the singleton group's loops.
func exchange(
    _ client: UpstreamClient, port: Int, host: String = "127.0.0.1", tls: Bool = false, model: String = "gpt-4o",
    on loop: any EventLoop = MultiThreadedEventLoopGroup.singleton.any()
) async throws -> [RecordingReceiver.Event] {
    let (head, body) = chatRequest(host: host, port: port, model: model)
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
        #expect(provider.acceptedConnections == 1)
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
        // One connection was made (it may already be gone again on a loaded machine: 300 ms is
        // short); the provider never closes it itself, so it going away is the idle timeout.
        #expect(provider.acceptedConnections == 1)
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

// `UpstreamExchange` is loop-bound; the tests only carry it back to its loop.
extension UpstreamExchange: @unchecked Sendable {}

@Suite("The upstream client: connections per origin are capped; a burst waits its turn", .serialized)
struct UpstreamConnectionCapTests {
    func client(cap: Int) throws -> UpstreamClient {
        var configuration = UpstreamClient.Configuration()
        configuration.maxConnectionsPerOrigin = cap
        return try UpstreamClient(configuration: configuration)
    }

    @Test("with the cap at 2, ten concurrent requests to a slow provider open 2 connections, and all ten succeed")
    func burstSharesTheCap() async throws {
        let provider = FakeProvider(configuration: .init(faults: ["gpt-4o": try FaultSpec(parsing: "delay=100")], requiredKey: demoKey))
        let port = try await provider.start()
        let client = try client(cap: 2)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let burst = try await startBurst(client, port: port, models: Array(repeating: "gpt-4o", count: 10), on: loop)
        for (receiver, _) in burst {
            let events = try await receiver.done.futureResult.get()
            #expect(status(events) == 200, "\(events)")
            #expect(events.last == .end)
        }
        #expect(provider.acceptedConnections == 2, "two sockets carried the ten requests")
        #expect(provider.recordedRequests().count == 10)
        #expect(await client.idleConnectionCount() == 2)
        await client.shutdown()
        try await provider.stop()
    }

    @Test("waiting requests go first come, first served; one cancelled while waiting is never sent")
    func fifoAndCancelledWaiters() async throws {
        let provider = FakeProvider(configuration: .init(requiredKey: demoKey))
        let port = try await provider.start()
        let client = try client(cap: 1)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let models = ["m1", "m2", "m3", "m4", "m5"]
        // m3 gives up while it waits (as its attempt's deadline would).
        let burst = try await startBurst(client, port: port, models: models, cancelled: [2], on: loop)
        let cancelled = burst[2]
        for (i, (receiver, _)) in burst.enumerated() where i != 2 {
            #expect(status(try await receiver.done.futureResult.get()) == 200)
        }
        #expect(provider.recordedRequests().map(\.model) == ["m1", "m2", "m4", "m5"], "in the order asked, without the cancelled one")
        #expect(provider.acceptedConnections == 1)
        #expect(try await loop.submit { cancelled.receiver.events }.get().isEmpty, "the cancelled exchange hears nothing")
        cancelled.receiver.done.succeed([])  // (NIO checks that no promise is left unfulfilled)
        await client.shutdown()
        try await provider.stop()
    }

    @Test("a connection that closes makes room: the next waiting request opens a new one")
    func closedConnectionMakesRoom() async throws {
        // m1's answer closes its connection (a reset), so m2 cannot reuse it.
        let provider = FakeProvider(configuration: .init(faults: ["m1": try FaultSpec(parsing: "reset")], requiredKey: demoKey))
        let port = try await provider.start()
        let client = try client(cap: 1)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let burst = try await startBurst(client, port: port, models: ["m1", "m2"], on: loop)
        let first = try await burst[0].receiver.done.futureResult.get()
        #expect(first.allSatisfy { if case .failed = $0 { true } else { false } }, "\(first)")
        #expect(status(try await burst[1].receiver.done.futureResult.get()) == 200)
        #expect(provider.acceptedConnections == 2)
        await client.shutdown()
        try await provider.stop()
    }

    @Test("on shutdown, requests still waiting for a connection fail at once")
    func shutdownFailsWaiters() async throws {
        let provider = FakeProvider(configuration: .init(faults: ["m1": try FaultSpec(parsing: "silence")], requiredKey: demoKey))
        let port = try await provider.start()
        let client = try client(cap: 1)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let burst = try await startBurst(client, port: port, models: ["m1", "m2"], on: loop)
        try await waitUntil { provider.recordedRequests().count == 1 }
        await client.shutdown()
        #expect(try await burst[1].receiver.done.futureResult.get() == [.failed("shutdown")])
        try await provider.stop()
        #expect(try await burst[0].receiver.done.futureResult.get() == [.failed("closed")])
    }

    @Test("an attempt waiting for a connection is held to its own deadline only; if that passes, the entry was not tried and its health is untouched")
    func queuedAttemptDeadline() throws {
        var settings = BackendSettings()
        settings.firstByteTimeout = .seconds(1)
        // Waited, then got a connection: the first-byte timeout runs from then.
        let served = StreamedAttempt(settings: settings, headArrived: false)
        served.attempt.upstreamQueued()
        #expect(served.attempt.deadline > NIODeadline.now() + .seconds(50), "the attempt's deadline, not the first-byte timeout")
        served.attempt.upstreamDequeued()
        #expect(served.attempt.deadline < NIODeadline.now() + .seconds(2), "the first-byte timeout, from the dequeue")
        served.attempt.deadlinePassed()
        guard case .failed(.firstByteTimeout)? = served.result.value else {
            Issue.record("\(String(describing: served.result.value))")
            return
        }
        // Never got one.
        let starved = StreamedAttempt(settings: settings, headArrived: false)
        starved.attempt.upstreamQueued()
        starved.attempt.deadlinePassed()
        guard case .failed(let outcome)? = starved.result.value, case .unusable = outcome else {
            Issue.record("\(String(describing: starved.result.value))")
            return
        }
        #expect(!outcome.isHealthFailure)
    }

    @Test("through the gateway: with --max-upstream-connections 2, ten concurrent requests to a slow model share two connections, and all succeed")
    func gatewayBurst() async throws {
        var proxy = ProxyConfiguration()
        proxy.maxUpstreamConnections = 2
        // One event loop serves the clients, so one pool holds every upstream connection.
        try await withGateway(faults: ["gpt-4o": "delay=100"], proxy: proxy, singleLoop: true) { h in
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<10 { group.addTask { try await h.send().status } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 200, count: 10))
            #expect(h.provider.recordedRequests().count == 10)
            #expect(h.provider.acceptedConnections == 2)
        }
    }
}
