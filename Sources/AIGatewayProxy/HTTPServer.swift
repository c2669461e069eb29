import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Limits of the client-facing HTTP server. Every limit is explicit and named.
public struct ServerLimits: Sendable, Hashable {
    /// Largest request body accepted; larger gets 413.
    public var maxBodyBytes: Int = 4 * 1024 * 1024
    /// Largest total size of request header names and values; larger gets 400 and the connection closes.
    public var maxHeaderBytes: Int = 32 * 1024
    /// A connection with no request in progress, or a client that stops sending mid-request, is
    /// closed after this long without a byte.
    public var idleTimeout: Duration = .seconds(60)
    /// Requests served on one keep-alive connection before it is closed.
    public var maxRequestsPerConnection: Int = 10_000

    public init() {}
}

/// One request as the server hands it to a handler: head plus the whole (bounded) body.
public struct ServerRequest: Sendable {
    public var head: HTTPRequestHead
    public var body: ByteBuffer
    public var remoteAddress: String?
}

/// How a handler answers: a head, body parts (each awaited for back-pressure), an end.
public struct ResponseWriter: Sendable {
    let outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    let allocator: ByteBufferAllocator
    let closeAfter: Bool
    let state: ResponseState

    /// Tracks what was written, so the server can finish a response a handler left open.
    final class ResponseState: Sendable {
        let value = Mutex<(headSent: Bool, ended: Bool, failed: Bool)>((false, false, false))
    }

    public var headSent: Bool { state.value.withLock { $0.headSent } }

    public func writeHead(status: HTTPResponseStatus, headers: HTTPHeaders) async throws {
        var headers = headers
        if closeAfter { headers.replaceOrAdd(name: "connection", value: "close") }
        state.value.withLock { $0.headSent = true }
        try await guarded { try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))) }
    }

    public func writeBody(_ buffer: ByteBuffer) async throws {
        try await guarded { try await outbound.write(.body(.byteBuffer(buffer))) }
    }

    public func writeBody(_ bytes: some Sequence<UInt8>) async throws {
        try await writeBody(allocator.buffer(bytes: bytes))
    }

    public func end() async throws {
        state.value.withLock { $0.ended = true }
        try await guarded { try await outbound.write(.end(nil)) }
    }

    /// A complete response with a `Content-Length`, written (and flushed) at once.
    public func respond(status: HTTPResponseStatus, headers: HTTPHeaders, body: some Sequence<UInt8>) async throws {
        let buffer = allocator.buffer(bytes: body)
        var headers = headers
        headers.replaceOrAdd(name: "content-length", value: String(buffer.readableBytes))
        if closeAfter { headers.replaceOrAdd(name: "connection", value: "close") }
        state.value.withLock {
            $0.headSent = true
            $0.ended = true
        }
        var parts: [HTTPServerResponsePart] = [.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))]
        if buffer.readableBytes > 0 { parts.append(.body(.byteBuffer(buffer))) }
        parts.append(.end(nil))
        try await guarded { try await outbound.write(contentsOf: parts) }
    }

    private func guarded(_ op: () async throws -> Void) async throws {
        do {
            try await op()
        } catch {
            state.value.withLock { $0.failed = true }
            throw error
        }
    }
}

public protocol HTTPHandler: Sendable {
    func handle(_ request: ServerRequest, _ writer: ResponseWriter) async
    /// Answer for a request the server rejects before the handler sees it (body too large).
    func reject(status: HTTPResponseStatus, message: String, requestHead: HTTPRequestHead, _ writer: ResponseWriter) async
}

/// An HTTP/1.1 server on SwiftNIO's async channels: keep-alive, body and header limits, idle
/// timeouts against slow clients, and a graceful drain (stop accepting, finish in-flight requests,
/// close idle connections).
public final class HTTPServer<Handler: HTTPHandler>: Service, Sendable {
    public let host: String
    public let requestedPort: Int
    public let limits: ServerLimits
    let handler: Handler
    let logger: Logger
    let group: any EventLoopGroup
    private let bound = Mutex<(port: Int?, waiters: [CheckedContinuation<Int, any Error>])>((nil, []))
    private let connections = ConnectionRegistry()
    let name: String
    let onDrain: @Sendable () -> Void

    public init(
        name: String, host: String, port: Int, limits: ServerLimits = .init(), handler: Handler, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, onDrain: @escaping @Sendable () -> Void = {}
    ) {
        self.name = name
        self.onDrain = onDrain
        self.host = host
        self.requestedPort = port
        self.limits = limits
        self.handler = handler
        self.logger = logger
        self.group = group
    }

    /// Waits until the server is listening and returns its port (useful with port 0).
    public func listeningPort() async throws -> Int {
        try await withCheckedThrowingContinuation { c in
            let port: Int? = bound.withLock { s in
                if let p = s.port { return p }
                s.waiters.append(c)
                return nil
            }
            if let port { c.resume(returning: port) }
        }
    }

