import Foundation
import NIOCore
import NIOHTTP1

/// One provider's native API as the fake provider speaks it: which requests are its, how it
/// checks them (as strictly as the real API), and how it writes answers and errors. The
/// handler does the rest the same way for every API: faults chosen per model, timing, cuts,
/// stalls, recording. `FakeProviderHandler.nativeAPIs` lists the APIs, first match wins.
protocol FakeNativeAPI: Sendable {
    /// Whether the request (method, path without query) is for this API.
    func matches(method: HTTPMethod, path: String) -> Bool

    /// Reads and checks a request like the real API: the request to answer, or the error the
    /// real API would give (a missing key, a missing field, roles out of order, ...).
    /// `path` is without the query; `query` is what follows `?` (empty when none).
    func read(_ request: FakeHTTPRequest, provider: FakeProvider) -> FakeNativeRead
}

/// The raw request as the handler received it.
struct FakeHTTPRequest {
    var head: HTTPRequestHead
    var path: String
    var query: String
    var body: ByteBuffer?

    func header(_ name: String) -> String? { head.headers.first(name: name) }

    /// The body as JSON (Foundation's parser, as any server would use).
    func json() -> Any? {
        guard let body, body.readableBytes > 0 else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(body.readableBytesView), options: [.fragmentsAllowed])
    }
}

/// What `FakeNativeAPI.read` decided.
struct FakeNativeRead {
    /// The model (from the body or the path), for the request log and the fault table.
    var model: String?
    var stream: Bool
    var outcome: Outcome

    enum Outcome {
        /// The request is fine: answer it in this format (faults may still apply).
        case answer(FakeNativeRequest)
        /// The real API would reject it.
        case reject(ProviderError)
    }
}

/// A valid request, with what the answer depends on.
struct FakeNativeRequest {
    /// Whitespace-separated words of the prompt (the answer's prompt token count).
    var promptTokens: Int
    /// The assistant text the request ends with (a continuation prefill), if any.
    var prefill: String?
    /// The request offers tools (the `tool-call` fault answers with a call to the first).
    var toolNames: [String]
    /// Writes the answer in the API's format.
    var format: any FakeAnswerFormat
    /// The API's error for a fault (status, body in the API's shape, headers).
    var errorForFault: @Sendable (FaultSpec, _ model: String, _ promptTokens: Int) -> ProviderError
}

/// What the fake answers, whatever the format.
struct FakeAnswerContent {
    enum Kind {
        /// The deterministic text, token by token.
        case text
        /// A call to `name` with the arguments sent in `fragments` (streamed one per event).
        case toolCall(id: String, name: String, fragments: [String])
        /// The provider's safety block or refusal (no text, the format's content-filter finish).
        case blocked
    }

    var kind: Kind
    var tokens: [String]
    var promptTokens: Int
}

/// One API's wire format for answers. Every method returns whole events (or a whole body).
protocol FakeAnswerFormat {
    /// The content type of a streamed answer.
    var streamContentType: String { get }
    /// A complete (non-streamed) answer.
    func completion(_ content: FakeAnswerContent) -> [UInt8]
    /// Events before the first token (OpenAI's role chunk, Anthropic's `message_start`).
    func streamStart(_ content: FakeAnswerContent) -> [UInt8]
    /// The event of text token `index`.
    func textEvent(_ token: String, index: Int) -> [UInt8]
    /// The events of a streamed tool call (start, argument fragments, end).
    func toolCallEvents(id: String, name: String, fragments: [String]) -> [UInt8]
    /// The events after the last token: finish, usage, end of stream. `sentTokens` is how many
    /// text tokens were sent; `done` is false for the `no-done` fault (no terminating event).
    func streamEnd(_ content: FakeAnswerContent, sentTokens: Int, done: Bool) -> [UInt8]
    /// An event that is not valid in the format (the `malformed-event` fault).
    var malformedEvent: [UInt8] { get }
    /// The API's error event inside a 200 stream (the `stream-error` fault): overloaded.
    func streamErrorEvent() -> [UInt8]
    /// Headers of a 200 answer, streamed or not (Bedrock's `x-amzn-RequestId`).
    var responseHeaders: [(String, String)] { get }
}

extension FakeAnswerFormat {
    var responseHeaders: [(String, String)] { [] }
}
