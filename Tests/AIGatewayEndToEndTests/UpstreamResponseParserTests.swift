@testable import AIGatewayProxy
import NIOCore
import NIOHTTP1
import Testing

/// What the parser reported, with the body parts joined (their split depends on the reads).
private enum Event: Equatable, CustomStringConvertible {
    case head(Int, [String])
    case body(String)
    case end(keepAlive: Bool)
    case error(UpstreamResponseParser.Error.Code)

    var description: String {
        switch self {
        case .head(let s, let f): "head(\(s), \(f))"
        case .body(let b): "body(\(b.debugDescription))"
        case .end(let k): "end(keepAlive: \(k))"
        case .error(let c): "error(\(c))"
        }
    }
}

/// Feeds `pieces` one after the other, reads every part after each, then (if `close`) reports
/// the connection closed. `headRequests`: which responses (in order) answer a `HEAD`.
private func parse(_ pieces: [[UInt8]], maxHead: Int = 1024, close: Bool = false, headRequests: Set<Int> = []) -> [Event] {
    var parser = UpstreamResponseParser(maxHeadBytes: maxHead)
    var events: [Event] = []
    var responses = 0
    parser.expectResponse(head: headRequests.contains(0))
    func add(_ part: UpstreamResponseParser.Part) {
        switch part {
        case .head(let h):
            events.append(.head(h.status, (0..<h.count).map { "\(h.name(at: $0))=\(h.value(at: $0))" }))
        case .body(let b):
            if case .body(let previous) = events.last {
                events[events.count - 1] = .body(previous + String(buffer: b))
            } else {
                events.append(.body(String(buffer: b)))
            }
        case .end:
            events.append(.end(keepAlive: parser.keepAlive))
            responses += 1
            parser.expectResponse(head: headRequests.contains(responses))
        }
    }
    do {
        for piece in pieces {
            parser.feed(ByteBuffer(bytes: piece))
            while let part = try parser.next() { add(part) }
        }
        if close, let part = parser.connectionClosed() { add(part) }
    } catch {
        events.append(.error(error.code))
    }
    return events
}

/// Parses `input` whole, then in every split in two, in every split in three (short inputs),
/// and a byte at a time: each must report the same as the whole.
private func parseEverySplit(_ input: String, maxHead: Int = 1024, close: Bool = false, headRequests: Set<Int> = []) -> [Event] {
    let bytes = Array(input.utf8)
    let whole = parse([bytes], maxHead: maxHead, close: close, headRequests: headRequests)
    for i in 0...bytes.count {
        let split = parse([Array(bytes[..<i]), Array(bytes[i...])], maxHead: maxHead, close: close, headRequests: headRequests)
        #expect(split == whole, "split at \(i)")
    }
    if bytes.count <= 200 {
        for i in 0...bytes.count {
            for j in i...bytes.count {
                let split = parse([Array(bytes[..<i]), Array(bytes[i..<j]), Array(bytes[j...])], maxHead: maxHead, close: close, headRequests: headRequests)
                if split != whole {
                    Issue.record("split at \(i), \(j): \(split) != \(whole)")
                    return whole
                }
            }
        }
    }
    let byteAtATime = parse(bytes.map { [$0] }, maxHead: maxHead, close: close, headRequests: headRequests)
    #expect(byteAtATime == whole, "a byte at a time")
    return whole
}

@Suite("Upstream responses parsed from bytes in any split")
struct UpstreamResponseParserTests {
    @Test("content-length: the head's fields as sent (names' case kept, values trimmed), the body, the end; kept alive")
    func contentLength() {
        let events = parseEverySplit("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-Id:  abc \t\r\nContent-Length: 11\r\n\r\nhello world")
        #expect(events == [.head(200, ["Content-Type=application/json", "X-Request-Id=abc", "Content-Length=11"]), .body("hello world"), .end(keepAlive: true)])
    }

    @Test("content-length 0 and an empty field value")
    func emptyBody() {
        #expect(parseEverySplit("HTTP/1.1 200 OK\r\nX-Empty:\r\ncontent-length: 0\r\n\r\n") == [.head(200, ["X-Empty=", "content-length=0"]), .end(keepAlive: true)])
    }

