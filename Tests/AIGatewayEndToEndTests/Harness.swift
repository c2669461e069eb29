import AIGatewayAPI
import AIGatewayFailover
import AIGatewayProviders
import AIGatewayProxy
import AIGatewayRouting
import AIGatewaySources
import AIGatewayTelemetry
import AIGatewayTesting
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The guide's Backend, with optional extra annotations and models.
func guideBackend(annotations: [String: String] = [:], models: [String] = ["gpt-4o", "gpt-4.0-turbo", "gpt-3.5-turbo"], secret: String = "openai-secret") -> String {
    var yaml = """
        apiVersion: gateway.kgateway.dev/v1alpha1
        kind: Backend
        metadata:
          labels:
            app: model-failover
          name: model-failover
          namespace: kgateway-system

        """
    if !annotations.isEmpty {
        yaml += "  annotations:\n"
        for (k, v) in annotations.sorted(by: { $0.key < $1.key }) { yaml += "    \(k): \"\(v)\"\n" }
    }
    yaml += """
        spec:
          type: AI
          ai:
            multipool:
              priorities:

        """
    for m in models {
        yaml += """
                  - pool:
                    - provider:
                        openai:
                          model: "\(m)"
                          authToken:
                            kind: SecretRef
                            secretRef:
                              name: \(secret)

            """
    }
    return yaml
}

/// Runs `body` against a fresh gateway and always tears it down.
func withGateway(
    faults: [String: String] = [:], backendAnnotations: [String: String] = [:], files: [String: String]? = nil, tokens: Int = 12,
    tokenInterval: Duration = .zero, limits: ServerLimits = .init(), requestTimeout: Duration = .seconds(30),
    retryAfterCap: Duration = HealthRegistry.Policy.defaultRetryAfterCap, proxy: ProxyConfiguration = .init(), singleLoop: Bool = false,
    _ body: (Harness) async throws -> Void
) async throws {
    let h = try await Harness.start(
        files: files, faults: faults, backendAnnotations: backendAnnotations, tokens: tokens, tokenInterval: tokenInterval, limits: limits,
        requestTimeout: requestTimeout, retryAfterCap: retryAfterCap, proxy: proxy, singleLoop: singleLoop)
    do {
        try await body(h)
    } catch {
        await h.stop()
        throw error
    }
    await h.stop()
}

/// Reads a file of the repository (examples/...).
func repositoryFile(_ relative: String) throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return try String(contentsOf: root.appendingPathComponent(relative), encoding: .utf8)
}

let demoKey = "sk-demo-not-a-real-key"

/// A gateway running in-process on loopback, configured from manifest files in a temp directory,
/// in front of an in-process fake provider.
final class Harness: @unchecked Sendable {
    // Set once in `start` and read afterwards; the tests use one harness from one task at a time.
    let provider: FakeProvider
    let directory: URL
    let store = TableStore()
    let metrics = GatewayMetrics()
    let health = HealthRegistry()
    let client: HTTPClient
    let upstreamClient: UpstreamClient
    var port = 0
    var adminPort = 0
    private var task: Task<Void, any Error>?
    let logs = LogCapture()
    /// The gateway's handler, once started.
    private(set) var gatewayHandler: GatewayHandler?

    /// The gateway's settings (`limits` and the request timeout are set when it runs).
    let proxy: ProxyConfiguration

    /// The gateway server's own event loops (nil: the shared singleton group).
    let serverGroup: MultiThreadedEventLoopGroup?

