@testable import AIGatewayProxy
import NIOCore
import NIOHTTP1
import Testing

@Suite("Heads written at one go into counted space")
struct HeadBytesTests {
    @Test("decimal numbers: their byte counts and their digits")
    func decimals() {
        for value in [0, 7, 9, 10, 99, 100, 404, 999, 1000, 65535, Int(Int32.max)] {
            #expect(HeadBytes.decimalCount(value) == String(value).utf8.count, "\(value)")
            var buffer = ByteBuffer()
            HeadBytes.write(into: &buffer, size: HeadBytes.decimalCount(value)) { $0.putDecimal(value) }
            #expect(String(buffer: buffer) == String(value))
        }
    }

    @Test("pieces land in order after what the buffer held, non-ASCII text byte for byte")
    func pieces() {
        var buffer = ByteBuffer(string: "before|")
        let text = "naïve ✓"
        let size = 3 + text.utf8.count + 2 + 2
        HeadBytes.write(into: &buffer, size: size) { w in
            w.put("abc")
            w.put(text)
            w.putDecimal(42)
            w.put(UnsafeRawBufferPointer(start: nil, count: 0))
            w.put("")
            w.put("\r\n")
        }
        #expect(String(buffer: buffer) == "before|abcnaïve ✓42\r\n")
        #expect(buffer.readableBytes == 7 + size)
    }

    @Test("a response's status line: three-digit codes, a custom reason, HTTP/1.0; a request's line with its query")
    func startLines() {
        var encoder = ResponseEncoder(allocator: ByteBufferAllocator())
        let custom = HTTPResponseHead(
            version: .http1_0, status: .custom(code: 599, reasonPhrase: "Très Bad"), headers: HTTPHeaders([("content-length", "0"), ("x", "")]))
        _ = encoder.add(.head(custom), requestMethod: .GET)
        #expect(encoder.takePending().map { String(buffer: $0) } == "HTTP/1.0 599 Très Bad\r\ncontent-length: 0\r\nx: \r\n\r\n")
        var request = ByteBuffer()
        RequestEncoder.writeHead(
            HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions?api-version=2024", headers: HTTPHeaders([("host", "h:1")])),
            chunked: true, into: &request)
        #expect(String(buffer: request) == "POST /v1/chat/completions?api-version=2024 HTTP/1.1\r\nhost: h:1\r\ntransfer-encoding: chunked\r\n\r\n")
    }
}
