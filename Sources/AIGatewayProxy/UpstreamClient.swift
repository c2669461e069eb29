import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// Where upstream requests go: scheme, host and port.
struct UpstreamOrigin: Hashable, Sendable, CustomStringConvertible {
    var tls: Bool
    var host: String
    var port: Int

    var description: String { "\(tls ? "https" : "http")://\(host.contains(":") ? "[\(host)]" : host):\(port)" }
}

/// Why an upstream exchange failed. The failover logic tells faults apart by when they happened
/// (before the response head, during its body); the code is for logs.
struct UpstreamError: Error, Sendable, CustomStringConvertible {
    private enum Code: String, Sendable {
        case connect, tlsHandshake, closed, protocolError, shutdown, invalidRequest
    }

    private let code: Code
    private let detail: String

    private init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    static func connect(_ error: any Error) -> Self { .init(.connect, "\(error)") }
    static func tlsHandshake(_ detail: String) -> Self { .init(.tlsHandshake, detail) }
    static let closed = Self(.closed, "the connection closed")
    static func protocolError(_ error: any Error) -> Self { .init(.protocolError, "\(error)") }
    static let shutdown = Self(.shutdown, "the upstream client is shut down")
    /// The request head holds what must not be written (see `RequestHeadCheck`): nothing was sent.
    static func invalidRequest(_ detail: String) -> Self { .init(.invalidRequest, detail) }

    /// A request this client refused to write: the entry is misconfigured, the provider is fine.
    var isInvalidRequest: Bool { code == .invalidRequest }

    /// A short stable label.
    var label: String { code.rawValue }
    var description: String { "\(code.rawValue): \(detail)" }
}

/// Receives one upstream response, on the event loop the exchange was started on.
protocol UpstreamResponseReceiver: AnyObject {
    /// The response's head, its fields still bytes: a receiver turns into strings only what it reads.
    func upstreamHead(_ head: UpstreamResponseHead)
    /// The head as NIO's type, for receivers that want one: called only by the default
    /// `upstreamHead(_: UpstreamResponseHead)`, which builds it.
    func upstreamHead(_ head: HTTPResponseHead)
    /// Returns a future to wait for before more of the response is read (back-pressure), or nil
    /// to read on at once.
    func upstreamBody(_ part: ByteBuffer) -> EventLoopFuture<Void>?
    func upstreamEnd()
    func upstreamFailed(_ error: UpstreamError)
    /// The origin's connections on this loop are all in use: the exchange waits for one (first come,
    /// first served) until it gets one (`upstreamDequeued`) or is cancelled.
    func upstreamQueued()
    /// The exchange got a connection, or the room to open one, after waiting.
    func upstreamDequeued()
}

extension UpstreamResponseReceiver {
    func upstreamHead(_ head: UpstreamResponseHead) { upstreamHead(head.responseHead) }
    func upstreamQueued() {}
    func upstreamDequeued() {}
}

/// The gateway's HTTP/1.1 client for providers.
///
/// Each event loop has its own keep-alive pool, and an exchange runs entirely on the loop of the
/// client connection it serves, so the request path takes no lock and hops no thread. A request is
/// written head and body as one buffer (`UpstreamRequestBytes`) with one flush (one system call). TLS (port 443) is NIOSSL, verified
/// against the system trust store plus an optional extra CA file, with SNI and hostname checks.
///
/// (AsyncHTTPClient did this job before; its request path cost three more system calls per
/// request, two writes and a read-interest toggle, and its pool a lock, which kept the gateway
/// well below its throughput target. See the README's benchmark section.)
public final class UpstreamClient: Sendable {
    public struct Configuration: Sendable, Hashable {
        /// TCP connect timeout; a TLS handshake gets as long again.
        public var connectTimeout: Duration = .seconds(5)
        /// Pooled connections unused this long are closed.
        public var idleTimeout: Duration = .seconds(60)
        /// Idle connections kept per origin on each event loop.
        public var maxIdlePerOrigin = 512
        /// Connections open (or opening) per origin on each event loop; more requests wait for one.
        public var maxConnectionsPerOrigin = 1024
        /// Largest upstream response head in bytes (status line to empty line), and largest
        /// trailer section of a chunked body.
        public var maxResponseHeaderBytes = 64 * 1024
        /// PEM file of CA certificates trusted in addition to the system store (private mirrors).
        public var additionalCAFile: String?

