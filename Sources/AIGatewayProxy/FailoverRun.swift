import Synchronization
import AIGatewayAPI
import AIGatewayFailover
import AIGatewayProviders
import AIGatewayRouting
import AIGatewayTelemetry
import Logging
import NIOCore
import NIOHTTP1

/// One request's failover, driven on the client connection's event loop: it performs each action
/// of the `FailoverMachine` (attempt, wait, answer) and feeds every outcome back, with no task
/// and no thread hop between the client, the provider and the decisions. Everything mutable is
/// touched only on `loop` (its callbacks, timers and `cancel` all run there), which is what makes
/// the unchecked `Sendable` sound.
final class FailoverRun: @unchecked Sendable {
    private let gateway: GatewayHandler
    private let job: GatewayHandler.FailoverJob
    private let writer: ResponseWriter
    private let loop: any EventLoop
    private let entries: EntryIndex
    private let deadline: Instant
    /// Called once, when the request is counted (`finish`).
    private let done: @Sendable () -> Void

    private var machine: FailoverMachine
    /// `machine.candidates` (the same array).
    private let candidates: [FailoverCandidate]
    private var sink: StreamSink?
    private var lastResponse: (status: Int, headers: HTTPHeaders, body: ByteBuffer)?
    /// The candidate of the attempt before, by index.
    private var previous: Int?
    /// The model about to answer, or that answered (streams commit headers before the attempt is
    /// recorded).
    private var answeringModel: String?
    private var attempt: UpstreamAttempt?
    /// The attempt `launch` started, until its result.
    private var launched: Launched?
    /// `launched?.metrics`, apart: the first byte reads it without copying the rest.
    private var launchedMetrics: GatewayMetrics.EntryMetrics?
    private var delay: Scheduled<Void>?
    private var finished = false

    private var backend: CompiledBackend { job.backend }
    private var backendLabel: String { job.backend.label }
    private var metrics: GatewayMetrics { gateway.metrics }
    private var health: HealthRegistry { gateway.health }
    private var logger: Logger { gateway.logger }

    init(gateway: GatewayHandler, job: GatewayHandler.FailoverJob, writer: ResponseWriter, done: @escaping @Sendable () -> Void) {
        self.gateway = gateway
        self.job = job
        self.writer = writer
        self.loop = writer.eventLoop
        self.done = done
        gateway.liveRuns.wrappingAdd(1, ordering: .relaxed)
        let backend = job.backend
        let label = backend.label
        deadline = ContinuousClock.now + (job.rule.requestTimeout ?? gateway.configuration.defaultRequestTimeout)
        let candidates: [FailoverCandidate]
        if let kept = KeptCandidates.of(backend, health: gateway.health) {
            candidates = kept.candidates()
        } else {
            var list: [FailoverCandidate] = []
            list.reserveCapacity(backend.entryCount)
            for (p, level) in backend.priorities.enumerated() {
                // Round robin within a pool: each request starts one entry further on.
                let offset = level.count > 1 ? gateway.health.nextRoundRobin("\(label)#\(p)", count: level.count) : 0
                for k in level.indices {
                    list.append(FailoverCandidate(level[(offset + k) % level.count], backendLabel: label))
                }
            }
            candidates = list
        }
        self.candidates = candidates
        entries = EntryIndex(backend)
        let policy = FailoverPolicy(
            sameEntryRetries: job.rule.retry.attempts ?? backend.settings.retries, retryCodes: job.rule.retry.codes, backoff: job.rule.retry.backoff,
            deadline: deadline, retryAfterCap: gateway.configuration.retryAfterCap)
        var rng = FastRandom()
        machine = FailoverMachine(candidates: candidates, policy: policy, seed: rng.next())
    }

    deinit {
        gateway.liveRuns.wrappingSubtract(1, ordering: .relaxed)
    }

    /// Starts the first action. On `loop`.
    func start() {
        loop.preconditionInEventLoop()
        health.depositRequest(backend: backendLabel)
        if job.chat.stream {
            // Weak: the run holds the sink, so a strong capture would keep both (and every
            // buffer of the stream) alive forever. The attempt's callbacks keep the run alive for
            // as long as the stream can still commit.
            sink = StreamSink(writer: writer) { [weak self] upstream in self?.streamHeaders(upstream) ?? upstream }
        }
        perform(machine.start(now: .now, health: health))
    }

