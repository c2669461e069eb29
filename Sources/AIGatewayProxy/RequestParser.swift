import NIOCore
import NIOHTTP1

/// Why the parser refused a request. The reason names what was wrong, never a value's bytes.
struct RequestParseError: Error, Hashable, CustomStringConvertible {
    enum Kind: Sendable, Hashable {
        /// The bytes are not an HTTP/1.x request the server accepts.
        case malformed
        /// The head (or the trailer section) is larger than the limit.
        case headTooLarge
    }

    var kind: Kind
    var reason: String
    var description: String { reason }

    static func malformed(_ reason: String) -> Self { .init(kind: .malformed, reason: reason) }
}

/// The client side's HTTP/1.1 request parser: bytes in (split anywhere), then a head, body parts
/// and an end per request, in order. A pure state machine over a byte buffer: no channel, no
/// clock. The head is framed first (up to its empty line, within the size limit) and then parsed
/// in one pass into byte ranges (`RequestHead`); the body is framed by `Content-Length` or by
/// chunks, whose extensions and trailers are checked and dropped.
///
/// It is the server's security boundary, and strict where a lenient reading could let two
/// parsers see different requests in the same bytes: CRLF line ends only; a request line of a
/// known method, a clean target and HTTP/1.0 or HTTP/1.1; header names that are tokens right up
/// to the colon; no folded lines; no control character in a value; `Content-Length` digits only
/// and at most once; `Transfer-Encoding` only as `chunked` (HTTP/1.1) and never with a
/// `Content-Length`; chunk sizes in hex of sane length. The first error ends parsing for good:
/// the connection answers 400 and closes.
struct RequestParser {
    enum Event {
        case head(RequestHead)
        /// Body bytes (a slice of what arrived: no copy).
        case body(ByteBuffer)
        case end
    }

    /// Longest chunk-size line accepted (size and extensions).
    static let maxChunkLineBytes = 4096

    private enum State {
        /// Looking for the end of a head; `scanned` bytes (from the reader index) are looked at,
        /// the current line starts at `lineStart`. `skipped` counts blank lines before it.
        case head(scanned: Int, lineStart: Int, skipped: Int)
        case fixedBody(remaining: Int)
        case chunkLine(scanned: Int)
        case chunkData(remaining: Int)
        /// The CRLF after a chunk's data.
        case chunkDataEnd
        case trailers(scanned: Int, lineStart: Int)
        /// The head had no body: the end is next.
        case ending
        case failed
    }

    let maxHeadBytes: Int
    private var input: ByteBuffer
    private var state = State.head(scanned: 0, lineStart: 0, skipped: 0)
    private static let empty = ByteBufferAllocator().buffer(capacity: 0)

    init(maxHeadBytes: Int) {
        // Offsets in a head are 32-bit.
        self.maxHeadBytes = min(maxHeadBytes, 1 << 30)
        self.input = Self.empty
    }

    /// Bytes received and not handed out yet.
    var bufferedBytes: Int { input.readableBytes }

    /// Adds bytes as they arrived.
    mutating func append(_ bytes: ByteBuffer) {
        if case .failed = state { return }
        if input.readableBytes == 0 {
            input = bytes
        } else if bytes.readableBytes > 0 {
            // A head (or chunk line) split across reads: one contiguous buffer, grown in place
            // (copied once when shared), so a head sent a byte at a time costs linear time, not
            // a copy of all received so far per read.
            var bytes = bytes
            input.writeBuffer(&bytes)
        }
    }

    /// The next part of the request in progress, or nil when more bytes are needed.
    mutating func next() throws(RequestParseError) -> Event? {
        do {
            let event = try step()
            if event == nil, input.readableBytes == 0, input.capacity > 0 { input = Self.empty }
            return event
        } catch {
            state = .failed
            input = Self.empty
            throw error
        }
    }

