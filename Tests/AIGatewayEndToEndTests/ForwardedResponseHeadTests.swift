@testable import AIGatewayProxy
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// Answers every request with one forwarded answer (`ResponseWriter.respond(forwarding:)`).
private struct ForwardingHandler: HTTPHandler {
    func handle(_ request: ServerRequest, _ writer: ResponseWriter, done: @escaping @Sendable () -> Void) {
        let head = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n")
        let upstream = head.withUnsafeReadableBytes { p in try! UpstreamResponseParser.parseHead(p, bytes: head, headRequest: false).0 }
        writer.respond(
            forwarding: ForwardedResponse(
                status: .ok, upstream: upstream, gateway: .init(requestID: "r", backend: "b", model: nil, attempts: ""), body: ByteBuffer(string: "{}"),
                close: false))
        done()
    }

    func reject(status: HTTPResponseStatus, message: String, requestHead: HTTPRequestHead, _ writer: ResponseWriter) {
        writer.respond(status: status, headers: [:], body: ByteBuffer(string: message))
    }
}

/// The forwarded answer written from the provider's head bytes (`ResponseEncoder.addForwarded`,
/// `ForwardedResponseHead`) against the path it replaces: the head turned into `HTTPHeaders`,
/// `forwardableResponseHeaders`, the gateway's headers added as `addGatewayHeaders` did,
/// `respond`'s `content-length` and `connection: close`, then `ResponseEncoder` encoding the head,
/// body and end parts.
@Suite("A forwarded answer's head written from the provider's bytes, as the HTTPHeaders path wrote it")
struct ForwardedResponseHeadTests {
    /// Writes as `ConnectionHandler` passes them on: gathered bytes, or a large body on its own.
    private func writes(_ encoder: inout ResponseEncoder, _ step: ResponseEncoder.Step, into out: inout [[UInt8]]) {
        if case .large(let before, let body) = step {
            if let before { out.append(Array(before.readableBytesView)) }
            if case .byteBuffer(let b) = body { out.append(Array(b.readableBytesView)) }
            if let p = encoder.takePending() { out.append(Array(p.readableBytesView)) }
        }
    }

    /// The bytes today's general path writes for the same answer.
    private func reference(_ r: ForwardedResponse, method: HTTPMethod) -> [[UInt8]] {
        var h = GatewayHandler.forwardableResponseHeaders(r.upstream.headers)
        // A translated answer's (`answerTranslated` before the byte path).
        if r.jsonContentType { h.replaceOrAdd(name: "content-type", value: "application/json") }
        // `addGatewayHeaders` as it was before the byte path.
        h.add(name: GatewayHeaders.requestID, value: r.gateway.requestID)
        h.add(name: GatewayHeaders.backend, value: r.gateway.backend)
        if let m = r.gateway.model { h.add(name: GatewayHeaders.model, value: m) }
        if !r.gateway.attempts.isEmpty { h.add(name: GatewayHeaders.attempts, value: r.gateway.attempts) }
        // `ResponseWriter.respond`.
        h.replaceOrAdd(name: "content-length", value: String(r.body.readableBytes))
        if r.close { h.replaceOrAdd(name: "connection", value: "close") }
        var encoder = ResponseEncoder(allocator: ByteBufferAllocator())
        var out: [[UInt8]] = []
        writes(&encoder, encoder.add(.head(HTTPResponseHead(version: .http1_1, status: r.status, headers: h)), requestMethod: method), into: &out)
        if r.body.readableBytes > 0 { writes(&encoder, encoder.add(.body(.byteBuffer(r.body)), requestMethod: method), into: &out) }
        writes(&encoder, encoder.add(.end(nil), requestMethod: method), into: &out)
        if let p = encoder.takePending() { out.append(Array(p.readableBytesView)) }
        return out
    }

    private func forwarded(_ r: ForwardedResponse, method: HTTPMethod) -> [[UInt8]] {
        var encoder = ResponseEncoder(allocator: ByteBufferAllocator())
        var out: [[UInt8]] = []
        writes(&encoder, encoder.addForwarded(r, requestMethod: method), into: &out)
        if let p = encoder.takePending() { out.append(Array(p.readableBytesView)) }
        return out
    }

