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

    /// The head in NIO's shape, for the few that want it (the admin port, rejections, tests):
    /// the proxy's path reads the bytes.
    func makeHTTPRequestHead() -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(fieldPairs()))
    }

    /// Every field as a pair of strings, in order.
    func fieldPairs() -> [(name: String, value: String)] {
        var pairs: [(name: String, value: String)] = []
        pairs.reserveCapacity(fields.count)
        for f in fields { pairs.append((string(f.name), string(f.value))) }
        return pairs
    }

    /// The value of the first field named `lowered` (lowercase ASCII), the name matched whatever
    /// its case.
    func first(_ lowered: StaticString) -> Span? {
        bytes.withUnsafeReadableBytes { p in
            for f in fields where f.name.count == lowered.utf8CodeUnitCount {
                if HeadSyntax.equalsLowercase(Self.slice(p, f.name), lowered) { return f.value }
            }
            return nil
        }
    }

    /// The bytes of `span` in `p` (the head's readable bytes).
    @inline(__always)
    static func slice(_ p: UnsafeRawBufferPointer, _ span: Span) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: p[Int(span.start)..<Int(span.end)])
    }

    /// The same head in a buffer of its own when the one it lies in is much larger (a read of a
    /// large body): a request kept for a long answer (a stream) then holds the head, not the read.
    func compacted() -> RequestHead {
        guard bytes.storageCapacity > bytes.readableBytes + 4096 else { return self }
        return RequestHead(
            bytes: ByteBuffer(bytes: bytes.readableBytesView), method: method, version: version, target: target, fields: fields,
            contentLength: contentLength, chunked: chunked, keepAlive: keepAlive)
    }

    /// Parses a whole head (request line through the empty line), as the server's parser does.
    /// For tests and for callers that hold a head in NIO's shape.
    static func parse(_ bytes: ByteBuffer) throws(RequestParseError) -> RequestHead {
        var parser = RequestParser(maxHeadBytes: max(bytes.readableBytes, 1))
        parser.append(bytes)
        guard case .head(let head)? = try parser.next() else { throw .malformed("not a whole head") }
        return head
    }

    /// `head` as the parser would have read it from the wire (for callers and tests that hold a
    /// head in NIO's shape). Nil if it is not a head the server would accept.
    static func from(_ head: HTTPRequestHead) -> RequestHead? {
        var text = "\(head.method.rawValue) \(head.uri) HTTP/\(head.version.major).\(head.version.minor)\r\n"
        for (name, value) in head.headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        return try? parse(ByteBuffer(string: text))
    }
}
