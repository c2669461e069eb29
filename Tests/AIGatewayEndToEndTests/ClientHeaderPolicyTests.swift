@testable import AIGatewayProxy
import AIGatewayAPI
import AIGatewayRouting
import AIGatewayTesting
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// Every header a client could use to reach what is not its own, with the value it carries.
private let hostileHeaders: [(String, String)] = [
    ("Authorization", "Bearer client-own-key"),
    ("Proxy-Authorization", "Basic client-proxy-credentials"),
    ("Cookie", "session=client-cookie"),
    ("OpenAI-Organization", "org-client-chosen"),
    ("OpenAI-Project", "proj-client-chosen"),
    ("api-key", "client-api-key"),
    ("X-Api-Key", "client-x-api-key"),
    ("x-goog-api-key", "client-goog-key"),
    ("X-Amz-Security-Token", "client-session-token"),
    ("X-Amz-Date", "20200101T000000Z"),
]

/// Hop-by-hop headers, including one the client names in `Connection`.
private let hopByHopHeaders: [(String, String)] = [
    ("Connection", "keep-alive, X-Hop-Secret"),
    ("X-Hop-Secret", "client-hop-value"),
    ("Keep-Alive", "timeout=5"),
    ("Proxy-Connection", "keep-alive"),
    ("TE", "trailers"),
    ("Trailer", "x-late"),
    ("Upgrade", "h2c"),
]

@Suite("What a client's headers may reach: the policy")
struct ClientHeaderPolicyTests {
    func forwarded(_ policy: ClientHeaderPolicy, _ client: [(String, String)]) -> [(String, String)] {
        var upstream = HTTPHeaders()
        policy.forward(HTTPHeaders(client), into: &upstream)
        return upstream.map { ($0.name, $0.value) }
    }

    let ordinary: [(String, String)] = [
        ("Content-Type", "application/json"), ("User-Agent", "OpenAI/Python 1.0"), ("X-Request-Id", "abc"), ("X-Custom", "kept"),
    ]

    @Test("with the gateway's key: credentials, account choice, hop-by-hop and framing headers stay behind; the rest goes, in order")
    func gatewayKey() {
        let client = hostileHeaders + hopByHopHeaders + ordinary + [("Host", "gateway.example"), ("Content-Length", "12"), ("Expect", "100-continue"), ("Accept-Encoding", "gzip")]
        let sent = forwarded(.gatewayKey, client)
        #expect(sent.map(\.0) == ordinary.map(\.0))
        #expect(sent.map(\.1) == ordinary.map(\.1))
        #expect(ClientHeaderPolicy.forAuth(.key(SecretString("k"))).forwards("OpenAI-Organization") == false)
    }

    @Test("with Passthrough the key is the client's own: its account choice goes; other credentials and hop-by-hop headers do not")
    func passthrough() {
        let sent = forwarded(.passthrough, hostileHeaders + hopByHopHeaders + ordinary)
        #expect(sent.map(\.0) == ["OpenAI-Organization", "OpenAI-Project"] + ordinary.map(\.0))
        #expect(ClientHeaderPolicy.forAuth(.passthrough).forwards("openai-project"))
        // The client's Authorization becomes the provider's key header where the request is built,
        // not by being forwarded as is.
        #expect(!ClientHeaderPolicy.passthrough.forwards("authorization"))
    }

    @Test("names match whatever their case; only the exact names, not names that merely start alike")
    func caseAndExactness() {
        for policy in [ClientHeaderPolicy.gatewayKey, .passthrough] {
            for name in ["COOKIE", "cookie", "X-API-KEY", "Api-Key", "X-Goog-Api-Key", "PROXY-AUTHORIZATION", "Transfer-Encoding", "te"] {
                #expect(!policy.forwards(name), "\(name)")
            }
            for name in ["cookies", "x-api-keys", "api-key-id", "tee", "x-cookie", "content-type", "x-request-id"] {
                #expect(policy.forwards(name), "\(name)")
            }
        }
        #expect(!ClientHeaderPolicy.gatewayKey.forwards("OPENAI-ORGANIZATION"))
    }

    @Test("every header named in any Connection header stays behind, whatever its case")
    func connectionTokens() {
        let client: [(String, String)] = [
            ("connection", "X-One"), ("Connection", " x-two ,close"), ("x-one", "1"), ("X-TWO", "2"), ("x-three", "3"),
        ]
        #expect(forwarded(.gatewayKey, client).map(\.0) == ["x-three"])
    }
}

