/// A misbehaviour the fake provider reproduces for one model.
///
/// Textual form (what `init(parsing:)` reads and `description` writes): comma-separated
/// `key=value` pairs or bare words, exactly one *behaviour* plus optional modifiers.
///
/// Behaviours:
/// - `ok`: healthy.
/// - `status=<code>` (400...599): an OpenAI-shaped error body with that status.
/// - `context-length`, `content-filter`, `unauthorized`, `model-not-found`, `bad-request`:
///   the corresponding provider errors (400, 400, 401, 404, 400).
/// - `reset`: read the request, then close with a TCP RST before any response byte.
/// - `silence`: read the request, never answer, keep the socket open.
/// - `slow-first-token=<ms>`: wait before the first content token (streaming) or before answering.
/// - `cut-after=<n>`: streaming: n content tokens, then close without the terminating chunk;
///   non-streaming: a `Content-Length` for the whole body but only half of it, then close.
/// - `stall-after=<n>`: streaming: n content tokens, then silence with the socket open;
///   non-streaming: half of the body (with the full `Content-Length`), then silence.
/// - `malformed-event=<n>`: streaming: after n content tokens one event that is not valid JSON,
///   then continue normally; non-streaming: a 200 whose body is not valid JSON.
/// - `no-done`: streaming: a proper end of the chunked body but no `data: [DONE]`.
/// - `no-prefill`: reject (400) requests whose last message has role `assistant`.
/// - `stream-error=<n>`: streaming: n content tokens, then the API's own error event inside the
///   200 stream (overloaded), then the end of the response; non-streaming: the API's overloaded error.
/// - `tool-call`: answer with a call to the request's first tool (arguments streamed in fragments).
/// - `blocked`: the API's safety block or refusal (a 200 with no text and its content-filter finish).
///
/// Modifiers for the error behaviours (`status=` and the error shortcuts):
/// `retry-after=<seconds>`, `ratelimit-reset=<duration>` (e.g. `2s`, `500ms`, `1m0s`), `code=<string>`.
///
/// Modifiers for every behaviour: `times=<k>` (applies to the next k requests of the model, then the
/// model is healthy again) and `delay=<ms>` (wait before sending the response headers).
public struct FaultSpec: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Behavior: Sendable, Hashable {
        case ok
        case status(Int)
        case contextLength
        case contentFilter
        case unauthorized
        case modelNotFound
        case badRequest
        case reset
        case silence
        case slowFirstToken(milliseconds: Int)
        case cutAfter(tokens: Int)
        case stallAfter(tokens: Int)
        case malformedEvent(afterTokens: Int)
        case noDone
        case noPrefill
        case streamError(afterTokens: Int)
        case toolCall
        case blocked

