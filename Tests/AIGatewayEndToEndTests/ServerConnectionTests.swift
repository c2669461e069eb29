import AIGatewayFailover
@testable import AIGatewayProxy
import AIGatewayTelemetry
import Logging
import NIOCore
import NIOEmbedded
import Testing

/// The client connection's pipeline (the request parser feeding the connection handler) on an
/// embedded channel, answered by the admin handler: what a client gets back for given bytes.
struct EmbeddedConnection {
    static func server(limits: ServerLimits) -> HTTPServer<AdminHandler> {
        let store = TableStore()
        store.markReady()
        let handler = AdminHandler(store: store, metrics: GatewayMetrics(), health: HealthRegistry())
        return HTTPServer(name: "test", host: "127.0.0.1", port: 0, limits: limits, handler: handler, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    let channel = EmbeddedChannel()

    init(limits: ServerLimits = ServerLimits()) throws {
        try Self.server(limits: limits).configureConnection(channel.pipeline.syncOperations)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    /// Sends `pieces` one write each, and returns everything written back.
    func exchange(_ pieces: [String]) throws -> String {
        for piece in pieces where channel.isActive {
            try channel.writeInbound(ByteBuffer(string: piece))
        }
        channel.embeddedEventLoop.run()
        var out = ""
        while let part = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let b) = part { out += String(buffer: b) }
        }
        return out
    }

    /// The status lines of `output`, in order (the admin handler's bodies end with a bare LF).
    static func statuses(_ output: String) -> [String] {
        // Lines split on LF bytes (a String keeps CRLF together as one character).
        output.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            .filter { $0.hasPrefix("HTTP/1.1 ") }.map { String($0.prefix(12)) }
    }
}

@Suite("Client connections on the request parser: answers in order, 400 and close for malformed bytes")
struct ServerConnectionTests {
    @Test("pipelined requests, whole or byte by byte, are answered in order; the connection stays open")
    func pipelined() throws {
        let requests = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nPOST /healthz HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET /readyz HTTP/1.1\r\n\r\n"
        for pieces in [[requests], requests.map { String($0) }] {
            let c = try EmbeddedConnection()
            let out = try c.exchange(pieces)
            #expect(EmbeddedConnection.statuses(out) == ["HTTP/1.1 200", "HTTP/1.1 404", "HTTP/1.1 404", "HTTP/1.1 200"], "\(out)")
            #expect(c.channel.isActive)
        }
    }

    @Test("a malformed request is answered 400 in its turn, after the good ones before it, and the connection closes")
    func malformedInTurn() throws {
        let c = try EmbeddedConnection()
        let out = try c.exchange(["GET /healthz HTTP/1.1\r\n\r\nGET /readyz HTTP/1.1\r\nHost : x\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n"])
        #expect(EmbeddedConnection.statuses(out) == ["HTTP/1.1 200", "HTTP/1.1 400"], "\(out)")
        #expect(out.lowercased().hasSuffix("connection: close\r\ncontent-length: 0\r\n\r\n"))
        #expect(!c.channel.isActive)
    }

    @Test("smuggling attempts get 400 and a closed connection")
    func smuggling() throws {
        for request in [
            "POST /healthz HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /readyz HTTP/1.1\r\n\r\n",
            "POST /healthz HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
            "POST /healthz HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabcd",
            "POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4x\r\nabcd\r\n0\r\n\r\n",
        ] {
            let c = try EmbeddedConnection()
            let out = try c.exchange([request])
            #expect(EmbeddedConnection.statuses(out) == ["HTTP/1.1 400"], "\(request.debugDescription): \(out)")
            #expect(!c.channel.isActive)
        }
    }

    @Test("a head over the limit: 400 and close; a body declared over the limit: 413 at once, and close")
    func limits() throws {
        var limits = ServerLimits()
        limits.maxHeaderBytes = 256
        limits.maxBodyBytes = 10
        let big = try EmbeddedConnection(limits: limits)
        let out = try big.exchange(["GET /healthz HTTP/1.1\r\nX-Big: " + String(repeating: "y", count: 300)])
        #expect(EmbeddedConnection.statuses(out) == ["HTTP/1.1 400"])
        #expect(!big.channel.isActive)
        let body = try EmbeddedConnection(limits: limits)
        // Only the head is sent: the answer does not wait for the body.
        let tooLarge = try body.exchange(["POST /healthz HTTP/1.1\r\nContent-Length: 11\r\n\r\n"])
        #expect(EmbeddedConnection.statuses(tooLarge) == ["HTTP/1.1 413"])
        #expect(!body.channel.isActive)
        let chunked = try EmbeddedConnection(limits: limits)
        let chunkedOut = try chunked.exchange(["POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n", "6\r\nabcdef\r\n0\r\n\r\n"])
        #expect(EmbeddedConnection.statuses(chunkedOut) == ["HTTP/1.1 413"])
        #expect(!chunked.channel.isActive)
    }

    @Test("HTTP/1.0 closes after its answer unless keep-alive is asked for; Connection: close closes; HEAD gets no body")
    func keepAliveAndHead() throws {
        let http10 = try EmbeddedConnection()
        #expect(EmbeddedConnection.statuses(try http10.exchange(["GET /healthz HTTP/1.0\r\n\r\n"])) == ["HTTP/1.1 200"])
        #expect(!http10.channel.isActive)
        let kept = try EmbeddedConnection()
        #expect(EmbeddedConnection.statuses(try kept.exchange(["GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"])) == ["HTTP/1.1 200"])
        #expect(kept.channel.isActive)
        let close = try EmbeddedConnection()
        let closed = try close.exchange(["GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"])
        #expect(closed.lowercased().contains("connection: close\r\n"))
        #expect(!close.channel.isActive)
        let head = try EmbeddedConnection()
        let out = try head.exchange(["HEAD /healthz HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n"])
        #expect(out.components(separatedBy: "ok\n").count == 2, "one body, for the GET: \(out)")
        #expect(EmbeddedConnection.statuses(out) == ["HTTP/1.1 200", "HTTP/1.1 200"], "\(out.debugDescription)")
    }
}