    public func run() async throws {
        let limits = self.limits
        let server: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
        do {
            server = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .bind(host: host, port: requestedPort) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
                        decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
                        decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                            withPipeliningAssistance: true, withErrorHandling: true, withOutboundHeaderValidation: true,
                            withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: TimeAmount(limits.idleTimeout)))
                        try channel.pipeline.syncOperations.addHandler(IdleCloser())
                        return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: false))
                    }
                }
        } catch {
            let waiters = bound.withLock { s in
                defer { s.waiters = [] }
                return s.waiters
            }
            for w in waiters { w.resume(throwing: error) }
            throw error
        }
        let port = server.channel.localAddress?.port ?? requestedPort
        let waiters = bound.withLock { s in
            s.port = port
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: port) }
        logger.info("listening", metadata: ["server": "\(name)", "address": "\(host):\(port)"])

        let connections = self.connections
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask {
                            await self.serve(connection)
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            self.logger.info("draining", metadata: ["server": "\(self.name)"])
            self.onDrain()
            server.channel.close(promise: nil)
            connections.drain()
        }
        logger.info("stopped", metadata: ["server": "\(name)"])
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        let id = connections.add(connection.channel)
        defer { connections.remove(id) }
        let remote = connection.channel.remoteAddress?.description
        do {
            try await connection.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                var served = 0
                while let part = try await iterator.next() {
                    guard case .head(let head) = part else { continue }
                    connections.setBusy(id, true)
                    var body = connection.channel.allocator.buffer(capacity: 0)
                    var tooLarge = false
                    if let declared = head.headers.first(name: "content-length").flatMap(Int.init), declared > limits.maxBodyBytes {
                        tooLarge = true
                    }
                    if !tooLarge {
                        bodyLoop: while let next = try await iterator.next() {
                            switch next {
                            case .body(var chunk):
                                if body.readableBytes + chunk.readableBytes > limits.maxBodyBytes {
                                    tooLarge = true
                                    break bodyLoop
                                }
                                body.writeBuffer(&chunk)
                            case .end:
                                break bodyLoop
                            case .head:
                                throw ServerError.protocolViolation
                            }
                        }
                    }
                    served += 1
                    let draining = connections.isDraining
                    let closeAfter = tooLarge || !head.isKeepAlive || draining || served >= limits.maxRequestsPerConnection
                    let writer = ResponseWriter(outbound: outbound, allocator: connection.channel.allocator, closeAfter: closeAfter, state: .init())
                    if tooLarge {
                        await handler.reject(
                            status: .payloadTooLarge, message: "request body exceeds the limit of \(limits.maxBodyBytes) bytes", requestHead: head, writer)
                    } else {
                        await handler.handle(ServerRequest(head: head, body: body, remoteAddress: remote), writer)
                    }
                    let (headSent, ended, failed) = writer.state.value.withLock { $0 }
                    if failed { return }
                    if !ended {
                        // The handler gave up mid-response: the client cannot tell a cut body from a
                        // complete one unless the connection closes.
                        if !headSent {
                            await handler.reject(status: .internalServerError, message: "internal error", requestHead: head, writer)
                        }
                        return
                    }
                    connections.setBusy(id, false)
                    if closeAfter { return }
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
    }

    enum ServerError: Error { case protocolViolation }
}

/// Closes a connection whose reads went idle (slow or silent clients; idle keep-alive).
final class IdleCloser: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? IdleStateHandler.IdleStateEvent, e == .read {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Open client connections, so a drain can close the idle ones at once.
final class ConnectionRegistry: Sendable {
    private struct State {
        var next = 0
        var channels: [Int: (channel: any Channel, busy: Bool)] = [:]
        var draining = false
    }

    private let state = Mutex(State())

    var isDraining: Bool { state.withLock { $0.draining } }

    func add(_ channel: any Channel) -> Int {
        let (id, draining) = state.withLock { s in
            s.next += 1
            s.channels[s.next] = (channel, false)
            return (s.next, s.draining)
        }
        if draining { channel.close(promise: nil) }
        return id
    }

    func remove(_ id: Int) {
        _ = state.withLock { $0.channels.removeValue(forKey: id) }
    }

    func setBusy(_ id: Int, _ busy: Bool) {
        let closeNow = state.withLock { s -> (any Channel)? in
            s.channels[id]?.busy = busy
            return (!busy && s.draining) ? s.channels[id]?.channel : nil
        }
        closeNow?.close(promise: nil)
    }

    func drain() {
        let idle = state.withLock { s in
            s.draining = true
            return s.channels.values.filter { !$0.busy }.map(\.channel)
        }
        for c in idle { c.close(promise: nil) }
    }
}

extension TimeAmount {
    init(_ d: Duration) {
        let c = d.components
        self = .nanoseconds(c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000)
    }
}
