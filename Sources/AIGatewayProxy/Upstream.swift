import AIGatewayFailover
import AIGatewayProviders
import AIGatewayRouting
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// What a stream has delivered so far (shared with the watchdog's error path).
final class StreamProgress: Sendable {
    struct State: Sendable {
        /// The answer's text so far, kept only for a continuation (the prefill of the next
        /// candidate), and only up to a limit.
        private(set) var text = ""
        /// The text outgrew its limit and was let go: the answer cannot be continued.
        private(set) var textOverflowed = false
        var tokens = 0
        var finished = false
        var usage: (input: Int, output: Int)?
        var malformed = 0
        var firstToken: Instant?

        /// Keeps `content` when `limit` (bytes of text in all) allows: 0 keeps nothing (no
        /// continuation); past the limit the text is dropped for good.
        mutating func appendText(_ content: String, limit: Int) {
            guard limit > 0, !textOverflowed, !content.isEmpty else { return }
            if text.utf8.count + content.utf8.count > limit {
                textOverflowed = true
                text = ""
            } else {
                text += content
            }
        }
    }

    let state = Mutex(State())
}

/// The result of one attempt.
enum AttemptResult: Sendable {
    /// A complete response (any status) that reached us before anything was sent to the client.
    case response(status: Int, headers: HTTPHeaders, body: ByteBuffer, latency: Duration)
    /// The attempt failed before the client saw anything.
    case failed(AttemptOutcome)
    /// A stream committed to the client ended well (`[DONE]`, or a clean end after a finish reason).
    case streamCompleted
    /// A stream committed to the client broke (cut, stalled, or an error event).
    case streamBroken(AttemptOutcome)
}

/// One attempt's request.
struct AttemptRequest: Sendable {
    var origin: UpstreamOrigin
    /// The request head (method, path and query, headers including `Host`).
    var head: HTTPRequestHead
    var body: ByteBuffer
    var stream: Bool
    /// Drop the usage-only chunk the gateway asked for but the client did not.
    var stripUsageChunk: Bool
    /// Reads the answer: stream translation and error classification.
    var adapter: any ProviderAdapter
    var translation: TranslationContext
    var settings: BackendSettings
    var attemptDeadline: Instant
    var maxResponseBytes: Int
    /// Bytes of a stream's text kept for a continuation; 0 when the Backend does not continue
    /// broken streams.
    var continuationTextLimit: Int
}


/// Where streamed events go: the client connection, committed on the first token.
final class StreamSink: Sendable {
    let writer: ResponseWriter
    /// What the stream has delivered so far, over every attempt.
    let progress = StreamProgress()
    /// Headers for the client response, computed when the stream commits (the attempt trail so far).
    let makeHeaders: @Sendable (_ upstream: HTTPHeaders) -> HTTPHeaders
    private let committed = Mutex(false)

    init(writer: ResponseWriter, makeHeaders: @escaping @Sendable (HTTPHeaders) -> HTTPHeaders) {
        self.writer = writer
        self.makeHeaders = makeHeaders
    }

    var isCommitted: Bool { committed.withLock { $0 } }

    /// Queues the response head once (later calls do nothing); the events that follow flush it.
    func commit(upstream: HTTPHeaders) {
        let first = committed.withLock { c in
            defer { c = true }
            return !c
        }
        guard first else { return }
        // A failure shows on the writes that follow.
        _ = writer.sendHead(status: .ok, headers: makeHeaders(upstream), flush: false)
    }

    /// Queues bytes without flushing; `flush()` sends what is queued.
    func write(_ bytes: ByteBuffer) -> EventLoopFuture<Void> {
        writer.sendBody(bytes, flush: false)
    }

    func flush() { writer.flush() }
}