    /// Where two lists of writes part (the writes themselves can be long).
    private func describe(_ got: [[UInt8]], _ expected: [[UInt8]]) -> String {
        guard got.count == expected.count else { return "\(got.count) writes, not \(expected.count): \(got.map(\.count)) against \(expected.map(\.count))" }
        for (a, b) in zip(got, expected) where a != b {
            let at = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
            return "from byte \(at): \(String(decoding: a[at...].prefix(80), as: UTF8.self).debugDescription) against \(String(decoding: b[at...].prefix(80), as: UTF8.self).debugDescription)"
        }
        return "equal"
    }

    private func parse(_ head: [UInt8]) -> UpstreamResponseHead? {
        let buffer = ByteBuffer(bytes: head)
        return buffer.withUnsafeReadableBytes { p in try? UpstreamResponseParser.parseHead(p, bytes: buffer, headRequest: false).0 }
    }

    private static let names = [
        "Content-Type", "content-type", "X-Ratelimit-Remaining-Requests", "openai-processing-ms", "Date", "set-cookie", "x-a", "X",
        // Dropped, in any case.
        "Connection", "KEEP-ALIVE", "proxy-connection", "TE", "trailer", "Transfer-Encoding", "Upgrade", "Content-Length",
        "X-Request-ID", "x-aigw-backend", "X-AIGW-Model", "x-aigw-attempts",
        // Near misses, kept.
        "content-lengths", "x-request-i", "te2", "connectionx", "x-aigw-attempt", "keep_alive",
    ]

    private static let values: [[UInt8]] = [
        [], Array("application/json".utf8), Array("a, b;q=0.5".utf8), Array("with  two  spaces".utf8), Array("tab\there".utf8),
        Array("caf\u{E9}".utf8), [0x6F, 0x62, 0x73, 0xFF, 0x80], [0xC3], Array("\"quoted\"".utf8), Array("12345".utf8),
        Array("close".utf8), Array(String(repeating: "v", count: 300).utf8),
    ]

    /// A provider's head of up to 12 fields, names drawn from `names` (so duplicates come often),
    /// values from `values` with or without whitespace around them.
    private func randomHead(_ rng: inout SeededRandom, status: Int) -> [UInt8] {
        var head = Array("HTTP/1.1 \(status) \(["OK", "Whatever", ""].randomElement(using: &rng)!)\r\n".utf8)
        for _ in 0..<Int.random(in: 0...12, using: &rng) {
            var name = Self.names.randomElement(using: &rng)!
            var value = Self.values.randomElement(using: &rng)!
            // Values the parser would refuse or read as another framing are left to its own tests.
            if name.lowercased() == "content-length" { value = Array("17".utf8) }
            if name.lowercased() == "transfer-encoding" { name = "Trailer" }
            head += Array(name.utf8) + [UInt8(ascii: ":")]
            head += Array([" ", "", "  ", "\t"].randomElement(using: &rng)!.utf8) + value + Array(["", " ", "\t "].randomElement(using: &rng)!.utf8)
            head += Array("\r\n".utf8)
        }
        return head + Array("\r\n".utf8)
    }

