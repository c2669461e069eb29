import AIGatewayTesting
import AsyncHTTPClient
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: Provider lifecycle

/// Starts a provider on an ephemeral port, runs `body`, and always stops the provider.
func withFakeProvider<T>(
    _ configuration: FakeProviderConfiguration = .init(),
    _ body: (FakeProvider) async throws -> T
) async throws -> T {
    let provider = FakeProvider(configuration: configuration)
    _ = try await provider.start()
    let result: T
    do {
        result = try await body(provider)
    } catch {
        try? await provider.stop()
        throw error
    }
    try await provider.stop()
    return result
}

/// Waits until `condition` holds, checking every few milliseconds: the wait is for an event, and
/// the bound only keeps a broken build from hanging (it is not what the test measures).
func waitFor(_ what: String, bound: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
    let giveUp = ContinuousClock.now + bound
    while try await !condition() {
        guard ContinuousClock.now < giveUp else {
            Issue.record("never happened: \(what)")
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// A flag set from another task.
final class Flag: Sendable {
    private let state = Mutex(false)
    var value: Bool { state.withLock { $0 } }
    func set() { state.withLock { $0 = true } }
}

// MARK: Requests

enum Verb {
    case get, post, put, delete
}

func makeRequest(
    _ provider: FakeProvider,
    path: String = "/v1/chat/completions",
    verb: Verb = .post,
    body: String? = nil,
    headers: [(String, String)] = []
) -> HTTPClientRequest {
    var request = HTTPClientRequest(url: provider.baseURL + path)
    switch verb {
    case .get: request.method = .GET
    case .post: request.method = .POST
    case .put: request.method = .PUT
    case .delete: request.method = .DELETE
    }
    if let body {
        request.body = .bytes(Array(body.utf8))
        request.headers.add(name: "content-type", value: "application/json")
    }
    for (name, value) in headers {
        request.headers.add(name: name, value: value)
    }
    return request
}

/// A fully received response.
struct Reply {
    var status: Int
    var headers: [(String, String)]
    var body: String

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    func json() throws -> JSONValue {
        try JSONValue(parsing: body)
    }
}

/// Sends a request and reads the whole body (the deadline bounds the wait for the response head).
func send(
    _ provider: FakeProvider,
    path: String = "/v1/chat/completions",
    verb: Verb = .post,
    body: String? = nil,
    headers: [(String, String)] = [],
    client: HTTPClient = .shared,
    timeoutMilliseconds: Int64 = 10_000
) async throws -> Reply {
    let request = makeRequest(provider, path: path, verb: verb, body: body, headers: headers)
    let response = try await client.execute(request, timeout: .milliseconds(timeoutMilliseconds))
    let buffer = try await response.body.collect(upTo: 64 * 1024 * 1024)
    return Reply(
        status: Int(response.status.code),
        headers: response.headers.map { ($0.name, $0.value) },
        body: String(decoding: buffer.readableBytesView, as: UTF8.self)
    )
}

/// What a streamed body delivered before it ended, and how it ended.
struct PartialBody {
    var status: Int
    var headers: [(String, String)]
    var text: String
    var error: (any Error)?

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// Sends a request and reads the body until it ends or fails, keeping what arrived.
func sendAndReadUntilEnd(
    _ provider: FakeProvider,
    path: String = "/v1/chat/completions",
    body: String,
    client: HTTPClient = .shared
) async throws -> PartialBody {
    let response = try await client.execute(makeRequest(provider, path: path, body: body), timeout: .seconds(10))
    var bytes: [UInt8] = []
    var failure: (any Error)?
    do {
        for try await chunk in response.body {
            bytes.append(contentsOf: chunk.readableBytesView)
        }
    } catch {
        failure = error
    }
    return PartialBody(
        status: Int(response.status.code),
        headers: response.headers.map { ($0.name, $0.value) },
        text: String(decoding: bytes, as: UTF8.self),
        error: failure
    )
}

/// A chat completions request body.
func chatBody(
    model: String?,
    stream: Bool? = nil,
    includeUsage: Bool = false,
    messages: [(role: String, content: String)] = [("user", "What is Kubernetes?")]
) -> String {
    struct Message: Encodable {
        var role: String
        var content: String
    }
    struct StreamOptions: Encodable {
        var include_usage: Bool
    }
    struct Body: Encodable {
        var model: String?
        var stream: Bool?
        var stream_options: StreamOptions?
        var messages: [Message]
    }
    let body = Body(
        model: model,
        stream: stream,
        stream_options: includeUsage ? StreamOptions(include_usage: true) : nil,
        messages: messages.map { Message(role: $0.role, content: $0.content) }
    )
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: try! encoder.encode(body), as: UTF8.self)
}

// MARK: Server-sent events

/// The `data:` payloads of an event stream, in order (an unterminated last event is included).
func ssePayloads(_ text: String) -> [String] {
    text.components(separatedBy: "\n\n").compactMap { event in
        let trimmed = event.trimmingCharacters(in: .newlines)
        guard trimmed.hasPrefix("data: ") else { return nil }
        return String(trimmed.dropFirst(6))
    }
}

/// The body of a raw chunked HTTP/1.1 response (head included), as far as it goes: a cut body
/// gives the chunks that arrived whole.
func dechunked(_ raw: String) -> String {
    // Bytes, not characters: "\r\n" is one Character.
    let bytes = Array(raw.utf8)
    func crlf(from i: Int) -> Int? {
        var k = i
        while k + 1 < bytes.count {
            if bytes[k] == 0x0D && bytes[k + 1] == 0x0A { return k }
            k += 1
        }
        return nil
    }
    guard var i = (0..<max(0, bytes.count - 3)).first(where: { bytes[$0..<($0 + 4)].elementsEqual([0x0D, 0x0A, 0x0D, 0x0A]) }).map({ $0 + 4 }) else {
        return ""
    }
    var body: [UInt8] = []
    while let end = crlf(from: i), let size = Int(String(decoding: bytes[i..<end], as: UTF8.self), radix: 16), size > 0,
        end + 2 + size <= bytes.count
    {
        body += bytes[(end + 2)..<(end + 2 + size)]
        i = end + 2 + size + 2
    }
    return String(decoding: body, as: UTF8.self)
}

/// The content deltas of the JSON chunks among `payloads` (invalid JSON is skipped).
func contentDeltas(_ payloads: [String]) -> [String] {
    payloads.compactMap { payload in
        guard let chunk = try? JSONValue(parsing: payload) else { return nil }
        return chunk["choices"][0]["delta"]["content"].string.flatMap { $0.isEmpty ? nil : $0 }
    }
}

// MARK: JSON

/// A small JSON tree for assertions.
enum JSONValue: Equatable, Sendable, Decodable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(parsing text: String) throws {
        self = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    subscript(key: String) -> JSONValue {
        if case .object(let object) = self { return object[key] ?? .null }
        return .null
    }

    subscript(index: Int) -> JSONValue {
        if case .array(let array) = self, array.indices.contains(index) { return array[index] }
        return .null
    }

    var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    var int: Int? {
        if case .number(let value) = self { return Int(exactly: value) }
        return nil
    }

    var array: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    var object: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    var isNull: Bool { self == .null }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }
}

// MARK: Raw sockets (to see exactly what is on the wire)

/// How a raw TCP exchange ended.
enum RawOutcome: Equatable {
    /// The peer sent FIN after these bytes.
    case closed(String)
    /// The peer reset the connection (RST) after these bytes.
    case reset(String)
    /// Nothing more arrived within the receive timeout; the connection was still open.
    case stillOpen(String)
}

/// Connects to 127.0.0.1:`port`, sends `request`, and reads until FIN, RST, or `idleMilliseconds` without data.
/// The blocking socket calls run on a Dispatch queue, not on the concurrency pool.
func rawExchange(port: Int, request: String, idleMilliseconds: Int) async throws -> RawOutcome {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try rawExchangeBlocking(port: port, request: request, idleMilliseconds: idleMilliseconds) })
        }
    }
}

