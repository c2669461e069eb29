import NIOCore
import NIOHTTP1

/// A request to a provider as it goes on the wire: the upstream connection writes it as it is,
/// in one write (two for a large body) and one flush, with no encoder in its pipeline.
struct UpstreamRequestBytes: Sendable {
    /// The head, followed by the body when that is at most `RequestEncoder.gatherLimit` bytes.
    var bytes: ByteBuffer
    /// A larger body, written after `bytes` as it is (not copied).
    var largeBody: ByteBuffer?
    /// The method is `HEAD`: the answer has no body.
    var bodylessAnswer: Bool
    /// Why the request must not be written (`RequestHeadCheck`), or nil; then `bytes` is empty.
    var problem: String?

    /// An attempt's request: the head written from its parts (`UpstreamRequestHead`, whose
    /// `content-length` is `body`'s size), then the body.
    init(_ head: UpstreamRequestHead, body: ByteBuffer) {
        bodylessAnswer = head.method == "HEAD"
        problem = head.problem()
        largeBody = nil
        guard problem == nil else {
            bytes = ByteBuffer()
            return
        }
        let gather = body.readableBytes <= RequestEncoder.gatherLimit
        bytes = ByteBuffer()
        head.write(into: &bytes, extra: gather ? body.readableBytes : 0)
        if gather {
            bytes.writeImmutableBuffer(body)
        } else {
            largeBody = body
        }
    }

    /// An attempt's request whose body goes straight after the head, into the same buffer:
    /// `writeBody` appends its `bodyCount` bytes (the head's `content-length`; at most
    /// `RequestEncoder.gatherLimit`). The bytes of `init(head, body:)` with that body, without a
    /// buffer of the body's own.
    init(_ head: UpstreamRequestHead, bodyCount: Int, writeBody: (inout ByteBuffer) -> Void) {
        precondition(head.contentLength == bodyCount && bodyCount <= RequestEncoder.gatherLimit, "the body goes in the head's buffer, as its content-length says")
        bodylessAnswer = head.method == "HEAD"
        problem = head.problem()
        largeBody = nil
        bytes = ByteBuffer()
        guard problem == nil else { return }
        head.write(into: &bytes, extra: bodyCount)
        writeBody(&bytes)
    }

    /// A request in NIO's shape, framed as `RequestEncoder` frames it (a head without
    /// `content-length` or `transfer-encoding` gets a chunked body).
    init(_ head: HTTPRequestHead, body: ByteBuffer) {
        bodylessAnswer = head.method == .HEAD
        problem = RequestHeadCheck.problem(head)
        largeBody = nil
        bytes = ByteBuffer()
        guard problem == nil else { return }
        let chunked = RequestEncoder.needsChunking(head)
        RequestEncoder.writeHead(head, chunked: chunked, into: &bytes)
        if chunked {
            if body.readableBytes > 0 {
                bytes.writeString(String(body.readableBytes, radix: 16))
                bytes.writeStaticString("\r\n")
                bytes.writeImmutableBuffer(body)
                bytes.writeStaticString("\r\n")
            }
            bytes.writeStaticString("0\r\n\r\n")
        } else if body.readableBytes <= RequestEncoder.gatherLimit {
            bytes.writeImmutableBuffer(body)
        } else {
            largeBody = body
        }
    }
}