    /// The client went away: no further attempt on its behalf. On `loop`.
    func cancel() {
        guard !finished else { return }
        delay?.cancel()
        delay = nil
        let abandoned = attempt
        attempt = nil
        // Finished first: the abandoned attempt's result is not an outcome of the provider's.
        finish(499)
        abandoned?.cancel()
    }

    /// Counts the request with `status` (499: the client went away), once.
    private func finish(_ status: Int) {
        guard !finished else { return }
        finished = true
        metrics.inFlight(-1)
        metrics.request(rule: job.rule, status: status)
        done()
    }

    // MARK: Actions

    private func perform(_ action: FailoverMachine.Action) {
        guard !finished else { return }
        switch action {
        case .done:
            finish(200)
        case .returnUpstreamResponse:
            guard let r = lastResponse else { return finish(502) }
            var h = GatewayHandler.forwardableResponseHeaders(r.headers)
            gateway.addGatewayHeaders(&h, requestID: job.requestID, backend: backendLabel, trail: trail, rule: job.rule)
            writer.respond(status: HTTPResponseStatus(statusCode: r.status), headers: h, body: r.body)
            finish(r.status)
        case .fail(let failure):
            answerFailure(failure)
            finish(failure.status)
        case .attempt(let index, let wait, _):
            if wait > .zero {
                delay = loop.scheduleTask(in: TimeAmount(wait)) { [self] in
                    delay = nil
                    launch(index)
                }
            } else {
                launch(index)
            }
        }
    }

    private func answerFailure(_ failure: FailoverFailure) {
        let attempts: [JSONValue] = machine.records.map { rec in
            let c = machine.candidates[rec.index]
            var o: [String: JSONValue] = ["model": .string(c.model), "outcome": .string(rec.outcome.label), "priority": .int(c.priority)]
            if let provider = entries[c.id]?.target.provider { o["provider"] = .string(provider) }
            if case .unusable(let why) = rec.outcome { o["detail"] = .string(why) }
            if case .incompatible(_, let why) = rec.outcome { o["detail"] = .string(why) }
            return .object(o)
        }
        var extra: [(String, String)] = []
        if let ra = failure.retryAfter {
            extra.append(("retry-after", String(max(1, Int((Double(ra.components.seconds) + Double(ra.components.attoseconds) / 1e18).rounded(.up))))))
        }
        gateway.send(
            gateway.errorReply(
                status: HTTPResponseStatus(statusCode: failure.status), message: failure.message, type: failure.status == 504 ? "timeout" : "upstream_error",
                code: failure.code, requestID: job.requestID, route: job.rule.routeLabel, rule: job.rule, extraHeaders: extra,
                extraFields: ["attempts": .array(attempts)], backend: backendLabel, trail: trail),
            writer)
    }

    private func launch(_ index: Int) {
        guard !finished else { return }
        // The run's own copy of the candidates: reading the machine's would copy the machine.
        guard let entry = entries[candidates[index].id] else { return finish(500) }
        if let prev = previous.map({ candidates[$0] }), prev.id != entry.id {
            metrics.failover(backend: backendLabel, from: prev.model, to: entry.model)
        }
        previous = index
        switch gateway.buildRequest(job: job, entry: entry, deadline: deadline, prefill: nil) {
        case .failure(let why):
            recordFailure(entry, why.outcome)
        case .success(let req):
            answeringModel = entry.model
            let entryMetrics = metrics.entry(of: entry, backend: backendLabel)
            launched = Launched(entry: entry, metrics: entryMetrics, start: ContinuousClock.now, translation: req.translation)
            launchedMetrics = entryMetrics
            // The closures hold the run only (no context of their own to allocate and free).
            start(req, onFirstByte: { [self] latency in launchedMetrics?.upstreamLatency(latency) }) { [self] result in
                attempt = nil
                // Taken, not copied: its entry and context are released once, here.
                guard let l = launched.take() else { return }
                attemptEnded(result, entry: l.entry, entryMetrics: l.metrics, attemptStart: l.start, translation: l.translation)
            }
        }
    }

    /// What `launch` started the attempt in flight with.
    private struct Launched {
        var entry: CompiledEntry
        var metrics: GatewayMetrics.EntryMetrics
        var start: Instant
        var translation: TranslationContext
    }

