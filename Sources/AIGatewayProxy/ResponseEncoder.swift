import NIOCore
import NIOHTTP1

/// Turns the parts of the client connection's responses into HTTP/1.1 bytes, gathering what the
/// handler writes between two flushes into one buffer: a complete answer (head, body, end) leaves
/// as one write of one buffer, and a streamed event as one buffer with its chunk framing, where
/// NIO's `HTTPResponseEncoder` passes three to five writes (and, for a chunk with a promise, three
/// more promises) down the pipeline.
///
/// Framing as NIO's encoder does it: a head with `content-length` keeps it; one without gets
/// `transfer-encoding: chunked` (HTTP/1.1); a status that has no body (1xx, 204, 304) loses both.
/// The answer to a `HEAD` request keeps its head and drops its body.
struct ResponseEncoder {
    /// Bodies up to this size are copied into the gathered bytes; larger ones are written as they are.
    static let gatherLimit = 16 * 1024

    private enum Framing {
        case identity
        case chunked
        /// No body bytes go out (a `HEAD` request, or a status without a body).
        case none
    }

    /// What `add` leaves for the caller to write.
    enum Step {
        /// The part's bytes (if any) are in `pending`.
        case gathered
        /// Write `before` (if any), then `body`; the bytes after it (a chunk's CRLF) are in `pending`.
        case large(before: ByteBuffer?, body: IOData)
    }

    private var framing = Framing.identity
    /// Bytes not handed to the channel yet.
    private(set) var pending: ByteBuffer?
    private let allocator: ByteBufferAllocator

    init(allocator: ByteBufferAllocator) {
        self.allocator = allocator
    }

    /// Takes the gathered bytes.
    mutating func takePending() -> ByteBuffer? {
        defer { pending = nil }
        return pending
    }

    /// Encodes `part` of the answer to a request made with `method`.
    mutating func add(_ part: HTTPServerResponsePart, requestMethod: HTTPMethod) -> Step {
        switch part {
        case .head(let head):
            var buffer = takePending() ?? allocator.buffer(capacity: 512)
            framing = Self.writeHead(head, bodyless: requestMethod == .HEAD, into: &buffer)
            pending = buffer
            return .gathered
        case .body(let data):
            return addBody(data)
        case .end(let trailers):
            if case .chunked = framing {
                var buffer = takePending() ?? allocator.buffer(capacity: 8)
                if let trailers {
                    buffer.writeStaticString("0\r\n")
                    Self.writeFields(trailers, into: &buffer)
                    buffer.writeStaticString("\r\n")
                } else {
                    buffer.writeStaticString("0\r\n\r\n")
                }
                pending = buffer
            }
            framing = .identity
            return .gathered
        }
    }

    /// Encodes a provider's complete answer as the gateway forwards it (`ForwardedResponse`):
    /// its head written from the provider's bytes (`ForwardedResponseHead`), then its body, gathered
    /// after what is pending as `head`, `body` and `end` parts would be: the body dropped for a
    /// `HEAD` request, and written as it is when large.
    mutating func addForwarded(_ response: ForwardedResponse, requestMethod: HTTPMethod) -> Step {
        framing = .identity
        let size = response.body.readableBytes
        let bodyless = requestMethod == .HEAD || size == 0
        let gather = !bodyless && size <= Self.gatherLimit
        var buffer = takePending() ?? allocator.buffer(capacity: ForwardedResponseHead.sizeBound(response) + (gather ? size : 0))
        ForwardedResponseHead.write(response, into: &buffer)
        if bodyless {
            pending = buffer
            return .gathered
        }
        if gather {
            var body = response.body
            buffer.writeBuffer(&body)
            pending = buffer
            return .gathered
        }
        return .large(before: buffer, body: .byteBuffer(response.body))
    }