    private mutating func step() throws(RequestParseError) -> Event? {
        switch state {
        case .failed:
            return nil
        case .head(var scanned, var lineStart, var skipped):
            if scanned == 0 {
                // Blank lines before a request line are ignored (RFC 9112 §2.2), within the limit.
                while input.readableBytes >= 2, input.getInteger(at: input.readerIndex, as: UInt16.self) == 0x0D0A {
                    input.moveReaderIndex(forwardBy: 2)
                    skipped += 2
                    if skipped > maxHeadBytes { throw RequestParseError(kind: .headTooLarge, reason: "the request head exceeds the limit") }
                }
                if input.readableBytes == 0 || (input.readableBytes == 1 && input.getInteger(at: input.readerIndex, as: UInt8.self) == cr) {
                    state = .head(scanned: 0, lineStart: 0, skipped: skipped)
                    return nil
                }
            }
            let end = input.withUnsafeReadableBytes { Self.sectionEnd($0, scanned: &scanned, lineStart: &lineStart) }
            guard let end else {
                if scanned + skipped > maxHeadBytes { throw RequestParseError(kind: .headTooLarge, reason: "the request head exceeds the limit") }
                state = .head(scanned: scanned, lineStart: lineStart, skipped: skipped)
                return nil
            }
            if end + skipped > maxHeadBytes { throw RequestParseError(kind: .headTooLarge, reason: "the request head exceeds the limit") }
            let layout = try input.parsing(end, HeadSyntax.parse)
            let bytes = input.readSlice(length: end)!
            let head = RequestHead(
                bytes: bytes, method: layout.method, version: layout.version, target: layout.target, fields: layout.fields,
                contentLength: layout.contentLength, chunked: layout.chunked, keepAlive: layout.keepAlive)
            if layout.chunked {
                state = .chunkLine(scanned: 0)
            } else if let length = layout.contentLength, length > 0 {
                state = .fixedBody(remaining: length)
            } else {
                state = .ending
            }
            return .head(head)
        case .ending:
            state = .head(scanned: 0, lineStart: 0, skipped: 0)
            return .end
        case .fixedBody(let remaining):
            let n = min(remaining, input.readableBytes)
            guard n > 0 else { return nil }
            let slice = input.readSlice(length: n)!
            state = n == remaining ? .ending : .fixedBody(remaining: remaining - n)
            return .body(slice)
        case .chunkData(let remaining):
            let n = min(remaining, input.readableBytes)
            guard n > 0 else { return nil }
            let slice = input.readSlice(length: n)!
            state = n == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - n)
            return .body(slice)
        case .chunkDataEnd:
            guard input.readableBytes >= 2 else {
                if input.readableBytes == 1, input.getInteger(at: input.readerIndex, as: UInt8.self) != cr {
                    throw .malformed("a chunk's data is not followed by CRLF")
                }
                return nil
            }
            guard input.readInteger(as: UInt16.self) == 0x0D0A else { throw .malformed("a chunk's data is not followed by CRLF") }
            state = .chunkLine(scanned: 0)
            return try step()
        case .chunkLine(let scanned):
            let found: Int? = input.withUnsafeReadableBytes { p in
                var i = scanned
                while i < p.count {
                    if p[i] == lf { return i }
                    i += 1
                }
                return nil
            }
            guard let lfAt = found else {
                if input.readableBytes > Self.maxChunkLineBytes { throw .malformed("a chunk-size line is too long") }
                state = .chunkLine(scanned: input.readableBytes)
                return nil
            }
            if lfAt + 1 > Self.maxChunkLineBytes { throw .malformed("a chunk-size line is too long") }
            let size = try input.parsing(lfAt + 1, ChunkSyntax.size)
            input.moveReaderIndex(forwardBy: lfAt + 1)
            if size == 0 {
                state = .trailers(scanned: 0, lineStart: 0)
            } else {
                state = .chunkData(remaining: size)
            }
            return try step()
        case .trailers(var scanned, var lineStart):
            let end = input.withUnsafeReadableBytes { Self.sectionEnd($0, scanned: &scanned, lineStart: &lineStart) }
            guard let end else {
                if scanned > maxHeadBytes { throw RequestParseError(kind: .headTooLarge, reason: "the trailer section exceeds the limit") }
                state = .trailers(scanned: scanned, lineStart: lineStart)
                return nil
            }
            if end > maxHeadBytes { throw RequestParseError(kind: .headTooLarge, reason: "the trailer section exceeds the limit") }
            try input.parsing(end, HeadSyntax.checkTrailers)
            input.moveReaderIndex(forwardBy: end)
            state = .head(scanned: 0, lineStart: 0, skipped: 0)
            return .end
        }
    }

    /// The length of a field section (through the LF of its empty line) that starts at `p`'s
    /// first byte, or nil if its end has not arrived; `scanned` and `lineStart` carry the search
    /// over to the next call, so that each byte is looked at once however the section is split.
    /// (A line of nothing or of a lone CR ends it; the syntax check then refuses a bare LF.)
    private static func sectionEnd(_ p: UnsafeRawBufferPointer, scanned: inout Int, lineStart: inout Int) -> Int? {
        var i = scanned
        while i < p.count {
            if p[i] == lf {
                let length = i - lineStart
                if length == 0 || (length == 1 && p[lineStart] == cr) { return i + 1 }
                lineStart = i + 1
            }
            i += 1
        }
        scanned = i
        return nil
    }
}