    /// Starts an attempt; `onResult` clears `attempt` first.
    private func start(_ req: AttemptRequest, onFirstByte: @escaping @Sendable (Duration) -> Void, _ onResult: @escaping (AttemptResult) -> Void) {
        let a = UpstreamAttempt(request: req, loop: loop, sink: sink, logger: logger, onFirstByte: onFirstByte, onResult: onResult)
        attempt = a
        a.start(client: gateway.client)
    }

    private func attemptEnded(
        _ result: AttemptResult, entry: CompiledEntry, entryMetrics: GatewayMetrics.EntryMetrics, attemptStart: Instant, translation: TranslationContext
    ) {
        guard !finished else { return }
        switch result {
        case .response(let status, let head, let body):
            guard let adapter = entry.target.adapter else { return recordFailure(entry, .unusable("no adapter")) }
            if (200..<300).contains(status) {
                if adapter.translates {
                    return answerTranslated(adapter, status: status, head: head, body: body, entry: entry, entryMetrics: entryMetrics, context: translation)
                }
                // Vouch for the answer (it came whole; an object) without a pass over all of it;
                // only its usage is read.
                if let answer = body.withUnsafeReadableBytes({ CompletionAnswer.inspect($0) }) {
                    gateway.recordHealth(entry, .success, backend.settings)
                    entryMetrics.succeeded()
                    _ = machine.record(.success, now: .now, health: health)
                    answeringModel = entry.model
                    if let usage = answer.usage { entryMetrics.tokens(input: usage.input, output: usage.output) }
                    let httpStatus = HTTPResponseStatus(statusCode: status)
                    if job.rule.responseHeaders.isEmpty {
                        // The provider's head forwarded from its bytes (`ForwardedResponseHead`).
                        writer.respond(forwarding: ForwardedResponse(status: httpStatus, upstream: head, gateway: forwardedFields, body: body, close: false))
                    } else {
                        var h = GatewayHandler.forwardableResponseHeaders(head.headers)
                        gateway.addGatewayHeaders(&h, requestID: job.requestID, backend: backendLabel, trail: trail, rule: job.rule)
                        writer.respond(status: httpStatus, headers: h, body: body)
                    }
                    return finish(status)
                }
                recordFailure(entry, .truncated)
            } else {
                let headers = head.headers
                let response = ProviderResponse(status: status, headers: head.pairs, body: Array(body.readableBytesView))
                if let translated = adapter.clientErrorBody(response) {
                    var h = headers
                    h.replaceOrAdd(name: "content-type", value: "application/json")
                    lastResponse = (status, h, ByteBuffer(bytes: translated))
                } else {
                    lastResponse = (status, headers, body)
                }
                recordFailure(entry, AttemptOutcome(adapter.classifyError(response, now: GatewayHandler.wallClock())))
            }
        case .failed(let o):
            recordFailure(entry, o)
        case .streamCompleted:
            recordStreamSuccess(entry, attemptStart: attemptStart)
            _ = machine.record(.success, now: .now, health: health)
            finish(200)
        case .streamBroken(let o):
            gateway.recordHealth(entry, o, backend.settings)
            metrics.attempt(backend: backendLabel, model: entry.model, provider: entry.target.provider, outcome: o.label)
            _ = machine.record(o, now: .now, health: health)
            continueBrokenStream(original: o, originalModel: entry.model)
        }
    }

