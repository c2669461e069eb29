import AIGatewayAPI
import AIGatewayFailover
import AIGatewayProviders
import AIGatewayRouting
import AIGatewayTelemetry
import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1

/// Settings of the data plane that are not per-route.
public struct ProxyConfiguration: Sendable, Hashable {
    public var limits = ServerLimits()
    /// Whole-request deadline when the route sets no `timeouts.request`.
    public var defaultRequestTimeout: Duration = .seconds(300)
    /// Largest non-streamed upstream response accepted.
    public var maxUpstreamResponseBytes = 64 * 1024 * 1024
    /// TCP/TLS connect timeout to providers.
    public var connectTimeout: Duration = .seconds(5)

    public init() {}
}

/// Response headers that tell the client what happened.
public enum GatewayHeaders {
    /// The model (entry) that answered.
    public static let model = "x-aigw-model"
    /// Every attempt in order: `model=outcome`, comma-separated.
    public static let attempts = "x-aigw-attempts"
    /// The Backend that served the request.
    public static let backend = "x-aigw-backend"
    public static let requestID = "x-request-id"
}

/// Handles client requests: matches the route, validates the body, and runs failover over the
/// Backend's entries, answering with the first good response or one clear error.
public final class GatewayHandler: HTTPHandler {
    let store: TableStore
    let caller: UpstreamCaller
    let health: HealthRegistry
    let metrics: GatewayMetrics
    let logger: Logger
    let configuration: ProxyConfiguration

    public init(store: TableStore, client: HTTPClient, health: HealthRegistry, metrics: GatewayMetrics, configuration: ProxyConfiguration, logger: Logger) {
        self.store = store
        self.caller = UpstreamCaller(client: client, logger: logger)
        self.health = health
        self.metrics = metrics
        self.configuration = configuration
        self.logger = logger
    }

