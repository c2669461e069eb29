import AIGatewayFailover
import AIGatewayRouting
import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The deadline an attempt is currently held to, and which timeout it stands for.
final class Watchdog: Sendable {
    enum Phase: Sendable, Equatable {
        case firstByte, firstToken, streamIdle, body, attempt
    }

    private struct State {
        var deadline: Instant
        var phase: Phase
        /// The timer the watchdog is waiting on, and until when.
        var sleeper: EventLoopTimer.Sleeper?
        var sleepingUntil: Instant?
    }

    private let state: Mutex<State>
    let attemptDeadline: Instant

    init(attemptDeadline: Instant) {
        self.attemptDeadline = attemptDeadline
        state = Mutex(State(deadline: attemptDeadline, phase: .attempt))
    }

    /// Arms the watchdog for `phase`, capped by the attempt's own deadline. A deadline earlier than
    /// the one being waited for wakes the watchdog so it waits for the new one.
    func arm(_ phase: Phase, for d: Duration, now: Instant = .now) {
        let deadline = now + d
        let wake = state.withLock { s -> EventLoopTimer.Sleeper? in
            (s.deadline, s.phase) = deadline < attemptDeadline ? (deadline, phase) : (attemptDeadline, .attempt)
            if let until = s.sleepingUntil, s.deadline < until {
                s.sleepingUntil = nil
                return s.sleeper
            }
            return nil
        }
        wake?.resume(.success(()))
    }

    var current: (deadline: Instant, phase: Phase) { state.withLock { ($0.deadline, $0.phase) } }

    /// Waits until the armed deadline, or until re-armed earlier.
    private func waitForDeadline() async throws {
        let sleeper = EventLoopTimer.Sleeper()
        let delay = state.withLock { s -> Duration in
            s.sleeper = sleeper
            s.sleepingUntil = s.deadline
            return s.deadline - .now
        }
        try await EventLoopTimer.sleep(for: delay, sleeper: sleeper)
    }

    struct Fired: Error { var phase: Phase }

    /// Runs `operation`, failing with `Fired` when the armed deadline passes first.
    func run<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                while true {
                    let (deadline, phase) = self.current
                    if ContinuousClock.now >= deadline { throw Fired(phase: phase) }
                    try await self.waitForDeadline()
                }
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let result { return result }
            }
            throw CancellationError()
        }
    }
}

/// Where streamed events go: the client connection, committed on the first token.
final class StreamSink: Sendable {
    let writer: ResponseWriter
    /// Headers for the client response, computed when the stream commits (the attempt trail so far).
    let makeHeaders: @Sendable (_ upstream: HTTPHeaders) -> HTTPHeaders
    private let committed = Mutex(false)

    init(writer: ResponseWriter, makeHeaders: @escaping @Sendable (HTTPHeaders) -> HTTPHeaders) {
        self.writer = writer
        self.makeHeaders = makeHeaders
    }

    var isCommitted: Bool { committed.withLock { $0 } }

    func commit(upstream: HTTPHeaders) async throws {
        let first = committed.withLock { c in
            defer { c = true }
            return !c
        }
        guard first else { return }
        try await writer.writeHead(status: .ok, headers: makeHeaders(upstream))
    }

    func send(_ bytes: [UInt8]) async throws {
        try await writer.writeBody(bytes)
    }
}

/// What a stream has delivered so far (shared with the watchdog's error path).
final class StreamProgress: Sendable {
    struct State: Sendable {
        var text = ""
        var tokens = 0
        var finished = false
        var usage: (input: Int, output: Int)?
        var model: String?
        var malformed = 0
        var firstToken: Instant?
    }

    let state = Mutex(State())
}

/// The result of one attempt.
enum AttemptResult: Sendable {
    /// A complete response (any status) that reached us before anything was sent to the client.
    case response(status: Int, headers: HTTPHeaders, body: [UInt8], latency: Duration)
    /// The attempt failed before the client saw anything.
    case failed(AttemptOutcome)
    /// A stream committed to the client ended well (`[DONE]`, or a clean end after a finish reason).
    case streamCompleted
    /// A stream committed to the client broke (cut, stalled, or an error event).
    case streamBroken(AttemptOutcome)
}