struct SocketFailure: Error, CustomStringConvertible {
    var call: String
    var code: Int32
    var description: String { "\(call) failed: errno \(code)" }
}

private func rawExchangeBlocking(port: Int, request: String, idleMilliseconds: Int) throws -> RawOutcome {
    #if canImport(Darwin)
    let fd = socket(AF_INET, SOCK_STREAM, 0)
    #else
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #endif
    guard fd >= 0 else { throw SocketFailure(call: "socket", code: errno) }
    defer { close(fd) }

    var timeout = timeval(tv_sec: idleMilliseconds / 1000, tv_usec: .init((idleMilliseconds % 1000) * 1000))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { throw SocketFailure(call: "connect", code: errno) }

    let bytes = Array(request.utf8)
    var offset = 0
    while offset < bytes.count {
        let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard sent > 0 else { throw SocketFailure(call: "send", code: errno) }
        offset += sent
    }

    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count > 0 {
            received.append(contentsOf: buffer[0..<count])
            continue
        }
        let text = String(decoding: received, as: UTF8.self)
        if count == 0 { return .closed(text) }
        switch errno {
        case ECONNRESET: return .reset(text)
        case EAGAIN, EWOULDBLOCK: return .stillOpen(text)
        case EINTR: continue
        case let code: throw SocketFailure(call: "recv", code: code)
        }
    }
}

/// An HTTP/1.1 POST of `body` to `path` as raw text.
func rawPost(path: String = "/v1/chat/completions", body: String) -> String {
    "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
}