        public init() {}
    }

    let configuration: Configuration
    private let tlsContext: NIOSSLContext
    /// The pools of the group's loops, by loop: a scan of a few pointers costs less than hashing.
    private let pools: [LoopPool.Keyed]
    /// Pools for loops outside the group given at init (rare: tests with a group of their own).
    private let otherPools = Mutex<[ObjectIdentifier: LoopPool]>([:])

    /// - Throws: when the TLS configuration cannot be built (an unreadable CA file).
    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, configuration: Configuration = .init()) throws {
        self.configuration = configuration
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.applicationProtocols = ["http/1.1"]
        if let file = configuration.additionalCAFile {
            tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMFile(file))]
        }
        tlsContext = try NIOSSLContext(configuration: tls)
        var pools: [LoopPool.Keyed] = []
        for loop in group.makeIterator() where !pools.contains(where: { $0.loop == ObjectIdentifier(loop) }) {
            pools.append(LoopPool.Keyed(loop: ObjectIdentifier(loop), pool: LoopPool(loop: loop, configuration: configuration)))
        }
        self.pools = pools
    }

    /// The keep-alive pool (and deadline watch) of `loop`.
    func pool(for loop: any EventLoop) -> LoopPool {
        let id = ObjectIdentifier(loop)
        for p in pools where p.loop == id { return p.pool }
        return otherPools.withLock { d in
            if let p = d[ObjectIdentifier(loop)] { return p }
            let p = LoopPool(loop: loop, configuration: configuration)
            d[ObjectIdentifier(loop)] = p
            return p
        }
    }

    /// The deadline watch of `loop` (see `DeadlineWatch`).
    func deadlineWatch(for loop: any EventLoop) -> DeadlineWatch {
        pool(for: loop).deadlines
    }

    /// Sends one request and reports the response to `receiver`. Must be called on `loop`; every
    /// callback comes on it too. `head` carries `Host` and the body's `Content-Length`.
    func execute(
        origin: UpstreamOrigin, head: HTTPRequestHead, body: ByteBuffer, on loop: any EventLoop, receiver: any UpstreamResponseReceiver
    ) -> UpstreamExchange {
        execute(origin: origin, request: UpstreamRequestBytes(head, body: body), on: loop, receiver: receiver)
    }

    /// The same for a request already in bytes (an attempt's).
    func execute(
        origin: UpstreamOrigin, request: UpstreamRequestBytes, on loop: any EventLoop, receiver: any UpstreamResponseReceiver
    ) -> UpstreamExchange {
        execute(origin: origin, request: request, in: pool(for: loop), receiver: receiver)
    }

    /// The same with the loop's pool already at hand (`pool(for:)`; an attempt looks it up once).
    func execute(
        origin: UpstreamOrigin, request: UpstreamRequestBytes, in pool: LoopPool, receiver: any UpstreamResponseReceiver
    ) -> UpstreamExchange {
        pool.loop.preconditionInEventLoop()
        let exchange = UpstreamExchange(receiver: receiver, request: request)
        if let problem = request.problem {
            // Before any connection is taken: nothing of it reaches the provider.
            exchange.fail(.invalidRequest(problem))
            return exchange
        }
        pool.start(exchange, origin: origin, tlsContext: origin.tls ? tlsContext : nil)
        return exchange
    }

    /// Idle connections open right now, over all loops (for tests).
    func idleConnectionCount() async -> Int {
        var total = 0
        for p in pools.map(\.pool) + otherPools.withLock({ Array($0.values) }) {
            total += (try? await p.loop.submit { p.idleCount }.get()) ?? 0
        }
        return total
    }

    /// Closes the idle connections and refuses new exchanges; exchanges in flight finish, and
    /// their connections close then.
    public func shutdown() async {
        for p in pools.map(\.pool) + otherPools.withLock({ Array($0.values) }) {
            try? await p.loop.submit { p.shutdown() }.get()
        }
    }
}

