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
    /// A keep-alive connection with no request in progress, or a client that stops sending
    /// mid-request, is closed after this long without a byte. A response in progress (a long
    /// stream) is not subject to it.
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
///
/// The `send…` methods return the write's future and may be called from the connection's event
/// loop (the upstream relay does); the `async` ones await it.
public struct ResponseWriter: Sendable {
    let channel: any Channel
    let closeAfter: Bool
    let state: ResponseState

    /// Tracks what was written, so the server can finish a response a handler left open.
    final class ResponseState: Sendable {
        let value = Mutex<(headSent: Bool, ended: Bool, failed: Bool)>((false, false, false))

        func markFailed() { value.withLock { $0.failed = true } }
    }

    public var allocator: ByteBufferAllocator { channel.allocator }
    public var eventLoop: any EventLoop { channel.eventLoop }
    public var headSent: Bool { state.value.withLock { $0.headSent } }

    func sendHead(status: HTTPResponseStatus, headers: HTTPHeaders) -> EventLoopFuture<Void> {
        var headers = headers
        if closeAfter { headers.replaceOrAdd(name: "connection", value: "close") }
        state.value.withLock { $0.headSent = true }
        return tracked(channel.writeAndFlush(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))))
    }

    func sendBody(_ buffer: ByteBuffer, flush: Bool = true) -> EventLoopFuture<Void> {
        let part = HTTPServerResponsePart.body(.byteBuffer(buffer))
        return tracked(flush ? channel.writeAndFlush(part) : channel.write(part))
    }

    func flush() { channel.flush() }

    func sendEnd() -> EventLoopFuture<Void> {
        state.value.withLock { $0.ended = true }
        return tracked(channel.writeAndFlush(HTTPServerResponsePart.end(nil)))
    }

    private func tracked(_ future: EventLoopFuture<Void>) -> EventLoopFuture<Void> {
        let state = self.state
        future.whenFailure { _ in state.markFailed() }
        return future
    }

    public func writeHead(status: HTTPResponseStatus, headers: HTTPHeaders) async throws {
        try await sendHead(status: status, headers: headers).get()
    }

    public func writeBody(_ buffer: ByteBuffer) async throws {
        try await sendBody(buffer).get()
    }

    public func writeBody(_ bytes: some Sequence<UInt8>) async throws {
        try await writeBody(allocator.buffer(bytes: bytes))
    }

    public func end() async throws {
        try await sendEnd().get()
    }

    /// A complete response with a `Content-Length`, written and flushed at once.
    public func respond(status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer) async throws {
        var headers = headers
        headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
        if closeAfter { headers.replaceOrAdd(name: "connection", value: "close") }
        state.value.withLock {
            $0.headSent = true
            $0.ended = true
        }
        let head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
        let channel = self.channel
        let written: EventLoopFuture<Void>
        if channel.eventLoop.inEventLoop {
            written = Self.writeWhole(channel, head, body)
        } else {
            written = channel.eventLoop.flatSubmit { Self.writeWhole(channel, head, body) }
        }
        try await tracked(written).get()
    }

    public func respond(status: HTTPResponseStatus, headers: HTTPHeaders, body: some Sequence<UInt8>) async throws {
        try await respond(status: status, headers: headers, body: allocator.buffer(bytes: body))
    }

    private static func writeWhole(_ channel: any Channel, _ head: HTTPResponseHead, _ body: ByteBuffer) -> EventLoopFuture<Void> {
        channel.write(HTTPServerResponsePart.head(head), promise: nil)
        if body.readableBytes > 0 { channel.write(HTTPServerResponsePart.body(.byteBuffer(body)), promise: nil) }
        return channel.writeAndFlush(HTTPServerResponsePart.end(nil))
    }
}

public protocol HTTPHandler: Sendable {
    func handle(_ request: ServerRequest, _ writer: ResponseWriter) async
    /// Answer for a request the server rejects before the handler sees it (body too large).
    func reject(status: HTTPResponseStatus, message: String, requestHead: HTTPRequestHead, _ writer: ResponseWriter) async
}

/// An HTTP/1.1 server on SwiftNIO: keep-alive, body and header limits, idle timeouts against slow
/// clients, and a graceful drain (stop accepting, finish in-flight requests, close idle
/// connections). Each connection is a channel handler that collects one request at a time and
/// hands it to the `HTTPHandler` in a task on the connection's event loop.
public final class HTTPServer<Handler: HTTPHandler>: Service, Sendable {
    public let host: String
    public let requestedPort: Int
    public let limits: ServerLimits
    let handler: Handler
    let logger: Logger
    let group: any EventLoopGroup
    private let bound = Mutex<(port: Int?, waiters: [CheckedContinuation<Int, any Error>])>((nil, []))
    let connections = ConnectionRegistry()
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

    private func publish(_ result: Result<Int, any Error>) {
        let waiters = bound.withLock { s in
            if case .success(let port) = result { s.port = port }
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(with: result) }
    }

    public func run() async throws {
        let limits = self.limits
        let server: any Channel
        do {
            server = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
                        decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
                        decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
                        let sync = channel.pipeline.syncOperations
                        try sync.configureHTTPServerPipeline(
                            withPipeliningAssistance: true, withErrorHandling: true, withOutboundHeaderValidation: true,
                            withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
                        try sync.addHandler(IdleStateHandler(readTimeout: TimeAmount(limits.idleTimeout)))
                        try sync.addHandler(ConnectionHandler(server: self))
                    }
                }
                .bind(host: host, port: requestedPort).get()
        } catch {
            publish(.failure(error))
            throw error
        }
        let port = server.localAddress?.port ?? requestedPort
        publish(.success(port))
        logger.info("listening", metadata: ["server": "\(name)", "address": "\(host):\(port)"])

