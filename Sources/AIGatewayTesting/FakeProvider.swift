import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// An OpenAI-style chat completions server on a real socket that can misbehave on demand.
///
/// Accepted paths: `/v1/chat/completions`, `/chat/completions` and the Azure form
/// `/openai/deployments/<deployment>/chat/completions?api-version=...` (the deployment name is the model).
/// Control endpoints (not recorded): `PUT /_fake/faults/<model>` (body: textual `FaultSpec`, `ok` clears),
/// `GET /_fake/faults`, `DELETE /_fake/faults`, `GET /_fake/requests`, `DELETE /_fake/requests`,
/// `GET /_fake/health`.
public final class FakeProvider: Sendable {
    /// At most this many recorded requests are kept (the most recent ones).
    public static let recordedRequestLimit = 10_000

    public let configuration: FakeProviderConfiguration

    /// The full answer's content tokens.
    let answerTokens: [String]
    let tokenInterval: TimeAmount
    let logger: Logger

    private struct ActiveFault {
        var spec: FaultSpec
        /// Requests still affected when the spec has `times=`; nil means until changed.
        var remaining: Int?
    }

    private struct Lifecycle {
        var server: (any Channel)?
        var port = 0
        var accepting = false
        var connections: [ObjectIdentifier: any Channel] = [:]
        var accepted = 0
    }

    private let faultTable: Mutex<[String: ActiveFault]>
    private let records: Mutex<RingBuffer<RecordedRequest>>
    private let lifecycle = Mutex(Lifecycle())
    private let responseCounter = Atomic<Int>(0)

    public init(configuration: FakeProviderConfiguration = .init()) {
        self.configuration = configuration
        self.answerTokens = AnswerText.tokens(count: configuration.tokens)
        let (seconds, attoseconds) = configuration.tokenInterval.components
        let nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        self.tokenInterval = .nanoseconds(
            nanoseconds.overflow ? Int64.max : max(0, nanoseconds.partialValue + attoseconds / 1_000_000_000)
        )
        var table: [String: ActiveFault] = [:]
        for (model, spec) in configuration.faults where Self.isEffective(spec) {
            table[model] = ActiveFault(spec: spec, remaining: spec.times)
        }
        self.faultTable = Mutex(table)
        self.records = Mutex(RingBuffer(capacity: Self.recordedRequestLimit))
        self.logger = Logger(label: "ai-gateway.fake-provider")
    }

    // MARK: Lifecycle