    /// A complete answer from a translating provider: translated into a `chat.completion`, or a failure.
    private func answerTranslated(
        _ adapter: any ProviderAdapter, status: Int, head: UpstreamResponseHead, body: ByteBuffer, entry: CompiledEntry,
        entryMetrics: GatewayMetrics.EntryMetrics, context: TranslationContext
    ) {
        let job = self.job
        var context = context
        if let names = adapter.answerHeaderNames {
            // Only what the translation reads (Bedrock: its request id), not every field as strings.
            context.responseHeaders = names.compactMap { name in head.first(name: name).map { (name: name, value: $0) } }
        } else {
            context.responseHeaders = head.pairs
        }
        let response = ProviderResponse(status: status, headers: context.responseHeaders, body: Array(body.readableBytesView))
        switch adapter.translateResponse(response, context: context) {
        case .failed(let failure):
            recordFailure(entry, AttemptOutcome(failure))
        case .translated(let out, let usage):
            gateway.recordHealth(entry, .success, backend.settings)
            entryMetrics.succeeded()
            _ = machine.record(.success, now: .now, health: health)
            answeringModel = entry.model
            if let usage { entryMetrics.tokens(input: usage.input, output: usage.output) }
            if job.rule.responseHeaders.isEmpty {
                // The provider's head forwarded from its bytes, its content type now JSON.
                let fields = ForwardedResponseHead.GatewayFields(requestID: job.requestID, backend: backendLabel, trail: trail)
                writer.respond(
                    forwarding: ForwardedResponse(status: .ok, upstream: head, gateway: fields, body: ByteBuffer(bytes: out), close: false, jsonContentType: true))
            } else {
                var h = GatewayHandler.forwardableResponseHeaders(head.headers)
                h.replaceOrAdd(name: "content-type", value: "application/json")
                gateway.addGatewayHeaders(&h, requestID: job.requestID, backend: backendLabel, trail: trail, rule: job.rule)
                writer.respond(status: .ok, headers: h, body: ByteBuffer(bytes: out))
            }
            finish(200)
        }
    }

    /// Counts a failed attempt and moves on to whatever the machine decides.
    private func recordFailure(_ entry: CompiledEntry, _ outcome: AttemptOutcome) {
        gateway.recordHealth(entry, outcome, backend.settings)
        metrics.attempt(backend: backendLabel, model: entry.model, provider: entry.target.provider, outcome: outcome.label)
        if case .misconfigured(let s) = outcome {
            metrics.misconfigured(backend: backendLabel, model: entry.model, reason: String(s))
            logger.warning(
                "provider entry misconfigured",
                metadata: ["request-id": "\(job.requestID)", "backend": "\(backendLabel)", "model": "\(entry.model)", "status": "\(s)", "entry": "\(entry.fieldPath)"])
        }
        if case .unusable(let why) = outcome {
            logger.debug("entry unusable", metadata: ["request-id": "\(job.requestID)", "backend": "\(backendLabel)", "model": "\(entry.model)", "reason": "\(why)"])
        }
        if case .incompatible(let parameter, let why) = outcome {
            logger.debug(
                "entry cannot serve this request",
                metadata: ["request-id": "\(job.requestID)", "backend": "\(backendLabel)", "model": "\(entry.model)", "parameter": "\(parameter)", "reason": "\(why)"])
        }
        perform(machine.record(outcome, now: .now, health: health))
    }

    private func recordStreamSuccess(_ entry: CompiledEntry, attemptStart: Instant) {
        gateway.recordHealth(entry, .success, backend.settings)
        metrics.attempt(backend: backendLabel, model: entry.model, provider: entry.target.provider, outcome: "ok")
        guard let s = sink?.progress.state.withLock({ $0 }) else { return }
        if let u = s.usage { metrics.tokens(backend: backendLabel, model: entry.model, provider: entry.target.provider, input: u.input, output: u.output) }
        if let ft = s.firstToken { metrics.timeToFirstToken(backend: backendLabel, model: entry.model, provider: entry.target.provider, ft - attemptStart) }
        if s.malformed > 0 {
            for _ in 0..<s.malformed { metrics.malformedEvent(backend: backendLabel, model: entry.model) }
        }
    }

    // MARK: Streams

