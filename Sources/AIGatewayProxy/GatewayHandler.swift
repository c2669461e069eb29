import AIGatewayAPI
import AIGatewayFailover
import AIGatewayProviders
import AIGatewayRouting
import AIGatewayTelemetry
import Logging
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Settings of the data plane that are not per-route.
public struct ProxyConfiguration: Sendable, Hashable {
    public var limits = ServerLimits()
    /// Whole-request deadline when the route sets no `timeouts.request`.
    public var defaultRequestTimeout: Duration = .seconds(300)
    /// Largest non-streamed upstream response accepted.
    public var maxUpstreamResponseBytes = 64 * 1024 * 1024
    /// Most text of a streamed answer kept for a continuation (Backends with stream continuation
    /// on); a longer answer that breaks ends with the error event instead.
    public var maxContinuationTextBytes = 1024 * 1024
    /// TCP connect timeout to providers (a TLS handshake gets as long again).
    public var connectTimeout: Duration = .seconds(5)
    /// PEM file of CA certificates trusted for providers in addition to the system store.
    public var providerCAFile: String?
    /// The longest cool-down a provider's `Retry-After` / `x-ratelimit-reset-*` can impose on an entry.
    public var retryAfterCap: Duration = HealthRegistry.Policy.defaultRetryAfterCap
    /// Connections per provider origin on each event loop; a burst beyond waits for one. (A stream
    /// holds its connection for the whole answer: 1,000 concurrent streams fit on one loop.)
    public var maxUpstreamConnections = 1024

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
    let client: UpstreamClient
    let health: HealthRegistry
    let metrics: GatewayMetrics
    let logger: Logger
    let configuration: ProxyConfiguration
    /// Failover runs alive now: each request's run is freed when it is over (a test checks that a
    /// finished stream leaves none behind).
    let liveRuns = Atomic<Int>(0)
    /// The gateway's own AWS credentials (Bedrock entries without a Secret).
    let awsCredentials: AWSCredentialSource

    public init(
        store: TableStore, client: UpstreamClient, health: HealthRegistry, metrics: GatewayMetrics, configuration: ProxyConfiguration, logger: Logger,
        awsCredentials: AWSCredentialSource = .none
    ) {
        self.awsCredentials = awsCredentials
        self.store = store
        self.client = client
        self.health = health
        self.metrics = metrics
        self.configuration = configuration
        self.logger = logger
    }

    /// The client the gateway calls providers with.
    ///
    /// - Throws: when the TLS configuration cannot be built (an unreadable `providerCAFile`).
    public static func makeUpstreamClient(configuration: ProxyConfiguration) throws -> UpstreamClient {
        var c = UpstreamClient.Configuration()
        c.connectTimeout = configuration.connectTimeout
        c.additionalCAFile = configuration.providerCAFile
        c.maxConnectionsPerOrigin = configuration.maxUpstreamConnections
        return try UpstreamClient(configuration: c)
    }

    public func reject(status: HTTPResponseStatus, message: String, requestHead: HTTPRequestHead, _ writer: ResponseWriter) {
        let id = Self.requestID(given: requestHead.headers.first(name: GatewayHeaders.requestID))
        let code = status == .payloadTooLarge ? "request_too_large" : "internal_error"
        send(errorReply(status: status, message: message, type: "invalid_request_error", code: code, requestID: id, route: "-"), writer)
    }