/// One attempt, driven by the upstream client's callbacks. Everything mutable is touched only on
/// `loop` (the callbacks, the timer and `start`/`cancel` all run there), which is what makes the
/// unchecked `Sendable` sound.
final class UpstreamAttempt: UpstreamResponseReceiver, @unchecked Sendable {
    /// Which timeout the attempt is currently held to.
    enum Phase: Sendable, Equatable {
        case firstByte, firstToken, streamIdle, body, attempt
        /// Waiting for a connection to the provider (the pool is at its cap): only the attempt's
        /// deadline applies, and the provider has not been asked.
        case queued
    }

    private enum Mode {
        case awaitingHead
        case buffering(UpstreamResponseHead, ByteBuffer)
        case streaming(UpstreamResponseHead)
        /// The result is delivered; what else arrives is ignored.
        case finished
    }

    /// Gets the attempt's result, once.
    private let onResult: (AttemptResult) -> Void
    private let request: AttemptRequest
    private let loop: any EventLoop
    private let sink: StreamSink?
    private let logger: Logger
    private let onFirstByte: @Sendable (Duration) -> Void
    private let started = ContinuousClock.now
    /// When the request went to the provider (later than `started` if it waited for a connection).
    private var sent = ContinuousClock.now

    private var mode = Mode.awaitingHead
    private var exchange: UpstreamExchange?
    private var delivered = false

    // The watchdog: the loop's `DeadlineWatch` checks `deadline` while the attempt is watched;
    // arming only moves it.
    private let attemptDeadline: NIODeadline
    private(set) var deadline: NIODeadline
    private var phase = Phase.attempt
    private var watch: DeadlineWatch?

    // The stream relay: the adapter's translator turns the provider's bytes into OpenAI chunks.
    private var translator: (any StreamTranslator)?
    /// Events not yet handed to the client connection: every one until the stream commits, then
    /// those of the current upstream read, written together (one write per read, not per event).
    private var held = ByteBuffer()
    /// What the events of the current read said, applied to the shared progress once per read.
    private var tally = Tally()
    /// The sink's commitment, read once per read (only this relay commits it meanwhile).
    private var streamCommitted = false

    private struct Tally {
        var tokens = 0
        var finished = false
        var usage: (input: Int, output: Int)?
        var malformed = 0
        /// Text for a continuation (only when one is possible).
        var text = ""
    }
    private var sawDone = false
    /// `[DONE]` was relayed and the client response is ending; the upstream may still be finishing.
    private var streamEnded = false

    init(
        request: AttemptRequest, loop: any EventLoop, sink: StreamSink?, logger: Logger,
        onFirstByte: @escaping @Sendable (Duration) -> Void, onResult: @escaping (AttemptResult) -> Void
    ) {
        self.request = request
        self.loop = loop
        self.sink = sink
        self.logger = logger
        self.onFirstByte = onFirstByte
        self.onResult = onResult
        let remaining = request.attemptDeadline - started
        attemptDeadline = NIODeadline.now() + TimeAmount(max(remaining, .zero))
        deadline = attemptDeadline
    }

    private var committed: Bool { sink?.isCommitted ?? false }

    func start(client: UpstreamClient) {
        loop.preconditionInEventLoop()
        watch = client.deadlineWatch(for: loop)
        arm(.firstByte, for: request.settings.firstByteTimeout)
        watch?.add(self)
        exchange = client.execute(
            origin: request.origin, head: request.head, body: request.body, on: loop, receiver: self)
    }

    /// The client went away.
    func cancel() {
        deliver(committed ? .streamBroken(.truncated) : .failed(.connectFailed))
        stopTimer()
        cancelExchange()
    }

    private func cancelExchange() {
        exchange?.cancel()
        exchange = nil
    }

    private func deliver(_ r: AttemptResult) {
        guard !delivered else { return }
        delivered = true
        mode = .finished
        onResult(r)
    }

    /// Delivers a failure and abandons the upstream request.
    private func abandon(_ r: AttemptResult) {
        deliver(r)
        stopTimer()
        cancelExchange()
    }

    // MARK: Watchdog

