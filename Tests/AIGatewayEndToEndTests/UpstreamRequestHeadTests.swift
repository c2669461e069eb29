@testable import AIGatewayProxy
import AIGatewayAPI
import AIGatewayProviders
import AIGatewayRouting
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// The reference: how the gateway built an attempt's request before `UpstreamRequestHead`, in
/// `HTTPHeaders` from the client's head in NIO's shape, encoded by `RequestEncoder` in a pipeline.
private func referenceBytes(
    method: String, path: String, host: String, client: HTTPHeaders, policy: ClientHeaderPolicy, provider: [UpstreamTarget.HeaderField],
    requestID: String, body: ByteBuffer
) throws -> [UInt8] {
    var h = HTTPHeaders()
    h.add(name: "host", value: host)
    policy.forward(client, into: &h)
    for f in provider { h.replaceOrAdd(name: f.name, value: f.value) }
    h.replaceOrAdd(name: GatewayHeaders.requestID, value: requestID)
    h.add(name: "content-length", value: String(body.readableBytes))
    let head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path, headers: h)
    let channel = EmbeddedChannel(handler: RequestEncoder())
    channel.write(HTTPClientRequestPart.head(head), promise: nil)
    if body.readableBytes > 0 { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
    channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    var out: [UInt8] = []
    while let b = try channel.readOutbound(as: IOData.self) {
        if case .byteBuffer(let bytes) = b { out += Array(bytes.readableBytesView) }
    }
    _ = try channel.finish()
    return out
}

/// What the byte path writes: `bytes`, then a large body.
private func wireBytes(_ r: UpstreamRequestBytes) -> [UInt8] {
    Array(r.bytes.readableBytesView) + (r.largeBody.map { Array($0.readableBytesView) } ?? [])
}

/// Client heads of every kind the policy cares about: mixed-case names, duplicates, hop-by-hop
/// fields and fields named in `Connection`, credentials, names the adapters also write, empty
/// values, whitespace around values, non-ASCII values.
private struct HeadGenerator {
    var rng: SeededRandom

    static let names = [
        "Content-Type", "User-Agent", "Accept", "X-Custom", "x-custom", "X-Request-Id", "x-trace", "Connection", "Keep-Alive", "TE", "Trailer",
        "Upgrade", "Proxy-Connection", "Authorization", "Proxy-Authorization", "Cookie", "api-key", "X-Api-Key", "x-goog-api-key",
        "X-Amz-Security-Token", "X-Amz-Date", "x-amz-content-sha256", "OpenAI-Organization", "OpenAI-Project", "Host", "Expect",
        "Accept-Encoding", "anthropic-version", "Anthropic-Beta", "X-Stainless-Lang", "x-dup", "X_Under.Score", "x!#$%&'*+-.`|",
    ]
    static let values = [
        "", "application/json", "a b  c", "Bearer sk-client", "bearer lower", "BEARER", "Bearer ", "héllo wörld", "日本語", "v1, v2", "x=1; y=2",
        "\"quoted\"", "tab\there", "   padded   ",
    ]

    mutating func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
    mutating func chance(_ percent: UInt64) -> Bool { rng.next() % 100 < percent }

    /// Flips the case of some letters.
    mutating func recase(_ s: String) -> String {
        String(
            s.map { c -> Character in
                guard c.isASCII, c.isLetter, chance(30) else { return c }
                return c.isUppercase ? Character(c.lowercased()) : Character(c.uppercased())
            })
    }

    mutating func connectionValue(_ fieldNames: [String]) -> String {
        var tokens: [String] = []
        for _ in 0..<Int(rng.next() % 4) {
            tokens.append(chance(70) && !fieldNames.isEmpty ? recase(pick(fieldNames)) : pick(["close", "keep-alive", "x-absent", ""]))
        }
        return tokens.map { (chance(30) ? " " : "") + $0 + (chance(30) ? " \t" : "") }.joined(separator: ",")
    }

    /// The head's text as a client sends it.
    mutating func head() -> String {
        var fields: [(String, String)] = []
        for _ in 0..<Int(rng.next() % 14) {
            let name = recase(pick(Self.names))
            if name.lowercased() == "connection" { continue }
            fields.append((name, pick(Self.values)))
        }
        if chance(20), let f = fields.first { fields.append((recase(f.0), pick(Self.values))) }  // a duplicate
        for _ in 0..<Int(rng.next() % 3) {
            let at = Int(rng.next() % UInt64(fields.count + 1))
            fields.insert((recase("Connection"), connectionValue(fields.map(\.0))), at: at)
        }
        if chance(20) { fields.append((recase("Content-Length"), "12")) } else if chance(10) { fields.append((recase("Transfer-Encoding"), "chunked")) }
        var text = "POST /v1/chat/completions HTTP/1.1\r\n"
        for (n, v) in fields { text += "\(n):\(chance(50) ? " " : "")\(v)\r\n" }
        return text + "\r\n"
    }
}