extension ByteBuffer {
    /// `body` over the first `count` readable bytes.
    fileprivate func parsing<T>(_ count: Int, _ body: (UnsafeRawBufferPointer) throws(RequestParseError) -> T) throws(RequestParseError) -> T {
        let result: Result<T, RequestParseError> = withUnsafeReadableBytes { p in
            Result { () throws(RequestParseError) -> T in try body(UnsafeRawBufferPointer(rebasing: p[..<count])) }
        }
        return try result.get()
    }
}

private let cr = UInt8(ascii: "\r")
private let lf = UInt8(ascii: "\n")
private let sp = UInt8(ascii: " ")
private let htab = UInt8(ascii: "\t")

/// Byte classes, as bit flags.
enum ByteClass {
    static let token: UInt8 = 1  // RFC 9110 tchar
    static let fieldValue: UInt8 = 2  // HTAB, SP, visible ASCII, obs-text (not CTL or DEL)
    static let target: UInt8 = 4  // visible ASCII
    static let hex: UInt8 = 8
    static let quoted: UInt8 = 16  // qdtext of a quoted string: fieldValue but `"` and `\`

    static let table: [UInt8] = (0..<256).map { i in
        let c = UInt8(i)
        var flags: UInt8 = 0
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            flags |= token
        default:
            if "!#$%&'*+-.^_`|~".utf8.contains(c) { flags |= token }
        }
        if c == 0x09 || (c >= 0x20 && c != 0x7F) { flags |= fieldValue }
        if c == 0x09 || (c >= 0x20 && c != 0x7F && c != UInt8(ascii: "\"") && c != UInt8(ascii: "\\")) { flags |= quoted }
        if c > 0x20 && c < 0x7F { flags |= target }
        if (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "F")) {
            flags |= hex
        }
        return flags
    }
}

/// The syntax of a head and of a trailer section, parsed from complete bytes.
enum HeadSyntax {
    struct Layout {
        var method: HTTPMethod
        var version: HTTPVersion
        var target: RequestHead.Span
        var fields: [RequestHead.Field]
        var contentLength: Int?
        var chunked: Bool
        var keepAlive: Bool
    }