/// One attempt's request.
struct AttemptRequest: Sendable {
    var url: String
    var headers: HTTPHeaders
    var body: [UInt8]
    var stream: Bool
    /// Drop the usage-only chunk the gateway asked for but the client did not.
    var stripUsageChunk: Bool
    var settings: BackendSettings
    var attemptDeadline: Instant
    var maxResponseBytes: Int
}

/// Performs attempts with AsyncHTTPClient, enforcing first-byte, first-token, stream-idle and
/// per-attempt timeouts, and relays streams to the client once the first token has arrived.
struct UpstreamCaller: Sendable {
    let client: HTTPClient
    let logger: Logger
    /// The HTTP client's own logging is kept quiet: the gateway logs what matters per attempt.
    let clientLogger: Logger

    init(client: HTTPClient, logger: Logger) {
        self.client = client
        self.logger = logger
        // A no-op logger: AsyncHTTPClient sets per-request metadata even when nothing is logged,
        // which costs a formatted string per request with some handlers.
        self.clientLogger = Logger(label: "ai-gateway.http-client", factory: { _ in SwiftLogNoOpLogHandler() })
    }

    func perform(_ req: AttemptRequest, sink: StreamSink?, progress: StreamProgress, onFirstByte: @escaping @Sendable (Duration) -> Void) async -> AttemptResult {
        let watchdog = Watchdog(attemptDeadline: req.attemptDeadline)
        let started = ContinuousClock.now
        watchdog.arm(.firstByte, for: req.settings.firstByteTimeout, now: started)
        let headReceived = Mutex(false)
        do {
            return try await watchdog.run {
                var request = HTTPClientRequest(url: req.url)
                request.method = .POST
                request.headers = req.headers
                request.body = .bytes(ByteBuffer(bytes: req.body))
                let response: HTTPClientResponse
                do {
                    response = try await client.execute(request, timeout: .hours(24), logger: clientLogger)
                } catch {
                    if Task.isCancelled { throw CancellationError() }
                    return .failed(.connectFailed)
                }
                headReceived.withLock { $0 = true }
                let latency = ContinuousClock.now - started
                onFirstByte(latency)
                let contentType = response.headers.first(name: "content-type") ?? ""
                if req.stream, response.status == .ok, contentType.contains("text/event-stream"), let sink {
                    watchdog.arm(sink.isCommitted ? .streamIdle : .firstToken, for: sink.isCommitted ? req.settings.streamIdleTimeout : req.settings.firstTokenTimeout)
                    return try await relay(response, req: req, sink: sink, progress: progress, watchdog: watchdog)
                }
                watchdog.arm(.body, for: req.settings.streamIdleTimeout)
                var body: [UInt8] = []
                do {
                    for try await chunk in response.body {
                        body.append(contentsOf: chunk.readableBytesView)
                        if body.count > req.maxResponseBytes { return .failed(.truncated) }
                        watchdog.arm(.body, for: req.settings.streamIdleTimeout)
                    }
                } catch {
                    if Task.isCancelled { throw CancellationError() }
                    return .failed(.truncated)
                }
                return .response(status: Int(response.status.code), headers: response.headers, body: body, latency: latency)
            }
        } catch let fired as Watchdog.Fired {
            let committed = sink?.isCommitted ?? false
            switch fired.phase {
            case .firstByte: return .failed(headReceived.withLock { $0 } ? .truncated : .firstByteTimeout)
            case .firstToken: return committed ? .streamBroken(.firstTokenTimeout) : .failed(.firstTokenTimeout)
            case .streamIdle: return committed ? .streamBroken(.truncated) : .failed(.truncated)
            case .body: return .failed(.truncated)
            case .attempt: return committed ? .streamBroken(.attemptTimeout) : .failed(.attemptTimeout)
            }
        } catch {
            let committed = sink?.isCommitted ?? false
            return committed ? .streamBroken(.truncated) : .failed(headReceived.withLock { $0 } ? .truncated : .connectFailed)
        }
    }

