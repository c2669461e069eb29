import Dispatch
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

@testable import AIGatewayProxy

/// Answers every request with its target (and a LF, as the admin handler ends its bodies), on the
/// connection's event loop, and calls `done` from another thread afterwards (or, with
/// `answer: false`, calls it there without answering).
private struct OffLoopDoneHandler: HTTPHandler {
    var answer = true

    func handle(_ request: ServerRequest, _ writer: ResponseWriter, done: @escaping @Sendable () -> Void) {
        if answer { writer.respond(status: .ok, headers: [:], body: ByteBuffer(string: request.parsed.uri + "\n")) }
        DispatchQueue.global().async { done() }
    }

    func reject(status: HTTPResponseStatus, message: String, requestHead: HTTPRequestHead, _ writer: ResponseWriter) {
        writer.respond(status: status, headers: [:], body: ByteBuffer(string: "\(message) \(requestHead.uri)"))
    }
}

/// Answers every request with its target (and a LF), and before that calls the `done` of the request before
/// it again: a late, second call for a request that is over.
private final class StaleDoneHandler: HTTPHandler {
    private let previous = Mutex<(@Sendable () -> Void)?>(nil)

    func handle(_ request: ServerRequest, _ writer: ResponseWriter, done: @escaping @Sendable () -> Void) {
        let stale = previous.withLock { p in
            defer { p = done }
            return p
        }
        stale?()
        writer.respond(status: .ok, headers: [:], body: ByteBuffer(string: request.parsed.uri + "\n"))
        done()
    }

    func reject(status: HTTPResponseStatus, message: String, requestHead: HTTPRequestHead, _ writer: ResponseWriter) {
        writer.respond(status: status, headers: [:], body: ByteBuffer(string: message))
    }
}

@Suite("A handler's done: from any thread, once per request; a late call for an earlier request changes nothing")
struct HandlerDoneTests {
    private static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    @Test("done called on another thread after the answer: pipelined requests are answered in order, on one connection")
    func offLoopDone() async throws {
        let out = try await Self.exchange(
            OffLoopDoneHandler(), "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\nConnection: close\r\n\r\n")
        #expect(EmbeddedConnection.statuses(out) == ["HTTP/1.1 200", "HTTP/1.1 200", "HTTP/1.1 200"], "\(out)")
        let bodies = out.components(separatedBy: "\r\n\r\n").dropFirst().map { $0.prefix(2) }
        #expect(bodies == ["/a", "/b", "/c"], "\(out)")
    }

    @Test("done called on another thread without an answer: the server answers 500 for that request and closes the connection")
    func offLoopDoneWithoutAnswer() async throws {
        let out = try await Self.exchange(OffLoopDoneHandler(answer: false), "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
        #expect(EmbeddedConnection.statuses(out) == ["HTTP/1.1 500"], "\(out)")
        #expect(out.hasSuffix("internal error /a"), "\(out)")
    }

    @Test("a second, late done for the request before: the current answer is whole and the connection stays open")
    func staleDone() throws {
        let channel = EmbeddedChannel()
        let server = HTTPServer(name: "test", host: "127.0.0.1", port: 0, handler: StaleDoneHandler(), logger: Self.logger)
        try server.configureConnection(channel.pipeline.syncOperations)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n"))
        channel.embeddedEventLoop.run()
        var out = ""
        while let part = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let b) = part { out += String(buffer: b) }
        }
        #expect(EmbeddedConnection.statuses(out) == ["HTTP/1.1 200", "HTTP/1.1 200", "HTTP/1.1 200"], "\(out)")
        #expect(out.hasSuffix("/c\n"), "\(out)")
        #expect(channel.isActive)
        _ = try? channel.finish()
    }

    /// Runs a server with `handler` on loopback, sends `requests` on one connection and returns
    /// what came back before the server closed it (the test fails if it is still open after 20 s).
    private static func exchange(_ handler: some HTTPHandler, _ requests: String) async throws -> String {
        let server = HTTPServer(name: "test", host: "127.0.0.1", port: 0, handler: handler, logger: logger)
        let running = Task { try await server.run() }
        defer { running.cancel() }
        let port = try await server.listeningPort()
        let received = Collector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(received) } }
            .connect(host: "127.0.0.1", port: port).get()
        let closedByUs = ClosedByUs()
        let guardTimer = channel.eventLoop.scheduleTask(in: .seconds(20)) {
            closedByUs.set()
            channel.close(promise: nil)
        }
        try await channel.writeAndFlush(ByteBuffer(string: requests)).get()
        try await channel.closeFuture.get()
        guardTimer.cancel()
        #expect(!closedByUs.value, "the server closed the connection")
        return received.text
    }
}

private final class Collector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let received = Mutex("")
    var text: String { received.withLock { $0 } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        received.withLock { $0 += String(buffer: bytes) }
    }
}