    /// A stream broke after tokens reached the client: continue on the next candidate where the
    /// Backend enables it, else end the stream with an error event (never a clean finish).
    private func continueBrokenStream(original: AttemptOutcome, originalModel: String) {
        guard !finished else { return }
        // An answer longer than the text kept for it cannot be continued.
        let textKept = sink.map { s in s.progress.state.withLock { !$0.textOverflowed } } ?? false
        if backend.settings.streamContinuation, textKept, ContinuousClock.now < deadline, let index = machine.continuationCandidate(now: .now, health: health) {
            let candidate = machine.candidates[index]
            guard let entry = entries[candidate.id] else { return endBrokenStream(original: original, originalModel: originalModel) }
            let prefill = sink?.progress.state.withLock { $0.text } ?? ""
            let req: AttemptRequest
            switch gateway.buildRequest(job: job, entry: entry, deadline: deadline, prefill: prefill) {
            case .success(let r): req = r
            case .failure(let why):
                machine.recordContinuation(why.outcome)
                return continueBrokenStream(original: original, originalModel: originalModel)
            }
            let attemptStart = ContinuousClock.now
            start(req, onFirstByte: { _ in }) { [self] result in
                attempt = nil
                guard !finished else { return }
                switch result {
                case .streamCompleted:
                    machine.recordContinuation(.success)
                    recordStreamSuccess(entry, attemptStart: attemptStart)
                    metrics.failover(backend: backendLabel, from: originalModel, to: entry.model)
                    metrics.streamInterrupted(backend: backendLabel, model: originalModel, resolution: "continued")
                    logger.debug("stream continued", metadata: ["request-id": "\(job.requestID)", "from": "\(originalModel)", "to": "\(entry.model)"])
                    return finish(200)
                case .streamBroken(let o), .failed(let o):
                    machine.recordContinuation(o)
                    gateway.recordHealth(entry, o, backend.settings)
                case .response(let status, let head, let body):
                    // A rejected prefill (or any other answer) must not become the client's error.
                    let o =
                        (200..<300).contains(status)
                        ? AttemptOutcome.truncated
                        : AttemptOutcome(
                            req.adapter.classifyError(
                                ProviderResponse(status: status, headers: head.pairs, body: Array(body.readableBytesView)),
                                now: GatewayHandler.wallClock()))
                    machine.recordContinuation(o)
                    if o.isHealthFailure { gateway.recordHealth(entry, o, backend.settings) }
                }
                continueBrokenStream(original: original, originalModel: originalModel)
            }
            return
        }
        endBrokenStream(original: original, originalModel: originalModel)
    }

    /// Ends the stream with an error event the SDKs raise: no `[DONE]`, no clean finish.
    private func endBrokenStream(original: AttemptOutcome, originalModel: String) {
        metrics.streamInterrupted(backend: backendLabel, model: originalModel, resolution: "error_event")
        let tokens = sink?.progress.state.withLock { $0.tokens } ?? 0
        let what: String
        switch original {
        case .truncated: what = "was cut off"
        case .attemptTimeout: what = "ran out of time"
        case .firstTokenTimeout: what = "stalled"
        default: what = "failed with a provider error (\(original.label))"
        }
        let message = "The answer from \(originalModel) \(what) after \(tokens) token chunk(s) and could not be completed; the text received so far is incomplete."
        let event = "data: " + String(decoding: OpenAIError.body(message: message, type: "upstream_stream_interrupted", code: "stream_interrupted", requestID: job.requestID), as: UTF8.self) + "\n\n"
        _ = writer.sendBody(writer.allocator.buffer(string: event), flush: false)
        _ = writer.sendEnd()
        logger.debug("stream interrupted", metadata: ["request-id": "\(job.requestID)", "model": "\(originalModel)", "outcome": "\(original.label)"])
        finish(200)
    }

    // MARK: What the client sees

    /// The attempt trail so far.
    private var trail: Trail {
        Trail(header: attemptTrail.text, model: answeringModel)
    }

    /// The attempt trail so far, as the machine's records (the arrays only, not the whole machine).
    private var attemptTrail: AttemptTrail {
        AttemptTrail(records: machine.records, candidates: candidates)
    }

    /// The gateway's fields on a forwarded answer: the trail written from the records, no string.
    private var forwardedFields: ForwardedResponseHead.GatewayFields {
        ForwardedResponseHead.GatewayFields(
            requestID: job.requestID, backend: backendLabel, model: answeringModel.map(TrailToken.make), trail: attemptTrail)
    }

    /// Headers of a stream's response, made when it commits to the client (on `loop`).
    private func streamHeaders(_ upstream: HTTPHeaders) -> HTTPHeaders {
        let trail = self.trail
        var h = GatewayHandler.forwardableResponseHeaders(upstream)
        h.replaceOrAdd(name: GatewayHeaders.requestID, value: job.requestID)
        h.replaceOrAdd(name: GatewayHeaders.backend, value: backendLabel)
        if let m = trail.model { h.replaceOrAdd(name: GatewayHeaders.model, value: TrailToken.make(m)) }
        h.replaceOrAdd(name: GatewayHeaders.attempts, value: trail.header)
        h.replaceOrAdd(name: "cache-control", value: "no-cache")
        GatewayHandler.apply(job.rule.responseHeaders, to: &h)
        return h
    }
}

