@testable import AIGatewayProxy
import NIOCore
import NIOHTTP1
import Testing

@Suite("Client responses encoded and gathered into few writes")
struct ResponseEncoderTests {
    /// Encodes `parts` as the connection does with a flush at the end, and returns each write.
    func encode(_ parts: [HTTPServerResponsePart], method: HTTPMethod = .POST) -> [String] {
        var encoder = ResponseEncoder(allocator: ByteBufferAllocator())
        var writes: [String] = []
        func out(_ b: ByteBuffer) { writes.append(String(buffer: b)) }
        for part in parts {
            switch encoder.add(part, requestMethod: method) {
            case .gathered:
                break
            case .large(let before, let body):
                if let before { out(before) }
                if case .byteBuffer(let b) = body { out(b) }
            }
            if case .end = part, let p = encoder.takePending() { out(p) }
        }
        if let p = encoder.takePending() { out(p) }
        return writes
    }

    func head(_ fields: [(String, String)], status: HTTPResponseStatus = .ok) -> HTTPServerResponsePart {
        .head(HTTPResponseHead(version: .http1_1, status: status, headers: HTTPHeaders(fields)))
    }

    func body(_ s: String) -> HTTPServerResponsePart { .body(.byteBuffer(ByteBuffer(string: s))) }

    @Test("a complete answer with its length: one write, head and body, the length kept")
    func wholeAnswer() {
        let writes = encode([head([("content-type", "application/json"), ("Content-Length", "2")]), body("{}"), .end(nil)])
        #expect(writes == ["HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 2\r\n\r\n{}"])
    }

    @Test("no length: chunked, a transfer-encoding given is replaced, each chunk framed, an empty chunk skipped")
    func chunked() {
        let writes = encode([head([("Transfer-Encoding", "gzip"), ("x-a", "1")]), body("data: a\n\n"), body(""), body("0123456789abcdef"), .end(nil)])
        #expect(
            writes.joined() == "HTTP/1.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: a\n\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n")
        #expect(writes.count == 1)
        let trailers = encode([head([]), body("x"), .end(HTTPHeaders([("x-t", "v")]))])
        #expect(trailers.joined().hasSuffix("1\r\nx\r\n0\r\nx-t: v\r\n\r\n"))
    }

    @Test("a length wins over a transfer-encoding")
    func lengthWins() {
        let writes = encode([head([("transfer-encoding", "chunked"), ("content-length", "1")]), body("x"), .end(nil)])
        #expect(writes == ["HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nx"])
    }

    @Test("the answer to HEAD keeps its head and drops its body; 204 and 304 lose their framing fields")
    func bodyless() {
        #expect(encode([head([("content-length", "2")]), body("{}"), .end(nil)], method: .HEAD) == ["HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"])
        #expect(encode([head([("content-length", "0"), ("x", "y")], status: .noContent), .end(nil)]) == ["HTTP/1.1 204 No Content\r\nx: y\r\n\r\n"])
        #expect(encode([head([("transfer-encoding", "chunked")], status: .notModified), .end(nil)]) == ["HTTP/1.1 304 Not Modified\r\n\r\n"])
    }

    @Test("a large body is written as it is, between the gathered bytes")
    func largeBody() {
        let big = String(repeating: "a", count: ResponseEncoder.gatherLimit + 1)
        let identity = encode([head([("content-length", String(big.utf8.count))]), body(big), .end(nil)])
        #expect(identity.count == 2)
        #expect(identity[1] == big)
        let chunked = encode([head([]), body(big), .end(nil)])
        #expect(chunked.count == 3)
        #expect(chunked[0].hasSuffix("\r\n\r\n4001\r\n"))
        #expect(chunked[1] == big)
        #expect(chunked[2] == "\r\n0\r\n\r\n")
    }

    @Test("an HTTP/1.0 head without a length is not chunked")
    func http10() {
        let part = HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_0, status: .ok, headers: HTTPHeaders([("a", "b")])))
        #expect(encode([part, body("xy"), .end(nil)]) == ["HTTP/1.0 200 OK\r\na: b\r\n\r\nxy"])
    }
}