/// One request/response on an upstream connection, as its caller holds it. Loop-bound.
final class UpstreamExchange {
    private(set) var receiver: (any UpstreamResponseReceiver)?
    let request: UpstreamRequestBytes
    fileprivate var connection: UpstreamConnection?
    /// The pool whose queue holds the exchange while it waits for a connection.
    fileprivate weak var waitingIn: LoopPool?
    fileprivate var waitingFor: UpstreamOrigin?

    fileprivate init(receiver: any UpstreamResponseReceiver, request: UpstreamRequestBytes) {
        self.receiver = receiver
        self.request = request
    }

    /// Abandons the exchange: no further callback, and a connection in the middle of it is closed.
    func cancel() {
        receiver = nil
        if let pool = waitingIn, let origin = waitingFor { pool.withdraw(self, origin: origin) }
        connection?.abandon()
        connection = nil
    }

    fileprivate var isCancelled: Bool { receiver == nil }

    /// Ends the exchange with a failure (at most one of end or failure is reported).
    fileprivate func fail(_ error: UpstreamError) {
        let r = receiver
        receiver = nil
        connection = nil
        r?.upstreamFailed(error)
    }

    fileprivate func end() {
        let r = receiver
        receiver = nil
        connection = nil
        r?.upstreamEnd()
    }
}

/// The keep-alive connections of one event loop. Everything here runs on `loop` (the client
/// calls in through `execute` on it and `submit`s the rest), which is what makes the unchecked
/// `Sendable` sound.
final class LoopPool: @unchecked Sendable {
    let loop: any EventLoop
    let configuration: UpstreamClient.Configuration
    /// The timeouts of the attempts running on this loop.
    let deadlines: DeadlineWatch
    /// Idle connections per origin, most recently used last.
    private var idle: [UpstreamOrigin: [UpstreamConnection]] = [:]
    private(set) var idleCount = 0
    /// Connections per origin, open or opening, idle or busy (at most `maxConnectionsPerOrigin`).
    private var open: [UpstreamOrigin: Int] = [:]
    /// Exchanges waiting for a connection per origin, oldest first.
    private var waiting: [UpstreamOrigin: CircularBuffer<Waiter>] = [:]
    /// Exchanges in `waiting`, over all origins (so the end of every exchange need not look it up).
    private var waiterCount = 0
    private var sweeper: Scheduled<Void>?
    private var closed = false

    /// A pool with the identity of its loop (`UpstreamClient.pool(for:)` scans these).
    struct Keyed: Sendable {
        var loop: ObjectIdentifier
        var pool: LoopPool
    }

    init(loop: any EventLoop, configuration: UpstreamClient.Configuration) {
        self.loop = loop
        self.configuration = configuration
        self.deadlines = DeadlineWatch(loop: loop)
    }

    private struct Waiter {
        var exchange: UpstreamExchange
        var tlsContext: NIOSSLContext?
    }

    func start(_ exchange: UpstreamExchange, origin: UpstreamOrigin, tlsContext: NIOSSLContext?) {
        guard !closed else {
            exchange.fail(.shutdown)
            return
        }
        while let c = idle[origin]?.popLast() {
            idleCount -= 1
            if c.isReusable {
                c.send(exchange)
                return
            }
        }
        if open[origin, default: 0] < configuration.maxConnectionsPerOrigin {
            openConnection(for: exchange, origin: origin, tlsContext: tlsContext)
        } else {
            // Every connection to the origin is busy (or opening): wait for one, in turn. The
            // attempt's own deadline bounds the wait (it cancels the exchange).
            exchange.waitingIn = self
            exchange.waitingFor = origin
            waiting[origin, default: []].append(Waiter(exchange: exchange, tlsContext: tlsContext))
            waiterCount += 1
            exchange.receiver?.upstreamQueued()
        }
    }

