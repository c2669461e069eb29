import AIGatewayProviders
import NIOCore
import NIOHTTP1

/// An upstream response's head as `UpstreamResponseParser` read it: its bytes (status line to
/// empty line, its own copy) and where each field's name and value lie in them.
/// Nothing is turned into strings until someone asks (`first(name:)`, `headers`, `pairs`).
struct UpstreamResponseHead: Sendable {
    /// A field's name and value (without the whitespace around it), as offsets into `bytes`.
    struct Field: Sendable, Equatable {
        var nameStart: UInt32
        var nameEnd: UInt32
        var valueStart: UInt32
        var valueEnd: UInt32

        var nameRange: Range<Int> { Int(nameStart)..<Int(nameEnd) }
        var valueRange: Range<Int> { Int(valueStart)..<Int(valueEnd) }
    }

    /// The head's bytes; the fields' offsets count from its reader index.
    let bytes: ByteBuffer
    let version: HTTPVersion
    let status: Int
    let fields: [Field]
    /// What the version and `connection` say of keeping the connection (the body's framing may
    /// still rule it out: see `UpstreamResponseParser.keepAlive`).
    let keepAlive: Bool

    init(bytes: ByteBuffer, version: HTTPVersion, status: Int, fields: [Field], keepAlive: Bool) {
        self.bytes = bytes
        self.version = version
        self.status = status
        self.fields = fields
        self.keepAlive = keepAlive
    }

    /// `head` as the parser would have read it from the wire (for receivers and tests that start
    /// from NIO's type). A head that does not parse back (a field with a line end in it) keeps
    /// its status and version and loses its fields.
    init(_ head: HTTPResponseHead) {
        var buffer = ByteBuffer()
        buffer.writeString("HTTP/\(head.version.major).\(head.version.minor) \(head.status.code) \(head.status.reasonPhrase)\r\n")
        for (name, value) in head.headers { buffer.writeString("\(name): \(value)\r\n") }
        buffer.writeStaticString("\r\n")
        let parsed = buffer.withUnsafeReadableBytes { p in
            try? UpstreamResponseParser.parseHead(p, bytes: buffer, headRequest: false).0
        }
        self = parsed ?? UpstreamResponseHead(bytes: ByteBuffer(), version: head.version, status: Int(head.status.code), fields: [], keepAlive: false)
    }

    var count: Int { fields.count }

    func name(at i: Int) -> String { string(fields[i].nameRange) }

    func value(at i: Int) -> String { string(fields[i].valueRange) }

    /// The value of the first field named `name` (ASCII case ignored).
    func first(name: String) -> String? {
        var name = name
        return name.withUTF8 { wanted in
            bytes.withUnsafeReadableBytes { p in
                for f in fields where HeaderName.equal(UnsafeRawBufferPointer(rebasing: p[f.nameRange]), UnsafeRawBufferPointer(wanted)) {
                    return String(decoding: UnsafeRawBufferPointer(rebasing: p[f.valueRange]), as: UTF8.self)
                }
                return nil
            }
        }
    }

    /// The fields as name and value strings, in order.
    var pairs: [(name: String, value: String)] {
        bytes.withUnsafeReadableBytes { p in
            fields.map { f in
                (
                    String(decoding: UnsafeRawBufferPointer(rebasing: p[f.nameRange]), as: UTF8.self),
                    String(decoding: UnsafeRawBufferPointer(rebasing: p[f.valueRange]), as: UTF8.self)
                )
            }
        }
    }

    /// The fields as NIO's headers, in order.
    var headers: HTTPHeaders {
        let list: [(String, String)] = bytes.withUnsafeReadableBytes { p in
            fields.map { f in
                (
                    String(decoding: UnsafeRawBufferPointer(rebasing: p[f.nameRange]), as: UTF8.self),
                    String(decoding: UnsafeRawBufferPointer(rebasing: p[f.valueRange]), as: UTF8.self)
                )
            }
        }
        return HTTPHeaders(list)
    }

    /// NIO's head for the same response.
    var responseHead: HTTPResponseHead {
        HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: status), headers: headers)
    }

    private func string(_ range: Range<Int>) -> String {
        bytes.withUnsafeReadableBytes { String(decoding: UnsafeRawBufferPointer(rebasing: $0[range]), as: UTF8.self) }
    }
}
