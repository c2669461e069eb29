@testable import AIGatewayProxy
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// A server on loopback that answers each request with bytes given by the test, as they are:
/// what a real provider's server (or a broken one) puts on the wire.
final class CannedServer: Sendable {
    struct Answer: Sendable {
        /// Written one after the other, each flushed on its own.
        var pieces: [String]
        /// Close the connection after the answer.
        var close = false
    }

    private let answer: @Sendable (_ requestIndex: Int) -> Answer
    private let counts = Mutex((accepted: 0, requests: 0))
    private let channel = Mutex<(any Channel)?>(nil)

    init(_ answer: @escaping @Sendable (_ requestIndex: Int) -> Answer) {
        self.answer = answer
    }

    var accepted: Int { counts.withLock { $0.accepted } }

    func start() async throws -> Int {
        let c = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { [self] child in
                counts.withLock { $0.accepted += 1 }
                return child.eventLoop.makeCompletedFuture { try child.pipeline.syncOperations.addHandler(Handler(server: self)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        channel.withLock { $0 = c }
        return c.localAddress!.port!
    }

    func stop() async throws {
        try await channel.withLock { $0 }?.close()
    }

    fileprivate func nextAnswer() -> Answer {
        let i = counts.withLock { c in
            defer { c.requests += 1 }
            return c.requests
        }
        return answer(i)
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let server: CannedServer
        var received = ""

        init(server: CannedServer) { self.server = server }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received += String(buffer: unwrapInboundIn(data))
            // Whole requests only: the head, then its body (chunked, or as long as its length says).
            while let headEnd = received.firstRange(of: "\r\n\r\n") {
                let head = received[..<headEnd.lowerBound].lowercased()
                let bodyStart = received.utf8.distance(from: received.startIndex, to: headEnd.upperBound)
                let total: Int
                if head.contains("transfer-encoding: chunked") {
                    guard let last = received[headEnd.upperBound...].firstRange(of: "0\r\n\r\n") else { return }
                    total = received.utf8.distance(from: received.startIndex, to: last.upperBound)
                } else {
                    let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length: ") }.flatMap { Int($0.dropFirst(16)) } ?? 0
                    total = bodyStart + length
                }
                guard received.utf8.count >= total else { return }
                received = String(decoding: received.utf8.dropFirst(total), as: UTF8.self)
                let answer = server.nextAnswer()
                for piece in answer.pieces {
                    context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: piece)), promise: nil)
                }
                if answer.close {
                    context.close(promise: nil)
                    return
                }
            }
        }
    }
}

@Suite("The upstream client reads what servers put on the wire", .serialized)
struct UpstreamWireTests {
    /// Runs `count` sequential exchanges against a server answering with `answer`, and returns
    /// each one's events, the connections the server accepted and the client's idle connections.
    func run(_ count: Int = 1, _ answer: @escaping @Sendable (Int) -> CannedServer.Answer) async throws -> (events: [[RecordingReceiver.Event]], accepted: Int, idle: Int) {
        let server = CannedServer(answer)
        let port = try await server.start()
        let client = try UpstreamClient()
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        var all: [[RecordingReceiver.Event]] = []
        for _ in 0..<count { all.append(try await exchange(client, port: port, on: loop)) }
        let idle = await client.idleConnectionCount()
        await client.shutdown()
        try await server.stop()
        return (all, server.accepted, idle)
    }

    @Test("content-length and keep-alive: the body whole, and one connection carries every exchange")
    func keptAlive() async throws {
        let r = try await run(3) { _ in .init(pieces: ["HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n", "{}"]) }
        #expect(r.events == Array(repeating: [.head(200), .body("{}"), .end], count: 3))
        #expect(r.accepted == 1)
        #expect(r.idle == 1)
    }

    @Test("connection: close: the exchange ends well and the connection is not pooled; the next one opens another")
    func connectionClose() async throws {
        let r = try await run(2) { _ in .init(pieces: ["HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"], close: true) }
        #expect(r.events == [[.head(200), .body("ok"), .end], [.head(200), .body("ok"), .end]])
        #expect(r.accepted == 2)
        #expect(r.idle == 0)
    }

    @Test("a body that runs until the close ends the exchange well when the server closes; nothing is pooled")
    func untilClose() async throws {
        let r = try await run(2) { _ in .init(pieces: ["HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello ", "world"], close: true) }
        for events in r.events {
            #expect(events.first == .head(200) && events.last == .end, "\(events)")
            #expect(events.compactMap { if case .body(let b) = $0 { b } else { nil } }.joined() == "hello world")
        }
        #expect(r.accepted == 2)
        #expect(r.idle == 0)
    }

    @Test("chunked across several writes, with an interim 100 Continue before it and trailers after")
    func chunkedInPieces() async throws {
        let r = try await run(2) { _ in
            .init(pieces: ["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc", "\r\n4;x=y\r\ndefg\r", "\n0\r\nX-T: 1\r\n\r\n"])
        }
        for events in r.events {
            #expect(events.first == .head(200) && events.last == .end, "\(events)")
            #expect(events.compactMap { if case .body(let b) = $0 { b } else { nil } }.joined() == "abcdefg")
        }
        #expect(r.accepted == 1)
        #expect(r.idle == 1)
    }

    @Test("a malformed answer fails the exchange as a protocol error, and the connection is dropped")
    func malformed() async throws {
        let r = try await run(2) { _ in .init(pieces: ["HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"]) }
        #expect(r.events == [[.failed("protocolError")], [.failed("protocolError")]])
        #expect(r.accepted == 2)
        #expect(r.idle == 0)
    }

    @Test("a head over the limit fails the exchange")
    func oversizeHead() async throws {
        let big = String(repeating: "a", count: 70 * 1024)
        let r = try await run { _ in .init(pieces: ["HTTP/1.1 200 OK\r\nX-Big: \(big)\r\nContent-Length: 0\r\n\r\n"]) }
        #expect(r.events == [[.failed("protocolError")]])
    }

    @Test("bytes after the end of an answer (a second answer to one request): the exchange ends well, the connection is not reused")
    func outOfStep() async throws {
        let r = try await run(2) { _ in .init(pieces: ["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"]) }
        #expect(r.events == [[.head(200), .body("a"), .end], [.head(200), .body("a"), .end]])
        #expect(r.accepted == 2)
    }
}