/// One adapter as an entry uses it, with the credential the entry gives it.
private struct AdapterCase {
    var label: String
    var target: UpstreamTarget
    var credential: ProviderCredential
    var auth: CompiledAuth

    static func make(_ provider: String, _ adapter: any ProviderAdapter, host: String = "provider.test", port: Int = 443, path: String = "/v1/chat/completions",
        header: String = "Authorization", prefix: String = "Bearer ", staticHeaders: [UpstreamTarget.HeaderField] = [], passthrough: Bool = false
    ) -> AdapterCase {
        let target = UpstreamTarget(
            provider: provider, adapter: adapter, tls: port == 443, host: host, port: port, path: path, authHeaderName: header, authPrefix: prefix,
            staticHeaders: staticHeaders, model: "m-1", displayModel: "m-1")
        let key = SecretString("sk-gateway")
        return AdapterCase(
            label: "\(provider) \(header)\(passthrough ? " passthrough" : "")", target: target, credential: passthrough ? .passthrough(SecretString("sk-client")) : .apiKey(key),
            auth: passthrough ? .passthrough : .key(key))
    }

    static let all: [AdapterCase] = {
        let aws = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: SecretString("secret"), sessionToken: SecretString("tok"))
        var bedrock = make("bedrock", BedrockAdapter(region: "eu-west-3", guardrail: nil), host: "bedrock-runtime.eu-west-3.amazonaws.com", path: BedrockAdapter.path(model: "m-1", stream: false), prefix: "")
        bedrock.credential = .aws(aws)
        bedrock.auth = .aws(aws)
        return [
            make("openai", OpenAIAdapter(.openai)),
            make("openai", OpenAIAdapter(.openai), passthrough: true),
            make("openai", OpenAIAdapter(.openai), host: "127.0.0.1", port: 8080),
            make("azureopenai", OpenAIAdapter(.azureopenai), path: "/openai/deployments/d/chat/completions?api-version=2024-02-01", header: "api-key", prefix: ""),
            make("anthropic", AnthropicAdapter(), header: "x-api-key", prefix: "", staticHeaders: [.init(name: "anthropic-version", value: "2023-06-01")]),
            make("anthropic", AnthropicAdapter(), header: "x-api-key", prefix: "", staticHeaders: [.init(name: "anthropic-version", value: "2023-06-01")], passthrough: true),
            make("gemini", GeminiAdapter(.gemini), path: "/v1beta/models/m-1:generateContent", header: "x-goog-api-key", prefix: ""),
            make("vertexai", GeminiAdapter(.vertexai), path: "/v1/projects/p/locations/l/publishers/google/models/m-1:generateContent"),
            bedrock,
            // An operator's own key header, named like a header the client or the gateway sends.
            make("openai", OpenAIAdapter(.openai), header: "X-Custom", prefix: ""),
            make("openai", OpenAIAdapter(.openai), header: "X-Request-Id", prefix: ""),
        ]
    }()
}