    /// Reads SSE events; holds them back until the first token, then commits the client response
    /// and forwards each event as it arrives (the client's reads pace ours: back-pressure).
    private func relay(_ response: HTTPClientResponse, req: AttemptRequest, sink: StreamSink, progress: StreamProgress, watchdog: Watchdog) async throws -> AttemptResult {
        var parser = SSEParser()
        var pending: [[UInt8]] = []
        var sawDone = false
        func handle(_ event: SSEEvent) async throws -> Bool {
            guard let data = event.data else {
                if sink.isCommitted { try await sink.send(event.raw) } else { pending.append(event.raw) }
                return false
            }
            if event.isDone {
                sawDone = true
                return true
            }
            guard let facts = ChunkFacts(json: data) else {
                // Not JSON: drop it, keep the stream going.
                progress.state.withLock { $0.malformed += 1 }
                logger.debug("dropped malformed stream event")
                return false
            }
            var forward = true
            progress.state.withLock { s in
                if let u = facts.usage { s.usage = u }
                if let m = facts.model { s.model = m }
                s.text += facts.content
                if !facts.content.isEmpty { s.tokens += 1 }
                if facts.finished { s.finished = true }
            }
            if facts.usageOnly && req.stripUsageChunk { forward = false }
            if !sink.isCommitted {
                if forward { pending.append(event.raw) }
                if facts.isToken {
                    progress.state.withLock { $0.firstToken = .now }
                    try await sink.commit(upstream: response.headers)
                    for p in pending { try await sink.send(p) }
                    pending = []
                    watchdog.arm(.streamIdle, for: req.settings.streamIdleTimeout)
                }
            } else if forward {
                try await sink.send(event.raw)
            }
            return false
        }
        do {
            outer: for try await chunk in response.body {
                let events = try parser.feed(chunk.readableBytesView)
                for e in events {
                    if try await handle(e) { break outer }
                }
                watchdog.arm(sink.isCommitted ? .streamIdle : .firstToken, for: sink.isCommitted ? req.settings.streamIdleTimeout : req.settings.firstTokenTimeout)
            }
            if !sawDone, let last = parser.finish() { _ = try await handle(last) }
        } catch let e as Watchdog.Fired {
            throw e
        } catch {
            if Task.isCancelled { throw CancellationError() }
            return sink.isCommitted ? .streamBroken(.truncated) : .failed(.truncated)
        }
        let finished = progress.state.withLock { $0.finished }
        if sawDone || finished {
            if !sink.isCommitted {
                // An empty but complete answer.
                try await sink.commit(upstream: response.headers)
                for p in pending { try await sink.send(p) }
            }
            try await sink.send(Array("data: [DONE]\n\n".utf8))
            try await sink.writer.end()
            return .streamCompleted
        }
        // Ended cleanly but without a finish: the answer is incomplete.
        return sink.isCommitted ? .streamBroken(.truncated) : .failed(.truncated)
    }
}

/// Sleeps on an event-loop timer. A cancelled `Task.sleep` keeps its memory until its deadline
/// would have passed; with a 30 s first-byte deadline per attempt that adds up under load, so the
/// watchdog uses a timer it can cancel outright.
enum EventLoopTimer {
    final class Sleeper: Sendable {
        // Guarded by the lock: the continuation is resumed exactly once, by the timer or by cancellation.
        let state = Mutex<(continuation: CheckedContinuation<Void, any Error>?, scheduled: Scheduled<Void>?, cancelled: Bool)>((nil, nil, false))

        func resume(_ result: Result<Void, any Error>) {
            let (c, s) = state.withLock { st -> (CheckedContinuation<Void, any Error>?, Scheduled<Void>?) in
                defer { st.continuation = nil; st.scheduled = nil }
                return (st.continuation, st.scheduled)
            }
            s?.cancel()
            c?.resume(with: result)
        }
    }

    static func sleep(for duration: Duration, sleeper: Sleeper = Sleeper(), on loop: any EventLoop = MultiThreadedEventLoopGroup.singleton.any()) async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let alreadyCancelled = sleeper.state.withLock { st in
                    st.continuation = c
                    return st.cancelled
                }
                if alreadyCancelled {
                    sleeper.resume(.failure(CancellationError()))
                    return
                }
                let scheduled = loop.scheduleTask(in: TimeAmount(duration)) { sleeper.resume(.success(())) }
                let fired = sleeper.state.withLock { st in
                    if st.continuation == nil { return true }
                    st.scheduled = scheduled
                    return false
                }
                if fired { scheduled.cancel() }
            }
        } onCancel: {
            sleeper.state.withLock { $0.cancelled = true }
            sleeper.resume(.failure(CancellationError()))
        }
    }
}
