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
    /// A complete response (any status) that reached us before anything was sent to the client;
    /// its head as read (bytes and field ranges: `head.headers` and `head.pairs` make strings
    /// for the paths that need them).
    case response(status: Int, head: UpstreamResponseHead, body: ByteBuffer)
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
    /// The request as it goes on the wire: head (method, path and query, headers including
    /// `Host`) and body.
    var wire: UpstreamRequestBytes
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

extension AttemptRequest {
    /// An attempt's request with its head in NIO's shape (tests).
    init(
        origin: UpstreamOrigin, head: HTTPRequestHead, body: ByteBuffer, stream: Bool, stripUsageChunk: Bool, adapter: any ProviderAdapter,
        translation: TranslationContext, settings: BackendSettings, attemptDeadline: Instant, maxResponseBytes: Int, continuationTextLimit: Int
    ) {
        self.init(
            origin: origin, wire: UpstreamRequestBytes(head, body: body), stream: stream, stripUsageChunk: stripUsageChunk, adapter: adapter,
            translation: translation, settings: settings, attemptDeadline: attemptDeadline, maxResponseBytes: maxResponseBytes,
            continuationTextLimit: continuationTextLimit)
    }
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
        writer.queueHead(status: .ok, headers: makeHeaders(upstream))
    }

    /// Queues bytes without flushing; `flush()` sends what is queued.
    func write(_ bytes: ByteBuffer) -> EventLoopFuture<Void> {
        writer.sendBody(bytes, flush: false)
    }

    /// Queues bytes without a future: the write that follows (the end) tells how it went.
    func queue(_ bytes: ByteBuffer) {
        writer.queueBody(bytes)
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
    /// When the request went to the provider (later than the attempt's start if it waited for a
    /// connection).
    private var sent: Instant

    private var mode = Mode.awaitingHead
    private var exchange: UpstreamExchange?
    private var delivered = false

    // The watchdog: the loop's `DeadlineWatch` checks `deadline` while the attempt is watched;
    // arming only moves it.
    private let attemptDeadline: NIODeadline
    private(set) var deadline: NIODeadline
    private var phase = Phase.attempt
    private var watch: DeadlineWatch?
    /// Where the watch keeps the attempt (its `DeadlineWatch` only touches it); -1 when not watched.
    fileprivate var watchIndex = -1

    // The stream relay: the adapter's translator turns the provider's bytes into OpenAI chunks.
    private var translator: (any StreamTranslator)?
    /// Events not yet handed to the client connection: every one until the stream commits, then
    /// those of the current upstream read, written together (one write per read, not per event).
    private var held = ByteBuffer()
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
        let started = ContinuousClock.now
        sent = started
        let remaining = request.attemptDeadline - started
        attemptDeadline = NIODeadline.now() + TimeAmount(max(remaining, .zero))
        deadline = attemptDeadline
    }

    private var committed: Bool { sink?.isCommitted ?? false }

    func start(client: UpstreamClient) {
        loop.preconditionInEventLoop()
        // The loop's pool, looked up once: its deadline watch, then the exchange.
        let pool = client.pool(for: loop)
        watch = pool.deadlines
        arm(.firstByte, for: request.settings.firstByteTimeout)
        watch?.add(self)
        exchange = client.execute(origin: request.origin, request: request.wire, in: pool, receiver: self)
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

    /// Whether `text` contains `part` (byte for byte; the media type of a head).
    static func contains(_ text: String, _ part: String) -> Bool {
        var text = text
        var part = part
        return text.withUTF8 { t in
            part.withUTF8 { p in
                guard t.count >= p.count else { return false }
                return (0...(t.count - p.count)).contains { i in t[i..<(i + p.count)].elementsEqual(p) }
            }
        }
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
        if request.stream, head.status == 200, let sink,
            Self.contains(head.first(name: "content-type") ?? "", request.adapter.streamContentType)
        {
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
            deliver(.response(status: head.status, head: head, body: body))
        case .streaming(let head):
            if !sawDone, let rest = translator?.finish(), let sink {
                var batch = startBatch(sink)
                var run = RelayRun(input: UnsafeRawBufferPointer(start: nil, count: 0))
                for event in rest {
                    guard event.bytes.withUnsafeBytes({ batch.take(event.kind, $0, run: &run) }) else { break }
                }
                if case .fault(let fault) = endBatch(&batch, sink: sink, head: head) { return failStream(fault) }
            }
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
        var batch = startBatch(sink)
        part.withUnsafeReadableBytes { bytes in
            var run = RelayRun(input: bytes)
            translator!.feed(bytes) { kind, raw in batch.take(kind, raw, run: &run) }
            // A slice only when it is written now: held for a first token still to come, it would
            // keep the whole read buffer alive meanwhile.
            if batch.committed { run.finish(into: &batch.held, from: part) } else { run.flush(into: &batch.held) }
        }
        switch endBatch(&batch, sink: sink, head: head) {
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

    /// A batch for the events of one read, holding what is not yet written.
    private func startBatch(_ sink: StreamSink) -> RelayBatch {
        var held = ByteBuffer()
        swap(&held, &self.held)  // The batch holds the only reference: appending does not copy.
        return RelayBatch(
            held: held, committed: sink.isCommitted, stripUsageChunk: request.stripUsageChunk,
            keepText: request.continuationTextLimit > 0)
    }

    /// Takes back what a batch holds, commits the stream on its first token, and adds what its
    /// events said to the stream's progress (once per read: one lock).
    private func endBatch(_ batch: inout RelayBatch, sink: StreamSink, head: UpstreamResponseHead) -> RelayBatch.Outcome {
        swap(&held, &batch.held)
        if batch.malformed > 0 {
            logger.debug("dropped malformed stream events", metadata: ["count": "\(batch.malformed)"])
        }
        if batch.outcome == .done { sawDone = true }
        if batch.commits {
            sink.progress.state.withLock { $0.firstToken = .now }
            sink.commit(upstream: head.headers)
        }
        let limit = request.continuationTextLimit
        sink.progress.state.withLock { s in
            s.tokens += batch.tokens
            if batch.finished { s.finished = true }
            if let u = batch.usage { s.usage = u }
            s.malformed += batch.malformed
            s.appendText(batch.text, limit: limit)
        }
        return batch.outcome
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
        // The held events are often a slice of the read's buffer: [DONE] goes apart, not copying them.
        if held.readableBytes > 0 { sink.queue(held) }
        held = ByteBuffer()
        sink.queue(sink.writer.allocator.buffer(staticString: "data: [DONE]\n\n"))
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

/// What the events of one upstream read amount to: the bytes for the client, and what the
/// events said, applied to the stream's shared state once the read is done (a value the relay
/// owns during the read: no lock, no reference counting per event).
struct RelayBatch {
    enum Outcome: Equatable {
        /// Read on.
        case more
        /// `[DONE]`: the answer is complete.
        case done
        /// The provider reported an error inside the stream.
        case fault(StreamFault)
    }

    /// What goes to the client.
    var held: ByteBuffer
    /// The client response was committed before this read, or by one of its events.
    var committed: Bool
    /// Drop the usage-only chunk (the gateway asked for it, the client did not).
    let stripUsageChunk: Bool
    /// Keep the text, for a continuation.
    let keepText: Bool

    var outcome = Outcome.more
    /// An event of this read is the stream's first token: the client response commits.
    var commits = false
    var tokens = 0
    var finished = false
    var usage: (input: Int, output: Int)?
    var malformed = 0
    var text = ""

    init(held: ByteBuffer, committed: Bool, stripUsageChunk: Bool, keepText: Bool) {
        self.held = held
        self.committed = committed
        self.stripUsageChunk = stripUsageChunk
        self.keepText = keepText
    }

    /// Takes one translated event (`bytes` what goes to the client); false when the stream ends
    /// with it (`[DONE]` or an error inside the stream).
    mutating func take(_ kind: StreamEvent.Kind, _ bytes: UnsafeRawBufferPointer, run: inout RelayRun) -> Bool {
        switch kind {
        case .other:
            run.add(bytes, into: &held)
            return true
        case .done:
            outcome = .done
            return false
        case .malformed:
            // Not readable: drop it, keep the stream going.
            malformed += 1
            return true
        case .fault(let fault):
            outcome = .fault(fault)
            return false
        case .chunk(let facts):
            if let u = facts.usage { usage = (u.input, u.output) }
            if !facts.content.isEmpty {
                tokens += 1
                if keepText { text += facts.content }
            }
            if facts.finished { finished = true }
            if !(facts.usageOnly && stripUsageChunk) { run.add(bytes, into: &held) }
            if facts.isToken, !committed {
                committed = true
                commits = true
            }
            return true
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

    /// `flush`, where `source` is the buffer whose readable bytes are `input`: when the run is
    /// all there is (the usual read: its events relayed as they came), `out` becomes a slice of
    /// `source`, not a copy.
    mutating func finish(into out: inout ByteBuffer, from source: ByteBuffer) {
        guard !run.isEmpty else { return }
        if out.readableBytes == 0, source.readableBytes == input.count,
            let slice = source.getSlice(at: source.readerIndex + run.lowerBound, length: run.count)
        {
            out = slice
            run = 0..<0
            return
        }
        flush(into: &out)
    }
}

/// The deadlines of the attempts in flight on one event loop, checked by one timer ticking every
/// `granularity` while any is watched, instead of a timer per attempt: NIO's timer heap takes a
/// lock to add a timer and scans itself to cancel one, for every request. Timeouts fire up to
/// `granularity` late. Touched only on `loop`, which makes the unchecked `Sendable` sound.
final class DeadlineWatch: @unchecked Sendable {
    static let granularity = TimeAmount.milliseconds(20)

    private let loop: any EventLoop
    /// The attempts watched, in no order; each knows its place (`watchIndex`), so adding and
    /// removing one is a store, not a hash.
    private var watched: [UpstreamAttempt] = []
    private var tick: Scheduled<Void>?

    init(loop: any EventLoop) {
        self.loop = loop
    }

    var count: Int { watched.count }

    func add(_ attempt: UpstreamAttempt) {
        if isWatching(attempt) { return }
        attempt.watchIndex = watched.count
        watched.append(attempt)
        if tick == nil { scheduleTick() }
    }

    func remove(_ attempt: UpstreamAttempt) {
        guard isWatching(attempt) else { return }
        let i = attempt.watchIndex
        attempt.watchIndex = -1
        // The last one takes the removed one's place.
        let last = watched.removeLast()
        if last !== attempt {
            watched[i] = last
            last.watchIndex = i
        }
    }

    private func isWatching(_ attempt: UpstreamAttempt) -> Bool {
        let i = attempt.watchIndex
        return i >= 0 && i < watched.count && watched[i] === attempt
    }

    private func scheduleTick() {
        tick = loop.scheduleTask(in: Self.granularity) { [self] in
            tick = nil
            let now = NIODeadline.now()
            var passed: [UpstreamAttempt] = []
            for a in watched where a.deadline <= now { passed.append(a) }
            for a in passed {
                remove(a)
                a.deadlinePassed()
            }
            if !watched.isEmpty { scheduleTick() }
        }
    }
}
