@testable import AIGatewayProxy
import NIOHTTP1

/// `UpstreamResponseParser.parseHead` as it was before it read each field line in one pass
/// (`fieldLine`): the head split into lines first, each line then searched for its colon and
/// checked byte by byte. The reference for the differential test: what it reads of a head
/// (version, status, fields, keep-alive, framing) or the error it throws.
enum UpstreamResponseHeadReference {
    typealias Parser = UpstreamResponseParser

    static func readHead(_ p: UnsafeRawBufferPointer, headRequest: Bool) throws(Parser.Error) -> Parser.ReadHead {
        var lines = LineReader(p)
        guard let statusLine = lines.next() else { throw Parser.Error(code: .malformedStatusLine) }
        let (version, status) = try Parser.parseStatusLine(p, statusLine)

        var fields: [UpstreamResponseHead.Field] = []
        var contentLength: Int?
        var transferEncoding = false
        var chunkedLast = false
        var connectionClose = false
        var connectionKeepAlive = false
        while let line = lines.next() {
            if line.isEmpty { break }
            guard let f = field(UnsafeRawBufferPointer(rebasing: p[line]), base: line.lowerBound) else { throw Parser.Error(code: .malformedField) }
            fields.append(f)
            let name = UnsafeRawBufferPointer(rebasing: p[f.nameRange])
            let value = UnsafeRawBufferPointer(rebasing: p[f.valueRange])
            switch name.count {
            case 10 where HeadSyntax.equalsLowercase(name, "connection"):
                Parser.forEachToken(value) { token in
                    if HeadSyntax.equalsLowercase(token, "close") { connectionClose = true }
                    if HeadSyntax.equalsLowercase(token, "keep-alive") { connectionKeepAlive = true }
                }
            case 14 where HeadSyntax.equalsLowercase(name, "content-length"):
                guard let n = Parser.decimal(value) else { throw Parser.Error(code: .invalidContentLength) }
                if let previous = contentLength, previous != n { throw Parser.Error(code: .conflictingContentLength) }
                contentLength = n
            case 17 where HeadSyntax.equalsLowercase(name, "transfer-encoding"):
                transferEncoding = true
                Parser.forEachToken(value) { token in chunkedLast = HeadSyntax.equalsLowercase(token, "chunked") }
                // An empty list names no coding: not chunked.
                if value.isEmpty { chunkedLast = false }
            default:
                break
            }
        }

        let keepAlive = version.minor >= 1 ? !connectionClose : connectionKeepAlive
        let framing: Parser.Framing
        if status == 101 {
            throw Parser.Error(code: .switchingProtocols)
        } else if status < 200 {
            framing = .interim
        } else if headRequest || status == 204 || status == 304 {
            framing = .none
        } else if transferEncoding {
            if contentLength != nil { throw Parser.Error(code: .contentLengthWithTransferEncoding) }
            framing = chunkedLast ? .chunked : .untilClose
        } else if let contentLength {
            framing = .length(contentLength)
        } else {
            framing = .untilClose
        }
        return Parser.ReadHead(version: version, status: status, fields: fields, keepAlive: keepAlive, framing: framing)
    }

    /// A `name: value` line (no line end), as `UpstreamResponseParser.field` reads one.
    static func field(_ line: UnsafeRawBufferPointer, base: Int) -> UpstreamResponseHead.Field? {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { return nil }
        for i in 0..<colon where !isTokenByte(line[i]) { return nil }
        var start = colon + 1
        var end = line.count
        while start < end, line[start] == UInt8(ascii: " ") || line[start] == UInt8(ascii: "\t") { start += 1 }
        while end > start, line[end - 1] == UInt8(ascii: " ") || line[end - 1] == UInt8(ascii: "\t") { end -= 1 }
        for i in start..<end where !(line[i] == UInt8(ascii: "\t") || (line[i] >= 0x20 && line[i] != 0x7F)) { return nil }
        return UpstreamResponseHead.Field(
            nameStart: UInt32(base), nameEnd: UInt32(base + colon), valueStart: UInt32(base + start), valueEnd: UInt32(base + end))
    }

    /// RFC 9110 `tchar`, spelled out.
    static func isTokenByte(_ c: UInt8) -> Bool {
        if (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) {
            return true
        }
        return "!#$%&'*+-.^_`|~".utf8.contains(c)
    }

    /// The lines of a head: ranges without their line ends (CRLF or LF); bytes after the last LF are no line.
    struct LineReader {
        let p: UnsafeRawBufferPointer
        var position = 0

        init(_ p: UnsafeRawBufferPointer) { self.p = p }

        mutating func next() -> Range<Int>? {
            guard position < p.count else { return nil }
            var i = position
            while i < p.count, p[i] != UInt8(ascii: "\n") { i += 1 }
            guard i < p.count else { return nil }
            var end = i
            if end > position, p[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            defer { position = i + 1 }
            return position..<end
        }
    }
}

extension UpstreamResponseHeadReference {
    /// Where a head ends, scanned a byte at a time as `nextHead` did before it looked for line ends with memchr.
    static func headEnd(_ p: UnsafeRawBufferPointer, from scanned: Int) -> Int? {
        var i = scanned
        while i < p.count {
            guard p[i] == UInt8(ascii: "\n") else {
                i += 1
                continue
            }
            if i + 1 < p.count, p[i + 1] == UInt8(ascii: "\n") { return i + 2 }
            if i + 2 < p.count, p[i + 1] == UInt8(ascii: "\r"), p[i + 2] == UInt8(ascii: "\n") { return i + 3 }
            if i + 2 >= p.count { break }
            i += 1
        }
        return nil
    }
}