    /// Methods accepted, as `llhttp` (NIO's parser, which the server used before) knew them.
    static let methods: [([UInt8], HTTPMethod)] = ([

        ("POST", .POST), ("GET", .GET), ("HEAD", .HEAD), ("PUT", .PUT), ("DELETE", .DELETE), ("OPTIONS", .OPTIONS), ("PATCH", .PATCH),
        ("TRACE", .TRACE), ("ACL", .ACL), ("COPY", .COPY), ("LOCK", .LOCK), ("MOVE", .MOVE), ("BIND", .BIND), ("LINK", .LINK),
        ("MKCOL", .MKCOL), ("MERGE", .MERGE), ("PURGE", .PURGE), ("NOTIFY", .NOTIFY), ("SEARCH", .SEARCH), ("UNLOCK", .UNLOCK),
        ("REBIND", .REBIND), ("UNBIND", .UNBIND), ("REPORT", .REPORT), ("UNLINK", .UNLINK), ("M-SEARCH", .MSEARCH),
        ("PROPFIND", .PROPFIND), ("CHECKOUT", .CHECKOUT), ("PROPPATCH", .PROPPATCH), ("SUBSCRIBE", .SUBSCRIBE),
        ("MKCALENDAR", .MKCALENDAR), ("MKACTIVITY", .MKACTIVITY), ("UNSUBSCRIBE", .UNSUBSCRIBE), ("SOURCE", .SOURCE),
    ] as [(String, HTTPMethod)]).map { (Array($0.0.utf8), $0.1) }

