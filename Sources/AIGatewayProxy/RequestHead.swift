import NIOCore
import NIOHTTP1

/// A client's request head as it arrived: its bytes (request line through the empty line), and
/// where the target and each field's name and value lie in them. `RequestParser` makes it and has
/// checked every byte: the method is a known one, the target and the names are clean, no value
/// holds a control character. Strings are made only when asked for.
struct RequestHead: Sendable {
    /// Where a part lies in `bytes` (offsets from its start).
    struct Span: Sendable, Hashable {
        var start: Int32
        var end: Int32
        var count: Int { Int(end - start) }
    }

    struct Field: Sendable, Hashable {
        var name: Span
        var value: Span
    }

    /// The head's bytes, from the request line's first byte through the empty line.
    let bytes: ByteBuffer
    let method: HTTPMethod
    let version: HTTPVersion
    let target: Span
    /// In the client's order, values without their surrounding whitespace.
    let fields: [Field]
    /// The declared `Content-Length`, if any (never together with `chunked`).
    let contentLength: Int?
    /// The body is chunked (`Transfer-Encoding: chunked`).
    let chunked: Bool
    /// The connection stays open after the answer (HTTP/1.1 without `Connection: close`, or
    /// HTTP/1.0 with `Connection: keep-alive`).
    let keepAlive: Bool

    func string(_ span: Span) -> String {
        bytes.getString(at: bytes.readerIndex + Int(span.start), length: span.count) ?? ""
    }

    var uri: String { string(target) }

    /// The head in NIO's shape, for the handlers (built once per request).
    func makeHTTPRequestHead() -> HTTPRequestHead {
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(fields.count)
        for f in fields { pairs.append((string(f.name), string(f.value))) }
        return HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(pairs))
    }
}