    private func openConnection(for exchange: UpstreamExchange, origin: UpstreamOrigin, tlsContext: NIOSSLContext?) {
        open[origin, default: 0] += 1
        let connection = UpstreamConnection(origin: origin, pool: self, tls: tlsContext != nil)
        connect(connection, tlsContext: tlsContext).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let c):
                if exchange.isCancelled {
                    self.release(c)
                } else {
                    c.send(exchange)
                }
            case .failure(let e):
                // It never carried a request (its channel, if any, is closing).
                self.connectionGone(connection)
                exchange.fail(e as? UpstreamError ?? .connect(e))
            }
        }
    }

    /// The oldest exchange still waiting for a connection to `origin`, taken off the queue.
    private func nextWaiter(for origin: UpstreamOrigin) -> Waiter? {
        guard waiterCount > 0, var queue = waiting[origin] else { return nil }
        waiting[origin] = nil  // Drop the dictionary's reference, so popping does not copy the queue.
        defer { waiting[origin] = queue.isEmpty ? nil : queue }
        while let w = queue.popFirst() {
            waiterCount -= 1
            w.exchange.waitingIn = nil
            w.exchange.waitingFor = nil
            if !w.exchange.isCancelled { return w }
        }
        return nil
    }

    /// A waiting exchange was cancelled (its deadline passed, or its client left).
    func withdraw(_ exchange: UpstreamExchange, origin: UpstreamOrigin) {
        exchange.waitingIn = nil
        exchange.waitingFor = nil
        guard var queue = waiting[origin], let i = queue.firstIndex(where: { $0.exchange === exchange }) else { return }
        waiting[origin] = nil
        queue.remove(at: i)
        waiterCount -= 1
        waiting[origin] = queue.isEmpty ? nil : queue
    }

    /// A connection closed, or never opened: it no longer counts, and a waiting exchange may open one.
    func connectionGone(_ c: UpstreamConnection) {
        guard c.countedOpen else { return }
        c.countedOpen = false
        let remaining = open[c.origin, default: 1] - 1
        open[c.origin] = remaining > 0 ? remaining : nil
        guard !closed, remaining < configuration.maxConnectionsPerOrigin, let w = nextWaiter(for: c.origin) else { return }
        w.exchange.receiver?.upstreamDequeued()
        openConnection(for: w.exchange, origin: c.origin, tlsContext: w.tlsContext)
    }

    private func connect(_ connection: UpstreamConnection, tlsContext: NIOSSLContext?) -> EventLoopFuture<UpstreamConnection> {
        let origin = connection.origin
        let handshakeTimeout = TimeAmount(configuration.connectTimeout)
        let serverHostname = Self.isIPAddress(origin.host) ? nil : origin.host
        return ClientBootstrap(group: loop)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tlsContext {
                        try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: serverHostname))
                    }
                    // No encoder: a request comes in bytes (`UpstreamRequestBytes`). No header
                    // validator: what goes upstream is checked where it enters (the client's
                    // headers by the HTTP parser, configured ones when manifests decode).
                    try sync.addHandler(connection)
                }
            }
            .connect(host: origin.host, port: origin.port)
            .flatMap { _ in connection.ready(timeout: handshakeTimeout) }
    }

    /// A connection whose exchange ended cleanly and that may carry another: the oldest waiting
    /// exchange gets it, else it goes idle.
    func release(_ c: UpstreamConnection) {
        guard !closed, c.isReusable else {
            c.close()
            return
        }
        if let w = nextWaiter(for: c.origin) {
            w.exchange.receiver?.upstreamDequeued()
            c.send(w.exchange)
            return
        }
        c.idleSince = .now()
        // One lookup of the origin's list (its hash covers the host name), to count and append.
        guard configuration.maxIdlePerOrigin > 0, Self.append(c, to: &idle[c.origin, default: []], limit: configuration.maxIdlePerOrigin) else {
            c.close()
            return
        }
        idleCount += 1
        if sweeper == nil { scheduleSweep() }
    }

    /// Appends `c` to `list` unless it holds `limit` connections already; whether it did.
    private static func append(_ c: UpstreamConnection, to list: inout [UpstreamConnection], limit: Int) -> Bool {
        guard list.count < limit else { return false }
        list.append(c)
        return true
    }

    /// An idle connection closed (by the server, or by us): it leaves the pool.
    func remove(_ c: UpstreamConnection) {
        guard var list = idle[c.origin], let i = list.firstIndex(where: { $0 === c }) else { return }
        list.remove(at: i)
        idle[c.origin] = list.isEmpty ? nil : list
        idleCount -= 1
    }

    /// Closes connections idle for longer than the idle timeout.
    private func scheduleSweep() {
        let every = TimeAmount.nanoseconds(max(TimeAmount(configuration.idleTimeout).nanoseconds / 4, 100_000_000))
        sweeper = loop.scheduleTask(in: every) { [self] in
            sweeper = nil
            let cutoff = NIODeadline.now() - TimeAmount(configuration.idleTimeout)
            for (origin, list) in idle {
                let keep = list.filter { $0.isReusable && $0.idleSince > cutoff }
                for c in list where !(c.isReusable && c.idleSince > cutoff) { c.close() }
                idleCount -= list.count - keep.count
                idle[origin] = keep.isEmpty ? nil : keep
            }
            if idleCount > 0 { scheduleSweep() }
        }
    }

    func shutdown() {
        closed = true
        sweeper?.cancel()
        sweeper = nil
        let waiters = waiting.values.flatMap { $0 }
        waiting = [:]
        waiterCount = 0
        for w in waiters {
            w.exchange.waitingIn = nil
            w.exchange.waitingFor = nil
            w.exchange.fail(.shutdown)
        }
        for list in idle.values {
            for c in list { c.close() }
        }
        idle = [:]
        idleCount = 0
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}