    static func parse(_ p: UnsafeRawBufferPointer) throws(RequestParseError) -> Layout {
        let table = ByteClass.table
        // Request line: method SP target SP HTTP/1.x CRLF.
        var i = 0
        while i < p.count, table[Int(p[i])] & ByteClass.token != 0 { i += 1 }
        guard i < p.count, i > 0, p[i] == sp else { throw .malformed("the method is not an HTTP token followed by one space") }
        guard let method = method(UnsafeRawBufferPointer(rebasing: p[0..<i])) else { throw .malformed("the method is not one the server knows") }
        if method == .CONNECT { throw .malformed("CONNECT is not served") }
        i += 1
        let targetStart = i
        while i < p.count, table[Int(p[i])] & ByteClass.target != 0 { i += 1 }
        guard i < p.count, i > targetStart, p[i] == sp else {
            throw .malformed("the request target is empty, or holds a control character or a non-ASCII byte")
        }
        let target = UnsafeRawBufferPointer(rebasing: p[targetStart..<i])
        guard target[0] == UInt8(ascii: "/") || (target.count == 1 && target[0] == UInt8(ascii: "*")) || isAbsoluteForm(target) else {
            throw .malformed("the request target is not a path, an absolute URI or *")
        }
        i += 1
        guard p.count - i >= 10, p[i] == UInt8(ascii: "H"), p[i + 1] == UInt8(ascii: "T"), p[i + 2] == UInt8(ascii: "T"), p[i + 3] == UInt8(ascii: "P"),
            p[i + 4] == UInt8(ascii: "/"), p[i + 5] == UInt8(ascii: "1"), p[i + 6] == UInt8(ascii: "."),
            p[i + 7] == UInt8(ascii: "0") || p[i + 7] == UInt8(ascii: "1")
        else { throw .malformed("the HTTP version is not HTTP/1.0 or HTTP/1.1") }
        let version = p[i + 7] == UInt8(ascii: "1") ? HTTPVersion.http1_1 : HTTPVersion.http1_0
        guard p[i + 8] == cr, p[i + 9] == lf else { throw .malformed("the request line does not end with CRLF after the version") }
        i += 10

        var layout = Layout(
            method: method, version: version, target: .init(start: Int32(targetStart), end: Int32(targetStart + target.count)), fields: [],
            contentLength: nil, chunked: false, keepAlive: true)
        layout.fields.reserveCapacity(16)
        var close = false
        var keepAlive = false
        var transferEncodings = 0
        try fields(p, from: i) { (name, value) throws(RequestParseError) in
            layout.fields.append(RequestHead.Field(name: name, value: value))
            let n = UnsafeRawBufferPointer(rebasing: p[Int(name.start)..<Int(name.end)])
            let v = UnsafeRawBufferPointer(rebasing: p[Int(value.start)..<Int(value.end)])
            switch n.count {
            case 14 where equalsLowercase(n, "content-length"):
                guard layout.contentLength == nil else { throw .malformed("more than one Content-Length") }
                guard v.count > 0, v.count <= 18, v.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                    throw .malformed("Content-Length is not a number")
                }
                layout.contentLength = v.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
            case 17 where equalsLowercase(n, "transfer-encoding"):
                transferEncodings += 1
                guard transferEncodings == 1, equalsLowercase(v, "chunked") else {
                    throw .malformed("Transfer-Encoding is not just chunked")
                }
                layout.chunked = true
            case 10 where equalsLowercase(n, "connection"):
                for option in v.split(separator: UInt8(ascii: ",")) {
                    var o = UnsafeRawBufferPointer(rebasing: option)
                    o = trimmed(o)
                    if equalsLowercase(o, "close") { close = true } else if equalsLowercase(o, "keep-alive") { keepAlive = true }
                }
            default:
                break
            }
        }
        if layout.chunked {
            if layout.contentLength != nil { throw .malformed("both Content-Length and Transfer-Encoding") }
            if version == .http1_0 { throw .malformed("Transfer-Encoding in an HTTP/1.0 request") }
        }
        layout.keepAlive = !close && (version == .http1_1 || keepAlive)
        return layout
    }

    /// Checks the fields of a chunked body's trailer section (which the server drops).
    static func checkTrailers(_ p: UnsafeRawBufferPointer) throws(RequestParseError) {
        try fields(p, from: 0) { _, _ throws(RequestParseError) in }
    }

    /// Parses field lines from `start` up to the empty line that ends `p`, giving each field's
    /// name and (trimmed) value.
    private static func fields(
        _ p: UnsafeRawBufferPointer, from start: Int, _ body: (RequestHead.Span, RequestHead.Span) throws(RequestParseError) -> Void
    ) throws(RequestParseError) {
        let table = ByteClass.table
        var i = start
        while true {
            guard i < p.count else { throw .malformed("the header section does not end with an empty line") }
            if p[i] == cr {
                guard i + 1 < p.count, p[i + 1] == lf else { throw .malformed("a line does not end with CRLF") }
                return
            }
            if p[i] == sp || p[i] == htab { throw .malformed("a header line starts with whitespace (obsolete line folding)") }
            let nameStart = i
            while i < p.count, table[Int(p[i])] & ByteClass.token != 0 { i += 1 }
            guard i < p.count, p[i] == UInt8(ascii: ":") else {
                if i < p.count, p[i] == sp || p[i] == htab { throw .malformed("whitespace between a header name and its colon") }
                throw .malformed("a header name is not an HTTP token followed by a colon")
            }
            guard i > nameStart else { throw .malformed("a header name is empty") }
            let name = RequestHead.Span(start: Int32(nameStart), end: Int32(i))
            i += 1
            while i < p.count, p[i] == sp || p[i] == htab { i += 1 }
            let valueStart = i
            while i < p.count, table[Int(p[i])] & ByteClass.fieldValue != 0 { i += 1 }
            guard i + 1 < p.count, p[i] == cr, p[i + 1] == lf else {
                throw .malformed("a header value holds a control character, or its line does not end with CRLF")
            }
            var valueEnd = i
            while valueEnd > valueStart, p[valueEnd - 1] == sp || p[valueEnd - 1] == htab { valueEnd -= 1 }
            try body(name, RequestHead.Span(start: Int32(valueStart), end: Int32(valueEnd)))
            i += 2
        }
    }

    private static func method(_ bytes: UnsafeRawBufferPointer) -> HTTPMethod? {
        for (name, method) in methods where name.count == bytes.count {
            if name.withUnsafeBytes({ $0.elementsEqual(bytes) }) { return method }
        }
        return nil
    }

    /// `http://…` or `https://…`, the scheme in any case.
    private static func isAbsoluteForm(_ t: UnsafeRawBufferPointer) -> Bool {
        (t.count > 7 && equalsLowercase(UnsafeRawBufferPointer(rebasing: t[0..<7]), "http://"))
            || (t.count > 8 && equalsLowercase(UnsafeRawBufferPointer(rebasing: t[0..<8]), "https://"))
    }

    /// Whether `bytes` equal the lowercase ASCII `lowered`, ignoring case.
    static func equalsLowercase(_ bytes: UnsafeRawBufferPointer, _ lowered: StaticString) -> Bool {
        guard bytes.count == lowered.utf8CodeUnitCount else { return false }
        let l = lowered.utf8Start
        for k in 0..<bytes.count {
            var c = bytes[k]
            if c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") { c |= 0x20 }
            if c != l[k] { return false }
        }
        return true
    }

    private static func trimmed(_ b: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var s = b.startIndex
        var e = b.endIndex
        while s < e, b[s] == sp || b[s] == htab { s += 1 }
        while e > s, b[e - 1] == sp || b[e - 1] == htab { e -= 1 }
        return UnsafeRawBufferPointer(rebasing: b[s..<e])
    }
}