/// Sends `request` on a new connection and returns what the gateway wrote before it closed the
/// connection (the request asks for `Connection: close`). Fails the test if the gateway keeps the
/// connection open for 20 s.
private func rawRoundTrip(port: Int, _ request: String) async throws -> String {
    let collector = ResponseCollector()
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) } }
        .connect(host: "127.0.0.1", port: port).get()
    let closedByUs = ClosedByUs()
    let guardTimer = channel.eventLoop.scheduleTask(in: .seconds(20)) {
        closedByUs.set()
        channel.close(promise: nil)
    }
    try await channel.writeAndFlush(ByteBuffer(string: request)).get()
    try await channel.closeFuture.get()
    guardTimer.cancel()
    #expect(!closedByUs.value, "the gateway answered and closed the connection")
    return collector.text
}

private final class ResponseCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let received = Mutex("")
    var text: String { received.withLock { $0 } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        received.withLock { $0 += String(buffer: bytes) }
    }
}

private func rawRequest(_ headers: [(String, String)]) -> String {
    let body = Harness.question()
    var text = "POST /model HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
    for (n, v) in headers { text += "\(n): \(v)\r\n" }
    return text + "\r\n" + body
}

@Suite("What a client's headers may reach: on the wire", .serialized)
struct ClientHeaderWireTests {
    /// The headers the gateway must not pass on, as the provider would see them.
    let withheld = ["cookie", "proxy-authorization", "api-key", "x-api-key", "x-goog-api-key", "x-hop-secret", "keep-alive", "proxy-connection", "te", "trailer"]

    @Test("with the Secret's key, the provider gets the gateway's key and none of the client's credentials, account choice or hop-by-hop headers")
    func gatewayKeyOnTheWire() async throws {
        try await withGateway { h in
            // No Upgrade here: with a Connection header naming it, it would ask for another protocol.
            let hop = hopByHopHeaders.filter { $0.0 != "Upgrade" }.map { $0.0 == "Connection" ? ("Connection", "close, X-Hop-Secret") : $0 }
            let response = try await rawRoundTrip(port: h.port, rawRequest(hostileHeaders + hop + [("X-Custom", "kept"), ("Accept-Encoding", "gzip")]))
            #expect(response.hasPrefix("HTTP/1.1 200"), "\(response.prefix(200))")
            let sent = try #require(h.provider.recordedRequests().first)
            #expect(sent.header("authorization") == "Bearer \(demoKey)")
            for name in withheld + ["openai-organization", "openai-project", "accept-encoding"] {
                #expect(sent.header(name) == nil, "\(name) reached the provider")
            }
            #expect(!sent.headers.contains { $0.count == 2 && $0[1].contains("client-") }, "\(sent.headers)")
            #expect(!(sent.header("connection") ?? "").lowercased().contains("x-hop-secret"))
            #expect(sent.header("x-custom") == "kept")
        }
    }

    @Test("with Passthrough, the provider gets the client's key in its header and the client's account choice, but no other credential")
    func passthroughOnTheWire() async throws {
        let backend = """
            apiVersion: gateway.kgateway.dev/v1alpha1
            kind: Backend
            metadata:
              name: model-failover
              namespace: kgateway-system
            spec:
              type: AI
              ai:
                multipool:
                  priorities:
                  - pool:
                    - provider:
                        openai:
                          model: "gpt-4o"
                          authToken:
                            kind: Passthrough
            """
        let files = ["backend.yaml": backend, "httproute.yaml": try repositoryFile("examples/model-failover/httproute.yaml")]
        try await withGateway(files: files) { h in
            // The client's own key is the one the provider accepts.
            let headers = hostileHeaders.map { $0.0 == "Authorization" ? ("Authorization", "Bearer \(demoKey)") : $0 }
            let response = try await rawRoundTrip(port: h.port, rawRequest(headers + [("Connection", "close")]))
            #expect(response.hasPrefix("HTTP/1.1 200"), "\(response.prefix(200))")
            let sent = try #require(h.provider.recordedRequests().first)
            #expect(sent.header("authorization") == "Bearer \(demoKey)")
            #expect(sent.header("openai-organization") == "org-client-chosen")
            #expect(sent.header("openai-project") == "proj-client-chosen")
            for name in withheld {
                #expect(sent.header(name) == nil, "\(name) reached the provider")
            }
        }
    }
}