/// One upstream connection: the last handler of its pipeline, which reads the responses from its
/// bytes (`UpstreamResponseParser`). It carries one exchange at a time; reads are held back while
/// the receiver has not taken the previous body part. Loop-bound.
final class UpstreamConnection: ChannelDuplexHandler, @unchecked Sendable {
    // @unchecked: every member is touched only on the channel's event loop (handler callbacks,
    // and the pool, which runs there too).
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Never
    typealias OutboundOut = IOData

    private enum State {
        case connecting
        case idle
        case busy(UpstreamExchange)
        case closed
    }

    let origin: UpstreamOrigin
    /// Weak: a connection may outlive its client (closing after `shutdown`).
    private weak var pool: LoopPool?
    private let loop: any EventLoop
    private let tls: Bool
    private var state = State.connecting
    private var context: ChannelHandlerContext?
    private var readyPromise: EventLoopPromise<UpstreamConnection>?
    private var handshakeTimer: Scheduled<Void>?
    private var handshakeDone: Bool
    /// Reads the responses. (A server that answers before reading the whole request and keeps
    /// the connection must read the rest first, so the next request, written after it, stays in
    /// step.)
    private var parser: UpstreamResponseParser
    private var readBlocked = false
    private var readPending = false
    var idleSince = NIODeadline.now()
    /// Counted in the pool's connections of its origin (until it closes).
    var countedOpen = true

    init(origin: UpstreamOrigin, pool: LoopPool, tls: Bool) {
        self.origin = origin
        self.pool = pool
        self.loop = pool.loop
        self.tls = tls
        self.handshakeDone = !tls
        self.parser = UpstreamResponseParser(maxHeadBytes: pool.configuration.maxResponseHeaderBytes)
    }

    var isReusable: Bool {
        if case .idle = state, let context, context.channel.isActive { return true }
        return false
    }

