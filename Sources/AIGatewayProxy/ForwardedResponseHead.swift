import NIOCore
import NIOHTTP1

/// The head of the client's response to a provider's complete answer, written straight from the
/// provider's head as it was read (`UpstreamResponseHead`: bytes and field ranges), with no
/// `HTTPHeaders` and no string per field.
///
/// It writes what the general path writes for the same answer (`forwardableResponseHeaders`, then
/// `addGatewayHeaders`, `ResponseWriter.respond` and `ResponseEncoder`): the status line; the
/// provider's fields in their order, byte for byte, except those named in
/// `GatewayHandler.droppedResponseHeaders` (names compared ignoring ASCII case); the gateway's
/// fields; `content-length`; `connection: close` when the connection closes after the answer; the
/// empty line. One difference: the general path makes strings of the provider's fields, which
/// turns bytes that are not UTF-8 into U+FFFD; this copies them as they came.
///
/// A route's response header modifiers are not applied here (a route that has some takes the
/// general path), nor is the framing of a status without a body (those take it too).
/// A provider's complete answer as the gateway forwards it to the client.
struct ForwardedResponse: Sendable {
    /// Has a body (`mayHaveResponseBody`): other statuses take the general path.
    var status: HTTPResponseStatus
    var upstream: UpstreamResponseHead
    var gateway: ForwardedResponseHead.GatewayFields
    var body: ByteBuffer
    /// The connection closes after this answer (`connection: close`).
    var close: Bool
    /// The body is the gateway's JSON (a translated answer): the provider's `content-type` fields
    /// give way to `content-type: application/json` after its other fields, as
    /// `HTTPHeaders.replaceOrAdd` puts it on the general path.
    var jsonContentType = false
}

enum ForwardedResponseHead {
    /// The gateway's own fields on a forwarded answer.
    struct GatewayFields: Sendable {
        var requestID: String
        var backend: String
        /// The model that answered as the trail writes it (`TrailToken`); nil: no field.
        var model: String?
        /// The attempt trail; empty: no field.
        var trail: AttemptTrail
        /// The attempt trail as a string (for the general path).
        var attempts: String { trail.text }

        init(requestID: String, backend: String, model: String?, trail: AttemptTrail) {
            self.requestID = requestID
            self.backend = backend
            self.model = model
            self.trail = trail
        }

        init(requestID: String, backend: String, model: String?, attempts: String) {
            self.init(requestID: requestID, backend: backend, model: model, trail: AttemptTrail(attempts))
        }

        init(requestID: String, backend: String, trail: Trail) {
            self.init(requestID: requestID, backend: backend, model: trail.model.map(TrailToken.make), attempts: trail.header)
        }
    }

    /// Bytes enough for the head of `response` (a capacity to reserve).
    static func sizeBound(_ response: ForwardedResponse) -> Int {
        let g = response.gateway
        // The provider's head holds its status line and fields; the rest is the gateway's.
        return response.upstream.bytes.readableBytes + g.requestID.utf8.count + g.backend.utf8.count + (g.model?.utf8.count ?? 0)
            + g.trail.count + 200
    }

