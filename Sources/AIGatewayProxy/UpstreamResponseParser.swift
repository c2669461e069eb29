#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOHTTP1

/// Reads the HTTP/1.1 responses of one upstream connection from its bytes, in whatever pieces
/// they arrive: a head (`UpstreamResponseHead`: the head's bytes and where each field lies in
/// them, no string built), then the body's bytes as slices of what was read (no copy), then the
/// end. A value: the connection holds one and feeds it.
///
/// - Framing (RFC 9112 §6.3): no body after a `HEAD` request or for 204 and 304; else a
///   `transfer-encoding` ending in `chunked` (chunk extensions and trailers are read and
///   dropped); else `content-length`; else the body runs until the connection closes.
/// - Interim (1xx) responses are skipped; 101 (a protocol switch nobody asked for) is an error.
/// - Errors, never a crash, on what is not HTTP/1.x or is ambiguous: a malformed status line or
///   field, a head (or trailer section) over `maxHeadBytes`, a bad chunk, a `content-length`
///   that is not a number or conflicts with another, `content-length` together with
///   `transfer-encoding`. An error leaves the parser failed: the connection is done.
/// - `keepAlive` after the end of a response says whether the connection may carry another
///   request: HTTP/1.1 unless `connection: close`, HTTP/1.0 only with `connection: keep-alive`,
///   and never after a body that ended with the connection.
/// - Line ends are CRLF; a bare LF is accepted too (as nginx does), a CR anywhere else is not.
struct UpstreamResponseParser {
    enum Part {
        case head(UpstreamResponseHead)
        case body(ByteBuffer)
        case end
    }

    struct Error: Swift.Error, Equatable, CustomStringConvertible {
        enum Code: String, Sendable {
            case headTooLarge, malformedStatusLine, unsupportedVersion, malformedField, switchingProtocols
            case invalidContentLength, conflictingContentLength, contentLengthWithTransferEncoding
            case malformedChunk, trailersTooLarge
        }

        let code: Code

        // Never the bytes themselves: they may hold anything (a key echoed by a broken server).
        var description: String {
            switch code {
            case .headTooLarge: "the response head is too large"
            case .malformedStatusLine: "malformed status line"
            case .unsupportedVersion: "not an HTTP/1.x response"
            case .malformedField: "malformed header field"
            case .switchingProtocols: "unexpected 101 Switching Protocols"
            case .invalidContentLength: "invalid content-length"
            case .conflictingContentLength: "conflicting content-length values"
            case .contentLengthWithTransferEncoding: "both content-length and transfer-encoding"
            case .malformedChunk: "malformed chunk"
            case .trailersTooLarge: "the trailer section is too large"
            }
        }
    }

    /// Longest chunk-size line (size and extensions).
    static let maxChunkLine = 4096

    private enum State {
        /// Reading a head; the buffered bytes before `scanned` hold no end of it.
        case head(scanned: Int)
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        /// The CRLF after a chunk's data.
        case chunkDataEnd
        /// Reading trailer fields; `size` bytes of them so far.
        case trailers(size: Int)
        case untilClose
        case failed
    }

    let maxHeadBytes: Int
    private var state = State.head(scanned: 0)
    /// Bytes fed and not yet parsed.
    private var buffer = ByteBuffer()
    /// The response being read answers a `HEAD` request: it has no body.
    private var headRequest = false
    /// Whether the current response leaves the connection usable (see the type's comment).
    private(set) var keepAlive = true

    init(maxHeadBytes: Int) {
        self.maxHeadBytes = min(maxHeadBytes, Int(UInt32.max))
    }

    /// A request is about to be sent: its response is read next. `head`: it is a `HEAD` request.
    mutating func expectResponse(head: Bool) {
        headRequest = head
    }

    /// Bytes fed and not yet parsed (after the end of a response: bytes of no request's).
    var bufferedBytes: Int { buffer.readableBytes }