    private func arm(_ phase: Phase, for d: Duration) {
        let proposed = NIODeadline.now() + TimeAmount(d)
        (deadline, self.phase) = proposed < attemptDeadline ? (proposed, phase) : (attemptDeadline, .attempt)
    }

    private func stopTimer() {
        watch?.remove(self)
        watch = nil
    }

    /// The watch saw `deadline` pass.
    func deadlinePassed() {
        watch = nil
        if streamEnded {
            // The answer is complete; this only drops an upstream that never finishes its response.
            cancelExchange()
            return
        }
        let r: AttemptResult
        switch phase {
        case .firstByte: r = .failed(.firstByteTimeout)
        case .firstToken: r = committed ? .streamBroken(.firstTokenTimeout) : .failed(.firstTokenTimeout)
        case .streamIdle: r = committed ? .streamBroken(.truncated) : .failed(.truncated)
        case .body: r = .failed(.truncated)
        case .attempt: r = committed ? .streamBroken(.attemptTimeout) : .failed(.attemptTimeout)
        case .queued: r = .failed(.unusable("no connection to the provider came free within the attempt's time"))
        }
        deliver(r)
        cancelExchange()
    }

    // MARK: UpstreamResponseReceiver

    func upstreamQueued() {
        guard case .awaitingHead = mode else { return }
        (deadline, phase) = (attemptDeadline, .queued)
    }

    func upstreamDequeued() {
        guard phase == .queued else { return }
        sent = .now
        arm(.firstByte, for: request.settings.firstByteTimeout)
    }

    func upstreamHead(_ head: HTTPResponseHead) {
        upstreamHead(UpstreamResponseHead(head))
    }

    func upstreamHead(_ head: UpstreamResponseHead) {
        guard case .awaitingHead = mode else { return }
        onFirstByte(ContinuousClock.now - sent)
        let contentType = head.first(name: "content-type") ?? ""
        if request.stream, head.status == 200, contentType.contains(request.adapter.streamContentType), let sink {
            var context = request.translation
            if request.adapter.translates { context.responseHeaders = head.pairs }
            translator = request.adapter.makeStreamTranslator(context)
            mode = .streaming(head)
            if sink.isCommitted {
                arm(.streamIdle, for: request.settings.streamIdleTimeout)
            } else {
                arm(.firstToken, for: request.settings.firstTokenTimeout)
            }
        } else {
            mode = .buffering(head, ByteBuffer())
            arm(.body, for: request.settings.streamIdleTimeout)
        }
    }

    func upstreamBody(_ part: ByteBuffer) -> EventLoopFuture<Void>? {
        switch mode {
        case .buffering(let head, var body):
            mode = .finished  // Drop the enum's reference, so appending does not copy the buffer.
            if body.readableBytes == 0 {
                body = part
            } else {
                var part = part
                body.writeBuffer(&part)
            }
            if body.readableBytes > request.maxResponseBytes {
                abandon(.failed(.truncated))
            } else {
                mode = .buffering(head, body)
                arm(.body, for: request.settings.streamIdleTimeout)
            }
            return nil
        case .streaming(let head):
            return relay(part, head: head)
        case .awaitingHead, .finished:
            return nil
        }
    }

    func upstreamEnd() {
        stopTimer()
        switch mode {
        case .buffering(let head, let body):
            deliver(.response(status: head.status, headers: head.headers, body: body, latency: ContinuousClock.now - started))
        case .streaming(let head):
            streamCommitted = committed
            if !sawDone, let rest = translator?.finish() {
                for event in rest {
                    var run = RelayRun(input: UnsafeRawBufferPointer(start: nil, count: 0))
                    let handled = event.bytes.withUnsafeBytes { handle(event.kind, $0, run: &run, head: head) }
                    run.flush(into: &held)
                    if case .fault(let fault) = handled {
                        applyTally()
                        return failStream(fault)
                    }
                }
            }
            applyTally()
            if sawDone || sink?.progress.state.withLock({ $0.finished }) == true {
                finishStream(head: head)
            } else {
                // Ended cleanly but without a finish: the answer is incomplete.
                writeHeld()
                sink?.flush()
                deliver(committed ? .streamBroken(.truncated) : .failed(.truncated))
            }
        case .awaitingHead:
            deliver(.failed(.truncated))
        case .finished:
            break
        }
    }