        /// True for the behaviours that answer with an HTTP error status.
        public var isErrorStatus: Bool {
            switch self {
            case .status, .contextLength, .contentFilter, .unauthorized, .modelNotFound, .badRequest:
                return true
            default:
                return false
            }
        }
    }

    public var behavior: Behavior
    /// `retry-after=<seconds>`: sent as `Retry-After` (error behaviours only).
    public var retryAfterSeconds: Int?
    /// `ratelimit-reset=<duration>`: sent verbatim as `x-ratelimit-reset-requests` (error behaviours only).
    public var rateLimitReset: String?
    /// `code=<string>`: the `error.code` of the body (error behaviours only).
    public var errorCode: String?
    /// `times=<k>`: the fault applies to the next k requests of the model only.
    public var times: Int?
    /// `delay=<ms>`: wait before sending the response headers.
    public var delayMilliseconds: Int?

    public init(
        _ behavior: Behavior,
        retryAfterSeconds: Int? = nil,
        rateLimitReset: String? = nil,
        errorCode: String? = nil,
        times: Int? = nil,
        delayMilliseconds: Int? = nil
    ) {
        self.behavior = behavior
        self.retryAfterSeconds = retryAfterSeconds
        self.rateLimitReset = rateLimitReset
        self.errorCode = errorCode
        self.times = times
        self.delayMilliseconds = delayMilliseconds
    }

    public static let ok = FaultSpec(.ok)

    // MARK: Parsing

    public init(parsing text: String) throws {
        func fail(_ reason: String) -> FaultSpecParseError {
            FaultSpecParseError(spec: text, reason: reason)
        }
        let trimmed = text.trimmingWhitespace()
        guard !trimmed.isEmpty else { throw fail("the spec is empty (use `ok` for a healthy model)") }

        var behavior: Behavior?
        var behaviorWord = ""
        var retryAfter: Int?
        var rateLimitReset: String?
        var code: String?
        var times: Int?
        var delay: Int?
        var seenKeys: Set<String> = []

        for rawPart in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let part = String(rawPart).trimmingWhitespace()
            guard !part.isEmpty else { throw fail("empty element between commas") }

            let key: String
            let value: String?
            if let eq = part.firstIndex(of: "=") {
                key = String(part[..<eq]).trimmingWhitespace().lowercased()
                value = String(part[part.index(after: eq)...]).trimmingWhitespace()
                guard !key.isEmpty else { throw fail("`\(part)` has no key before `=`") }
                guard !(value ?? "").isEmpty else { throw fail("`\(key)=` needs a value") }
            } else {
                key = part.lowercased()
                value = nil
            }
            guard seenKeys.insert(key).inserted else { throw fail("`\(key)` is given more than once") }

            func number(_ range: ClosedRange<Int>, _ what: String) throws -> Int {
                guard let value else { throw fail("`\(key)` needs a value (\(key)=<\(what)>)") }
                guard let n = Int(value), range.contains(n) else {
                    let bounds = range.upperBound == Int.max ? "\(range.lowerBound) or more" : "\(range.lowerBound)...\(range.upperBound)"
                    throw fail("`\(key)=\(value)`: expected \(what) (an integer, \(bounds))")
                }
                return n
            }
            func bare(_ b: Behavior) throws -> Behavior {
                if let value { throw fail("`\(key)` takes no value (got `\(key)=\(value)`)") }
                return b
            }
            func setBehavior(_ b: Behavior) throws {
                if behavior != nil {
                    throw fail("more than one behaviour: `\(behaviorWord)` and `\(key)` (give exactly one)")
                }
                behavior = b
                behaviorWord = key
            }

            switch key {
            case "ok": try setBehavior(bare(.ok))
            case "context-length": try setBehavior(bare(.contextLength))
            case "content-filter": try setBehavior(bare(.contentFilter))
            case "unauthorized": try setBehavior(bare(.unauthorized))
            case "model-not-found": try setBehavior(bare(.modelNotFound))
            case "bad-request": try setBehavior(bare(.badRequest))
            case "reset": try setBehavior(bare(.reset))
            case "silence": try setBehavior(bare(.silence))
            case "no-done": try setBehavior(bare(.noDone))
            case "no-prefill": try setBehavior(bare(.noPrefill))
            case "tool-call": try setBehavior(bare(.toolCall))
            case "blocked": try setBehavior(bare(.blocked))
            case "stream-error": try setBehavior(.streamError(afterTokens: number(0...Int.max, "a token count")))
            case "status": try setBehavior(.status(number(400...599, "an HTTP status code")))
            case "slow-first-token": try setBehavior(.slowFirstToken(milliseconds: number(0...Int.max, "milliseconds")))
            case "cut-after": try setBehavior(.cutAfter(tokens: number(0...Int.max, "a token count")))
            case "stall-after": try setBehavior(.stallAfter(tokens: number(0...Int.max, "a token count")))
            case "malformed-event": try setBehavior(.malformedEvent(afterTokens: number(0...Int.max, "a token count")))
            case "retry-after": retryAfter = try number(0...Int.max, "seconds")
            case "ratelimit-reset":
                guard let value else { throw fail("`ratelimit-reset` needs a value (ratelimit-reset=<duration>, e.g. 2s)") }
                guard Self.isValidResetDuration(value) else {
                    throw fail("`ratelimit-reset=\(value)`: expected a duration such as 2s, 500ms, 1m0s or 1.5s")
                }
                rateLimitReset = value
            case "code":
                guard let value else { throw fail("`code` needs a value (code=<string>)") }
                code = value
            case "times": times = try number(1...Int.max, "a request count")
            case "delay": delay = try number(0...Int.max, "milliseconds")
            default:
                throw fail("unknown element `\(part)`")
            }
        }

        let resolved = behavior ?? .ok
        if !resolved.isErrorStatus {
            let name = behavior == nil ? "ok" : behaviorWord
            for (key, present) in [("retry-after", retryAfter != nil), ("ratelimit-reset", rateLimitReset != nil), ("code", code != nil)]
            where present {
                throw fail(
                    "`\(key)` only applies to error behaviours (status=, context-length, content-filter, unauthorized, model-not-found, bad-request), not `\(name)`"
                )
            }
        }
        self.init(
            resolved,
            retryAfterSeconds: retryAfter,
            rateLimitReset: rateLimitReset,
            errorCode: code,
            times: times,
            delayMilliseconds: delay
        )
    }

    /// Go-style durations as OpenAI sends them: one or more `<number><unit>` with unit ms, s, m or h.
    static func isValidResetDuration(_ text: String) -> Bool {
        var bytes = Array(text.utf8)[...]
        guard !bytes.isEmpty else { return false }
        while !bytes.isEmpty {
            let digits = bytes.prefix { $0 >= 0x30 && $0 <= 0x39 }
            guard !digits.isEmpty else { return false }
            bytes = bytes.dropFirst(digits.count)
            if bytes.first == UInt8(ascii: ".") {
                bytes = bytes.dropFirst()
                let fraction = bytes.prefix { $0 >= 0x30 && $0 <= 0x39 }
                guard !fraction.isEmpty else { return false }
                bytes = bytes.dropFirst(fraction.count)
            }
            if bytes.starts(with: "ms".utf8) {
                bytes = bytes.dropFirst(2)
            } else if let unit = bytes.first, unit == UInt8(ascii: "s") || unit == UInt8(ascii: "m") || unit == UInt8(ascii: "h") {
                bytes = bytes.dropFirst()
            } else {
                return false
            }
        }
        return true
    }

    // MARK: Textual form

    public var description: String {
        var parts: [String]
        switch behavior {
        case .ok: parts = ["ok"]
        case .status(let code): parts = ["status=\(code)"]
        case .contextLength: parts = ["context-length"]
        case .contentFilter: parts = ["content-filter"]
        case .unauthorized: parts = ["unauthorized"]
        case .modelNotFound: parts = ["model-not-found"]
        case .badRequest: parts = ["bad-request"]
        case .reset: parts = ["reset"]
        case .silence: parts = ["silence"]
        case .slowFirstToken(let ms): parts = ["slow-first-token=\(ms)"]
        case .cutAfter(let n): parts = ["cut-after=\(n)"]
        case .stallAfter(let n): parts = ["stall-after=\(n)"]
        case .malformedEvent(let n): parts = ["malformed-event=\(n)"]
        case .noDone: parts = ["no-done"]
        case .noPrefill: parts = ["no-prefill"]
        case .streamError(let n): parts = ["stream-error=\(n)"]
        case .toolCall: parts = ["tool-call"]
        case .blocked: parts = ["blocked"]
        }
        if let retryAfterSeconds { parts.append("retry-after=\(retryAfterSeconds)") }
        if let rateLimitReset { parts.append("ratelimit-reset=\(rateLimitReset)") }
        if let errorCode { parts.append("code=\(errorCode)") }
        if let times { parts.append("times=\(times)") }
        if let delayMilliseconds { parts.append("delay=\(delayMilliseconds)") }
        return parts.joined(separator: ",")
    }

    // MARK: Codable (as the textual form)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            try self.init(parsing: text)
        } catch let error as FaultSpecParseError {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.description)
    }
}

/// Thrown by `FaultSpec(parsing:)`; `description` names the offending part.
public struct FaultSpecParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The whole text that was parsed.
    public var spec: String
    /// What is wrong with it.
    public var reason: String

    public init(spec: String, reason: String) {
        self.spec = spec
        self.reason = reason
    }

    public var description: String { "invalid fault spec \"\(spec)\": \(reason)" }
}

extension String {
    func trimmingWhitespace() -> String {
        guard let first = self.firstIndex(where: { !$0.isWhitespace }) else { return "" }
        let last = self.lastIndex(where: { !$0.isWhitespace })!
        return String(self[first...last])
    }
}
