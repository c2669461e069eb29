import AIGatewayAPI
import AIGatewayProviders
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The gateway's own AWS credentials, for Bedrock entries that name no Secret: static keys from
/// the environment, or web-identity keys exchanged at STS and exchanged again before they expire.
/// Attempts read the current keys without waiting (`current()`); the exchange runs as a service.
public final class AWSCredentialSource: Service, Sendable {
    public let chain: AWSCredentialChain
    private let client: UpstreamClient?
    private let logger: Logger
    private struct State {
        var credentials: AWSCredentials?
        var expiration: Double?
    }
    private let state: Mutex<State>

    /// No credentials: entries without a Secret are unusable.
    public static let none = AWSCredentialSource(chain: .none, client: nil, logger: Logger(label: "aws"))

    /// - Parameter client: makes the STS calls (web identity only).
    public init(chain: AWSCredentialChain, client: UpstreamClient?, logger: Logger) {
        self.chain = chain
        self.client = client
        self.logger = logger
        if case .environment(let c) = chain {
            state = Mutex(State(credentials: c))
        } else {
            state = Mutex(State())
        }
    }

    /// The keys to sign with now; nil before the first exchange or after they expired.
    public func current(now: Double = Date().timeIntervalSince1970) -> AWSCredentials? {
        state.withLock { s in
            if let e = s.expiration, now >= e { return nil }
            return s.credentials
        }
    }

    /// Exchanges the web identity token now; returns when the next exchange is due.
    @discardableResult
    public func refresh(now: Double = Date().timeIntervalSince1970) async -> Double? {
        guard case .webIdentity(let w) = chain, let client else { return nil }
        let token: String
        do {
            token = try String(contentsOfFile: w.tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            logger.warning("cannot read the web identity token file", metadata: ["file": "\(w.tokenFile)"])
            return nil
        }
        let body = STSWebIdentity.requestBody(w, token: token)
        do {
            let (status, answer) = try await Self.post(client: client, endpoint: w.endpoint, body: body)
            switch STSWebIdentity.parse(status: status, body: answer) {
            case .success(let (credentials, expiration)):
                state.withLock { $0 = State(credentials: credentials, expiration: expiration) }
                logger.info("AWS credentials from web identity", metadata: ["role": "\(w.roleARN)", "expires": "\(Int(expiration))"])
                return STSWebIdentity.refreshTime(now: now, expiration: expiration)
            case .failure(let f):
                logger.warning("\(f.description)")
                return nil
            }
        } catch {
            logger.warning("STS AssumeRoleWithWebIdentity failed", metadata: ["endpoint": "\(w.endpoint)", "error": "\(error)"])
            return nil
        }
    }

    /// Keeps web-identity keys fresh until shutdown; after a failed exchange, tries again with a
    /// backoff of 1 s doubling to 60 s.
    /// Ends at once on shutdown (nothing to drain).
    public func run() async throws {
        guard case .webIdentity = chain else { return }
        try? await cancelWhenGracefulShutdown {
            var backoff = 1.0
            while !Task.isCancelled {
                let now = Date().timeIntervalSince1970
                let wait: Double
                if let next = await self.refresh(now: now) {
                    backoff = 1
                    wait = max(1, next - now)
                } else {
                    wait = backoff
                    backoff = min(60, backoff * 2)
                }
                try await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
            }
        }
    }

    struct STSError: Error, CustomStringConvertible {
        var description: String
    }

    /// One form POST to STS through the gateway's upstream client.
    static func post(client: UpstreamClient, endpoint: ProviderEndpoint, body: [UInt8]) async throws -> (Int, [UInt8]) {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let promise = loop.makePromise(of: (Int, [UInt8]).self)
        let origin = UpstreamOrigin(tls: endpoint.tls, host: endpoint.host, port: endpoint.port)
        var headers = HTTPHeaders()
        let hostHeader = (endpoint.tls && endpoint.port == 443) || (!endpoint.tls && endpoint.port == 80) ? endpoint.host : "\(endpoint.host):\(endpoint.port)"
        headers.add(name: "host", value: hostHeader)
        headers.add(name: "content-type", value: "application/x-www-form-urlencoded; charset=utf-8")
        headers.add(name: "accept", value: "application/xml")
        headers.add(name: "content-length", value: String(body.count))
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/", headers: headers)
        loop.execute {
            let receiver = Collector(promise: promise)
            _ = client.execute(origin: origin, head: head, body: ByteBuffer(bytes: body), on: loop, receiver: receiver)
        }
        return try await promise.futureResult.get()
    }

    /// Collects a whole (small) response. Loop-bound, like every receiver.
    final class Collector: UpstreamResponseReceiver {
        let promise: EventLoopPromise<(Int, [UInt8])>
        var status = 0
        var body: [UInt8] = []

        init(promise: EventLoopPromise<(Int, [UInt8])>) { self.promise = promise }

        func upstreamHead(_ head: HTTPResponseHead) { status = Int(head.status.code) }
        func upstreamBody(_ part: ByteBuffer) -> EventLoopFuture<Void>? {
            if body.count < 1 << 20 { body.append(contentsOf: part.readableBytesView) }
            return nil
        }
        func upstreamEnd() { promise.succeed((status, body)) }
        func upstreamFailed(_ error: UpstreamError) { promise.fail(STSError(description: error.description)) }
    }
}