    init(provider: FakeProvider, proxy: ProxyConfiguration = .init(), serverGroup: MultiThreadedEventLoopGroup? = nil) throws {
        self.provider = provider
        self.proxy = proxy
        self.serverGroup = serverGroup
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("aigw-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(5), read: .seconds(30))
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
        upstreamClient = try GatewayHandler.makeUpstreamClient(configuration: proxy)
    }

    /// Starts a fake provider and a gateway serving the guide's manifests (plus `extra` files).
    static func start(
        files: [String: String]? = nil, faults: [String: String] = [:], backendAnnotations: [String: String] = [:], tokens: Int = 12,
        tokenInterval: Duration = .zero, limits: ServerLimits = .init(), requestTimeout: Duration = .seconds(30),
        retryAfterCap: Duration = HealthRegistry.Policy.defaultRetryAfterCap, proxy: ProxyConfiguration = .init(), singleLoop: Bool = false
    ) async throws -> Harness {
        var parsed: [String: FaultSpec] = [:]
        for (m, f) in faults { parsed[m] = try FaultSpec(parsing: f) }
        let provider = FakeProvider(configuration: .init(faults: parsed, tokens: tokens, tokenInterval: tokenInterval, requiredKey: demoKey))
        _ = try await provider.start()
        let h = try Harness(provider: provider, proxy: proxy, serverGroup: singleLoop ? MultiThreadedEventLoopGroup(numberOfThreads: 1) : nil)
        let defaults = [
            "backend.yaml": guideBackend(annotations: backendAnnotations),
            "httproute.yaml": try repositoryFile("examples/model-failover/httproute.yaml"),
            "secret.yaml": try repositoryFile("examples/model-failover/secret.yaml"),
        ]
        let manifests = files ?? defaults
        do {
            for (name, text) in manifests { try h.write(name, text) }
            try await h.run(limits: limits, requestTimeout: requestTimeout, retryAfterCap: retryAfterCap)
        } catch {
            await h.stop()
            throw error
        }
        return h
    }

    func write(_ name: String, _ text: String) throws {
        // Write then rename, as editors and `kubectl`-style tools do, so a reader never sees half a file.
        let tmp = directory.appendingPathComponent(".\(name).tmp")
        try text.write(to: tmp, atomically: false, encoding: .utf8)
        guard rename(tmp.path, directory.appendingPathComponent(name).path) == 0 else {
            throw CocoaError(.fileWriteUnknown)
        }
    }

    func run(limits: ServerLimits, requestTimeout: Duration, retryAfterCap: Duration = HealthRegistry.Policy.defaultRetryAfterCap) async throws {
        var logger = Logger(label: "e2e") { label in self.logs.handler(label: label) }
        logger.logLevel = .debug
        let options = CompileOptions(implicitGateway: true, endpoints: ["openai": ProviderEndpoint(tls: false, host: "127.0.0.1", port: provider.port)])
        let updater = TableUpdater(store: store, options: options, metrics: metrics, logger: logger, health: health)
        let source = ManifestSource(paths: [directory.path], pollInterval: .milliseconds(50), sink: updater, logger: logger)
        _ = try source.loadInitial()
        var config = proxy
        config.limits = limits
        config.defaultRequestTimeout = requestTimeout
        config.retryAfterCap = retryAfterCap
        let handler = GatewayHandler(store: store, client: upstreamClient, health: health, metrics: metrics, configuration: config, logger: logger)
        gatewayHandler = handler
        let server = HTTPServer(
            name: "gateway", host: "127.0.0.1", port: 0, limits: limits, handler: handler, logger: logger, group: serverGroup ?? MultiThreadedEventLoopGroup.singleton)
        let admin = HTTPServer(name: "admin", host: "127.0.0.1", port: 0, handler: AdminHandler(store: store, metrics: metrics, health: health), logger: logger)
        task = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.run() }
                group.addTask { try await admin.run() }
                group.addTask { try await source.run() }
                try await group.waitForAll()
            }
        }
        port = try await server.listeningPort()
        adminPort = try await admin.listeningPort()
    }

    func stop() async {
        task?.cancel()
        _ = try? await task?.value
        try? await client.shutdown()
        await upstreamClient.shutdown()
        try? await serverGroup?.shutdownGracefully()
        try? await provider.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    struct Response {
        var status: Int
        var headers: HTTPHeaders
        var body: String

        var json: JSONValue? { try? JSONParser.parse(Array(body.utf8)) }
        var content: String? { json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue }
        var attempts: String { headers.first(name: "x-aigw-attempts") ?? "" }
        var servedModel: String? { headers.first(name: "x-aigw-model") }
        var errorMessage: String? { json?["error"]?["message"]?.stringValue }
    }

    /// Sends a request to the gateway and reads the whole answer.
    func send(
        _ path: String = "/model", method: HTTPMethod = .POST, body: String? = Harness.question(), headers: [(String, String)] = [("content-type", "application/json")]
    ) async throws -> Response {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        for (n, v) in headers { request.headers.add(name: n, value: v) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await client.execute(request, timeout: .seconds(30))
        var collected = ""
        for try await chunk in response.body { collected += String(buffer: chunk) }
        return Response(status: Int(response.status.code), headers: response.headers, body: collected)
    }

    func admin(_ path: String) async throws -> Response {
        let response = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(adminPort)\(path)"), timeout: .seconds(10))
        var collected = ""
        for try await chunk in response.body { collected += String(buffer: chunk) }
        return Response(status: Int(response.status.code), headers: response.headers, body: collected)
    }

    static func question(stream: Bool = false, extra: String = "") -> String {
        #"{"messages":[{"role":"user","content":"What is kubernetes?"}]"# + (stream ? #","stream":true"# : "") + extra + "}"
    }

    /// The models the provider was asked for, in order.
    var providerModels: [String] { provider.recordedRequests().compactMap(\.model) }

    func setFault(_ model: String, _ spec: String?) throws {
        provider.setFault(try spec.map { try FaultSpec(parsing: $0) }, forModel: model)
    }
}

/// Parsed server-sent events of a streamed answer.
struct StreamResult {
    var events: [String]

    init(_ body: String) {
        events = body.components(separatedBy: "\n\n").compactMap { block in
            let data = block.split(separator: "\n").filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
            return data.isEmpty ? nil : data.joined(separator: "\n")
        }
    }

    var done: Bool { events.last == "[DONE]" }
    var text: String {
        events.compactMap { e -> String? in
            guard let v = try? JSONParser.parse(Array(e.utf8)) else { return nil }
            return v["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue
        }.joined()
    }
    var error: JSONValue? {
        events.compactMap { try? JSONParser.parse(Array($0.utf8)) }.first { $0["error"] != nil }?["error"]
    }
    var usage: JSONValue? {
        events.compactMap { try? JSONParser.parse(Array($0.utf8)) }.first { $0["usage"] != nil && $0["usage"] != .null }?["usage"]
    }
}

/// Keeps every log line the gateway wrote during a test, to check that no secret is ever logged.
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }

    func handler(label: String) -> some LogHandler {
        CapturingHandler(capture: self)
    }

    struct CapturingHandler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let line = "\(event.level) \(event.message) \(event.metadata ?? [:])"
            capture.lines.withLock { $0.append(line) }
        }
    }
}

import Synchronization