    @Test("over 3,000 generated heads: the same bytes, in the same writes")
    func differential() throws {
        var rng = SeededRandom(state: 9)
        let statuses = [200, 200, 200, 201, 203, 206, 299, 400, 429, 500]
        var compared = 0
        var exact = 0
        var notUTF8 = 0
        for _ in 0..<3000 {
            let status = statuses.randomElement(using: &rng)!
            let bytes = randomHead(&rng, status: status)
            let upstream = try #require(parse(bytes), "\(String(decoding: bytes, as: UTF8.self))")
            let bodySize = [0, 2, 400, ResponseEncoder.gatherLimit, ResponseEncoder.gatherLimit + 1].randomElement(using: &rng)!
            let body = ByteBuffer(bytes: (0..<bodySize).map { UInt8(truncatingIfNeeded: $0 % 26) + UInt8(ascii: "a") })
            let fields = ForwardedResponseHead.GatewayFields(
                requestID: "req-\(rng.next() % 1000)", backend: ["default/st", "ns/b"].randomElement(using: &rng)!,
                model: [nil, "gpt-4o", "m"].randomElement(using: &rng)!, attempts: ["", "gpt-4o=ok", "a=http_429,b=ok"].randomElement(using: &rng)!)
            let response = ForwardedResponse(
                status: HTTPResponseStatus(statusCode: status), upstream: upstream, gateway: fields, body: body, close: Bool.random(using: &rng),
                jsonContentType: Bool.random(using: &rng))
            for method in [HTTPMethod.POST, .HEAD] {
                let expected = reference(response, method: method)
                let got = forwarded(response, method: method)
                compared += 1
                let valuesAreUTF8 = (0..<upstream.count).allSatisfy { i in
                    upstream.bytes.withUnsafeReadableBytes { p in
                        String(validating: UnsafeRawBufferPointer(rebasing: p[upstream.fields[i].valueRange]), as: UTF8.self) != nil
                    }
                }
                if got == expected {
                    exact += 1
                } else {
                    // Only where a value is not UTF-8: the general path made strings of the values
                    // (U+FFFD for such bytes), the byte path copies them. The same once decoded.
                    #expect(!valuesAreUTF8, "\(describe(got, expected)) for \(method) and \(String(decoding: bytes, as: UTF8.self).debugDescription)")
                    #expect(got.map { String(decoding: $0, as: UTF8.self) } == expected.map { String(decoding: $0, as: UTF8.self) })
                    notUTF8 += 1
                }
            }
        }
        #expect(compared == 6000)
        // Both kinds were compared.
        #expect(exact > 3000 && notUTF8 > 500, "\(exact) exact, \(notUTF8) with bytes that are not UTF-8")
    }

