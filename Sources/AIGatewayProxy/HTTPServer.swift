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
    /// Largest request head (request line and header fields), and largest trailer section of a
    /// chunked body, in bytes; larger gets 400 and the connection closes.
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
    /// The head as it arrived: bytes, and where its parts lie in them.
    let parsed: RequestHead
    public var body: ByteBuffer
    public var remoteAddress: String?

    /// The head in NIO's shape, made on each use (a string per field): the gateway's own path
    /// reads `parsed`.
    public var head: HTTPRequestHead { parsed.makeHTTPRequestHead() }
}

/// How a handler answers: a complete response at once (`respond`), or a head, body parts and an
/// end (`send…`, whose futures give back-pressure; the upstream relay uses them on the
/// connection's event loop).
public struct ResponseWriter: Sendable {
    let channel: any Channel
    let closeAfter: Bool
    let state: ResponseState

    /// The connection's handler, for a forwarded answer (`respond(forwarding:)`); nil: that goes
    /// through the pipeline too.
    var link: ConnectionLink? { state.link }

    /// Tracks what was written, so the server can finish a response a handler left open; one per
    /// request, and the way back to the connection when the handler is done with it.
    final class ResponseState: Sendable {
        struct Value {
            var headSent = false
            var ended = false
            var failed = false
            /// The write of the response's end, once queued.
            var endWritten: EventLoopFuture<Void>?
            /// What to do when the client goes away before the response is over.
            var onCancel: (@Sendable () -> Void)?
        }

        let value = Mutex(Value())
        /// The connection's handler (nil: a writer made outside a server, as in tests).
        let link: ConnectionLink?

        init(link: ConnectionLink? = nil) {
            self.link = link
        }

        func markFailed() { value.withLock { $0.failed = true } }

        /// The handler has finished with the request (its `done`): on any thread.
        func handlerDone() { link?.done(self) }
    }

    /// Sets what to do if the client goes away before the response is over; the server calls it
    /// on the connection's event loop.
    public func onCancel(_ handler: @escaping @Sendable () -> Void) {
        state.value.withLock { $0.onCancel = handler }
    }

    /// The client went away.
    func cancel() {
        let handler = state.value.withLock { v in
            defer { v.onCancel = nil }
            return v.onCancel
        }
        handler?()
    }

    public var allocator: ByteBufferAllocator { channel.allocator }
    public var eventLoop: any EventLoop { channel.eventLoop }
    public var headSent: Bool { state.value.withLock { $0.headSent } }