    /// The HTTP client configuration the gateway uses for providers.
    public static func makeHTTPClient(configuration: ProxyConfiguration) -> HTTPClient {
        var config = HTTPClient.Configuration()
        config.redirectConfiguration = .disallow
        config.timeout.connect = TimeAmount(configuration.connectTimeout)
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 4096)
        // Failover decides about retries; a refused connection must fail now, not after the connect timeout.
        config.connectionPool.retryConnectionEstablishment = false
        config.decompression = .disabled
        // No request spans: the gateway reports attempts itself, and a span per attempt costs.
        config.tracing.tracer = nil
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
    }

    public func reject(status: HTTPResponseStatus, message: String, requestHead: HTTPRequestHead, _ writer: ResponseWriter) async {
        let id = Self.requestID(requestHead.headers)
        let code = status == .payloadTooLarge ? "request_too_large" : "internal_error"
        await send(errorReply(status: status, message: message, type: "invalid_request_error", code: code, requestID: id, route: "-"), writer)
    }

    public func handle(_ request: ServerRequest, _ writer: ResponseWriter) async {
        // Everything up to the first upstream call is decided synchronously: what lives across an
        // `await` is kept in the request's task frame for the whole request (a stream's lifetime).
        switch prepare(request) {
        case .reply(let reply):
            await send(reply, writer)
        case .failover(let job):
            metrics.inFlight(1)
            defer { metrics.inFlight(-1) }
            let status = await runFailover(job, writer: writer)
            metrics.request(route: job.routeLabel, status: status)
        }
    }

    /// What `handle` does with a request.
    enum Prepared {
        case reply(PreparedResponse)
        case failover(FailoverJob)
    }

    /// A request routed to a Backend, ready for failover.
    final class FailoverJob: Sendable {
        let chat: ChatRequest
        let backend: CompiledBackend
        let rule: CompiledRule
        let clientHeaders: HTTPHeaders
        let requestID: String
        let routeLabel: String

        init(chat: ChatRequest, backend: CompiledBackend, rule: CompiledRule, clientHeaders: HTTPHeaders, requestID: String, routeLabel: String) {
            self.chat = chat
            self.backend = backend
            self.rule = rule
            self.clientHeaders = clientHeaders
            self.requestID = requestID
            self.routeLabel = routeLabel
        }
    }

    /// A complete response the gateway makes itself (errors).
    final class PreparedResponse: Sendable {
        let status: HTTPResponseStatus
        let headers: HTTPHeaders
        let body: [UInt8]

        init(status: HTTPResponseStatus, headers: HTTPHeaders, body: [UInt8]) {
            self.status = status
            self.headers = headers
            self.body = body
        }
    }

    @inline(never)
    private func prepare(_ request: ServerRequest) -> Prepared {
        let requestID = Self.requestID(request.head.headers)
        let table = store.current
        let headers = request.head.headers.map { (name: $0.name, value: $0.value) }
        let facts = RequestFacts(method: request.head.method.rawValue, uri: request.head.uri, headers: headers)
        guard let match = table.match(facts) else {
            return .reply(errorReply(status: .notFound, message: "No route matches \(request.head.method.rawValue) \(facts.path)", type: "invalid_request_error", code: "route_not_found", requestID: requestID, route: "-"))
        }
        let rule = match.rule
        let routeLabel = rule.route.description
        let total = rule.totalWeight
        var rng = FastRandom()
        guard total > 0, let target = rule.pickTarget(roll: Int.random(in: 0..<total, using: &rng)) else {
            return .reply(errorReply(status: .internalServerError, message: "Route \(routeLabel) has no backend with a positive weight", type: "server_error", code: "no_backend", requestID: requestID, route: routeLabel, rule: rule))
        }
        let backendName: NamespacedName
        switch target {
        case .invalid(let message):
            return .reply(errorReply(status: .internalServerError, message: "Route \(routeLabel): \(message)", type: "server_error", code: "backend_unresolved", requestID: requestID, route: routeLabel, rule: rule))
        case .backend(let name):
            backendName = name
        }
        guard let backend = table.backends[backendName] else {
            return .reply(errorReply(status: .internalServerError, message: "Backend \(backendName) not found", type: "server_error", code: "backend_not_found", requestID: requestID, route: routeLabel, rule: rule))
        }
        if let problem = backend.problem {
            return .reply(errorReply(status: .notImplemented, message: "Backend \(backendName): \(problem)", type: "server_error", code: "backend_not_served", requestID: requestID, route: routeLabel, rule: rule))
        }
        guard request.head.method == .POST else {
            return .reply(errorReply(status: .methodNotAllowed, message: "\(request.head.method.rawValue) is not allowed here; send chat completions with POST", type: "invalid_request_error", code: "method_not_allowed", requestID: requestID, route: routeLabel, rule: rule, extraHeaders: [("allow", "POST")]))
        }
        let chat: ChatRequest
        do {
            chat = try ChatRequest(bytes: Array(request.body.readableBytesView))
        } catch {
            return .reply(errorReply(status: .badRequest, message: error.description, type: "invalid_request_error", code: "invalid_json", requestID: requestID, route: routeLabel, rule: rule))
        }
        return .failover(FailoverJob(chat: chat, backend: backend, rule: rule, clientHeaders: request.head.headers, requestID: requestID, routeLabel: routeLabel))
    }

    // MARK: - Failover

    @inline(never)
    private func runFailover(_ job: FailoverJob, writer: ResponseWriter) async -> Int {
        let (chat, backend, rule, clientHeaders, requestID) = (job.chat, job.backend, job.rule, job.clientHeaders, job.requestID)
        let start = ContinuousClock.now
        let deadline = start + (rule.requestTimeout ?? configuration.defaultRequestTimeout)
        let backendLabel = backend.name.description
        let levels: [[FailoverCandidate]] = backend.priorities.enumerated().map { p, level in
            guard level.count > 1 else { return level.map(FailoverCandidate.init) }
            let offset = health.nextRoundRobin("\(backendLabel)#\(p)", count: level.count)
            let rotated = Array(level[offset...] + level[..<offset])
            return rotated.map(FailoverCandidate.init)
        }
        let entries = EntryIndex(backend)
        let policy = FailoverPolicy(
            sameEntryRetries: rule.retry.attempts ?? backend.settings.retries, retryCodes: rule.retry.codes, backoff: rule.retry.backoff, deadline: deadline)
        var rng = FastRandom()
        var machine = FailoverMachine(levels: levels, policy: policy, seed: rng.next())
        health.depositRequest(backend: backendLabel)
        let progress = StreamProgress()
        let trail = TrailBox()
        let sink: StreamSink? = chat.stream ? StreamSink(writer: writer) { [trail] upstream in
            var h = Self.forwardableResponseHeaders(upstream)
            h.replaceOrAdd(name: GatewayHeaders.requestID, value: requestID)
            h.replaceOrAdd(name: GatewayHeaders.backend, value: backendLabel)
            if let m = trail.current.model { h.replaceOrAdd(name: GatewayHeaders.model, value: m) }
            h.replaceOrAdd(name: GatewayHeaders.attempts, value: trail.current.header)
            h.replaceOrAdd(name: "cache-control", value: "no-cache")
            Self.apply(rule.responseHeaders, to: &h)
            return h
        } : nil

        var lastResponse: (status: Int, headers: HTTPHeaders, body: ByteBuffer)?
        var action = machine.start(now: .now, health: health)
        var previous: CompiledEntry?
        while true {
            trail.set(machine: machine)
            switch action {
            case .done:
                return 200
            case .returnUpstreamResponse:
                guard let r = lastResponse else { return 502 }
                var h = Self.forwardableResponseHeaders(r.headers)
                addGatewayHeaders(&h, requestID: requestID, backend: backendLabel, trail: trail.current, rule: rule)
                try? await writer.respond(status: HTTPResponseStatus(statusCode: r.status), headers: h, body: r.body)
                return r.status
            case .fail(let failure):
                let attempts: [JSONValue] = machine.records.map { rec in
                    let c = machine.candidates[rec.index]
                    var o: [String: JSONValue] = ["model": .string(c.model), "outcome": .string(rec.outcome.label), "priority": .int(c.priority)]
                    if case .unusable(let why) = rec.outcome { o["detail"] = .string(why) }
                    return .object(o)
                }
                var extra: [(String, String)] = []
                if let ra = failure.retryAfter {
                    extra.append(("retry-after", String(max(1, Int((Double(ra.components.seconds) + Double(ra.components.attoseconds) / 1e18).rounded(.up))))))
                }
                await send(
                    errorReply(
                        status: HTTPResponseStatus(statusCode: failure.status), message: failure.message, type: failure.status == 504 ? "timeout" : "upstream_error",
                        code: failure.code, requestID: requestID, route: rule.route.description, rule: rule, extraHeaders: extra,
                        extraFields: ["attempts": .array(attempts)], backend: backendLabel, trail: trail.current),
                    writer)
                return failure.status
            case .attempt(let index, let delay, _):
                if delay > .zero {
                    do { try await Task.sleep(for: delay) } catch { return 499 }
                }
                // The client went away: no further attempt on its behalf.
                if Task.isCancelled { return 499 }
                let candidate = machine.candidates[index]
                guard let entry = entries[candidate.id] else { return 500 }
                if let prev = previous, prev.id != entry.id {
                    metrics.failover(backend: backendLabel, from: prev.model, to: entry.model)
                }
                previous = entry
                let outcome: AttemptOutcome
                switch buildRequest(chat: chat, entry: entry, clientHeaders: clientHeaders, rule: rule, requestID: requestID, deadline: deadline, settings: backend.settings, prefill: nil) {
                case .failure(let why):
                    outcome = .unusable(why.reason)
                case .success(let req):
                    trail.setPending(model: entry.model)
                    let attemptStart = ContinuousClock.now
                    let result = await caller.perform(req, on: writer.eventLoop, sink: sink, progress: progress) { [metrics] latency in
                        metrics.upstreamLatency(backend: backendLabel, model: entry.model, latency)
                    }
                    switch result {
                    case .response(let status, let headers, let body, _):
                        if (200..<300).contains(status) {
                            // Vouch for the answer (complete JSON, an object) without building it; only
                            // its usage is read.
                            if let spans = try? JSONParser.scanTopLevel(body.readableBytesView) {
                                recordHealth(entry, .success, backend.settings)
                                metrics.attempt(backend: backendLabel, model: entry.model, outcome: "ok")
                                _ = machine.record(.success, now: .now, health: health)
                                trail.set(machine: machine, answered: entry.model)
                                if let span = spans["usage"], let bytes = body.getBytes(at: body.readerIndex + span.value.lowerBound, length: span.value.count),
                                    let u = try? JSONParser.parse(bytes)
                                {
                                    metrics.tokens(backend: backendLabel, model: entry.model, input: u["prompt_tokens"]?.intValue ?? 0, output: u["completion_tokens"]?.intValue ?? 0)
                                }
                                var h = Self.forwardableResponseHeaders(headers)
                                addGatewayHeaders(&h, requestID: requestID, backend: backendLabel, trail: trail.current, rule: rule)
                                try? await writer.respond(status: HTTPResponseStatus(statusCode: status), headers: h, body: body)
                                return status
                            }
                            outcome = .truncated
                        } else {
                            outcome = AttemptOutcome.classify(status: status, headers: headers.map { ($0.name, $0.value) }, body: Array(body.readableBytesView), now: .now)
                            lastResponse = (status, headers, body)
                        }
                    case .failed(let o):
                        outcome = o
                    case .streamCompleted:
                        recordStreamSuccess(entry, settings: backend.settings, backendLabel: backendLabel, progress: progress, attemptStart: attemptStart)
                        _ = machine.record(.success, now: .now, health: health)
                        return 200
                    case .streamBroken(let o):
                        recordHealth(entry, o, backend.settings)
                        metrics.attempt(backend: backendLabel, model: entry.model, outcome: o.label)
                        _ = machine.record(o, now: .now, health: health)
                        await finishBrokenStream(
                            original: o, originalModel: entry.model, machine: &machine, chat: chat, backend: backend, entries: entries, rule: rule,
                            clientHeaders: clientHeaders, requestID: requestID, deadline: deadline, sink: sink!, progress: progress)
                        return 200
                    }
                }
                recordHealth(entry, outcome, backend.settings)
                metrics.attempt(backend: backendLabel, model: entry.model, outcome: outcome.label)
                if case .misconfigured(let s) = outcome {
                    metrics.misconfigured(backend: backendLabel, model: entry.model, reason: String(s))
                    logger.warning("provider entry misconfigured", metadata: ["request-id": "\(requestID)", "backend": "\(backendLabel)", "model": "\(entry.model)", "status": "\(s)", "entry": "\(entry.fieldPath)"])
                }
                if case .unusable(let why) = outcome {
                    logger.debug("entry unusable", metadata: ["request-id": "\(requestID)", "backend": "\(backendLabel)", "model": "\(entry.model)", "reason": "\(why)"])
                }
                action = machine.record(outcome, now: .now, health: health)
            }
        }
    }

    @inline(never)
    private func recordHealth(_ entry: CompiledEntry, _ outcome: AttemptOutcome, _ s: BackendSettings) {
        let event = health.record(entry.id, outcome: outcome, now: .now, policy: HealthRegistry.Policy(s))
        switch event {
        case .ejected(let d)?:
            metrics.ejection(backend: entry.backend.description, model: entry.model)
            logger.notice("entry ejected", metadata: ["backend": "\(entry.backend)", "model": "\(entry.model)", "cool-down": "\(d)"])
        case .restored?:
            logger.notice("entry restored", metadata: ["backend": "\(entry.backend)", "model": "\(entry.model)"])
        case nil:
            break
        }
    }

    @inline(never)
    private func recordStreamSuccess(_ entry: CompiledEntry, settings: BackendSettings, backendLabel: String, progress: StreamProgress, attemptStart: Instant) {
        recordHealth(entry, .success, settings)
        metrics.attempt(backend: backendLabel, model: entry.model, outcome: "ok")
        let s = progress.state.withLock { $0 }
        if let u = s.usage { metrics.tokens(backend: backendLabel, model: entry.model, input: u.input, output: u.output) }
        if let ft = s.firstToken { metrics.timeToFirstToken(backend: backendLabel, model: entry.model, ft - attemptStart) }
        if s.malformed > 0 {
            for _ in 0..<s.malformed { metrics.malformedEvent(backend: backendLabel, model: entry.model) }
        }
    }

    /// A stream broke after tokens reached the client: continue on the next candidate where the
    /// Backend enables it, else end the stream with an error event (never a clean finish).
    @inline(never)
    private func finishBrokenStream(
        original: AttemptOutcome, originalModel: String, machine: inout FailoverMachine, chat: ChatRequest, backend: CompiledBackend,
        entries: EntryIndex, rule: CompiledRule, clientHeaders: HTTPHeaders, requestID: String, deadline: Instant,
        sink: StreamSink, progress: StreamProgress
    ) async {
        let backendLabel = backend.name.description
        if backend.settings.streamContinuation {
            while ContinuousClock.now < deadline, let index = machine.continuationCandidate(now: .now, health: health) {
                let candidate = machine.candidates[index]
                guard let entry = entries[candidate.id] else { break }
                let prefill = progress.state.withLock { $0.text }
                guard case .success(let req) = buildRequest(chat: chat, entry: entry, clientHeaders: clientHeaders, rule: rule, requestID: requestID, deadline: deadline, settings: backend.settings, prefill: prefill) else {
                    machine.recordContinuation(.unusable("no credentials"))
                    continue
                }
                let attemptStart = ContinuousClock.now
                let result = await caller.perform(req, on: sink.writer.eventLoop, sink: sink, progress: progress) { _ in }
                switch result {
                case .streamCompleted:
                    machine.recordContinuation(.success)
                    recordStreamSuccess(entry, settings: backend.settings, backendLabel: backendLabel, progress: progress, attemptStart: attemptStart)
                    metrics.failover(backend: backendLabel, from: originalModel, to: entry.model)
                    metrics.streamInterrupted(backend: backendLabel, model: originalModel, resolution: "continued")
                    logger.debug("stream continued", metadata: ["request-id": "\(requestID)", "from": "\(originalModel)", "to": "\(entry.model)"])
                    return
                case .streamBroken(let o):
                    machine.recordContinuation(o)
                    recordHealth(entry, o, backend.settings)
                case .failed(let o):
                    machine.recordContinuation(o)
                    recordHealth(entry, o, backend.settings)
                case .response(let status, let headers, let body, _):
                    // A rejected prefill (or any other answer) must not become the client's error.
                    let o = (200..<300).contains(status) ? AttemptOutcome.truncated : AttemptOutcome.classify(status: status, headers: headers.map { ($0.name, $0.value) }, body: Array(body.readableBytesView), now: .now)
                    machine.recordContinuation(o)
                    if o.isHealthFailure { recordHealth(entry, o, backend.settings) }
                }
            }
        }
        metrics.streamInterrupted(backend: backendLabel, model: originalModel, resolution: "error_event")
        let tokens = progress.state.withLock { $0.tokens }
        let what: String
        switch original {
        case .truncated: what = "was cut off"
        case .attemptTimeout: what = "ran out of time"
        default: what = "stalled"
        }
        let message = "The answer from \(originalModel) \(what) after \(tokens) token chunk(s) and could not be completed; the text received so far is incomplete."
        let event = "data: " + String(decoding: OpenAIError.body(message: message, type: "upstream_stream_interrupted", code: "stream_interrupted", requestID: requestID), as: UTF8.self) + "\n\n"
        try? await sink.send(Array(event.utf8))
        try? await sink.writer.end()
        logger.debug("stream interrupted", metadata: ["request-id": "\(requestID)", "model": "\(originalModel)", "outcome": "\(original.label)"])
    }

    // MARK: - Requests and responses

    static let droppedRequestHeaders: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
        "host", "content-length", "accept-encoding", "authorization", "api-key", "x-api-key", "x-goog-api-key", "expect",
    ]

    static let droppedResponseHeaders: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "content-length",
    ]

    @inline(never)
    private func buildRequest(
        chat: ChatRequest, entry: CompiledEntry, clientHeaders: HTTPHeaders, rule: CompiledRule, requestID: String, deadline: Instant,
        settings: BackendSettings, prefill: String?
    ) -> Result<AttemptRequest, BuildError> {
        let target = entry.target
        guard let auth = entry.auth, entry.problem == nil else { return .failure(BuildError(entry.problem ?? "no credentials")) }
        var h = HTTPHeaders()
        let connectionTokens = Set(clientHeaders[canonicalForm: "connection"].map { $0.lowercased() })
        for (name, value) in clientHeaders {
            let lower = name.lowercased()
            if Self.droppedRequestHeaders.contains(lower) || connectionTokens.contains(lower) { continue }
            h.add(name: name, value: value)
        }
        Self.apply(rule.requestHeaders, to: &h)
        h.replaceOrAdd(name: "content-type", value: "application/json")
        if chat.stream { h.replaceOrAdd(name: "accept", value: "text/event-stream") }
        switch auth {
        case .key(let key):
            h.replaceOrAdd(name: target.authHeaderName, value: target.authPrefix + key.value)
        case .passthrough:
            guard let header = clientHeaders.first(name: "authorization") else {
                return .failure(BuildError("this entry forwards the client's own key, and the request has no Authorization header"))
            }
            var token = Substring(header)
            if token.lowercased().hasPrefix("bearer ") { token = token.dropFirst(7) }
            h.replaceOrAdd(name: target.authHeaderName, value: target.authPrefix + token)
        }
        for s in target.staticHeaders { h.replaceOrAdd(name: s.name, value: s.value) }
        h.replaceOrAdd(name: GatewayHeaders.requestID, value: requestID)
        let now = ContinuousClock.now
        var attemptDeadline = deadline
        if let per = rule.backendRequestTimeout, now + per < deadline { attemptDeadline = now + per }
        let body = chat.body(model: target.model, includeUsage: true, prefill: prefill)
        return .success(AttemptRequest(
            url: target.baseURL + target.path, headers: h, body: body, stream: chat.stream, stripUsageChunk: chat.stream && !chat.clientWantsStreamUsage,
            settings: settings, attemptDeadline: attemptDeadline, maxResponseBytes: configuration.maxUpstreamResponseBytes))
    }

    struct BuildError: Error {
        var reason: String
        init(_ r: String) { reason = r }
    }

    @inline(never)
    static func forwardableResponseHeaders(_ upstream: HTTPHeaders) -> HTTPHeaders {
        var h = HTTPHeaders()
        for (name, value) in upstream where !droppedResponseHeaders.contains(name.lowercased()) {
            h.add(name: name, value: value)
        }
        return h
    }

    static func apply(_ modifiers: [HeaderModifier], to h: inout HTTPHeaders) {
        for m in modifiers {
            for p in m.setPairs { h.replaceOrAdd(name: p.name, value: p.value) }
            for p in m.addPairs { h.add(name: p.name, value: p.value) }
            for r in m.remove { h.remove(name: r) }
        }
    }

    @inline(never)
    private func addGatewayHeaders(_ h: inout HTTPHeaders, requestID: String, backend: String, trail: Trail, rule: CompiledRule) {
        h.replaceOrAdd(name: GatewayHeaders.requestID, value: requestID)
        h.replaceOrAdd(name: GatewayHeaders.backend, value: backend)
        if let m = trail.model { h.replaceOrAdd(name: GatewayHeaders.model, value: m) }
        if !trail.header.isEmpty { h.replaceOrAdd(name: GatewayHeaders.attempts, value: trail.header) }
        Self.apply(rule.responseHeaders, to: &h)
    }

    private func send(_ reply: PreparedResponse, _ writer: ResponseWriter) async {
        try? await writer.respond(status: reply.status, headers: reply.headers, body: reply.body)
    }

    /// An error in the OpenAI shape, counted and logged (the request id, never a payload or key).
    @inline(never)
    private func errorReply(
        status: HTTPResponseStatus, message: String, type: String, code: String, requestID: String, route: String,
        rule: CompiledRule? = nil, extraHeaders: [(String, String)] = [], extraFields: [String: JSONValue] = [:], backend: String? = nil, trail: Trail? = nil
    ) -> PreparedResponse {
        var h = HTTPHeaders()
        h.add(name: "content-type", value: "application/json")
        for (n, v) in extraHeaders { h.add(name: n, value: v) }
        if let backend, let trail, let rule {
            addGatewayHeaders(&h, requestID: requestID, backend: backend, trail: trail, rule: rule)
        } else {
            h.replaceOrAdd(name: GatewayHeaders.requestID, value: requestID)
            if let rule { Self.apply(rule.responseHeaders, to: &h) }
        }
        let body = OpenAIError.body(message: message, type: type, code: code, requestID: requestID, extra: extraFields)
        // Failover's final errors are counted by `handle`, with every other failover outcome.
        if backend == nil { metrics.request(route: route, status: Int(status.code)) }
        logger.debug("request failed", metadata: ["request-id": "\(requestID)", "route": "\(route)", "status": "\(status.code)", "code": "\(code)"])
        return PreparedResponse(status: status, headers: h, body: body)
    }

    /// Keeps a sane client-supplied `x-request-id`, or makes one.
    @inline(never)
    static func requestID(_ headers: HTTPHeaders) -> String {
        if let given = headers.first(name: GatewayHeaders.requestID), !given.isEmpty, given.utf8.count <= 128,
            given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        {
            return given
        }
        var rng = FastRandom()
        let hi = rng.next(), lo = rng.next()
        return hex(hi) + hex(lo)
    }

    private static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}