    private mutating func addBody(_ data: IOData) -> Step {
        let size = data.readableBytes
        switch framing {
        case .none:
            return .gathered
        case _ where size == 0:
            // An empty chunk would end a chunked body.
            return .gathered
        case .identity:
            if size <= Self.gatherLimit, case .byteBuffer(var bytes) = data {
                var buffer = takePending() ?? allocator.buffer(capacity: size)
                buffer.writeBuffer(&bytes)
                pending = buffer
                return .gathered
            }
            return .large(before: takePending(), body: data)
        case .chunked:
            var buffer = takePending() ?? allocator.buffer(capacity: size + 16)
            Self.writeHex(size, into: &buffer)
            buffer.writeStaticString("\r\n")
            if size <= Self.gatherLimit, case .byteBuffer(var bytes) = data {
                buffer.writeBuffer(&bytes)
                buffer.writeStaticString("\r\n")
                pending = buffer
                return .gathered
            }
            var after = allocator.buffer(capacity: 2)
            after.writeStaticString("\r\n")
            pending = after
            return .large(before: buffer, body: data)
        }
    }

    private static let framingFields = HeaderNameSet(["content-length", "transfer-encoding"])

    /// Writes the status line and fields of `head`, framed, and says how its body is framed.
    private static func writeHead(_ head: HTTPResponseHead, bodyless: Bool, into buffer: inout ByteBuffer) -> Framing {
        let status = head.status
        let mayHaveBody = status.mayHaveResponseBody
        var hasLength = false
        // `content-length` has 14 bytes, `transfer-encoding` 17: other names are not looked at.
        for (name, _) in head.headers where name.utf8.count == 14 && framingFields.contains(name) {
            hasLength = true
        }
        let http11 = head.version.major == 1 && head.version.minor >= 1
        let framing: Framing
        // Which framing fields the head keeps, and whether one is added.
        var dropLength = false
        var dropTransferEncoding = false
        var addChunked = false
        if !mayHaveBody {
            (framing, dropLength, dropTransferEncoding) = (.none, true, true)
        } else if hasLength {
            (framing, dropTransferEncoding) = (.identity, true)
        } else if http11 {
            framing = .chunked
            dropTransferEncoding = true
            addChunked = true
        } else {
            // HTTP/1.0 without a length: the body ends when the connection closes.
            framing = .identity
        }

        let reason = status.reasonPhrase
        let code = Int(status.code)
        let (major, minor) = (Int(head.version.major), Int(head.version.minor))
        func kept(_ name: String) -> Bool {
            let length = name.utf8.count
            return !((length == 14 && dropLength) || (length == 17 && dropTransferEncoding)) || !framingFields.contains(name)
        }
        // "HTTP/" major "." minor " " code " " reason CRLF, the fields, the added field, CRLF.
        var size = 5 + HeadBytes.decimalCount(major) + 1 + HeadBytes.decimalCount(minor) + 1 + HeadBytes.decimalCount(code) + 1 + reason.utf8.count + 2
        for (name, value) in head.headers where kept(name) { size += name.utf8.count + 2 + value.utf8.count + 2 }
        if addChunked { size += Self.chunkedField.utf8CodeUnitCount }
        size += 2
        HeadBytes.write(into: &buffer, size: size) { w in
            w.put("HTTP/")
            w.putDecimal(major)
            w.put(".")
            w.putDecimal(minor)
            w.put(" ")
            w.putDecimal(code)
            w.put(" ")
            w.put(reason)
            w.put("\r\n")
            for (name, value) in head.headers where kept(name) {
                w.put(name)
                w.put(": ")
                w.put(value)
                w.put("\r\n")
            }
            if addChunked { w.put(Self.chunkedField) }
            w.put("\r\n")
        }
        return bodyless ? .none : framing
    }

    private static let chunkedField: StaticString = "transfer-encoding: chunked\r\n"

    private static func writeFields(_ fields: HTTPHeaders, into buffer: inout ByteBuffer) {
        for (name, value) in fields {
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeStaticString("\r\n")
        }
    }

    private static func writeHex(_ value: Int, into buffer: inout ByteBuffer) {
        var digits = 1
        while value >> (4 * digits) != 0 { digits += 1 }
        for k in stride(from: digits - 1, through: 0, by: -1) {
            let nibble = UInt8(truncatingIfNeeded: value >> (4 * k)) & 0xF
            buffer.writeInteger(nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10)
        }
    }
}
