@testable import AIGatewayProxy
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@Suite("Upstream requests written as one buffer")
struct RequestEncoderTests {
    /// Writes `parts` through the encoder, flushes, and returns what reached the wire, write by write.
    func written(_ parts: [HTTPClientRequestPart]) throws -> [String] {
        let channel = EmbeddedChannel(handler: RequestEncoder())
        for part in parts { channel.write(part, promise: nil) }
        channel.flush()
        var out: [String] = []
        while let b = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let bytes) = b { out.append(String(buffer: bytes)) }
        }
        _ = try channel.finish()
        return out
    }

    func head(_ uri: String = "/v1/chat/completions") -> HTTPClientRequestPart {
        .head(HTTPRequestHead(version: .http1_1, method: .POST, uri: uri, headers: HTTPHeaders([("host", "api.openai.com"), ("content-length", "2")])))
    }

    @Test("head, body and end: one write, the head as given, the body after it")
    func wholeRequest() throws {
        let out = try written([head(), .body(.byteBuffer(ByteBuffer(string: "{}"))), .end(nil)])
        #expect(out == ["POST /v1/chat/completions HTTP/1.1\r\nhost: api.openai.com\r\ncontent-length: 2\r\n\r\n{}"])
    }

    @Test("a large body is written as it is, after the head")
    func largeBody() throws {
        let big = String(repeating: "x", count: RequestEncoder.gatherLimit + 1)
        let out = try written([head(), .body(.byteBuffer(ByteBuffer(string: big))), .end(nil)])
        #expect(out.count == 2)
        #expect(out.first?.hasPrefix("POST /v1/chat/completions HTTP/1.1\r\n") == true)
        #expect(out.last == big)
    }

    @Test("a head without framing fields gets a chunked body")
    func chunked() throws {
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/", headers: HTTPHeaders([("host", "h")]))
        let out = try written([.head(head), .body(.byteBuffer(ByteBuffer(string: "0123456789abcdef"))), .end(nil)])
        #expect(out.joined() == "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n")
    }

    @Test("a promise on the end completes once the request is written")
    func promise() throws {
        let channel = EmbeddedChannel(handler: RequestEncoder())
        channel.write(head(), promise: nil)
        let done = channel.writeAndFlush(HTTPClientRequestPart.end(nil))
        #expect(throws: Never.self) { try done.wait() }
        #expect(try channel.readOutbound(as: IOData.self) != nil)
        _ = try channel.finish()
    }
}
