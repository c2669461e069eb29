import AIGatewayAPI
import AIGatewayFailover
@testable import AIGatewayProxy
import AIGatewayRouting
import AIGatewayTelemetry
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1

/// Fuzz target: raw bytes from a client into the gateway's connection pipeline (the request
/// parser, the connection handler, the gateway handler) on an embedded channel, with the guide's
/// route and Backend loaded but its Secret missing, so that no request leaves the process.
///
/// Nothing may crash, whatever the gateway writes back must be HTTP/1.1 responses, and the
/// request parser must read the input split in two exactly as it reads it whole.
public enum HTTPTarget {
    /// Built once: the handler and its table are what a running gateway holds between requests.
    static let server: HTTPServer<GatewayHandler> = {
        let text = """
            apiVersion: gateway.kgateway.dev/v1alpha1
            kind: Backend
            metadata: {name: model-failover, namespace: kgateway-system}
            spec:
              type: AI
              ai:
                multipool:
                  priorities:
                  - pool:
                    - provider: {openai: {model: gpt-4o, authToken: {kind: SecretRef, secretRef: {name: openai-secret}}}}
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: model-failover, namespace: kgateway-system}
            spec:
              parentRefs: [{name: ai-gateway, namespace: kgateway-system}]
              rules:
              - matches: [{path: {type: PathPrefix, value: /model}}]
                backendRefs: [{name: model-failover, group: gateway.kgateway.dev, kind: Backend}]
            """
        let documents = (try? ManifestLoader.parse(text, source: "fuzz", defaultNamespace: "default")) ?? []
        let table = RouteCompiler.compile(ResourceSet(documents.resources), options: CompileOptions(implicitGateway: true))
        var configuration = ProxyConfiguration()
        configuration.limits.maxBodyBytes = 4096
        configuration.limits.maxHeaderBytes = 2048
        let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
        let client = try! GatewayHandler.makeUpstreamClient(configuration: configuration)
        let handler = GatewayHandler(
            store: TableStore(table), client: client, health: HealthRegistry(), metrics: GatewayMetrics(), configuration: configuration,
            logger: logger)
        return HTTPServer(name: "fuzz", host: "127.0.0.1", port: 0, limits: configuration.limits, handler: handler, logger: logger)
    }()

    public static func run(_ input: [UInt8]) -> FuzzVerdict {
        let output: [UInt8]
        do {
            output = try exchange(input)
        } catch {
            return .mismatch("could not set up the pipeline: \(error)")
        }
        if !output.isEmpty, !output.starts(with: "HTTP/1.1 ".utf8) {
            return .mismatch("the gateway wrote something that is not an HTTP/1.1 response")
        }
        guard let selector = input.first else { return .ok }
        let bytes = Array(input.dropFirst())
        let cut = bytes.isEmpty ? 0 : Int(selector) % bytes.count
        if parse([bytes[...]]) != parse([bytes[..<cut], bytes[cut...]]) {
            return .mismatch("the request parser reads the input split at \(cut) differently")
        }
        return .ok
    }

    /// What the request parser makes of `pieces`: each event as text (body parts joined), then
    /// the error that stopped it.
    static func parse(_ pieces: [ArraySlice<UInt8>]) -> [String] {
        var parser = RequestParser(maxHeadBytes: server.limits.maxHeaderBytes)
        var events: [String] = []
        var body: [UInt8] = []
        func flushBody() {
            if !body.isEmpty { events.append("body \(body)") }
            body = []
        }
        for piece in pieces {
            parser.append(ByteBuffer(bytes: piece))
            do {
                while let event = try parser.next() {
                    switch event {
                    case .head(let h):
                        flushBody()
                        events.append("head \(Array(h.bytes.readableBytesView)) \(h.contentLength ?? -1) \(h.chunked) \(h.keepAlive)")
                    case .body(let b):
                        body += b.readableBytesView
                    case .end:
                        flushBody()
                        events.append("end")
                    }
                }
            } catch {
                flushBody()
                events.append("error \(error.kind)")
                return events
            }
        }
        flushBody()
        return events
    }

    /// What the gateway writes back for `input` (its first byte chooses where to split it).
    public static func exchange(_ input: [UInt8]) throws -> [UInt8] {
        let server = self.server
        let channel = EmbeddedChannel()
        do {
            try server.configureConnection(channel.pipeline.syncOperations)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }
        // The first byte splits the rest in two writes, as TCP may.
        guard let selector = input.first else { return [] }
        let bytes = input.dropFirst()
        let cut = bytes.startIndex + (bytes.isEmpty ? 0 : Int(selector) % bytes.count)
        for part in [bytes[..<cut], bytes[cut...]] where !part.isEmpty && channel.isActive {
            _ = try? channel.writeInbound(channel.allocator.buffer(bytes: part))
        }
        channel.embeddedEventLoop.run()
        var output: [UInt8] = []
        while let part = try? channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let b) = part { output += b.readableBytesView }
        }
        _ = try? channel.finish()
        return output
    }
}
