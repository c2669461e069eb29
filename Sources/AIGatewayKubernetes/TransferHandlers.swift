import Foundation

/// A complete buffered response.
struct HTTPResponse: Sendable {
    var status: Int
    var headers: [String: String]
    var body: Data
}

/// Collects a whole response body, up to a limit.
final class BufferedHandler: TransferHandler, @unchecked Sendable {
    // Protection: `continuation` is set by the submitting task before `CurlLoop.submit`;
    // everything is touched only on the loop thread afterwards.
    private var continuation: CheckedContinuation<HTTPResponse, any Error>?
    private let limit: Int
    private var status = 0
    private var headers: [String: String] = [:]
    private var buffer = Data()
    private var tooLarge = false

    init(limit: Int) {
        self.limit = limit
    }

    func setContinuation(_ continuation: CheckedContinuation<HTTPResponse, any Error>) {
        self.continuation = continuation
    }

    func head(status: Int, headers: [String: String]) -> Bool {
        self.status = status
        self.headers = headers
        return true
    }

    func body(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if buffer.count + bytes.count > limit {
            tooLarge = true
            return false
        }
        buffer.append(contentsOf: bytes)
        return true
    }

    func complete(_ outcome: TransferOutcome) {
        guard let continuation else { return }
        self.continuation = nil
        switch outcome {
        case .ok:
            continuation.resume(returning: HTTPResponse(status: status, headers: headers, body: buffer))
        case .cancelled:
            continuation.resume(throwing: CancellationError())
        case .failed:
            if tooLarge {
                continuation.resume(throwing: KubernetesError.invalidResponse("response body too large"))
            } else {
                continuation.resume(throwing: outcome.transportError ?? KubernetesError.transport("failed"))
            }
        }
    }
}

/// Splits a byte stream into lines (JSON-lines watch bodies): lines may be split across
/// chunks and a chunk may hold several lines. Empty lines are dropped.
struct LineSplitter {
    let maxLineLength: Int
    private var partial = Data()
    private(set) var overflowed = false

    init(maxLineLength: Int) {
        self.maxLineLength = maxLineLength
    }

    /// Appends bytes and returns the lines they completed (without the newline).
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> [Data] {
        var lines: [Data] = []
        var start = 0
        for i in 0..<bytes.count where bytes[i] == UInt8(ascii: "\n") {
            partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
            if !Self.isBlank(partial) { lines.append(partial) }
            partial = Data()
            start = i + 1
        }
        partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<bytes.count]))
        if partial.count > maxLineLength { overflowed = true }
        return lines
    }

    /// The trailing unterminated line, if any (at end of stream).
    mutating func flush() -> Data? {
        defer { partial = Data() }
        return Self.isBlank(partial) ? nil : partial
    }

    private static func isBlank(_ d: Data) -> Bool {
        d.allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\t") }
    }
}

/// Delivers the response head once, then the body as lines into an `AsyncThrowingStream`.
/// A non-2xx response is buffered and delivered whole as the head instead.
final class StreamingHandler: TransferHandler, @unchecked Sendable {
    // Protection: `headContinuation` is set by the submitting task before `CurlLoop.submit`;
    // everything is touched only on the loop thread afterwards. `lines` is thread-safe.
    private var headContinuation: CheckedContinuation<HTTPResponse, any Error>?
    private let lines: AsyncThrowingStream<Data, any Error>.Continuation
    private var splitter: LineSplitter
    private let errorBodyLimit: Int
    private var streaming = false
    private var status = 0
    private var headers: [String: String] = [:]
    private var errorBody = Data()

    init(lines: AsyncThrowingStream<Data, any Error>.Continuation, maxLineLength: Int, errorBodyLimit: Int = 1 << 20) {
        self.lines = lines
        self.splitter = LineSplitter(maxLineLength: maxLineLength)
        self.errorBodyLimit = errorBodyLimit
    }

    func setHeadContinuation(_ continuation: CheckedContinuation<HTTPResponse, any Error>) {
        headContinuation = continuation
    }

    func head(status: Int, headers: [String: String]) -> Bool {
        self.status = status
        self.headers = headers
        if (200..<300).contains(status) {
            streaming = true
            headContinuation?.resume(returning: HTTPResponse(status: status, headers: headers, body: Data()))
            headContinuation = nil
        }
        return true
    }

    func body(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard streaming else {
            if errorBody.count + bytes.count <= errorBodyLimit { errorBody.append(contentsOf: bytes) }
            return true
        }
        for line in splitter.append(bytes) {
            lines.yield(line)
        }
        if splitter.overflowed {
            lines.finish(throwing: KubernetesError.invalidResponse("watch event too large"))
            return false
        }
        return true
    }

    func complete(_ outcome: TransferOutcome) {
        if let headContinuation {
            self.headContinuation = nil
            switch outcome {
            case .ok:
                headContinuation.resume(returning: HTTPResponse(status: status, headers: headers, body: errorBody))
            case .cancelled:
                headContinuation.resume(throwing: CancellationError())
            case .failed:
                headContinuation.resume(throwing: outcome.transportError ?? KubernetesError.transport("failed"))
            }
            lines.finish()
            return
        }
        switch outcome {
        case .ok:
            if let last = splitter.flush() { lines.yield(last) }
            lines.finish()
        case .cancelled:
            lines.finish(throwing: CancellationError())
        case .failed:
            lines.finish(throwing: outcome.transportError ?? KubernetesError.transport("failed"))
        }
    }
}