    /// Succeeds once the connection can carry a request (TLS: after the handshake).
    fileprivate func ready(timeout: TimeAmount) -> EventLoopFuture<UpstreamConnection> {
        guard let context else { return loop.makeFailedFuture(UpstreamError.closed) }
        if handshakeDone {
            state = .idle
            return context.eventLoop.makeSucceededFuture(self)
        }
        let promise = context.eventLoop.makePromise(of: UpstreamConnection.self)
        readyPromise = promise
        handshakeTimer = context.eventLoop.scheduleTask(in: timeout) { [self] in
            failReady(.tlsHandshake("timed out"))
            self.context?.close(promise: nil)
        }
        return promise.futureResult
    }

    private func failReady(_ error: UpstreamError) {
        handshakeTimer?.cancel()
        handshakeTimer = nil
        readyPromise?.fail(error)
        readyPromise = nil
    }

    func send(_ exchange: UpstreamExchange) {
        guard let context, case .idle = state, context.channel.isActive else {
            exchange.fail(.closed)
            return
        }
        state = .busy(exchange)
        exchange.connection = self
        parser.expectResponse(head: exchange.request.bodylessAnswer)
        // Head and body in one buffer (a large body after it), one flush. A failed write closes
        // the channel, which fails the exchange.
        context.write(wrapOutboundOut(.byteBuffer(exchange.request.bytes)), promise: nil)
        if let body = exchange.request.largeBody {
            context.write(wrapOutboundOut(.byteBuffer(body)), promise: nil)
        }
        context.flush()
    }

    /// The caller walked away mid-exchange: the connection cannot carry another request.
    func abandon() {
        if case .busy = state { state = .closed }
        context?.close(promise: nil)
    }

    func close() {
        state = .closed
        context?.close(promise: nil)
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? TLSUserEvent, case .handshakeCompleted = e {
            handshakeDone = true
            if let p = readyPromise {
                handshakeTimer?.cancel()
                handshakeTimer = nil
                readyPromise = nil
                state = .idle
                p.succeed(self)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .busy = state else {
            // Bytes nobody asked for: the connection is out of step.
            close()
            return
        }
        parser.feed(unwrapInboundIn(data))
        readResponse()
    }

    /// Hands the exchange what the parser reads from the bytes so far.
    private func readResponse() {
        // A receiver's callback may cancel the exchange (the state leaves `busy`), and the end of
        // a response may start the next exchange on this connection (with nothing left to read).
        while case .busy(let exchange) = state {
            let part: UpstreamResponseParser.Part?
            do {
                part = try parser.next()
            } catch {
                state = .closed
                exchange.fail(.protocolError(error))
                context?.close(promise: nil)
                return
            }
            guard let part else { return }
            switch part {
            case .head(let head):
                exchange.receiver?.upstreamHead(head)
            case .body(let part):
                if let wait = exchange.receiver?.upstreamBody(part) {
                    readBlocked = true
                    wait.whenComplete { [self] _ in
                        readBlocked = false
                        if readPending, let context = self.context {
                            readPending = false
                            context.read()
                        }
                    }
                }
            case .end:
                ended(exchange)
            }
        }
    }

    private func ended(_ exchange: UpstreamExchange) {
        // Bytes after the end of the response answer no request: the connection is out of step.
        if parser.keepAlive, parser.bufferedBytes == 0 {
            state = .idle
            exchange.end()
            if let pool { pool.release(self) } else { close() }
        } else {
            close()
            exchange.end()
        }
    }

    func read(context: ChannelHandlerContext) {
        if readBlocked {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .busy(let exchange) = state, parser.connectionClosed() != nil {
            // The body ran until the connection closed: the response is complete.
            state = .closed
            exchange.end()
        }
        let previous = state
        state = .closed
        failReady(.closed)
        switch previous {
        case .busy(let exchange): exchange.fail(.closed)
        case .idle: pool?.remove(self)
        case .connecting, .closed: break
        }
        pool?.connectionGone(self)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let previous = state
        state = .closed
        if error is NIOSSLError || error is BoringSSLError {
            failReady(.tlsHandshake("\(error)"))
        } else {
            failReady(.protocolError(error))
        }
        if case .busy(let exchange) = previous { exchange.fail(.protocolError(error)) }
        context.close(promise: nil)
    }
}