    func upstreamFailed(_ error: UpstreamError) {
        stopTimer()
        if error.isInvalidRequest {
            logger.warning("request to the provider refused before sending", metadata: ["origin": "\(request.origin)", "reason": "\(error)"])
            return deliver(.failed(.unusable("the request to the provider was refused before sending: \(error)")))
        }
        switch mode {
        case .awaitingHead: deliver(.failed(.connectFailed))
        case .buffering: deliver(.failed(.truncated))
        case .streaming: deliver(committed ? .streamBroken(.truncated) : .failed(.truncated))
        case .finished: break
        }
    }

    // MARK: Stream relay

    /// Holds events back until the first token, then commits the client response and forwards
    /// each event. The returned future completes when the client connection has taken the bytes,
    /// and the upstream connection reads on only then: back-pressure.
    private func relay(_ part: ByteBuffer, head: UpstreamResponseHead) -> EventLoopFuture<Void>? {
        guard translator != nil, let sink else { return nil }
        if held.readableBytes == 0 { held = sink.writer.allocator.buffer(capacity: part.readableBytes + 64) }
        streamCommitted = sink.isCommitted
        var outcome = Handled.more
        part.withUnsafeReadableBytes { bytes in
            var run = RelayRun(input: bytes)
            translator!.feed(bytes) { kind, raw in
                outcome = handle(kind, raw, run: &run, head: head)
                if case .more = outcome { return true }
                return false
            }
            run.flush(into: &held)
        }
        applyTally()
        switch outcome {
        case .more:
            break
        case .done:
            finishStream(head: head)
            return nil
        case .fault(let fault):
            failStream(fault)
            return nil
        }
        let last = writeHeld()
        sink.flush()
        if committed {
            arm(.streamIdle, for: request.settings.streamIdleTimeout)
        } else {
            arm(.firstToken, for: request.settings.firstTokenTimeout)
        }
        return last
    }

    private enum Handled {
        case more
        case done
        case fault(StreamFault)
    }

    /// Handles one translated event (`bytes` what goes to the client).
    private func handle(_ kind: StreamEvent.Kind, _ bytes: UnsafeRawBufferPointer, run: inout RelayRun, head: UpstreamResponseHead) -> Handled {
        guard let sink else { return .more }
        let facts: ChunkFacts
        switch kind {
        case .other:
            run.add(bytes, into: &held)
            return .more
        case .done:
            sawDone = true
            return .done
        case .malformed:
            // Not readable: drop it, keep the stream going.
            tally.malformed += 1
            logger.debug("dropped malformed stream event")
            return .more
        case .fault(let fault):
            return .fault(fault)
        case .chunk(let f):
            facts = f
        }
        if let u = facts.usage { tally.usage = (u.input, u.output) }
        if !facts.content.isEmpty {
            tally.tokens += 1
            if request.continuationTextLimit > 0 { tally.text += facts.content }
        }
        if facts.finished { tally.finished = true }
        if !(facts.usageOnly && request.stripUsageChunk) { run.add(bytes, into: &held) }
        if facts.isToken, !streamCommitted {
            streamCommitted = true
            sink.progress.state.withLock { $0.firstToken = .now }
            sink.commit(upstream: head.headers)
        }
        return .more
    }

    /// Adds what the read's events said to the stream's progress (once per read: one lock).
    private func applyTally() {
        guard let sink else { return }
        let t = tally
        tally = Tally()
        let limit = request.continuationTextLimit
        sink.progress.state.withLock { s in
            s.tokens += t.tokens
            if t.finished { s.finished = true }
            if let u = t.usage { s.usage = u }
            s.malformed += t.malformed
            s.appendText(t.text, limit: limit)
        }
    }