/// A Backend's entries by id. Backends hold a handful of entries, so a scan beats building a
/// dictionary per request.
struct EntryIndex: Sendable {
    let backend: CompiledBackend

    init(_ backend: CompiledBackend) { self.backend = backend }

    subscript(id: String) -> CompiledEntry? {
        for level in backend.priorities {
            for e in level where e.id == id { return e }
        }
        return nil
    }
}

/// Random numbers for request ids, weighted picks and backoff jitter: SplitMix64 over an atomic
/// counter seeded once from the system generator. (`SystemRandomNumberGenerator` costs a
/// `getrandom` system call per number on Linux.) Not for secrets.
struct FastRandom: RandomNumberGenerator {
    private static let state = Atomic<UInt64>(UInt64.random(in: .min ... .max))

    mutating func next() -> UInt64 {
        var z = Self.state.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The attempt trail as the client sees it.
struct Trail: Sendable {
    var header = ""
    var model: String?
}

/// Shares the trail with the stream sink, which sends headers when the first token arrives.
final class TrailBox: Sendable {
    private let value = Mutex(Trail())

    var current: Trail { value.withLock { $0 } }

    @inline(never)
    func set(machine: FailoverMachine, answered: String? = nil) {
        let header = machine.records.map { rec in
            "\(Self.token(machine.candidates[rec.index].model))=\(rec.outcome.label)"
        }.joined(separator: ",")
        value.withLock { t in
            t.header = header
            if let answered { t.model = answered }
        }
    }

    /// Sets the model about to answer (streams commit headers before the attempt is recorded).
    func setPending(model: String) { value.withLock { $0.model = model } }

    static func token(_ s: String) -> String {
        String(s.unicodeScalars.filter { $0.value > 0x20 && $0.value < 0x7F && $0 != "," && $0 != "=" && $0 != ";" }.map(Character.init))
    }
}

import Synchronization