    @Test("a body cut short by the close: no end (the exchange fails as closed)")
    func cutShort() {
        #expect(parseEverySplit("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", close: true) == [.head(200, ["Content-Length=10"]), .body("hello")])
    }

    @Test("chunked, with chunk extensions, upper-case hex and trailers: the data joined, extensions and trailers dropped")
    func chunked() {
        let input =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA ; name=\"quoted;value\"\r\n world!!!!\r\n1\r\n.\r\n0;last\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n"
        #expect(parseEverySplit(input) == [.head(200, ["Transfer-Encoding=chunked"]), .body("hello world!!!!."), .end(keepAlive: true)])
    }

    @Test("chunked without trailers, and a transfer-encoding list ending in chunked")
    func chunkedList() {
        let input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: identity , Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        #expect(parseEverySplit(input) == [.head(200, ["Transfer-Encoding=gzip", "Transfer-Encoding=identity , Chunked"]), .body("abc"), .end(keepAlive: true)])
    }

    @Test("no length and no chunking: the body runs until the close, and the connection is not kept")
    func closeDelimited() {
        #expect(parseEverySplit("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this\r\n\r\nand this", close: true) == [
            .head(200, ["Content-Type=text/plain"]), .body("all of this\r\n\r\nand this"), .end(keepAlive: false),
        ])
        // A transfer-encoding that does not end in chunked is read the same way.
        #expect(parseEverySplit("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzz", close: true) == [
            .head(200, ["Transfer-Encoding=gzip"]), .body("zzz"), .end(keepAlive: false),
        ])
    }

    @Test("204 and 304 have no body, whatever their length says; the bytes after them are the next response")
    func noBodyStatuses() {
        let input = "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        #expect(parseEverySplit(input) == [
            .head(204, ["Content-Length=5"]), .end(keepAlive: true), .head(304, ["Content-Length=10"]), .end(keepAlive: true),
            .head(200, ["Content-Length=2"]), .body("ok"), .end(keepAlive: true),
        ])
    }

    @Test("the answer to a HEAD request has no body; the next answer's has")
    func headRequest() {
        let input = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        #expect(parseEverySplit(input, headRequests: [0]) == [
            .head(200, ["Content-Length=5"]), .end(keepAlive: true), .head(200, ["Content-Length=5"]), .body("hello"), .end(keepAlive: true),
        ])
    }

    @Test("interim responses (100 Continue, 103 Early Hints) are skipped: only the final head is reported")
    func interim() {
        let input = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        #expect(parseEverySplit(input) == [.head(200, ["Content-Length=2"]), .body("ok"), .end(keepAlive: true)])
    }

    @Test("many interim responses in one read do not recurse")
    func manyInterim() {
        let input = String(repeating: "HTTP/1.1 100 Continue\r\n\r\n", count: 20000) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        #expect(parse([Array(input.utf8)]) == [.head(200, ["Content-Length=0"]), .end(keepAlive: true)])
    }

    @Test("101 Switching Protocols is an error: nobody asked for an upgrade")
    func switchingProtocols() {
        #expect(parseEverySplit("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n") == [.error(.switchingProtocols)])
    }

    @Test("pipelined keep-alive responses in one read: each reported in turn, each body its own")
    func pipelined() {
        let input = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\non HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\nHTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 5\r\n\r\nthree"
        #expect(parseEverySplit(input) == [
            .head(200, ["Content-Length=3"]), .body("on "), .end(keepAlive: true),
            .head(500, ["Transfer-Encoding=chunked"]), .body("two"), .end(keepAlive: true),
            .head(429, ["Retry-After=1", "Content-Length=5"]), .body("three"), .end(keepAlive: true),
        ])
    }

    @Test("keep-alive: HTTP/1.1 unless connection: close; HTTP/1.0 only with connection: keep-alive")
    func keepAlive() {
        #expect(parseEverySplit("HTTP/1.1 200 OK\r\nConnection: upgrade, Close\r\nContent-Length: 0\r\n\r\n").last == .end(keepAlive: false))
        #expect(parseEverySplit("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").last == .end(keepAlive: false))
        #expect(parseEverySplit("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").last == .end(keepAlive: true))
        #expect(parseEverySplit("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").last == .end(keepAlive: true))
    }

    @Test("bare LF line ends are read like CRLF; a status line without a reason is fine")
    func bareLF() {
        #expect(parseEverySplit("HTTP/1.1 200\nContent-Length: 2\n\nok") == [.head(200, ["Content-Length=2"]), .body("ok"), .end(keepAlive: true)])
        #expect(parseEverySplit("HTTP/1.1 200 \r\nTransfer-Encoding: chunked\r\n\r\n2\nok\n0\n\n") == [
            .head(200, ["Transfer-Encoding=chunked"]), .body("ok"), .end(keepAlive: true),
        ])
    }

    @Test("a head over the limit is an error, whether its end has arrived or not; one at the limit is fine")
    func oversizeHead() {
        let head = "HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "a", count: 100) + "\r\nContent-Length: 0\r\n\r\n"
        let size = head.utf8.count
        #expect(parseEverySplit(head, maxHead: size) == [.head(200, ["X-Big=" + String(repeating: "a", count: 100), "Content-Length=0"]), .end(keepAlive: true)])
        #expect(parseEverySplit(head, maxHead: size - 1) == [.error(.headTooLarge)])
        // No end in sight: the error comes as soon as more than the limit is buffered.
        #expect(parse([Array(("HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "a", count: 2000)).utf8)], maxHead: 1024) == [.error(.headTooLarge)])
    }

    @Test("trailers over the limit are an error")
    func oversizeTrailers() {
        let input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: " + String(repeating: "t", count: 200) + "\r\n\r\n"
        #expect(parseEverySplit(input, maxHead: 100) == [.head(200, ["Transfer-Encoding=chunked"]), .error(.trailersTooLarge)])
    }

    @Test("malformed status lines", arguments: [
        "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1  200 OK\r\n\r\n", "HTTP/1.1 20\r\n\r\n", "HTTP/1.1 099 Low\r\n\r\n", "ICY 200 OK\r\n\r\n",
        "HTTP/1.1 200 O\u{1}K\r\n\r\n", "http/1.1 200 OK\r\n\r\n", "HTTP/11 200 OK\r\n\r\n", "\r\nHTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 OK\rX: y\r\n\r\n",
    ])
    func malformedStatusLine(_ input: String) {
        #expect(parseEverySplit(input) == [.error(.malformedStatusLine)])
    }

    @Test("not HTTP/1.x")
    func otherVersion() {
        #expect(parseEverySplit("HTTP/2.0 200 OK\r\n\r\n") == [.error(.unsupportedVersion)])
    }

    @Test("malformed fields: no colon, space before the colon, a folded line, a CR or NUL in a value, an empty name", arguments: [
        "NoColon\r\n", "Name : v\r\n", "X-A: v\r\n continued\r\n", "X-A: a\rb\r\n", "X-A: a\u{0}b\r\n", ": v\r\n", "X(A): v\r\n",
    ])
    func malformedField(_ field: String) {
        #expect(parseEverySplit("HTTP/1.1 200 OK\r\n" + field + "Content-Length: 0\r\n\r\n") == [.error(.malformedField)])
    }

    @Test("bad chunks: a size that is not hex, none at all, one that overflows, junk after it, data longer than its size")
    func badChunks() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        for chunks in ["zz\r\nab\r\n0\r\n\r\n", "\r\nab\r\n0\r\n\r\n", "fffffffffffffffff\r\n", "2 x\r\nab\r\n0\r\n\r\n", "-2\r\nab\r\n0\r\n\r\n"] {
            #expect(parseEverySplit(head + chunks) == [.head(200, ["Transfer-Encoding=chunked"]), .error(.malformedChunk)], "\(chunks.debugDescription)")
        }
        #expect(parseEverySplit(head + "2\r\nabc\r\n0\r\n\r\n") == [.head(200, ["Transfer-Encoding=chunked"]), .body("ab"), .error(.malformedChunk)])
        // A chunk-size line that never ends.
        #expect(parse([Array((head + String(repeating: "1", count: 5000)).utf8)]) == [.head(200, ["Transfer-Encoding=chunked"]), .error(.malformedChunk)])
    }

    @Test("content-length and transfer-encoding together are an error (the framing is ambiguous)")
    func lengthAndChunked() {
        #expect(parseEverySplit("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n") == [
            .error(.contentLengthWithTransferEncoding)
        ])
    }

    @Test("content-length: conflicting values are an error, repeated equal ones are not; a value that is not a number is")
    func contentLengths() {
        #expect(parseEverySplit("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd") == [.error(.conflictingContentLength)])
        #expect(parseEverySplit("HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc") == [
            .head(200, ["Content-Length=3", "content-length=3"]), .body("abc"), .end(keepAlive: true),
        ])
        for bad in ["3, 3", "-1", "+3", "0x10", "", "99999999999999999999"] {
            #expect(parseEverySplit("HTTP/1.1 200 OK\r\nContent-Length: \(bad)\r\n\r\n") == [.error(.invalidContentLength)], "\(bad)")
        }
    }

    @Test("after an error the parser reads nothing more")
    func failedStaysFailed() throws {
        var parser = UpstreamResponseParser(maxHeadBytes: 1024)
        parser.feed(ByteBuffer(string: "garbage\r\n\r\n"))
        #expect(throws: UpstreamResponseParser.Error.self) { try parser.next() }
        parser.feed(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
        #expect(try parser.next() == nil)
    }

    @Test("the head's lookups: first(name:) ignores case; headers and pairs keep order and case")
    func headLookups() throws {
        var parser = UpstreamResponseParser(maxHeadBytes: 1024)
        parser.feed(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n"))
        guard case .head(let head) = try parser.next() else {
            Issue.record("no head")
            return
        }
        #expect(head.status == 200)
        #expect(head.version == .http1_1)
        #expect(head.first(name: "content-type") == "text/event-stream")
        #expect(head.first(name: "X-a") == "1")
        #expect(head.first(name: "missing") == nil)
        #expect(head.pairs.map { "\($0.name)=\($0.value)" } == ["Content-Type=text/event-stream", "X-A=1", "x-a=2", "Content-Length=0"])
        #expect(head.headers == HTTPHeaders([("Content-Type", "text/event-stream"), ("X-A", "1"), ("x-a", "2"), ("Content-Length", "0")]))
    }

    @Test("a head made from NIO's type reads back the same")
    func fromNIOHead() {
        let nio = HTTPResponseHead(version: .http1_1, status: .tooManyRequests, headers: HTTPHeaders([("Retry-After", "3"), ("content-type", "application/json")]))
        let head = UpstreamResponseHead(nio)
        #expect(head.status == 429)
        #expect(head.headers == nio.headers)
        #expect(head.responseHead == nio)
    }

    /// A head of random lines: mostly valid fields (framing ones among them), and near misses of
    /// every kind (bytes a name or value may not hold, bare CRs, an empty name, whitespace,
    /// lines without a colon), ended by CRLF or LF; sometimes cut short or followed by bytes
    /// without a line end.
    private static func randomHead(_ rng: inout SeededRandom) -> [UInt8] {
        func pick(_ options: [String]) -> [UInt8] { Array(options.randomElement(using: &rng)!.utf8) }
        let status = pick([
            "HTTP/1.1 200 OK", "HTTP/1.0 200 OK", "HTTP/1.1 204 No Content", "HTTP/1.1 101 X", "HTTP/1.1 103 Hints", "HTTP/1.1 404", "HTTP/2.0 200 OK",
            "HTTP/1.1 20 OK", "junk",
        ])
        var head = status + pick(["\r\n", "\n"])
        let names = ["Content-Type", "content-length", "Content-Length", "Transfer-Encoding", "connection", "X-A", "x_b!#$%&'*+-.^`|~", "Keep-Alive", "A", ""]
        let values = ["application/json", "12", " 12 ", "12, 13", "x", "chunked", "gzip, chunked", "chunked, gzip", "", "close", "Keep-Alive", "CLOSE, x", "\t tab \t", "13", "12"]
        let bad: [[UInt8]] = [[0x00], [0x7F], [0x0D], [0x01], [0xFF], [0x80, 0x81], Array(" ".utf8), Array(":".utf8), [0x09], Array("\"".utf8), Array("(".utf8)]
        for _ in 0..<Int.random(in: 0...6, using: &rng) {
            var name = pick(names)
            var value = pick(values)
            if Int.random(in: 0..<12, using: &rng) == 0 { name.insert(contentsOf: bad.randomElement(using: &rng)!, at: Int.random(in: 0...name.count, using: &rng)) }
            if Int.random(in: 0..<12, using: &rng) == 0 { value.insert(contentsOf: bad.randomElement(using: &rng)!, at: Int.random(in: 0...value.count, using: &rng)) }
            let separator = Int.random(in: 0..<30, using: &rng) == 0 ? pick(["", " :", "; "]) : pick([":", ": ", ":\t", ":  "])
            head += name + separator + value + (Int.random(in: 0..<30, using: &rng) == 0 ? pick(["\r\r\n", "\r", ""]) : pick(["\r\n", "\n", " \r\n"]))
        }
        switch Int.random(in: 0..<10, using: &rng) {
        case 0: break
        case 1: head += pick(["X-Tail: no line end", "\r", "bad line", ""])
        case 2: head += pick(["\r\r\n", " \r\n\r\n", "\r\n\r\n"])
        default: head += pick(["\r\n", "\n"])
        }
        return head
    }

    @Test("over 20,000 generated heads: each line read in one pass reads as the line reader and the field check did")
    func headDifferential() async {
        var rng = SeededRandom(state: 90)
        var errors: [UpstreamResponseParser.Error.Code: Int] = [:]
        var read = 0
        for round in 0..<20_000 {
            // Leave the test pool's threads to the other suites now and then (see the note in
            // IncrementalCompilerTests): their waits would otherwise time out on a 2-core machine.
            if round % 500 == 0 { await Task.yield() }
            let bytes = Self.randomHead(&rng)
            let headRequest = Int.random(in: 0..<8, using: &rng) == 0
            bytes.withUnsafeBytes { p in
                let got = Result { () throws(UpstreamResponseParser.Error) in try UpstreamResponseParser.readHead(p, headRequest: headRequest) }
                let expected = Result { () throws(UpstreamResponseParser.Error) in try UpstreamResponseHeadReference.readHead(p, headRequest: headRequest) }
                #expect(got == expected, "\(String(decoding: bytes, as: UTF8.self).debugDescription)")
                switch expected {
                case .success: read += 1
                case .failure(let e): errors[e.code, default: 0] += 1
                }
                for from in [0, 1, bytes.count / 2, max(bytes.count - 2, 0)] where from <= bytes.count {
                    #expect(UpstreamResponseParser.headEnd(p, from: from) == UpstreamResponseHeadReference.headEnd(p, from: from))
                }
            }
        }
        // Both kinds were compared, and errors of every kind a head can have.
        #expect(read > 3000, "\(read) read")
        let codes: [UpstreamResponseParser.Error.Code] = [
            .malformedStatusLine, .unsupportedVersion, .malformedField, .switchingProtocols, .invalidContentLength, .conflictingContentLength,
            .contentLengthWithTransferEncoding,
        ]
        for code in codes {
            #expect(errors[code, default: 0] > 10, "\(code): \(errors[code, default: 0])")
        }
    }

    @Test("the token bytes are RFC 9110's tchar, byte for byte")
    func tokenBytes() {
        for c in UInt8.min...UInt8.max {
            #expect(UpstreamResponseParser.isTokenByte(c) == UpstreamResponseHeadReference.isTokenByte(c), "\(c)")
        }
    }
}