    /// Adds bytes read from the connection.
    mutating func feed(_ bytes: ByteBuffer) {
        if buffer.readableBytes == 0 {
            buffer = bytes
        } else {
            var bytes = bytes
            buffer.writeBuffer(&bytes)
        }
    }

    /// The connection closed: the end of a body that runs until then, else nil (a response cut
    /// short, or none under way).
    mutating func connectionClosed() -> Part? {
        guard case .untilClose = state else { return nil }
        keepAlive = false
        state = .head(scanned: 0)
        return .end
    }

    /// The next part of the response from the bytes fed so far, or nil when more are needed.
    mutating func next() throws(Error) -> Part? {
        // A loop, not recursion: a read may hold any number of chunk lines or interim responses.
        while true {
            switch try step() {
            case .part(let part): return part
            case .more: return nil
            case .again: continue
            }
        }
    }

    private enum Step {
        case part(Part)
        /// More bytes are needed.
        case more
        /// The state moved on without a part: step again.
        case again
    }

    private mutating func step() throws(Error) -> Step {
        switch state {
        case .failed:
            return .more
        case .head(let scanned):
            return try nextHead(scanned: scanned)
        case .fixed(let remaining):
            if remaining == 0 { return .part(finish()) }
            guard let part = take(upTo: remaining) else { return .more }
            state = .fixed(remaining: remaining - part.readableBytes)
            return .part(.body(part))
        case .chunkSize:
            guard let size = try withNextLine(limit: Self.maxChunkLine, orFail: .malformedChunk, Self.chunkSize) else { return .more }
            guard let size else { throw failed(.malformedChunk) }
            state = size == 0 ? .trailers(size: 0) : .chunkData(remaining: size)
            return .again
        case .chunkData(let remaining):
            guard let part = take(upTo: remaining) else { return .more }
            state = part.readableBytes == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - part.readableBytes)
            return .part(.body(part))
        case .chunkDataEnd:
            guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return .more }
            if first == UInt8(ascii: "\r") {
                guard let second = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self) else { return .more }
                guard second == UInt8(ascii: "\n") else { throw failed(.malformedChunk) }
                buffer.moveReaderIndex(forwardBy: 2)
            } else if first == UInt8(ascii: "\n") {
                buffer.moveReaderIndex(forwardBy: 1)
            } else {
                throw failed(.malformedChunk)
            }
            state = .chunkSize
            return .again
        case .trailers(let size):
            // The line's length, or -1 when it is not a field (the empty line is the end).
            let read = try withNextLine(limit: maxHeadBytes - size, orFail: .trailersTooLarge) { line in
                line.isEmpty || Self.field(line, base: 0) != nil ? line.count : -1
            }
            guard let length = read else { return .more }
            if length == 0 { return .part(finish()) }
            guard length > 0 else { throw failed(.malformedField) }
            state = .trailers(size: size + length + 2)
            return .again
        case .untilClose:
            guard buffer.readableBytes > 0 else { return .more }
            let part = buffer
            buffer = ByteBuffer()
            return .part(.body(part))
        }
    }

    // MARK: Steps

    private mutating func finish() -> Part {
        state = .head(scanned: 0)
        headRequest = false
        return .end
    }

    private mutating func failed(_ code: Error.Code) -> Error {
        state = .failed
        buffer = ByteBuffer()
        return Error(code: code)
    }

    /// Up to `limit` buffered bytes, or nil when none are.
    private mutating func take(upTo limit: Int) -> ByteBuffer? {
        let n = min(limit, buffer.readableBytes)
        guard n > 0 else { return nil }
        if n == buffer.readableBytes {
            defer { buffer = ByteBuffer() }
            return buffer
        }
        return buffer.readSlice(length: n)
    }

    /// Reads the next line (without its line end) with `read` and consumes it; nil when the line
    /// is not all here. A line (or the start of one) longer than `limit` fails with `code`.
    private mutating func withNextLine<T>(limit: Int, orFail code: Error.Code, _ read: (UnsafeRawBufferPointer) -> T) throws(Error) -> T? {
        let found: (lf: Int, value: T)? = buffer.withUnsafeReadableBytes { p in
            guard let lf = p.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            let end = lf > 0 && p[lf - 1] == UInt8(ascii: "\r") ? lf - 1 : lf
            return (lf, read(UnsafeRawBufferPointer(rebasing: p[..<end])))
        }
        guard let found else {
            if buffer.readableBytes > limit { throw failed(code) }
            return nil
        }
        if found.lf > limit { throw failed(code) }
        buffer.moveReaderIndex(forwardBy: found.lf + 1)
        return found.value
    }

    private mutating func nextHead(scanned: Int) throws(Error) -> Step {
        // Where the head ends: the byte after its empty line (CRLF CRLF, or bare LFs).
        let end: Int? = buffer.withUnsafeReadableBytes { p in Self.headEnd(p, from: scanned) }
        guard let end else {
            if buffer.readableBytes > maxHeadBytes { throw failed(.headTooLarge) }
            // An LF near the end may start the empty line: look at it again with more bytes.
            state = .head(scanned: max(scanned, buffer.readableBytes - 2))
            return .more
        }
        if end > maxHeadBytes { throw failed(.headTooLarge) }
        let parsed: Result<ReadHead, Error> = buffer.withUnsafeReadableBytes { p in
            Result { () throws(Error) in try Self.readHead(UnsafeRawBufferPointer(rebasing: p[..<end]), headRequest: headRequest) }
        }
        let read: ReadHead
        switch parsed {
        case .success(let r): read = r
        case .failure(let e): throw failed(e.code)
        }
        let bytes: ByteBuffer
        if read.framing.isComplete(buffered: buffer.readableBytes - end) {
            // The whole response is in this read: its body will be a slice of it anyway, so the
            // head may be one too (no copy).
            bytes = buffer.readSlice(length: end)!
        } else {
            // A copy: a slice would keep the whole read's memory for as long as the head is kept
            // (a stream's, for all of the stream).
            var copy = ByteBuffer()
            copy.reserveCapacity(end)
            var slice = buffer.readSlice(length: end)!
            copy.writeBuffer(&slice)
            bytes = copy
        }
        state = .head(scanned: 0)
        let head = UpstreamResponseHead(bytes: bytes, version: read.version, status: read.status, fields: read.fields, keepAlive: read.keepAlive)
        switch read.framing {
        case .interim:
            // An interim response (100 Continue, 103 Early Hints): the real one follows.
            return .again
        case .none:
            state = .fixed(remaining: 0)
        case .length(let n):
            state = .fixed(remaining: n)
        case .chunked:
            state = .chunkSize
        case .untilClose:
            state = .untilClose
        }
        keepAlive = head.keepAlive && read.framing != .untilClose
        return .part(.head(head))
    }

    /// The offset just after the empty line that ends a head in `p` (CRLF CRLF, or bare LFs),
    /// looking from `scanned` on (no end of the head starts before it); nil when it is not there yet.
    static func headEnd(_ p: UnsafeRawBufferPointer, from scanned: Int) -> Int? {
        guard let base = p.baseAddress else { return nil }
        var i = scanned
        while i < p.count {
            // The next LF, found by memchr (a head is mostly bytes between line ends).
            guard let lf = memchr(base + i, Int32(UInt8(ascii: "\n")), p.count - i) else { return nil }
            i = base.distance(to: UnsafeRawPointer(lf))
            if i + 1 < p.count, p[i + 1] == UInt8(ascii: "\n") { return i + 2 }
            if i + 2 < p.count, p[i + 1] == UInt8(ascii: "\r"), p[i + 2] == UInt8(ascii: "\n") { return i + 3 }
            if i + 2 >= p.count { return nil }
            i += 1
        }
        return nil
    }

    // MARK: Parsing (pure functions of the bytes)

    enum Framing: Equatable {
        case interim, none, length(Int), chunked, untilClose

        /// Whether a response so framed is complete once its head is followed by `buffered` bytes.
        func isComplete(buffered: Int) -> Bool {
            switch self {
            case .none: true
            case .length(let n): n <= buffered
            case .interim, .chunked, .untilClose: false
            }
        }
    }

    /// What a head says, its fields as ranges of its bytes.
    struct ReadHead: Equatable {
        var version: HTTPVersion
        var status: Int
        var fields: [UpstreamResponseHead.Field]
        var keepAlive: Bool
        var framing: Framing
    }

    /// Parses a whole head (`p`: its bytes, the empty line included; `bytes` the same as a buffer).
    static func parseHead(_ p: UnsafeRawBufferPointer, bytes: ByteBuffer, headRequest: Bool) throws(Error) -> (UpstreamResponseHead, Framing) {
        let r = try readHead(p, headRequest: headRequest)
        return (UpstreamResponseHead(bytes: bytes, version: r.version, status: r.status, fields: r.fields, keepAlive: r.keepAlive), r.framing)
    }

    /// Parses a whole head (`p`: its bytes, the empty line included): each field line is read in
    /// one pass (`fieldLine`), and only the fields that frame the body or rule on the connection
    /// are looked into.
    static func readHead(_ p: UnsafeRawBufferPointer, headRequest: Bool) throws(Error) -> ReadHead {
        guard let base = p.baseAddress, let lf = memchr(base, Int32(UInt8(ascii: "\n")), p.count) else { throw Error(code: .malformedStatusLine) }
        let statusLF = base.distance(to: UnsafeRawPointer(lf))
        let statusEnd = statusLF > 0 && p[statusLF - 1] == UInt8(ascii: "\r") ? statusLF - 1 : statusLF
        let (version, status) = try parseStatusLine(p, 0..<statusEnd)

        var fields: [UpstreamResponseHead.Field] = []
        fields.reserveCapacity(16)
        var contentLength: Int?
        var transferEncoding = false
        var chunkedLast = false
        var connectionClose = false
        var connectionKeepAlive = false
        var position = statusLF + 1
        lines: while true {
            let f: UpstreamResponseHead.Field
            switch fieldLine(p, at: position) {
            case .end: break lines
            case .malformed: throw Error(code: .malformedField)
            case .field(let field, let next):
                f = field
                position = next
            }
            fields.append(f)
            let name = UnsafeRawBufferPointer(rebasing: p[f.nameRange])
            let value = UnsafeRawBufferPointer(rebasing: p[f.valueRange])
            switch name.count {
            case 10 where HeadSyntax.equalsLowercase(name, "connection"):
                forEachToken(value) { token in
                    if HeadSyntax.equalsLowercase(token, "close") { connectionClose = true }
                    if HeadSyntax.equalsLowercase(token, "keep-alive") { connectionKeepAlive = true }
                }
            case 14 where HeadSyntax.equalsLowercase(name, "content-length"):
                guard let n = decimal(value) else { throw Error(code: .invalidContentLength) }
                if let previous = contentLength, previous != n { throw Error(code: .conflictingContentLength) }
                contentLength = n
            case 17 where HeadSyntax.equalsLowercase(name, "transfer-encoding"):
                transferEncoding = true
                forEachToken(value) { token in chunkedLast = HeadSyntax.equalsLowercase(token, "chunked") }
                // An empty list names no coding: not chunked.
                if value.isEmpty { chunkedLast = false }
            default:
                break
            }
        }

        let http11 = version.minor >= 1
        let keepAlive = http11 ? !connectionClose : connectionKeepAlive
        let framing: Framing
        if status == 101 {
            throw Error(code: .switchingProtocols)
        } else if status < 200 {
            framing = .interim
        } else if headRequest || status == 204 || status == 304 {
            framing = .none
        } else if transferEncoding {
            if contentLength != nil { throw Error(code: .contentLengthWithTransferEncoding) }
            framing = chunkedLast ? .chunked : .untilClose
        } else if let contentLength {
            framing = .length(contentLength)
        } else {
            framing = .untilClose
        }
        return ReadHead(version: version, status: status, fields: fields, keepAlive: keepAlive, framing: framing)
    }

    /// What `fieldLine` read.
    enum FieldLine: Equatable {
        /// A valid field; the next line starts at `next`.
        case field(UpstreamResponseHead.Field, next: Int)
        /// The empty line, or bytes with no line end (a head ends at its empty line; what may
        /// follow without a line end is not read).
        case end
        /// A line that is not a valid field.
        case malformed
    }

    /// Reads the line of `p` that starts at `start` in one pass: the empty line, or a field
    /// (`name: value`, its name a token, its value field text without the whitespace around it,
    /// the line ended by CRLF or a bare LF), as `field(_:base:)` reads a line.
    static func fieldLine(_ p: UnsafeRawBufferPointer, at start: Int) -> FieldLine {
        let n = p.count
        guard start < n else { return .end }
        if p[start] == UInt8(ascii: "\n") { return .end }
        if p[start] == UInt8(ascii: "\r"), start + 1 < n, p[start + 1] == UInt8(ascii: "\n") { return .end }
        var i = start
        while i < n, isTokenByte(p[i]) { i += 1 }
        guard i > start, i < n, p[i] == UInt8(ascii: ":") else { return malformed(p, from: i) }
        let colon = i
        i += 1
        while i < n, p[i] == UInt8(ascii: " ") || p[i] == UInt8(ascii: "\t") { i += 1 }
        let valueStart = i
        while i < n, isFieldText(p[i]) { i += 1 }
        let lineEnd = i
        let next: Int
        if i == n {
            return .end
        } else if p[i] == UInt8(ascii: "\n") {
            next = i + 1
        } else if p[i] == UInt8(ascii: "\r"), i + 1 < n, p[i + 1] == UInt8(ascii: "\n") {
            next = i + 2
        } else {
            return malformed(p, from: i)
        }
        var valueEnd = lineEnd
        while valueEnd > valueStart, p[valueEnd - 1] == UInt8(ascii: " ") || p[valueEnd - 1] == UInt8(ascii: "\t") { valueEnd -= 1 }
        return .field(
            UpstreamResponseHead.Field(nameStart: UInt32(start), nameEnd: UInt32(colon), valueStart: UInt32(valueStart), valueEnd: UInt32(valueEnd)),
            next: next)
    }

    /// A line that cannot be a field from `i` on: malformed, unless no line end follows (bytes
    /// after the last line end are not a line).
    private static func malformed(_ p: UnsafeRawBufferPointer, from i: Int) -> FieldLine {
        guard i < p.count, let base = p.baseAddress, memchr(base + i, Int32(UInt8(ascii: "\n")), p.count - i) != nil else { return .end }
        return .malformed
    }

    /// `HTTP/1.x SP 3DIGIT [SP reason]`.
    static func parseStatusLine(_ p: UnsafeRawBufferPointer, _ line: Range<Int>) throws(Error) -> (HTTPVersion, Int) {
        let s = UnsafeRawBufferPointer(rebasing: p[line])
        guard s.count >= 12, s.starts(with: "HTTP/".utf8), isDigit(s[5]), s[6] == UInt8(ascii: "."), isDigit(s[7]), s[8] == UInt8(ascii: " "),
            isDigit(s[9]), isDigit(s[10]), isDigit(s[11])
        else { throw Error(code: .malformedStatusLine) }
        guard s[5] == UInt8(ascii: "1") else { throw Error(code: .unsupportedVersion) }
        let status = Int(s[9] &- 48) * 100 + Int(s[10] &- 48) * 10 + Int(s[11] &- 48)
        guard status >= 100 else { throw Error(code: .malformedStatusLine) }
        if s.count > 12 {
            // The reason phrase: text, nothing else read.
            guard s[12] == UInt8(ascii: " "), s[13...].allSatisfy(isFieldText) else { throw Error(code: .malformedStatusLine) }
        }
        return (HTTPVersion(major: 1, minor: Int(s[7] &- 48)), status)
    }

    /// A `name: value` line (no line end): the name's and the value's ranges (offset by `base`),
    /// the value without the whitespace around it; nil if it is not a valid field.
    static func field(_ line: UnsafeRawBufferPointer, base: Int) -> UpstreamResponseHead.Field? {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { return nil }
        for i in 0..<colon where !isTokenByte(line[i]) { return nil }
        var start = colon + 1
        var end = line.count
        while start < end, line[start] == UInt8(ascii: " ") || line[start] == UInt8(ascii: "\t") { start += 1 }
        while end > start, line[end - 1] == UInt8(ascii: " ") || line[end - 1] == UInt8(ascii: "\t") { end -= 1 }
        for i in start..<end where !isFieldText(line[i]) { return nil }
        return UpstreamResponseHead.Field(
            nameStart: UInt32(base), nameEnd: UInt32(base + colon), valueStart: UInt32(base + start), valueEnd: UInt32(base + end))
    }

    /// A chunk-size line: hex digits, then nothing or (after optional whitespace) extensions.
    static func chunkSize(_ line: UnsafeRawBufferPointer) -> Int? {
        var size = 0
        var i = 0
        while i < line.count, let d = hexValue(line[i]) {
            guard size <= (Int.max - 15) / 16 else { return nil }
            size = size * 16 + d
            i += 1
        }
        guard i > 0 else { return nil }
        while i < line.count, line[i] == UInt8(ascii: " ") || line[i] == UInt8(ascii: "\t") { i += 1 }
        guard i == line.count || line[i] == UInt8(ascii: ";") else { return nil }
        // Extensions are not read, only checked for what must not be in a line.
        guard line[i...].allSatisfy(isFieldText) else { return nil }
        return size
    }

    /// A non-negative decimal with no sign or whitespace, or nil (also on overflow).
    static func decimal(_ s: UnsafeRawBufferPointer) -> Int? {
        guard !s.isEmpty, s.count <= 18 else { return nil }
        var n = 0
        for c in s {
            guard isDigit(c) else { return nil }
            n = n * 10 + Int(c &- 48)
        }
        return n
    }

    /// Calls `body` with each comma-separated token of `value`, whitespace trimmed, empty ones skipped.
    static func forEachToken(_ value: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        var start = 0
        while start <= value.count {
            var end = start
            while end < value.count, value[end] != UInt8(ascii: ",") { end += 1 }
            var a = start
            var b = end
            while a < b, value[a] == UInt8(ascii: " ") || value[a] == UInt8(ascii: "\t") { a += 1 }
            while b > a, value[b - 1] == UInt8(ascii: " ") || value[b - 1] == UInt8(ascii: "\t") { b -= 1 }
            if b > a { body(UnsafeRawBufferPointer(rebasing: value[a..<b])) }
            start = end + 1
        }
    }

    static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    static func hexValue(_ c: UInt8) -> Int? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(c - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(c - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    /// RFC 9110 `tchar`: a bit per byte below 128 (digits and `!#$%&'*+-.`; letters and `^_`|~`).
    static func isTokenByte(_ c: UInt8) -> Bool {
        let low: UInt64 = 0x03ff_6cfa_0000_0000
        let high: UInt64 = 0x57ff_ffff_c7ff_fffe
        return c < 64 ? (low >> c) & 1 == 1 : c < 128 && (high >> (c &- 64)) & 1 == 1
    }

    /// Visible text, space, tab and obs-text: no control byte (CR and LF included) and no DEL.
    static func isFieldText(_ c: UInt8) -> Bool {
        c == UInt8(ascii: "\t") || (c >= 0x20 && c != 0x7F)
    }
}