        let connections = self.connections
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await server.closeFuture.get()
                await connections.waitUntilEmpty()
            } onGracefulShutdown: {
                self.logger.info("draining", metadata: ["server": "\(self.name)"])
                self.onDrain()
                server.close(promise: nil)
                connections.drain()
            }
        } onCancel: {
            server.close(promise: nil)
            connections.closeAll()
        }
        logger.info("stopped", metadata: ["server": "\(name)"])
    }
}

/// One client connection: collects a request (head and bounded body), runs the handler in a task,
/// and finishes what the handler left open. `HTTPServerPipelineHandler` in front of it delivers
/// the next request only once the previous response has ended.
final class ConnectionHandler<Handler: HTTPHandler>: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Between requests.
        case idle
        case receiving(HTTPRequestHead, ByteBuffer)
        /// The request is answered (or being rejected); its remaining parts are ignored.
        case answering
    }

    private let server: HTTPServer<Handler>
    private var state = State.idle
    private var id = 0
    private var served = 0
    private var remoteAddress: String?
    /// The response in progress, and the task producing it.
    private var writer: ResponseWriter?
    private var task: Task<Void, Never>?

    init(server: HTTPServer<Handler>) {
        self.server = server
    }

    func handlerAdded(context: ChannelHandlerContext) {
        id = server.connections.add(context.channel)
        remoteAddress = context.channel.remoteAddress?.description
    }

    func channelInactive(context: ChannelHandlerContext) {
        server.connections.remove(id)
        // The client went away: stop the work done on its behalf (upstream attempts included).
        task?.cancel()
        task = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            server.connections.setBusy(id, true)
            writer = nil
            if let declared = head.headers.first(name: "content-length").flatMap(Int.init), declared > server.limits.maxBodyBytes {
                reject(context: context, head: head)
            } else {
                state = .receiving(head, context.channel.allocator.buffer(capacity: 0))
            }
        case .body(var chunk):
            guard case .receiving(let head, var body) = state else { return }
            if body.readableBytes + chunk.readableBytes > server.limits.maxBodyBytes {
                reject(context: context, head: head)
                return
            }
            state = .answering  // Drop the enum's reference, so appending does not copy the buffer.
            if body.readableBytes == 0 {
                body = chunk
            } else {
                body.writeBuffer(&chunk)
            }
            state = .receiving(head, body)
        case .end:
            guard case .receiving(let head, let body) = state else { return }
            state = .answering
            let request = ServerRequest(head: head, body: body, remoteAddress: remoteAddress)
            dispatch(context: context, head: head, tooLarge: false) { handler, writer in
                await handler.handle(request, writer)
            }
        }
    }

    private func reject(context: ChannelHandlerContext, head: HTTPRequestHead) {
        state = .answering
        let limit = server.limits.maxBodyBytes
        dispatch(context: context, head: head, tooLarge: true) { handler, writer in
            await handler.reject(status: .payloadTooLarge, message: "request body exceeds the limit of \(limit) bytes", requestHead: head, writer)
        }
    }

    private func dispatch(
        context: ChannelHandlerContext, head: HTTPRequestHead, tooLarge: Bool,
        _ body: @escaping @Sendable (Handler, ResponseWriter) async -> Void
    ) {
        served += 1
        let closeAfter = tooLarge || !head.isKeepAlive || server.connections.isDraining || served >= server.limits.maxRequestsPerConnection
        let writer = ResponseWriter(channel: context.channel, closeAfter: closeAfter, state: .init())
        self.writer = writer
        let handler = server.handler
        let connections = server.connections
        let id = self.id
        // Started from the event loop, the task runs on it (NIO is the global executor), and so do
        // the upstream calls made for it.
        task = Task {
            await body(handler, writer)
            let (headSent, ended, failed) = writer.state.value.withLock { $0 }
            if failed {
                writer.channel.close(promise: nil)
            } else if !ended {
                // The handler gave up mid-response: the client cannot tell a cut body from a
                // complete one unless the connection closes.
                if !headSent {
                    await handler.reject(status: .internalServerError, message: "internal error", requestHead: head, writer)
                }
                writer.channel.close(promise: nil)
            } else if closeAfter {
                writer.channel.close(promise: nil)
            } else {
                connections.setBusy(id, false)
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? IdleStateHandler.IdleStateEvent, e == .read {
            // Idle between requests, or a client that stopped sending mid-request. A response in
            // progress (a long stream) is left alone.
            switch state {
            case .idle, .receiving:
                context.close(promise: nil)
            case .answering:
                let finished = writer.map { w in w.state.value.withLock { $0.ended || $0.failed } } ?? true
                if finished { context.close(promise: nil) }
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        server.logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}

/// Open client connections, so a drain can close the idle ones at once and wait for the rest.
final class ConnectionRegistry: Sendable {
    private struct State {
        var next = 0
        var channels: [Int: (channel: any Channel, busy: Bool)] = [:]
        var draining = false
        var emptyWaiters: [CheckedContinuation<Void, Never>] = []
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
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.channels.removeValue(forKey: id)
            guard s.channels.isEmpty else { return [] }
            defer { s.emptyWaiters = [] }
            return s.emptyWaiters
        }
        for w in waiters { w.resume() }
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

    func closeAll() {
        let all = state.withLock { s in
            s.draining = true
            return s.channels.values.map(\.channel)
        }
        for c in all { c.close(promise: nil) }
    }

    /// Returns once no connection is open.
    func waitUntilEmpty() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let empty = state.withLock { s in
                if s.channels.isEmpty { return true }
                s.emptyWaiters.append(c)
                return false
            }
            if empty { c.resume() }
        }
    }
}

extension TimeAmount {
    init(_ d: Duration) {
        let c = d.components
        self = .nanoseconds(c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000)
    }
}