    /// The provider reported an error inside the stream: the attempt failed with what it says
    /// (failover before anything reached the client; continuation or an error event after).
    private func failStream(_ fault: StreamFault) {
        logger.debug("provider error inside the stream", metadata: ["message": "\(fault.message)"])
        writeHeld()
        sink?.flush()
        let outcome = AttemptOutcome(fault.failure)
        abandon(committed ? .streamBroken(outcome) : .failed(outcome))
    }

    /// Hands the held events to the client connection once the stream is committed (before, they
    /// wait for the first token).
    @discardableResult
    private func writeHeld() -> EventLoopFuture<Void>? {
        guard let sink, sink.isCommitted, held.readableBytes > 0 else { return nil }
        defer { held = ByteBuffer() }
        return sink.write(held)
    }

    /// A complete stream: `[DONE]`, then the end of the response.
    private func finishStream(head: UpstreamResponseHead) {
        guard let sink else { return }
        // An empty but complete answer still commits.
        sink.commit(upstream: head.headers)
        held.writeStaticString("data: [DONE]\n\n")
        writeHeld()
        mode = .finished
        streamEnded = true
        sink.writer.sendEnd().whenComplete { [self] outcome in
            switch outcome {
            case .success: deliver(.streamCompleted)
            case .failure: deliver(.streamBroken(.truncated))
            }
        }
    }
}

/// The relayed events of one upstream read, copied for the client a run at a time: events that
/// follow each other in the read's bytes (the usual case: every one is relayed as is) are copied
/// together; an event from elsewhere (one the chunking cut, a translated one) ends the run and
/// is copied on its own. `flush` before the read's bytes go away.
struct RelayRun {
    let input: UnsafeRawBufferPointer
    private var run = 0..<0

    init(input: UnsafeRawBufferPointer) { self.input = input }

    mutating func add(_ bytes: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        guard let b = bytes.baseAddress, !bytes.isEmpty else { return }
        if let base = input.baseAddress, b >= base, b + bytes.count <= base + input.count {
            let offset = base.distance(to: b)
            if offset == run.upperBound, !run.isEmpty {
                run = run.lowerBound..<(offset + bytes.count)
            } else {
                flush(into: &out)
                run = offset..<(offset + bytes.count)
            }
            return
        }
        flush(into: &out)
        out.writeBytes(bytes)
    }

    mutating func flush(into out: inout ByteBuffer) {
        guard !run.isEmpty else { return }
        out.writeBytes(UnsafeRawBufferPointer(rebasing: input[run]))
        run = 0..<0
    }
}

/// The deadlines of the attempts in flight on one event loop, checked by one timer ticking every
/// `granularity` while any is watched, instead of a timer per attempt: NIO's timer heap takes a
/// lock to add a timer and scans itself to cancel one, for every request. Timeouts fire up to
/// `granularity` late. Touched only on `loop`, which makes the unchecked `Sendable` sound.
final class DeadlineWatch: @unchecked Sendable {
    static let granularity = TimeAmount.milliseconds(20)

    private let loop: any EventLoop
    private var watched: [ObjectIdentifier: UpstreamAttempt] = [:]
    private var tick: Scheduled<Void>?

    init(loop: any EventLoop) {
        self.loop = loop
    }

    func add(_ attempt: UpstreamAttempt) {
        watched[ObjectIdentifier(attempt)] = attempt
        if tick == nil { scheduleTick() }
    }

    func remove(_ attempt: UpstreamAttempt) {
        watched.removeValue(forKey: ObjectIdentifier(attempt))
    }

    private func scheduleTick() {
        tick = loop.scheduleTask(in: Self.granularity) { [self] in
            tick = nil
            let now = NIODeadline.now()
            var passed: [UpstreamAttempt] = []
            for a in watched.values where a.deadline <= now { passed.append(a) }
            for a in passed {
                remove(a)
                a.deadlinePassed()
            }
            if !watched.isEmpty { scheduleTick() }
        }
    }
}
