import AIGatewayProxy
import NIOCore
import NIOPosix
import Synchronization
import Testing

@Suite("Client connections: idle timeouts apply between requests, not to a response in progress", .serialized)
struct ConnectionTests {
    @Test("a stream that lasts longer than the client idle timeout is relayed to the end")
    func longStreamOutlastsIdleTimeout() async throws {
        var limits = ServerLimits()
        limits.idleTimeout = .milliseconds(500)
        // 12 tokens 150 ms apart: the client sends nothing for about 1.8 s while the answer streams.
        try await withGateway(tokens: 12, tokenInterval: .milliseconds(150), limits: limits) { h in
            let r = try await h.send(body: Harness.question(stream: true))
            #expect(r.status == 200)
            let s = StreamResult(r.body)
            #expect(s.done, "the stream ended with [DONE], not cut by the idle timeout")
            #expect(s.error == nil)
            #expect(!s.text.isEmpty)
            #expect(r.servedModel == "gpt-4o")
        }
    }

    @Test("a client that stops sending in the middle of a request is disconnected after the idle timeout")
    func slowClientIsClosed() async throws {
        var limits = ServerLimits()
        limits.idleTimeout = .milliseconds(300)
        try await withGateway(limits: limits) { h in
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: h.port).get()
            let closedByUs = ClosedByUs()
            // A guard so the test cannot hang: if the gateway never closes, we do, and say so.
            let guardTimer = channel.eventLoop.scheduleTask(in: .seconds(20)) {
                closedByUs.set()
                channel.close(promise: nil)
            }
            try await channel.writeAndFlush(ByteBuffer(string: "POST /model HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: appl")).get()
            try await channel.closeFuture.get()
            guardTimer.cancel()
            #expect(!closedByUs.value, "the gateway closed the stalled connection")
            // Other clients are served as usual.
            #expect(try await h.send().status == 200)
        }
    }
}

final class ClosedByUs: Sendable {
    private let flag = Mutex(false)
    var value: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}

@Suite("A client that goes away", .serialized)
struct ClientGoneTests {
    @Test("closing the connection while the gateway waits on a silent model cancels the attempt: no failover, the upstream connection is dropped, counted as 499")
    func clientGoneCancelsUpstream() async throws {
        // gpt-4o never answers. With a 1 s first-byte timeout, a gateway that kept working for a
        // client that left would move on to gpt-4.0-turbo a second later and count the request
        // as 200. The checks below wait for the request to be counted (whatever its status), so
        // that outcome would be seen, not outrun by the test.
        try await withGateway(faults: ["gpt-4o": "silence"], backendAnnotations: ["ai-gateway.kgateway.dev/first-byte-timeout": "1s"]) { h in
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: h.port).get()
            let body = Harness.question()
            let request = "POST /model HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)"
            try await channel.writeAndFlush(ByteBuffer(string: request)).get()
            try await waitUntil { h.provider.recordedRequests().count == 1 }
            #expect(h.provider.openConnections == 1)
            try await channel.close()

            let counted = #"aigw_requests_total{route="kgateway-system/model-failover",status=""#
            try await waitUntil { try await h.admin("/metrics").body.contains(counted) }
            let metrics = try await h.admin("/metrics").body
            #expect(metrics.contains(counted + #"499"} 1"#), "counted once, as 499")
            #expect(!metrics.contains(counted + #"200""#))
            try await waitUntil { h.provider.openConnections == 0 }
            #expect(h.provider.recordedRequests().map(\.model) == ["gpt-4o"], "no other model is tried for a client that left")
        }
    }

    @Test("a client that leaves mid-request is counted once, as 499, and nothing answers it (no 500 on route -)")
    func clientGoneCountedOnce() async throws {
        try await withGateway(faults: ["gpt-4o": "silence"]) { h in
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: h.port).get()
            let body = Harness.question()
            let request = "POST /model HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)"
            try await channel.writeAndFlush(ByteBuffer(string: request)).get()
            // The request is in flight: the provider has it and keeps silent.
            try await waitUntil { h.provider.recordedRequests().count == 1 }
            try await channel.close()
            let clientGone = #"aigw_requests_total{route="kgateway-system/model-failover",status="499"} 1"#
            try await waitUntil { try await h.admin("/metrics").body.contains(clientGone) }
            // Whatever the connection's safety net would count is counted with the 499 (same loop turn).
            let metrics = try await h.admin("/metrics").body
            let requestLines = metrics.split(separator: "\n").filter { $0.hasPrefix("aigw_requests_total{") }
            #expect(requestLines == [Substring(clientGone)], "exactly one request counted, as 499: \(requestLines)")
            #expect(!metrics.contains(#"aigw_requests_total{route="-""#))
        }
    }
}