    /// Sends the response head; `flush: false` queues it for the next flush (a stream writes its
    /// first events right after, and one flush sends both).
    func sendHead(status: HTTPResponseStatus, headers: HTTPHeaders, flush: Bool = true) -> EventLoopFuture<Void> {
        var headers = headers
        if closeAfter { headers.replaceOrAdd(name: "connection", value: "close") }
        state.value.withLock { $0.headSent = true }
        let part = HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))
        return tracked(flush ? channel.writeAndFlush(part) : channel.write(part))
    }

    /// Queues the response head for the next write or flush, without a future: a stream's head
    /// goes out gathered with its first events. A failed write closes the connection, so the
    /// writes that follow (whose futures are tracked) fail too. On the connection's event loop.
    func queueHead(status: HTTPResponseStatus, headers: HTTPHeaders) {
        var headers = headers
        if closeAfter { headers.replaceOrAdd(name: "connection", value: "close") }
        state.value.withLock { $0.headSent = true }
        channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)), promise: nil)
    }

    /// Queues body bytes without a future (see `queueHead`), e.g. the last events of a stream,
    /// written together with its end.
    func queueBody(_ buffer: ByteBuffer) {
        channel.write(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: nil)
    }

    func sendBody(_ buffer: ByteBuffer, flush: Bool = true) -> EventLoopFuture<Void> {
        let part = HTTPServerResponsePart.body(.byteBuffer(buffer))
        return tracked(flush ? channel.writeAndFlush(part) : channel.write(part))
    }

    func flush() { channel.flush() }

    func sendEnd() -> EventLoopFuture<Void> {
        let written = tracked(channel.writeAndFlush(HTTPServerResponsePart.end(nil)))
        state.value.withLock {
            $0.ended = true
            $0.endWritten = written
        }
        return written
    }

    private func tracked(_ future: EventLoopFuture<Void>) -> EventLoopFuture<Void> {
        let state = self.state
        future.whenFailure { _ in state.markFailed() }
        return future
    }

    /// A complete response with a `Content-Length`, queued and flushed at once. It does not wait
    /// for the write: a response is over once it is handed to the connection, whose writes stay
    /// in order (a connection that is to close afterwards closes once the write is done; one
    /// whose write fails is closed).
    public func respond(status: HTTPResponseStatus, headers: consuming HTTPHeaders, body: ByteBuffer) {
        headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
        if closeAfter { headers.replaceOrAdd(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
        let channel = self.channel
        // Only a connection that closes afterwards waits for the write (`closeWhenWritten`): a
        // promise nobody waits for is not made.
        let keep = closeAfter
        let written: EventLoopFuture<Void>?
        if channel.eventLoop.inEventLoop {
            written = Self.writeWhole(channel, head, body, future: keep)
        } else if keep {
            written = channel.eventLoop.flatSubmit { Self.writeWhole(channel, head, body, future: true) ?? channel.eventLoop.makeSucceededVoidFuture() }
        } else {
            written = nil
            channel.eventLoop.execute { _ = Self.writeWhole(channel, head, body, future: false) }
        }
        // Not tracked: a write that fails closes the connection anyway.
        state.value.withLock {
            $0.headSent = true
            $0.ended = true
            $0.endWritten = written
        }
    }

    public func respond(status: HTTPResponseStatus, headers: HTTPHeaders, body: some Sequence<UInt8>) {
        respond(status: status, headers: headers, body: allocator.buffer(bytes: body))
    }

    /// A provider's complete answer forwarded as `ForwardedResponse` describes it (its `close` is
    /// this writer's to set): the same bytes as `respond(status:headers:body:)` with the headers
    /// that `forwardableResponseHeaders` and `addGatewayHeaders` make, but written from the
    /// provider's head as bytes and handed to the connection's handler directly, head and body in
    /// one write and flush, without `HTTPHeaders` or response parts through the pipeline. On the
    /// connection's event loop; elsewhere (or without a link) it takes the general path.
    func respond(forwarding response: consuming ForwardedResponse) {
        response.close = closeAfter
        let channel = self.channel
        guard let link, response.status.mayHaveResponseBody, link.eventLoop.inEventLoop else {
            var h = GatewayHandler.forwardableResponseHeaders(response.upstream.headers)
            if response.jsonContentType { h.replaceOrAdd(name: "content-type", value: "application/json") }
            GatewayHandler.addGatewayHeaders(&h, response.gateway)
            return respond(status: response.status, headers: h, body: response.body)
        }
        // Only a connection that closes afterwards needs to know when the write is done
        // (`closeWhenWritten`); a failed write closes the connection anyway.
        let promise = closeAfter ? channel.eventLoop.makePromise(of: Void.self) : nil
        link.write(response, promise: promise)
        state.value.withLock {
            $0.headSent = true
            $0.ended = true
            $0.endWritten = promise?.futureResult
        }
    }

    /// Writes a whole response; the future of its end only when asked for.
    private static func writeWhole(_ channel: any Channel, _ head: HTTPResponseHead, _ body: ByteBuffer, future: Bool) -> EventLoopFuture<Void>? {
        channel.write(HTTPServerResponsePart.head(head), promise: nil)
        if body.readableBytes > 0 { channel.write(HTTPServerResponsePart.body(.byteBuffer(body)), promise: nil) }
        guard future else {
            channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
            return nil
        }
        return channel.writeAndFlush(HTTPServerResponsePart.end(nil))
    }

    /// Closes the connection once the response's end is written (at once if it never was).
    func closeWhenWritten() {
        let channel = self.channel
        if let written = state.value.withLock({ $0.endWritten }) {
            written.whenComplete { _ in channel.close(promise: nil) }
        } else {
            channel.close(promise: nil)
        }
    }
}

/// A way from a response writer to its connection's handler that skips the pipeline: a forwarded
/// answer is written by the handler itself (`ConnectionHandler.writeForwarded`), and the handler's
/// `done` reaches it through here. Its handler and context are touched only on the connection's
/// event loop, which is what makes the unchecked `Sendable` sound.
final class ConnectionLink: @unchecked Sendable {
    let eventLoop: any EventLoop
    /// Set while the handler is in the pipeline; cleared when it leaves, which also breaks the
    /// cycle handler → writer → state → link → handler.
    private var handler: ConnectionHandler?
    private var context: ChannelHandlerContext?

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// On the event loop.
    func attach(_ handler: ConnectionHandler, context: ChannelHandlerContext) {
        self.handler = handler
        self.context = context
    }

    /// On the event loop.
    func detach() {
        handler = nil
        context = nil
    }

    /// Writes a forwarded answer (`ResponseWriter.respond(forwarding:)`). On the event loop.
    func write(_ response: ForwardedResponse, promise: EventLoopPromise<Void>?) {
        guard let handler, let context else {
            // The handler has left the pipeline: the connection is closed.
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        handler.writeForwarded(response, promise: promise, context: context)
    }

    /// The handler has finished with the request `state` belongs to. On any thread.
    func done(_ state: ResponseWriter.ResponseState) {
        guard eventLoop.inEventLoop else {
            eventLoop.execute { self.done(state) }
            return
        }
        guard let handler, let context else {
            // Gone from the pipeline: the connection is closed, nothing is left to finish but
            // the cancellation handler (which would keep the handler's state alive).
            state.value.withLock { $0.onCancel = nil }
            return
        }
        handler.handlerDone(state, context: context)
    }
}

public protocol HTTPHandler: Sendable {
    /// Answers `request` through `writer`, and calls `done` (once, on any thread) when it has
    /// finished with it: normally after ending the response (`respond`, or `sendEnd` for a
    /// stream). Called on the connection's event loop, where a handler can do all its work
    /// without a task; one that needs to `await` starts its own. A client that goes away before
    /// then calls the writer's `onCancel` handler.
    func handle(_ request: ServerRequest, _ writer: ResponseWriter, done: @escaping @Sendable () -> Void)
    /// Answer for a request the server rejects before the handler sees it (body too large).
    func reject(status: HTTPResponseStatus, message: String, requestHead: HTTPRequestHead, _ writer: ResponseWriter)
}

/// An HTTP/1.1 server on SwiftNIO: keep-alive, body and header limits, idle timeouts against slow
/// clients, and a graceful drain (stop accepting, finish in-flight requests, close idle
/// connections). Each connection is a channel handler that collects one request at a time and
/// hands it to the `HTTPHandler` on the connection's event loop.
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

    /// The pipeline of one client connection: one handler that does it all (request parsing,
    /// response encoding, pipelining, idle timeout): every handler is a hop for every read and
    /// write. Header values are checked where they enter (the request parser, manifest decoding).
    func configureConnection(_ sync: ChannelPipeline.SynchronousOperations) throws {
        try sync.addHandler(ConnectionHandler(server: connectionSettings, eventLoop: sync.eventLoop))
    }

    /// What each connection's handler takes from the server.
    private var connectionSettings: ConnectionSettings {
        ConnectionSettings(limits: limits, handler: handler, connections: connections, logger: logger)
    }

    public func run() async throws {
        let server: any Channel
        do {
            server = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try self.configureConnection(channel.pipeline.syncOperations) }
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

/// What a client connection needs from its server, the handler's type erased: `ConnectionHandler`
/// is not generic, so its per-request path is compiled for concrete types. (Generic, it ran
/// unspecialized, the server's module not knowing the handler's type, and made type metadata at
/// run time on every request.)
struct ConnectionSettings: Sendable {
    let limits: ServerLimits
    let handler: any HTTPHandler
    let connections: ConnectionRegistry
    let logger: Logger
}

/// One client connection: parses requests (`RequestParser`), collects each one (head and bounded
/// body), hands it to the handler, encodes its response (`ResponseEncoder`), and finishes what the
/// handler left open. Requests are answered one at a time, in order: bytes of pipelined requests
/// that arrive while a response is in progress wait in the parser, unparsed, and reading stops
/// only when they are too many. (NIO's `HTTPServerPipelineHandler` stops reading on every request,
/// which costs two `epoll_ctl` calls per request.) A malformed request is answered 400, in its
/// turn, and the connection closes.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = IOData

    private enum State {
        /// Between requests.
        case idle
        case receiving(RequestHead, ByteBuffer)
        /// The request is answered (or being rejected); its remaining parts are ignored.
        case answering
        /// The request was malformed: the 400 is on its way and the connection closes.
        case closing
    }

    /// Bytes of pipelined requests held while a response is in progress before reading stops.
    static var queueLimit: Int { 64 * 1024 }

    private let server: ConnectionSettings
    private var parser: RequestParser
    private var state = State.idle
    /// The end of the request being answered has arrived: later bytes belong to the next one.
    private var requestEnded = false
    /// A response is in progress (its handler has not called `done`).
    private var responding = false
    private var readPending = false
    /// The server is draining: close once the response in progress (if any) is done.
    private var draining = false
    private var id = 0
    private var served = 0
    private var remoteAddress: String?
    /// The response in progress, and the head of its request.
    private var writer: ResponseWriter?
    private var requestHead: RequestHead?
    /// `handle` is running (a `done` that comes meanwhile waits for it to return).
    private var dispatching = false
    private var doneWhileDispatching: ResponseWriter.ResponseState?
    private var encoder = ResponseEncoder(allocator: ByteBufferAllocator())
    /// The method of the request being answered (the answer to `HEAD` has no body).
    private var requestMethod = HTTPMethod.GET
    /// How the response writers reach this handler directly (`ResponseWriter.respond(forwarding:)`,
    /// the handler's `done`).
    private let link: ConnectionLink

    init(server: ConnectionSettings, eventLoop: any EventLoop) {
        self.server = server
        self.parser = RequestParser(maxHeadBytes: server.limits.maxHeaderBytes)
        self.link = ConnectionLink(eventLoop: eventLoop)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        id = server.connections.add(context.channel)
        remoteAddress = context.channel.remoteAddress?.description
        scheduleIdleCheck(context: context, at: lastRead + TimeAmount(server.limits.idleTimeout))
        link.attach(self, context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        link.detach()
    }

    // MARK: Idle timeout

    /// When the client last sent anything.
    private var lastRead = NIODeadline.now()
    private var idleCheck: Scheduled<Void>?

    /// One timer per connection, moved on only when it fires (reads just note the time).
    private func scheduleIdleCheck(context: ChannelHandlerContext, at deadline: NIODeadline) {
        let this = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleCheck = context.eventLoop.scheduleTask(deadline: deadline) { this.value.0.idleCheckFired(context: this.value.1) }
    }

    private func idleCheckFired(context: ChannelHandlerContext) {
        idleCheck = nil
        guard context.channel.isActive else { return }
        let timeout = TimeAmount(server.limits.idleTimeout)
        let now = NIODeadline.now()
        // Idle between requests, or a client that stopped sending mid-request, for the whole
        // timeout. A response in progress (a long stream) is left alone.
        if responding {
            scheduleIdleCheck(context: context, at: now + timeout)
        } else if now - lastRead >= timeout {
            context.close(promise: nil)
        } else {
            scheduleIdleCheck(context: context, at: lastRead + timeout)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        server.connections.remove(id)
        idleCheck?.cancel()
        idleCheck = nil
        // The client went away: stop the work done on its behalf (upstream attempts included).
        if responding { writer?.cancel() }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastRead = .now()
        parser.append(unwrapInboundIn(data))
        parse(context: context)
    }

    /// Takes what the parser has, request by request; stops while a response is in progress
    /// (pipelined bytes wait in the parser for their turn).
    private func parse(context: ChannelHandlerContext) {
        while !(responding && requestEnded) {
            if case .closing = state { return }
            let event: RequestParser.Event?
            do {
                event = try parser.next()
            } catch {
                malformed(error, context: context)
                return
            }
            guard let event else { return }
            process(event, context: context)
        }
    }

    private func process(_ event: RequestParser.Event, context: ChannelHandlerContext) {
        switch event {
        case .head(let head):
            writer = nil
            requestHead = nil
            requestEnded = false
            requestMethod = head.method
            if let declared = head.contentLength, declared > server.limits.maxBodyBytes {
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
            requestEnded = true
            guard case .receiving(let received, let body) = state else { return }
            state = .answering
            // The head is kept until the answer is over (a stream's too): not inside a large read.
            let parsed = received.compacted()
            let request = ServerRequest(parsed: parsed, body: body, remoteAddress: remoteAddress)
            let handler = server.handler
            dispatch(context: context, head: parsed, keepAlive: parsed.keepAlive, tooLarge: false) { writer, done in
                handler.handle(request, writer, done: done)
            }
        }
    }

    private func reject(context: ChannelHandlerContext, head parsed: RequestHead) {
        state = .answering
        let limit = server.limits.maxBodyBytes
        let head = parsed.makeHTTPRequestHead()
        let handler = server.handler
        dispatch(context: context, head: parsed, keepAlive: parsed.keepAlive, tooLarge: true) { writer, done in
            handler.reject(status: .payloadTooLarge, message: "request body exceeds the limit of \(limit) bytes", requestHead: head, writer)
            done()
        }
    }

    /// The request in turn is malformed (or its head too large): answer 400, unless a response
    /// to it has begun (a 413 for its body), and close.
    private func malformed(_ error: RequestParseError, context: ChannelHandlerContext) {
        server.logger.debug("malformed request", metadata: ["reason": "\(error.reason)"])
        let answered: Bool
        if case .answering = state { answered = true } else { answered = false }
        state = .closing
        if answered {
            // The connection closes once that response is written.
            return
        }
        let headers = HTTPHeaders([("connection", "close"), ("content-length", "0")])
        write(context: context, data: wrapOutboundIn(.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        write(context: context, data: wrapOutboundIn(.end(nil)), promise: written)
        flush(context: context)
        let channel = context.channel
        written.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }

    /// Hands the request to `body` with its writer and `done`. Per request: one `ResponseState`,
    /// which `done` captures alone (the connection is reached through its link).
    private func dispatch(
        context: ChannelHandlerContext, head: RequestHead, keepAlive: Bool, tooLarge: Bool,
        _ body: (ResponseWriter, _ done: @escaping @Sendable () -> Void) -> Void
    ) {
        served += 1
        responding = true
        let closeAfter = tooLarge || !keepAlive || draining || served >= server.limits.maxRequestsPerConnection
        let state = ResponseWriter.ResponseState(link: link)
        let writer = ResponseWriter(channel: context.channel, closeAfter: closeAfter, state: state)
        self.writer = writer
        requestHead = head
        dispatching = true
        body(writer, state.handlerDone)
        dispatching = false
        if let early = doneWhileDispatching {
            doneWhileDispatching = nil
            handlerDone(early, context: context)
        }
    }

    /// The handler has finished with the request whose response `state` tracks (`ConnectionLink.done`,
    /// on the event loop): close the connection, or get ready for the next.
    fileprivate func handlerDone(_ state: ResponseWriter.ResponseState, context: ChannelHandlerContext) {
        guard let writer, writer.state === state else {
            // A stale call for an earlier request: its cancellation handler is done with.
            state.value.withLock { $0.onCancel = nil }
            return
        }
        if dispatching {
            // Answered before `handle` returned: finish once it has.
            doneWhileDispatching = state
            return
        }
        // The cancellation handler is done with (and would keep the handler's state alive).
        let (headSent, ended, failed) = state.value.withLock { v in
            v.onCancel = nil
            return (v.headSent, v.ended, v.failed)
        }
        if failed || !context.channel.isActive {
            // Nobody is waiting for an answer (the client went away, and the handler counted the
            // request as it saw it, 499): nothing to answer, nothing more to count.
            context.close(promise: nil)
        } else if !ended {
            // The handler gave up mid-response: the client cannot tell a cut body from a complete
            // one unless the connection closes.
            if !headSent, let head = requestHead {
                server.handler.reject(status: .internalServerError, message: "internal error", requestHead: head.makeHTTPRequestHead(), writer)
            }
            writer.closeWhenWritten()
        } else if writer.closeAfter {
            writer.closeWhenWritten()
        } else {
            responseFinished(context: context)
        }
    }

    /// The response ended and the connection stays open: answer what was pipelined meanwhile.
    private func responseFinished(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        responding = false
        // The idle time between requests starts now, not at the request's last byte.
        lastRead = .now()
        if case .answering = state, requestEnded { state = .idle }
        if draining {
            context.close(promise: nil)
            return
        }
        parse(context: context)
        if readPending && !readPaused {
            readPending = false
            context.read()
        }
    }

    /// Pipelined bytes wait in the parser while a response is in progress; reading goes on (a
    /// client that leaves is noticed) until they are too many.
    private var readPaused: Bool { responding && requestEnded && parser.bufferedBytes > Self.queueLimit }

    func read(context: ChannelHandlerContext) {
        if readPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ConnectionRegistry.Drain {
            draining = true
            // Idle between requests: close now. Otherwise the response in progress ends with
            // `connection: close` (or the next one does, for a request still arriving).
            if !responding, case .idle = state { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: Responses

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        var isEnd = false
        if case .end = part { isEnd = true }
        // Gathered bytes leave at a flush, or with the first part that has a promise or ends the
        // response (its promise then completes once everything before it is written too).
        switch encoder.add(part, requestMethod: requestMethod) {
        case .gathered:
            if promise != nil || isEnd { writePending(context: context, promise: promise) }
        case .large(let before, let body):
            if let before { context.write(wrapOutboundOut(.byteBuffer(before)), promise: nil) }
            if encoder.pending != nil {
                context.write(wrapOutboundOut(body), promise: nil)
                if promise != nil || isEnd { writePending(context: context, promise: promise) }
            } else {
                context.write(wrapOutboundOut(body), promise: promise)
            }
        }
    }

    func flush(context: ChannelHandlerContext) {
        writePending(context: context, promise: nil)
        context.flush()
    }

    /// A forwarded answer, whole (`ResponseWriter.respond(forwarding:)`): encoded after what is
    /// pending, written and flushed as its head, body and end parts would be by `write` and
    /// `flush`, without their trip through the pipeline.
    fileprivate func writeForwarded(_ response: ForwardedResponse, promise: EventLoopPromise<Void>?, context: ChannelHandlerContext) {
        switch encoder.addForwarded(response, requestMethod: requestMethod) {
        case .gathered:
            if let bytes = encoder.takePending() {
                // Usually all of it: what was pending, and the whole answer.
                context.writeAndFlush(wrapOutboundOut(.byteBuffer(bytes)), promise: promise)
            } else {
                writePending(context: context, promise: promise)
                context.flush()
            }
        case .large(let before, let body):
            if let before { context.write(wrapOutboundOut(.byteBuffer(before)), promise: nil) }
            context.writeAndFlush(wrapOutboundOut(body), promise: promise)
        }
    }

    private func writePending(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        if let bytes = encoder.takePending() {
            context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: promise)
        } else if let promise {
            // Nothing to write, but the promise completes in order with the writes before it.
            context.write(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
        }
    }

    private func wrapOutboundIn(_ part: HTTPServerResponsePart) -> NIOAny { NIOAny(part) }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        server.logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}

/// Open client connections, so a drain can reach each of them and wait until all are closed.
/// (Whether a connection is busy is its own handler's business: nothing here runs per request.)
final class ConnectionRegistry: Sendable {
    /// Sent down each connection's pipeline when the server starts draining.
    struct Drain: Sendable {}

    private struct State {
        var next = 0
        var channels: [Int: any Channel] = [:]
        var draining = false
        var emptyWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func add(_ channel: any Channel) -> Int {
        let (id, draining) = state.withLock { s in
            s.next += 1
            s.channels[s.next] = channel
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

    /// Idle connections close at once, busy ones after their response.
    func drain() {
        let all = state.withLock { s in
            s.draining = true
            return Array(s.channels.values)
        }
        for c in all { c.pipeline.fireUserInboundEventTriggered(Drain()) }
    }

    func closeAll() {
        let all = state.withLock { s in
            s.draining = true
            return Array(s.channels.values)
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