    @Test("a provider's head: its fields kept byte for byte and in order, the dropped ones gone, the gateway's after them")
    func example() throws {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\nX-Request-Id: theirs\r\nx-b:\r\ncontent-length: 2\r\nSet-Cookie: a=\u{E9}\r\n\r\n"
        let upstream = try #require(parse(Array(head.utf8)))
        let response = ForwardedResponse(
            status: .ok, upstream: upstream, gateway: .init(requestID: "r1", backend: "ns/b", model: "gpt-4o", attempts: "gpt-4o=ok"),
            body: ByteBuffer(string: "{}"), close: true)
        let written = forwarded(response, method: .POST)
        #expect(written.count == 1)
        #expect(
            String(decoding: written[0], as: UTF8.self)
                == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-b: \r\nSet-Cookie: a=\u{E9}\r\nx-request-id: r1\r\nx-aigw-backend: ns/b\r\n"
                + "x-aigw-model: gpt-4o\r\nx-aigw-attempts: gpt-4o=ok\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
        // Bytes that are not UTF-8 pass as they came.
        let raw = Array("HTTP/1.1 200 OK\r\nx-raw: a".utf8) + [0xFF, 0xFE] + Array("\r\n\r\n".utf8)
        let rawResponse = ForwardedResponse(
            status: .ok, upstream: try #require(parse(raw)), gateway: .init(requestID: "r", backend: "b", model: nil, attempts: ""),
            body: ByteBuffer(string: "{}"), close: false)
        let out = forwarded(rawResponse, method: .POST).joined()
        #expect(Array(out) == Array("HTTP/1.1 200 OK\r\nx-raw: a".utf8) + [0xFF, 0xFE] + Array("\r\nx-request-id: r\r\nx-aigw-backend: b\r\ncontent-length: 2\r\n\r\n{}".utf8))
        // A translated answer: the provider's content types (any case) give way to JSON's, after its other fields.
        let translated = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nx-amzn-requestid: q\r\nCONTENT-TYPE: x\r\n\r\n"
        var json = ForwardedResponse(
            status: .ok, upstream: try #require(parse(Array(translated.utf8))), gateway: .init(requestID: "r", backend: "b", model: nil, attempts: ""),
            body: ByteBuffer(string: "{}"), close: false)
        json.jsonContentType = true
        #expect(
            String(decoding: forwarded(json, method: .POST).joined(), as: UTF8.self)
                == "HTTP/1.1 200 OK\r\nx-amzn-requestid: q\r\ncontent-type: application/json\r\nx-request-id: r\r\nx-aigw-backend: b\r\ncontent-length: 2\r\n\r\n{}")
    }

    @Test("gathered after what is pending; to HEAD the head alone; a large body written as it is")
    func gathering() throws {
        let upstream = try #require(parse(Array("HTTP/1.1 200 OK\r\nx: y\r\n\r\n".utf8)))
        let fields = ForwardedResponseHead.GatewayFields(requestID: "r", backend: "b", model: nil, attempts: "")
        var encoder = ResponseEncoder(allocator: ByteBufferAllocator())
        // Bytes of an earlier part not written yet (a stream's last chunk) go first.
        _ = encoder.add(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "1"])), requestMethod: .POST)
        _ = encoder.add(.body(.byteBuffer(ByteBuffer(string: "x"))), requestMethod: .POST)
        _ = encoder.add(.end(nil), requestMethod: .POST)
        let step = encoder.addForwarded(
            ForwardedResponse(status: .ok, upstream: upstream, gateway: fields, body: ByteBuffer(string: "{}"), close: false), requestMethod: .POST)
        guard case .gathered = step else { Issue.record("not gathered"); return }
        let taken = encoder.takePending()
        let pending = try #require(taken)
        #expect(
            String(buffer: pending)
                == "HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nx" + "HTTP/1.1 200 OK\r\nx: y\r\nx-request-id: r\r\nx-aigw-backend: b\r\ncontent-length: 2\r\n\r\n{}")

        let head = forwarded(ForwardedResponse(status: .ok, upstream: upstream, gateway: fields, body: ByteBuffer(string: "{}"), close: false), method: .HEAD)
        #expect(head.map { String(decoding: $0, as: UTF8.self) } == ["HTTP/1.1 200 OK\r\nx: y\r\nx-request-id: r\r\nx-aigw-backend: b\r\ncontent-length: 2\r\n\r\n"])

        let large = ByteBuffer(repeating: UInt8(ascii: "a"), count: ResponseEncoder.gatherLimit + 1)
        let split = forwarded(ForwardedResponse(status: .ok, upstream: upstream, gateway: fields, body: large, close: false), method: .POST)
        #expect(split.count == 2)
        #expect(split.last?.count == ResponseEncoder.gatherLimit + 1)
    }

    /// A client connection whose handler forwards one answer to every request; what it writes back.
    private func exchange(_ requests: String) throws -> (out: String, open: Bool) {
        let channel = EmbeddedChannel()
        let server = HTTPServer(
            name: "test", host: "127.0.0.1", port: 0, handler: ForwardingHandler(), logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        try server.configureConnection(channel.pipeline.syncOperations)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(string: requests))
        channel.embeddedEventLoop.run()
        var out = ""
        while let part = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let b) = part { out += String(buffer: b) }
        }
        return (out, channel.isActive)
    }

    @Test("through the connection: pipelined answers in order on a kept connection, HEAD without the body, Connection: close closes")
    func throughTheConnection() throws {
        let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-request-id: r\r\nx-aigw-backend: b\r\ncontent-length: 2\r\n"
        let post = "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
        let kept = try exchange(post + "HEAD /v1/chat/completions HTTP/1.1\r\n\r\n" + post)
        #expect(kept.out == answer + "\r\n{}" + answer + "\r\n" + answer + "\r\n{}")
        #expect(kept.open)
        let closed = try exchange("POST /v1/chat/completions HTTP/1.1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}" + post)
        #expect(closed.out == answer + "connection: close\r\n\r\n{}")
        #expect(!closed.open)
    }
}

