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
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
    }

    public func reject(status: HTTPResponseStatus, message: String, requestHead: HTTPRequestHead, _ writer: ResponseWriter) async {
        let id = Self.requestID(requestHead.headers)
        let code = status == .payloadTooLarge ? "request_too_large" : "internal_error"
        await respondError(writer, status: status, message: message, type: "invalid_request_error", code: code, requestID: id, route: "-")
    }

    public func handle(_ request: ServerRequest, _ writer: ResponseWriter) async {
        let requestID = Self.requestID(request.head.headers)
        let table = store.current
        let headers = request.head.headers.map { (name: $0.name, value: $0.value) }
        let facts = RequestFacts(method: request.head.method.rawValue, uri: request.head.uri, headers: headers)
        guard let match = table.match(facts) else {
            await respondError(writer, status: .notFound, message: "No route matches \(request.head.method.rawValue) \(facts.path)", type: "invalid_request_error", code: "route_not_found", requestID: requestID, route: "-")
            return
        }
        let rule = match.rule
        let routeLabel = rule.route.description
        let total = rule.totalWeight
        guard total > 0, let target = rule.pickTarget(roll: Int.random(in: 0..<total)) else {
            await respondError(writer, status: .internalServerError, message: "Route \(routeLabel) has no backend with a positive weight", type: "server_error", code: "no_backend", requestID: requestID, route: routeLabel, rule: rule)
            return
        }
        let backendName: NamespacedName
        switch target {
        case .invalid(let message):
            await respondError(writer, status: .internalServerError, message: "Route \(routeLabel): \(message)", type: "server_error", code: "backend_unresolved", requestID: requestID, route: routeLabel, rule: rule)
            return
        case .backend(let name):
            backendName = name
        }
        guard let backend = table.backends[backendName] else {
            await respondError(writer, status: .internalServerError, message: "Backend \(backendName) not found", type: "server_error", code: "backend_not_found", requestID: requestID, route: routeLabel, rule: rule)
            return
        }
        if let problem = backend.problem {
            await respondError(writer, status: .notImplemented, message: "Backend \(backendName): \(problem)", type: "server_error", code: "backend_not_served", requestID: requestID, route: routeLabel, rule: rule)
            return
        }
        guard request.head.method == .POST else {
            await respondError(writer, status: .methodNotAllowed, message: "\(request.head.method.rawValue) is not allowed here; send chat completions with POST", type: "invalid_request_error", code: "method_not_allowed", requestID: requestID, route: routeLabel, rule: rule, extraHeaders: [("allow", "POST")])
            return
        }
        let chat: ChatRequest
        do {
            chat = try ChatRequest(bytes: Array(request.body.readableBytesView))
        } catch {
            await respondError(writer, status: .badRequest, message: error.description, type: "invalid_request_error", code: "invalid_json", requestID: requestID, route: routeLabel, rule: rule)
            return
        }
        metrics.inFlight(1)
        defer { metrics.inFlight(-1) }
        let status = await runFailover(chat: chat, backend: backend, rule: rule, clientHeaders: request.head.headers, requestID: requestID, writer: writer)
        metrics.request(route: routeLabel, status: status)
    }

    // MARK: - Failover

    private func runFailover(chat: ChatRequest, backend: CompiledBackend, rule: CompiledRule, clientHeaders: HTTPHeaders, requestID: String, writer: ResponseWriter) async -> Int {
        let start = ContinuousClock.now
        let deadline = start + (rule.requestTimeout ?? configuration.defaultRequestTimeout)
        let backendLabel = backend.name.description
        let levels: [[FailoverCandidate]] = backend.priorities.enumerated().map { p, level in
            let offset = health.nextRoundRobin("\(backendLabel)#\(p)", count: level.count)
            let rotated = Array(level[offset...] + level[..<offset])
            return rotated.map(FailoverCandidate.init)
        }
        let entries = Dictionary(backend.entries.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let policy = FailoverPolicy(
            sameEntryRetries: rule.retry.attempts ?? backend.settings.retries, retryCodes: rule.retry.codes, backoff: rule.retry.backoff, deadline: deadline)
        var machine = FailoverMachine(levels: levels, policy: policy, seed: UInt64.random(in: 0...UInt64.max))
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

        var lastResponse: (status: Int, headers: HTTPHeaders, body: [UInt8])?
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
                await respondError(
                    writer, status: HTTPResponseStatus(statusCode: failure.status), message: failure.message, type: failure.status == 504 ? "timeout" : "upstream_error",
                    code: failure.code, requestID: requestID, route: rule.route.description, rule: rule, extraHeaders: extra,
                    extraFields: ["attempts": .array(attempts)], backend: backendLabel, trail: trail.current)
                return failure.status
            case .attempt(let index, let delay, _):
                if delay > .zero {
                    do { try await Task.sleep(for: delay) } catch { return 499 }
                }
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
                    let result = await caller.perform(req, sink: sink, progress: progress) { [metrics] latency in
                        metrics.upstreamLatency(backend: backendLabel, model: entry.model, latency)
                    }
                    switch result {
                    case .response(let status, let headers, let body, _):
                        if (200..<300).contains(status) {
                            if let value = try? JSONParser.parse(body), case .object = value {
                                recordHealth(entry, .success, backend.settings)
                                metrics.attempt(backend: backendLabel, model: entry.model, outcome: "ok")
                                _ = machine.record(.success, now: .now, health: health)
                                trail.set(machine: machine, answered: entry.model)
                                if let u = value["usage"] {
                                    metrics.tokens(backend: backendLabel, model: entry.model, input: u["prompt_tokens"]?.intValue ?? 0, output: u["completion_tokens"]?.intValue ?? 0)
                                }
                                var h = Self.forwardableResponseHeaders(headers)
                                addGatewayHeaders(&h, requestID: requestID, backend: backendLabel, trail: trail.current, rule: rule)
                                try? await writer.respond(status: HTTPResponseStatus(statusCode: status), headers: h, body: body)
                                return status
                            }
                            outcome = .truncated
                        } else {
                            outcome = AttemptOutcome.classify(status: status, headers: headers.map { ($0.name, $0.value) }, body: body, now: .now)
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
    private func finishBrokenStream(
        original: AttemptOutcome, originalModel: String, machine: inout FailoverMachine, chat: ChatRequest, backend: CompiledBackend,
        entries: [String: CompiledEntry], rule: CompiledRule, clientHeaders: HTTPHeaders, requestID: String, deadline: Instant,
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
                let result = await caller.perform(req, sink: sink, progress: progress) { _ in }
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
                    let o = (200..<300).contains(status) ? AttemptOutcome.truncated : AttemptOutcome.classify(status: status, headers: headers.map { ($0.name, $0.value) }, body: body, now: .now)
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

    private func addGatewayHeaders(_ h: inout HTTPHeaders, requestID: String, backend: String, trail: Trail, rule: CompiledRule) {
        h.replaceOrAdd(name: GatewayHeaders.requestID, value: requestID)
        h.replaceOrAdd(name: GatewayHeaders.backend, value: backend)
        if let m = trail.model { h.replaceOrAdd(name: GatewayHeaders.model, value: m) }
        if !trail.header.isEmpty { h.replaceOrAdd(name: GatewayHeaders.attempts, value: trail.header) }
        Self.apply(rule.responseHeaders, to: &h)
    }

    private func respondError(
        _ writer: ResponseWriter, status: HTTPResponseStatus, message: String, type: String, code: String, requestID: String, route: String,
        rule: CompiledRule? = nil, extraHeaders: [(String, String)] = [], extraFields: [String: JSONValue] = [:], backend: String? = nil, trail: Trail? = nil
    ) async {
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
        try? await writer.respond(status: status, headers: h, body: body)
        if rule == nil { metrics.request(route: route, status: Int(status.code)) }
        logger.debug("request failed", metadata: ["request-id": "\(requestID)", "route": "\(route)", "status": "\(status.code)", "code": "\(code)"])
    }

    /// Keeps a sane client-supplied `x-request-id`, or makes one.
    static func requestID(_ headers: HTTPHeaders) -> String {
        if let given = headers.first(name: GatewayHeaders.requestID), !given.isEmpty, given.utf8.count <= 128,
            given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        {
            return given
        }
        var rng = SystemRandomNumberGenerator()
        let hi = rng.next() as UInt64, lo = rng.next() as UInt64
        return hex(hi) + hex(lo)
    }

    private static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
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