    public func handle(_ request: ServerRequest, _ writer: ResponseWriter, done: @escaping @Sendable () -> Void) {
        switch prepare(request) {
        case .reply(let reply):
            send(reply, writer)
            done()
        case .failover(let job):
            metrics.inFlight(1)
            // Counted when it finishes (`inFlight(-1)`, `request`), before `done`.
            let run = FailoverRun(gateway: self, job: job, writer: writer, done: done)
            // The client went away: the run stops (the server calls this on the connection's loop).
            writer.onCancel { run.cancel() }
            run.start()
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
        /// The client's head, whose fields the attempts forward.
        let clientHead: RequestHead
        let requestID: String

        init(chat: ChatRequest, backend: CompiledBackend, rule: CompiledRule, clientHead: RequestHead, requestID: String) {
            self.chat = chat
            self.backend = backend
            self.rule = rule
            self.clientHead = clientHead
            self.requestID = requestID
        }

        /// With the client's headers in NIO's shape (tests).
        convenience init(chat: ChatRequest, backend: CompiledBackend, rule: CompiledRule, clientHeaders: HTTPHeaders, requestID: String) {
            let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/", headers: clientHeaders)
            self.init(chat: chat, backend: backend, rule: rule, clientHead: RequestHead.from(head)!, requestID: requestID)
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
        let requestID = Self.requestID(request.parsed)
        let table = store.current
        // The headers are searched in place: for the host here, for a header only by a rule matching on one.
        let head = request.parsed
        let facts = RequestFacts(
            method: head.method.rawValue, uri: head.uri, host: head.first("host").map { head.string($0) },
            fields: RequestHeaderFieldsOfHead(head: head))
        guard let match = table.match(facts) else {
            return .reply(errorReply(status: .notFound, message: "No route matches \(request.parsed.method.rawValue) \(facts.path)", type: "invalid_request_error", code: "route_not_found", requestID: requestID, route: "-"))
        }
        let rule = match.rule
        let routeLabel = rule.routeLabel
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
        guard request.parsed.method == .POST else {
            return .reply(errorReply(status: .methodNotAllowed, message: "\(request.parsed.method.rawValue) is not allowed here; send chat completions with POST", type: "invalid_request_error", code: "method_not_allowed", requestID: requestID, route: routeLabel, rule: rule, extraHeaders: [("allow", "POST")]))
        }
        let chat: ChatRequest
        do {
            chat = try ChatRequest(bytes: Array(request.body.readableBytesView))
        } catch {
            return .reply(errorReply(status: .badRequest, message: error.description, type: "invalid_request_error", code: "invalid_json", requestID: requestID, route: routeLabel, rule: rule))
        }
        return .failover(FailoverJob(chat: chat, backend: backend, rule: rule, clientHead: request.parsed, requestID: requestID))
    }

    // MARK: - Health

    @inline(never)
    func recordHealth(_ entry: CompiledEntry, _ outcome: AttemptOutcome, _ s: BackendSettings) {
        let event = health.record(entry.id, outcome: outcome, now: .now, policy: HealthRegistry.Policy(s, retryAfterCap: configuration.retryAfterCap))
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

    // MARK: - Requests and responses

    static let droppedResponseHeaders = HeaderNameSet([
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "content-length",
        // The gateway's own, set by `addGatewayHeaders` (a provider's would be replaced anyway).
        GatewayHeaders.requestID, GatewayHeaders.backend, GatewayHeaders.model, GatewayHeaders.attempts,
    ])

    /// One attempt's request: the adapter builds it (path, provider headers, body) and
    /// authorizes it; the gateway adds the client's forwardable headers, the route's header
    /// modifiers and the framing.
    @inline(never)
    func buildRequest(job: FailoverJob, entry: CompiledEntry, deadline: Instant, prefill: String?) -> Result<AttemptRequest, BuildError> {
        let (chat, clientHead, rule, requestID, settings) = (job.chat, job.clientHead, job.rule, job.requestID, job.backend.settings)
        let target = entry.target
        guard let adapter = target.adapter else { return .failure(BuildError("provider \(target.provider) is not served by this gateway yet")) }
        guard let auth = entry.auth, entry.problem == nil else { return .failure(BuildError(entry.problem ?? "no credentials")) }
        let credential: ProviderCredential
        switch auth {
        case .key(let key):
            credential = .apiKey(key)
        case .passthrough:
            guard let key = Self.clientKey(clientHead) else {
                return .failure(BuildError("this entry forwards the client's own key, and the request has no Authorization header"))
            }
            credential = .passthrough(key)
        case .aws(let keys):
            credential = .aws(keys)
        case .awsDefaultChain:
            guard let keys = awsCredentials.current() else {
                return .failure(BuildError("no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, configure web identity, or name a Secret in the entry's auth"))
            }
            credential = .aws(keys)
        }
        var upstream: UpstreamRequest
        switch adapter.makeRequest(AttemptInput(chat: chat, target: target, prefill: prefill)) {
        case .success(let r): upstream = r
        case .failure(let refusal): return .failure(BuildError(refusal))
        }
        if !upstream.dropped.isEmpty {
            logger.debug(
                "parameters left out for this target",
                metadata: ["request-id": "\(requestID)", "provider": "\(target.provider)", "model": "\(entry.model)", "dropped": "\(upstream.dropped.joined(separator: ","))"])
        }
        if case .failure(let refusal) = adapter.authorize(&upstream, credential: credential, target: target, now: Self.wallClock()) {
            return .failure(BuildError(refusal))
        }
        let now = ContinuousClock.now
        var attemptDeadline = deadline
        if let per = rule.backendRequestTimeout, now + per < deadline { attemptDeadline = now + per }
        var body = ByteBuffer()
        // The usual body (the client's, its model replaced), when it goes in the head's buffer:
        // written there, not into a buffer of its own first.
        var inPlace: ChatRequest.ModelOnlyBody?
        switch upstream.body {
        case .clientBytes(let model, let includeUsage, let prefill):
            if rule.requestHeaders.isEmpty, let plain = ChatRequest.ModelOnlyBody(chat, model: model, includeUsage: includeUsage, prefill: prefill),
                plain.count <= RequestEncoder.gatherLimit
            {
                inPlace = plain
            } else {
                body = ByteBufferAllocator().buffer(capacity: chat.bytes.count + 64)
                chat.writeBody(model: model, includeUsage: includeUsage, prefill: prefill) { body.writeBytes($0) }
            }
        case .bytes(let bytes):
            body = ByteBufferAllocator().buffer(bytes: bytes)
        }
        let wire: UpstreamRequestBytes
        if let inPlace {
            let head = UpstreamRequestHead(
                method: upstream.method, path: upstream.path, host: target.hostHeader, client: clientHead, policy: ClientHeaderPolicy.forAuth(auth),
                provider: upstream.headers, requestID: requestID, contentLength: inPlace.count)
            wire = UpstreamRequestBytes(head, bodyCount: inPlace.count) { out in inPlace.write(chat) { out.writeBytes($0) } }
        } else if rule.requestHeaders.isEmpty {
            // The common case: the head written as bytes, the client's fields copied from its head.
            let head = UpstreamRequestHead(
                method: upstream.method, path: upstream.path, host: target.hostHeader, client: clientHead, policy: ClientHeaderPolicy.forAuth(auth),
                provider: upstream.headers, requestID: requestID, contentLength: body.readableBytes)
            wire = UpstreamRequestBytes(head, body: body)
        } else {
            // The route modifies the request's headers: built in `HTTPHeaders`, where the
            // modifiers apply.
            var h = HTTPHeaders()
            h.reserveCapacity(clientHead.fields.count + 8)
            h.add(name: "host", value: target.hostHeader)
            ClientHeaderPolicy.forAuth(auth).forward(HTTPHeaders(clientHead.fieldPairs()), into: &h)
            Self.apply(rule.requestHeaders, to: &h)
            // The upstream host is not the route's to change.
            h.replaceOrAdd(name: "host", value: target.hostHeader)
            for f in upstream.headers { h.replaceOrAdd(name: f.name, value: f.value) }
            h.replaceOrAdd(name: GatewayHeaders.requestID, value: requestID)
            h.add(name: "content-length", value: String(body.readableBytes))
            wire = UpstreamRequestBytes(HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: upstream.method), uri: upstream.path, headers: h), body: body)
        }
        let origin = UpstreamOrigin(tls: target.tls, host: target.host, port: target.port)
        var translation = TranslationContext(
            model: target.model ?? chat.model ?? target.displayModel, clientWantsUsage: chat.clientWantsStreamUsage, continuation: prefill != nil,
            created: adapter.translates ? Int(Self.wallClock()) : 0, fallbackID: adapter.translates ? "chatcmpl-" + requestID : "")
        translation.hints = upstream.hints
        return .success(AttemptRequest(
            origin: origin, wire: wire,
            stream: chat.stream, stripUsageChunk: chat.stream && !chat.clientWantsStreamUsage, adapter: adapter, translation: translation,
            settings: settings, attemptDeadline: attemptDeadline, maxResponseBytes: configuration.maxUpstreamResponseBytes,
            continuationTextLimit: settings.streamContinuation ? configuration.maxContinuationTextBytes : 0))
    }

    /// The client's own key for a Passthrough entry: its first `Authorization` value, without a
    /// `Bearer ` prefix (any case). Nil without one.
    static func clientKey(_ head: RequestHead) -> SecretString? {
        guard var value = head.first("authorization") else { return nil }
        let bearer = head.bytes.withUnsafeReadableBytes { p in
            value.count >= 7 && HeadSyntax.equalsLowercase(RequestHead.slice(p, RequestHead.Span(start: value.start, end: value.start + 7)), "bearer ")
        }
        if bearer { value.start += 7 }
        return SecretString(head.string(value))
    }

    /// Seconds since 1970 (request signing, `created` of translated answers).
    static func wallClock() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Why an attempt could not be built: the entry is unusable, or cannot serve this request.
    struct BuildError: Error {
        var reason: String
        /// The parameter the candidate cannot honour, when that is the reason.
        var parameter: String?
        init(_ r: String) { reason = r }
        init(_ refusal: AttemptRefusal) {
            reason = refusal.reason
            parameter = refusal.parameter
        }

        var outcome: AttemptOutcome {
            if let parameter { return .incompatible(parameter: parameter, reason: reason) }
            return .unusable(reason)
        }
    }

    @inline(never)
    static func forwardableResponseHeaders(_ upstream: HTTPHeaders) -> HTTPHeaders {
        var h = HTTPHeaders()
        h.reserveCapacity(upstream.count + 6)
        for (name, value) in upstream where !droppedResponseHeaders.contains(name) {
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

    /// Adds the gateway's headers and the route's response modifiers. `h` holds none of the
    /// gateway's headers (`forwardableResponseHeaders` drops a provider's), so they are added
    /// without a search for one to replace.
    @inline(never)
    func addGatewayHeaders(_ h: inout HTTPHeaders, requestID: String, backend: String, trail: Trail, rule: CompiledRule) {
        Self.addGatewayHeaders(&h, ForwardedResponseHead.GatewayFields(requestID: requestID, backend: backend, trail: trail))
        Self.apply(rule.responseHeaders, to: &h)
    }

    /// The gateway's own fields, in the order `ForwardedResponseHead` writes them.
    static func addGatewayHeaders(_ h: inout HTTPHeaders, _ fields: ForwardedResponseHead.GatewayFields) {
        h.add(name: GatewayHeaders.requestID, value: fields.requestID)
        h.add(name: GatewayHeaders.backend, value: fields.backend)
        if let m = fields.model { h.add(name: GatewayHeaders.model, value: m) }
        if !fields.attempts.isEmpty { h.add(name: GatewayHeaders.attempts, value: fields.attempts) }
    }

    func send(_ reply: PreparedResponse, _ writer: ResponseWriter) {
        writer.respond(status: reply.status, headers: reply.headers, body: reply.body)
    }

    /// An error in the OpenAI shape, counted and logged (the request id, never a payload or key).
    @inline(never)
    func errorReply(
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

    /// Keeps a sane client-supplied `x-request-id` (read from the head's bytes), or makes one.
    @inline(never)
    static func requestID(_ head: RequestHead) -> String {
        if let given = head.first("x-request-id"),
            head.bytes.withUnsafeReadableBytes({ p in isSaneRequestID(RequestHead.slice(p, given)) })
        {
            return head.string(given)
        }
        return newRequestID()
    }

    /// The same from a value in NIO's shape (rejections).
    static func requestID(given: String?) -> String {
        if let given {
            var given = given
            if given.withUTF8({ isSaneRequestID(UnsafeRawBufferPointer($0)) }) { return given }
        }
        return newRequestID()
    }

    /// 1 to 128 visible ASCII characters.
    private static func isSaneRequestID(_ bytes: UnsafeRawBufferPointer) -> Bool {
        !bytes.isEmpty && bytes.count <= 128 && bytes.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// 32 random hex digits.
    private static func newRequestID() -> String {
        var rng = FastRandom()
        let hi = rng.next(), lo = rng.next()
        // 32 hex digits written in place: one allocation.
        return String(unsafeUninitializedCapacity: 32) { out in
            func put(_ v: UInt64, at offset: Int) {
                for i in 0..<16 {
                    let nibble = UInt8(truncatingIfNeeded: v >> (60 - 4 * UInt64(i))) & 0xF
                    out[offset + i] = nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
                }
            }
            put(hi, at: 0)
            put(lo, at: 16)
            return 32
        }
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

import Synchronization