/// A model name as it appears in the attempt trail: printable ASCII without the trail's separators.
enum TrailToken {
    static func allowed(_ c: UInt8) -> Bool { c > 0x20 && c < 0x7F && c != UInt8(ascii: ",") && c != UInt8(ascii: "=") && c != UInt8(ascii: ";") }

    static func make(_ s: String) -> String {
        if s.utf8.allSatisfy(allowed) { return s }
        return String(decoding: s.utf8.filter(allowed), as: UTF8.self)
    }
}

/// A Backend's failover candidates, made once and kept with the compiled Backend: per request
/// only the levels that rotate (round robin) are turned, by counters taken from the health
/// registry once (no lock, no key string per request).
final class KeptCandidates: Sendable {
    /// What the candidates were made of and for.
    let label: String
    let priorities: [[CompiledEntry]]
    let health: HealthRegistry
    /// Per priority level, its candidates in the Backend's order.
    let levels: [[FailoverCandidate]]
    /// Per level, its round-robin counter when it holds more than one entry.
    let rotations: [HealthRegistry.RoundRobin?]
    /// Every level in order when none rotates: the same list for every request.
    let fixed: [FailoverCandidate]?

    private init(_ backend: CompiledBackend, health: HealthRegistry) {
        label = backend.label
        priorities = backend.priorities
        self.health = health
        levels = backend.priorities.map { level in level.map { FailoverCandidate($0, backendLabel: backend.label) } }
        rotations = backend.priorities.indices.map { p in backend.priorities[p].count > 1 ? health.roundRobin("\(backend.label)#\(p)") : nil }
        fixed = rotations.allSatisfy { $0 == nil } ? levels.flatMap { $0 } : nil
    }

    /// The candidates of one request, each rotating level one entry further on than the last
    /// request's (as `nextRoundRobin` turns it).
    func candidates() -> [FailoverCandidate] {
        if let fixed { return fixed }
        var list: [FailoverCandidate] = []
        list.reserveCapacity(levels.reduce(0) { $0 + $1.count })
        for (p, level) in levels.enumerated() {
            let offset = rotations[p]?.next(count: level.count) ?? 0
            for k in level.indices { list.append(level[(offset + k) % level.count]) }
        }
        return list
    }

    /// The kept candidates of `backend` for `health`; nil when the slot holds another's (then
    /// the caller makes them as before).
    static func of(_ backend: CompiledBackend, health: HealthRegistry) -> KeptCandidates? {
        guard !backend.priorities.isEmpty else { return nil }
        let slot = backend.derived
        // A copy of the Backend whose entries changed shares the slot: what is kept is checked
        // against what it was made of (arrays that share their storage compare without reading it).
        guard let kept = (slot.load() ?? slot.storeIfEmpty(KeptCandidates(backend, health: health))) as? KeptCandidates,
            kept.health === health, kept.label == backend.label, kept.priorities == backend.priorities
        else { return nil }
        return kept
    }
}

extension GatewayMetrics {
    /// `entry(backend:model:provider:)` of `entry`, kept with the compiled entry after its first
    /// request (checked against what it was made for: a copy of the entry shares the slot).
    func entry(of entry: CompiledEntry, backend: String) -> EntryMetrics {
        let model = entry.model
        let provider = entry.target.provider
        if let kept = entry.derived.load() as? EntryMetrics, kept.isFor(self, backend: backend, model: model, provider: provider) {
            return kept
        }
        let made = self.entry(backend: backend, model: model, provider: provider)
        _ = entry.derived.storeIfEmpty(made)
        return made
    }

    /// `request(route: rule.routeLabel, status:)`; the handle of the usual status (200) is kept
    /// with the compiled rule once it was counted (not before: a series appears on `/metrics`
    /// when it is first counted).
    func request(rule: CompiledRule, status: Int) {
        guard status == 200 else { return request(route: rule.routeLabel, status: status) }
        if let kept = rule.derived.load() as? RouteMetrics, kept.isFor(self, route: rule.routeLabel) { return request(kept, status: 200) }
        let made = route(rule.routeLabel)
        rule.derived.storeIfEmpty(made)
        request(made, status: 200)
    }
}