    /// Binds the listener and returns the bound port.
    @discardableResult
    public func start() async throws -> Int {
        let alreadyRunning = self.lifecycle.withLock { state -> Int? in
            if state.server != nil { return state.port }
            state.accepting = true
            return nil
        }
        if let alreadyRunning { return alreadyRunning }

        let tlsContext: NIOSSLContext?
        do {
            tlsContext = try configuration.tls.map { files in
                try NIOSSLContext(
                    configuration: .makeServerConfiguration(
                        certificateChain: try NIOSSLCertificate.fromPEMFile(files.certificateChain).map { .certificate($0) },
                        privateKey: .privateKey(try NIOSSLPrivateKey(file: files.privateKey, format: .pem))))
            }
        } catch {
            self.lifecycle.withLock { $0.accepting = false }
            throw error
        }
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    guard self.register(connection: channel) else {
                        throw ChannelError.ioOnClosedChannel
                    }
                    if let tlsContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tlsContext))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(FakeProviderHandler(provider: self))
                }
            }

        let server: any Channel
        do {
            server = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        } catch {
            self.lifecycle.withLock { $0.accepting = false }
            throw error
        }
        let port = server.localAddress?.port ?? configuration.port
        self.lifecycle.withLock { state in
            state.server = server
            state.port = port
        }
        logger.debug("fake provider listening", metadata: ["port": "\(port)"])
        return port
    }

    /// The bound port (0 before `start()`).
    public var port: Int {
        lifecycle.withLock { $0.port }
    }

    /// Client connections open right now (tests use it to see a proxy drop an upstream request).
    public var openConnections: Int {
        lifecycle.withLock { $0.connections.count }
    }

    /// Client connections accepted since the start, open or closed (tests use it to count the
    /// sockets a proxy opened).
    public var acceptedConnections: Int {
        lifecycle.withLock { $0.accepted }
    }

    /// `http://<host>:<port>` (`https` with TLS); wildcard hosts are given as 127.0.0.1.
    public var baseURL: String {
        var host = configuration.host
        if host == "0.0.0.0" || host == "::" || host.isEmpty { host = "127.0.0.1" }
        if host.contains(":") { host = "[\(host)]" }
        return "\(configuration.tls == nil ? "http" : "https")://\(host):\(port)"
    }

    /// Closes the listener and every open connection (including silent and stalled ones).
    public func stop() async throws {
        let (server, connections) = lifecycle.withLock { state in
            state.accepting = false
            let result = (state.server, Array(state.connections.values))
            state.server = nil
            state.connections = [:]
            return result
        }
        if let server {
            do {
                try await server.close()
            } catch ChannelError.alreadyClosed {
            }
        }
        for connection in connections {
            connection.close(promise: nil)
        }
        for connection in connections {
            try? await connection.closeFuture.get()
        }
    }

    private func register(connection channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let accepted = lifecycle.withLock { state in
            guard state.accepting else { return false }
            state.connections[id] = channel
            state.accepted += 1
            return true
        }
        if accepted {
            channel.closeFuture.whenComplete { [self] _ in
                _ = lifecycle.withLock { $0.connections.removeValue(forKey: id) }
            }
        }
        return accepted
    }

    // MARK: Faults

    /// Sets the fault for `model`; nil (or plain `ok`) makes it healthy.
    public func setFault(_ fault: FaultSpec?, forModel model: String) {
        faultTable.withLock { table in
            if let fault, Self.isEffective(fault) {
                table[model] = ActiveFault(spec: fault, remaining: fault.times)
            } else {
                table[model] = nil
            }
        }
    }

    /// Makes every model healthy.
    public func resetFaults() {
        faultTable.withLock { $0.removeAll() }
    }

    /// The faults currently in force (a `times=` fault shows its remaining count).
    public func currentFaults() -> [String: FaultSpec] {
        faultTable.withLock { table in
            table.mapValues { active in
                var spec = active.spec
                spec.times = active.remaining
                return spec
            }
        }
    }

    /// The fault for this request of `model`, counting it against `times=`.
    func takeFault(forModel model: String) -> FaultSpec? {
        faultTable.withLock { table in
            guard var active = table[model] else { return nil }
            if let remaining = active.remaining {
                if remaining <= 1 {
                    table[model] = nil
                } else {
                    active.remaining = remaining - 1
                    table[model] = active
                }
            }
            return active.spec
        }
    }

    private static func isEffective(_ spec: FaultSpec) -> Bool {
        !(spec.behavior == .ok && spec.delayMilliseconds == nil)
    }

    // MARK: Recorded requests

    /// The recorded requests, oldest first (at most `recordedRequestLimit`).
    public func recordedRequests() -> [RecordedRequest] {
        records.withLock { $0.elements }
    }

    public func clearRecordedRequests() {
        records.withLock { $0.removeAll() }
    }

    func record(_ request: RecordedRequest) {
        records.withLock { $0.append(request) }
    }

    // MARK: Answers

    /// The full deterministic answer text for `tokens` content tokens (the same for every model).
    public static func answerText(model: String, tokens: Int) -> String {
        AnswerText.tokens(count: tokens).joined()
    }

    func nextResponseID() -> String {
        "chatcmpl-fake-\(responseCounter.wrappingAdd(1, ordering: .relaxed).newValue)"
    }
}