/// The syntax of a chunk-size line: `size [;ext-name[=ext-value]]… CRLF` (RFC 9112 §7.1.1, without
/// its optional whitespace).
enum ChunkSyntax {
    /// The size of the chunk whose line is `p` (through its LF).
    static func size(_ p: UnsafeRawBufferPointer) throws(RequestParseError) -> Int {
        let table = ByteClass.table
        guard p.count >= 2, p[p.count - 2] == cr else { throw .malformed("a chunk-size line does not end with CRLF") }
        let end = p.count - 2
        var i = 0
        var size = 0
        while i < end, table[Int(p[i])] & ByteClass.hex != 0 {
            // 15 hex digits: far beyond any body limit, and no overflow.
            guard i < 15 else { throw .malformed("a chunk size is too large") }
            let c = p[i]
            let digit = c <= UInt8(ascii: "9") ? c - UInt8(ascii: "0") : (c | 0x20) - UInt8(ascii: "a") + 10
            size = size << 4 | Int(digit)
            i += 1
        }
        guard i > 0 else { throw .malformed("a chunk size is not a hexadecimal number") }
        func token() -> Bool {
            let s = i
            while i < end, table[Int(p[i])] & ByteClass.token != 0 { i += 1 }
            return i > s
        }
        // No whitespace anywhere (the grammar's BWS), as NIO's decoder (llhttp) had it.
        while true {
            if i == end { return size }
            guard p[i] == UInt8(ascii: ";") else { throw .malformed("a chunk size is not a hexadecimal number") }
            i += 1
            guard token() else { throw .malformed("a chunk extension has no name") }
            guard i < end, p[i] == UInt8(ascii: "=") else { continue }
            i += 1
            if i < end, p[i] == UInt8(ascii: "\"") {
                i += 1
                var closed = false
                while i < end {
                    let c = p[i]
                    if c == UInt8(ascii: "\"") {
                        closed = true
                        i += 1
                        break
                    } else if c == UInt8(ascii: "\\") {
                        guard i + 1 < end, table[Int(p[i + 1])] & ByteClass.fieldValue != 0 else { break }
                        i += 2
                    } else if table[Int(c)] & ByteClass.quoted != 0 {
                        i += 1
                    } else {
                        break
                    }
                }
                guard closed else { throw .malformed("a chunk extension's quoted value is not closed, or holds a control character") }
            } else {
                guard token() else { throw .malformed("a chunk extension has an empty or invalid value") }
            }
        }
    }
}