@Suite("An attempt's request head written as bytes")
struct UpstreamRequestHeadTests {
    static let bodies = [#"{"model":"m-1","messages":[{"role":"user","content":"hi"}]}"#, #"{"stream":true,"model":"m-1","messages":[{"role":"user","content":"hi"}]}"#]

    @Test("the same bytes as the HTTPHeaders path, over generated client heads and every adapter")
    func differential() throws {
        var gen = HeadGenerator(rng: SeededRandom(state: 42))
        var compared = 0
        for round in 0..<400 {
            let text = gen.head()
            let client = try RequestHead.parse(ByteBuffer(string: text))
            let nio = client.makeHTTPRequestHead().headers
            let requestID = GatewayHandler.requestID(client)
            let adapterCase = AdapterCase.all[round % AdapterCase.all.count]
            let chat = try ChatRequest(bytes: Array(Self.bodies[round % 2].utf8))
            var upstream = try adapterCase.target.adapter!.makeRequest(AttemptInput(chat: chat, target: adapterCase.target, prefill: nil)).get()
            _ = try adapterCase.target.adapter!.authorize(&upstream, credential: adapterCase.credential, target: adapterCase.target, now: 1_700_000_000).get()
            let body: ByteBuffer
            switch upstream.body {
            case .bytes(let b): body = ByteBuffer(bytes: b)
            case .clientBytes: body = ByteBuffer(bytes: chat.bytes)
            }
            let policy = ClientHeaderPolicy.forAuth(adapterCase.auth)
            let expected = try referenceBytes(
                method: upstream.method, path: upstream.path, host: adapterCase.target.hostHeader, client: nio, policy: policy, provider: upstream.headers,
                requestID: requestID, body: body)
            let head = UpstreamRequestHead(
                method: upstream.method, path: upstream.path, host: adapterCase.target.hostHeader, client: client, policy: policy, provider: upstream.headers,
                requestID: requestID, contentLength: body.readableBytes)
            let wire = UpstreamRequestBytes(head, body: body)
            #expect(wire.problem == nil)
            let got = wireBytes(wire)
            #expect(got == expected, "\(adapterCase.label), client head:\n\(text)\ngot:\n\(String(decoding: got, as: UTF8.self))\nexpected:\n\(String(decoding: expected, as: UTF8.self))")
            if got != expected { return }
            compared += 1
        }
        #expect(compared == 400)
    }

    @Test("adapter fields that repeat a name, replace host or the request id, and a large body: still the reference's bytes")
    func replacedFields() throws {
        var gen = HeadGenerator(rng: SeededRandom(state: 7))
        let providerLists: [[UpstreamTarget.HeaderField]] = [
            [],
            [.init(name: "x-dup", value: "1"), .init(name: "X-Dup", value: "2"), .init(name: "content-type", value: "application/json")],
            [.init(name: "Host", value: "other.test"), .init(name: "accept", value: "*/*")],
            [.init(name: "x-request-id", value: "from-adapter"), .init(name: "X-CUSTOM", value: "adapter"), .init(name: "x-custom", value: "again")],
            [.init(name: "authorization", value: ""), .init(name: "cookie", value: "c")],
        ]
        for round in 0..<200 {
            let client = try RequestHead.parse(ByteBuffer(string: gen.head()))
            let provider = providerLists[round % providerLists.count]
            let body = ByteBuffer(repeating: UInt8(ascii: "x"), count: round % 10 == 0 ? RequestEncoder.gatherLimit + 1 : round % 3)
            for policy in [ClientHeaderPolicy.gatewayKey, .passthrough] {
                let expected = try referenceBytes(
                    method: "POST", path: "/p?q=1", host: "h:8443", client: client.makeHTTPRequestHead().headers, policy: policy, provider: provider,
                    requestID: "rid-\(round)", body: body)
                let head = UpstreamRequestHead(
                    method: "POST", path: "/p?q=1", host: "h:8443", client: client, policy: policy, provider: provider, requestID: "rid-\(round)",
                    contentLength: body.readableBytes)
                let wire = UpstreamRequestBytes(head, body: body)
                #expect(wireBytes(wire) == expected)
                #expect((wire.largeBody != nil) == (body.readableBytes > RequestEncoder.gatherLimit), "a large body goes after the head, uncopied")
            }
        }
    }

    @Test("a head in NIO's shape (the STS client, tests) is framed as RequestEncoder frames it: as given, or chunked")
    func nioShape() throws {
        let framed = HTTPHeaders([("host", "h"), ("content-length", "3")])
        let unframed = HTTPHeaders([("host", "h"), ("accept", "*/*")])
        for headers in [framed, unframed, HTTPHeaders([("host", "h"), ("Transfer-Encoding", "chunked")])] {
            for size in [0, 3, RequestEncoder.gatherLimit + 1] {
                for method in [HTTPMethod.POST, .HEAD] {
                    let head = HTTPRequestHead(version: .http1_1, method: method, uri: "/sts?x=1", headers: headers)
                    let body = ByteBuffer(repeating: UInt8(ascii: "b"), count: size)
                    let channel = EmbeddedChannel(handler: RequestEncoder())
                    channel.write(HTTPClientRequestPart.head(head), promise: nil)
                    if size > 0 { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
                    channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                    var expected: [UInt8] = []
                    while let b = try channel.readOutbound(as: IOData.self) {
                        if case .byteBuffer(let bytes) = b { expected += Array(bytes.readableBytesView) }
                    }
                    _ = try channel.finish()
                    let wire = UpstreamRequestBytes(head, body: body)
                    #expect(wireBytes(wire) == expected, "\(headers) \(size) \(method)")
                    #expect(wire.bodylessAnswer == (method == .HEAD))
                }
            }
        }
        let injected = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/", headers: HTTPHeaders([("host", "h\r\nx: y")]))
        #expect(UpstreamRequestBytes(injected, body: ByteBuffer()).problem != nil)
    }

    @Test("a head read together with a large body is kept in a buffer of its own; a small read is kept as it is")
    func compacted() throws {
        let text = "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nX-Custom: kept\r\nContent-Length: 65536\r\n\r\n"
        var large = ByteBuffer(string: text)
        large.writeRepeatingByte(UInt8(ascii: "x"), count: 65536)
        var parser = RequestParser(maxHeadBytes: 32 * 1024)
        parser.append(large)
        guard case .head(let head)? = try parser.next() else {
            Issue.record("no head")
            return
        }
        let kept = head.compacted()
        #expect(head.bytes.storageCapacity > 65536)
        #expect(kept.bytes.storageCapacity < 4096)
        #expect(kept.makeHTTPRequestHead() == head.makeHTTPRequestHead())
        #expect(kept.uri == "/v1/chat/completions" && kept.string(kept.first("x-custom")!) == "kept")
        let small = try RequestHead.parse(ByteBuffer(string: text))
        #expect(small.compacted().bytes.storageCapacity == small.bytes.storageCapacity)
    }

    @Test("a client's value that is not UTF-8 is forwarded as it arrived (the String path replaced its bytes)")
    func obsTextForwardedAsIs() throws {
        var text = ByteBuffer(string: "POST / HTTP/1.1\r\nX-Raw: a")
        text.writeBytes([0xFF, 0xFE])
        text.writeString("b\r\n\r\n")
        let client = try RequestHead.parse(text)
        let head = UpstreamRequestHead(
            method: "POST", path: "/", host: "h", client: client, policy: .gatewayKey, provider: [], requestID: "r", contentLength: 0)
        let bytes = wireBytes(UpstreamRequestBytes(head, body: ByteBuffer()))
        #expect(bytes == Array("POST / HTTP/1.1\r\nhost: h\r\nX-Raw: a".utf8) + [0xFF, 0xFE] + Array("b\r\nx-request-id: r\r\ncontent-length: 0\r\n\r\n".utf8))
    }

    @Test("the gateway's own parts are checked: a value that would end its line early is refused, and nothing is written")
    func checked() throws {
        let client = try RequestHead.parse(ByteBuffer(string: "POST / HTTP/1.1\r\nX-Ok: fine\r\n\r\n"))
        func wire(method: String = "POST", path: String = "/", host: String = "h", provider: [UpstreamTarget.HeaderField] = []) -> UpstreamRequestBytes {
            UpstreamRequestBytes(
                UpstreamRequestHead(method: method, path: path, host: host, client: client, policy: .gatewayKey, provider: provider, requestID: "r", contentLength: 0),
                body: ByteBuffer())
        }
        #expect(wire().problem == nil)
        #expect(wire(path: "/a b").problem != nil)
        #expect(wire(method: "PO ST").problem != nil)
        #expect(wire(host: "h\r\nx-injected: 1").problem != nil)
        let bad = wire(provider: [.init(name: "authorization", value: "Bearer sk-secret\r\nx: y")])
        #expect(bad.problem == "the value of header authorization holds a control character", "names the header, never the value")
        #expect(bad.bytes.readableBytes == 0)
        #expect(wire(provider: [.init(name: "bad name", value: "v")]).problem != nil)
        #expect(wire(method: "HEAD").bodylessAnswer)
    }

    @Test("the request id and the passthrough key are read from the head's bytes as the HTTPHeaders path read them")
    func readFromBytes() throws {
        var gen = HeadGenerator(rng: SeededRandom(state: 3))
        for _ in 0..<300 {
            let client = try RequestHead.parse(ByteBuffer(string: gen.head()))
            let nio = client.makeHTTPRequestHead().headers
            let id = GatewayHandler.requestID(client)
            if let given = nio.first(name: "x-request-id"), !given.isEmpty, given.utf8.count <= 128, given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
                #expect(id == given)
            } else {
                #expect(id.utf8.count == 32 && id != GatewayHandler.requestID(client), "a new random id")
            }
            #expect(GatewayHandler.requestID(given: nio.first(name: "x-request-id")).utf8.count == id.utf8.count)
            // The HTTPHeaders path's reading of a Passthrough key.
            var reference: String?
            if let header = nio.first(name: "authorization") {
                var token = Substring(header)
                if token.lowercased().hasPrefix("bearer ") { token = token.dropFirst(7) }
                reference = String(token)
            }
            #expect(GatewayHandler.clientKey(client).map { $0.value } == reference)
        }
        let long = String(repeating: "a", count: 129)
        for (value, kept) in [("abc-1", true), (long, false), ("a b", false), ("é", false), (String(repeating: "b", count: 128), true)] {
            let client = try RequestHead.parse(ByteBuffer(string: "POST / HTTP/1.1\r\nX-REQUEST-ID: \(value)\r\n\r\n"))
            #expect((GatewayHandler.requestID(client) == value) == kept, "\(value)")
        }
    }
}
