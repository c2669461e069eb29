import NIOCore
import NIOHTTP1

/// Writes requests in NIO's shape (`HTTPClientRequestPart`s) as HTTP/1.1 bytes, a whole request
/// (head, body, end) gathered into one buffer and written once, where NIO's `HTTPRequestEncoder`
/// passes three writes down the pipeline.
///
/// The head is written as given when it frames its body (`content-length`, as the gateway's
/// attempts do, or `transfer-encoding`); a head without either gets `transfer-encoding: chunked`
/// and its body chunks, as with NIO's encoder.
///
/// The upstream client no longer has it in its pipeline: a request reaches the connection
/// already in bytes (`UpstreamRequestBytes`, which encodes a head in NIO's shape with `writeHead`
/// and the same framing). The handler stays as the reference the tests hold the byte path to.
final class RequestEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = IOData

    /// Bodies up to this size are copied after the head; larger ones are written as they are.
    static let gatherLimit = 16 * 1024

    private var pending: ByteBuffer?
    /// The request's body is chunked by this encoder.
    private var chunked = false
    private static let framingFields = HeaderNameSet(["content-length", "transfer-encoding"])

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            var buffer = context.channel.allocator.buffer(capacity: 512)
            chunked = Self.needsChunking(head)
            Self.writeHead(head, chunked: chunked, into: &buffer)
            pending = buffer
            if promise != nil { writePending(context: context, promise: promise) }
        case .body(let body):
            if chunked {
                // An empty chunk would end the body.
                guard body.readableBytes > 0 else { return writePending(context: context, promise: promise) }
                var size = takePending() ?? context.channel.allocator.buffer(capacity: 8)
                size.writeString(String(body.readableBytes, radix: 16))
                size.writeStaticString("\r\n")
                context.write(wrapOutboundOut(.byteBuffer(size)), promise: nil)
                context.write(wrapOutboundOut(body), promise: nil)
                var after = context.channel.allocator.buffer(capacity: 2)
                after.writeStaticString("\r\n")
                pending = after
                if promise != nil { writePending(context: context, promise: promise) }
            } else if body.readableBytes <= Self.gatherLimit, case .byteBuffer(var bytes) = body, var buffer = takePending() {
                buffer.writeBuffer(&bytes)
                pending = buffer
                if promise != nil { writePending(context: context, promise: promise) }
            } else {
                writePending(context: context, promise: nil)
                context.write(wrapOutboundOut(body), promise: promise)
            }
        case .end:
            if chunked {
                var buffer = takePending() ?? context.channel.allocator.buffer(capacity: 5)
                buffer.writeStaticString("0\r\n\r\n")
                pending = buffer
                chunked = false
            }
            writePending(context: context, promise: promise)
        }
    }

    func flush(context: ChannelHandlerContext) {
        writePending(context: context, promise: nil)
        context.flush()
    }

    /// Takes the gathered bytes (unshared, so appending to them does not copy).
    private func takePending() -> ByteBuffer? {
        defer { pending = nil }
        return pending
    }

    private func writePending(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        if let bytes = pending {
            pending = nil
            context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: promise)
        } else if let promise {
            // Nothing to write, but the promise completes in order with the writes before it.
            context.write(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
        }
    }

    /// `head` frames no body (neither `content-length` nor `transfer-encoding`): its body is sent chunked.
    static func needsChunking(_ head: HTTPRequestHead) -> Bool {
        !head.headers.contains { framingFields.contains($0.name) }
    }

    static func writeHead(_ head: HTTPRequestHead, chunked: Bool, into buffer: inout ByteBuffer) {
        let method = head.method.rawValue
        let version: StaticString = head.version.minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n"
        let chunkedField: StaticString = "transfer-encoding: chunked\r\n"
        var size = method.utf8.count + 1 + head.uri.utf8.count + version.utf8CodeUnitCount
        for (name, value) in head.headers { size += name.utf8.count + 2 + value.utf8.count + 2 }
        if chunked { size += chunkedField.utf8CodeUnitCount }
        size += 2
        HeadBytes.write(into: &buffer, size: size) { w in
            w.put(method)
            w.put(" ")
            w.put(head.uri)
            w.put(version)
            for (name, value) in head.headers {
                w.put(name)
                w.put(": ")
                w.put(value)
                w.put("\r\n")
            }
            if chunked { w.put(chunkedField) }
            w.put("\r\n")
        }
    }
}