    /// Writes the head of `response` (its body's length in `content-length`) at the writer index
    /// of `buffer`.
    static func write(_ response: ForwardedResponse, into buffer: inout ByteBuffer) {
        let (status, upstream, gateway) = (response.status, response.upstream, response.gateway)
        let (contentLength, close, json) = (response.body.readableBytes, response.close, response.jsonContentType)
        precondition(status.mayHaveResponseBody, "a status without a body takes the general path")
        let dropped = GatewayHandler.droppedResponseHeaders
        let code = Int(status.code)
        let reason = status.reasonPhrase
        upstream.bytes.withUnsafeReadableBytes { src in
            func name(_ f: UpstreamResponseHead.Field) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: src[f.nameRange]) }
            func value(_ f: UpstreamResponseHead.Field) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: src[f.valueRange]) }
            func kept(_ f: UpstreamResponseHead.Field) -> Bool { !dropped.contains(name(f)) && !(json && contentType.contains(name(f))) }
            // Counted first, then copied into space reserved once (`HeadBytes`).
            // "HTTP/1.1 " code " " reason CRLF
            var size = 9 + HeadBytes.decimalCount(code) + 1 + reason.utf8.count + 2
            // Which of the first 64 fields are kept, a bit each, so the copy need not ask again.
            var keptBits: UInt64 = 0
            for (i, f) in upstream.fields.enumerated() where kept(f) {
                if i < 64 { keptBits |= 1 << UInt64(i) }
                size += f.nameRange.count + 2 + f.valueRange.count + 2
            }
            func isKept(_ i: Int) -> Bool { i < 64 ? keptBits & (1 << UInt64(i)) != 0 : kept(upstream.fields[i]) }
            /// The field's line is `name: value` CRLF byte for byte (what is written for it).
            func isCanonical(_ f: UpstreamResponseHead.Field) -> Bool {
                let n = f.nameRange.upperBound
                let v = f.valueRange.upperBound
                return f.valueRange.lowerBound == n + 2 && src[n] == UInt8(ascii: ":") && src[n + 1] == UInt8(ascii: " ") && v + 2 <= src.count
                    && src[v] == UInt8(ascii: "\r") && src[v + 1] == UInt8(ascii: "\n")
            }
            if json { size += jsonContentTypeField.utf8CodeUnitCount }
            size += fieldSize(GatewayHeaders.requestID, gateway.requestID)
            size += fieldSize(GatewayHeaders.backend, gateway.backend)
            if let model = gateway.model { size += fieldSize(GatewayHeaders.model, model) }
            let trailCount = gateway.trail.count
            if trailCount > 0 { size += GatewayHeaders.attempts.utf8.count + 2 + trailCount + 2 }
            size += contentLengthName.utf8CodeUnitCount + HeadBytes.decimalCount(contentLength) + 2
            if close { size += connectionClose.utf8CodeUnitCount }
            size += 2
            HeadBytes.write(into: &buffer, size: size) { w in
                w.put("HTTP/1.1 ")
                w.putDecimal(code)
                w.put(" ")
                w.put(reason)
                w.put("\r\n")
                // A field whose line reads `name: value` CRLF in the provider's bytes is copied
                // with its line end as it is, and kept fields that follow each other there are
                // copied together (`run`): the usual head takes a copy or two, not four per field.
                var run = 0..<0
                for (i, f) in upstream.fields.enumerated() where isKept(i) {
                    if isCanonical(f) {
                        let line = f.nameRange.lowerBound..<(f.valueRange.upperBound + 2)
                        if !run.isEmpty, run.upperBound == line.lowerBound {
                            run = run.lowerBound..<line.upperBound
                        } else {
                            w.put(UnsafeRawBufferPointer(rebasing: src[run]))
                            run = line
                        }
                        continue
                    }
                    w.put(UnsafeRawBufferPointer(rebasing: src[run]))
                    run = 0..<0
                    w.put(name(f))
                    w.put(": ")
                    w.put(value(f))
                    w.put("\r\n")
                }
                w.put(UnsafeRawBufferPointer(rebasing: src[run]))
                if json { w.put(jsonContentTypeField) }
                put(&w, GatewayHeaders.requestID, gateway.requestID)
                put(&w, GatewayHeaders.backend, gateway.backend)
                if let model = gateway.model { put(&w, GatewayHeaders.model, model) }
                if trailCount > 0 {
                    w.put(GatewayHeaders.attempts)
                    w.put(": ")
                    gateway.trail.write(into: &w)
                    w.put("\r\n")
                }
                w.put(contentLengthName)
                w.putDecimal(contentLength)
                w.put("\r\n")
                if close { w.put(connectionClose) }
                w.put("\r\n")
            }
        }
    }

    private static let contentLengthName: StaticString = "content-length: "
    private static let jsonContentTypeField: StaticString = "content-type: application/json\r\n"
    private static let contentType = HeaderNameSet(["content-type"])
    private static let connectionClose: StaticString = "connection: close\r\n"

    private static func fieldSize(_ name: String, _ value: String) -> Int {
        name.utf8.count + 2 + value.utf8.count + 2
    }

    private static func put(_ w: inout HeadBytes, _ name: String, _ value: String) {
        w.put(name)
        w.put(": ")
        w.put(value)
        w.put("\r\n")
    }
}
