import AIGatewayAPI
import Synchronization

/// A client's chat request: its original bytes, checked to be one JSON object, with the few
/// members the gateway reads. Attempts rewrite only what they must (the `model`, the stream's
/// usage option, a continuation prefill) and copy every other byte the client sent.
public struct ChatRequest: Sendable {
    public let bytes: [UInt8]
    /// What the gateway reads of the body (its few members and where they sit), read once.
    let facts: Facts

    /// What the gateway needs of a request, and where the members it rewrites sit (each value's
    /// range in `bytes`; a member sent twice counts the last time, as in the parsed object).
    struct Facts: Sendable, Hashable {
        /// The client's `model` (nil: absent or `null`).
        var model: String?
        /// `stream` is `true`.
        var stream = false
        /// `stream_options` is an object whose `include_usage` is `true`.
        var includeUsage = false
        /// `messages` is an array with no element (or absent).
        var messagesEmpty = true
        /// The object has at least one member.
        var hasMembers = false
        var modelSpan: Range<Int>?
        var streamOptionsSpan: Range<Int>?
        var messagesSpan: Range<Int>?
    }

    /// `messages` is an array with no element.
    var messagesEmpty: Bool { facts.messagesEmpty }

    /// The whole body as a value (parsed on demand; the proxy does not need it).
    public var value: JSONValue { (try? JSONParser.parse(bytes)) ?? .null }

    /// The client's `model`, if it sent one.
    public var model: String? { facts.model }
    /// Whether the client asked for a server-sent-event stream.
    public var stream: Bool { facts.stream }
    /// Whether the client asked for the usage chunk at the end of a stream.
    public var clientWantsStreamUsage: Bool { facts.includeUsage }

    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// The conversation as values, built on the first call and shared by every attempt of the
    /// request (only translating adapters ask; the OpenAI path never does). Read straight from the
    /// bytes; the body is parsed into a value only when the reader leaves it (to word an error).
    public func conversation() -> Result<ChatConversation, ChatConversation.Invalid> {
        parsed.value.withLock { done in
            if let done { return done }
            let result: Result<ChatConversation, ChatConversation.Invalid>
            if let read = ChatConversation(reading: bytes) {
                result = .success(read)
            } else {
                // Refused (or a rare form the reader leaves alone): the parsed value words the error.
                do throws(ChatConversation.Invalid) {
                    result = .success(try ChatConversation(parsing: value))
                } catch {
                    result = .failure(error)
                }
            }
            done = result
            return result
        }
    }

    private let parsed = ParsedConversation()

    /// Checks the body and reads what the gateway needs of it in one pass over the bytes
    /// (`Facts(reading:)`); a body that pass does not accept is checked again the slow way
    /// (`check`), which words the error.
    public init(bytes: [UInt8]) throws(Invalid) {
        self.bytes = bytes
        if let facts = Facts(reading: bytes) {
            self.facts = facts
        } else {
            self.facts = try Self.check(bytes)
        }
    }

    /// Validates the body with `JSONParser` and the parsed members, throwing the error a client
    /// sees; returns the facts when it accepts the body (which the one-pass reader accepts too:
    /// the differential test holds them to it).
    private static func check(_ bytes: [UInt8]) throws(Invalid) -> Facts {
        let scanned: [String: JSONMemberSpan]?
        do {
            scanned = try JSONParser.scanTopLevel(bytes)
        } catch {
            throw Invalid(description: "request body is not valid JSON: \(error.description)")
        }
        guard let spans = scanned else {
            let found = (try? JSONParser.parse(bytes))?.typeName ?? "another value"
            throw Invalid(description: "request body must be a JSON object, found \(found)")
        }
        var read: [String: JSONValue] = [:]
        for key in ["model", "stream", "stream_options"] {
            guard let span = spans[key] else { continue }
            // Already validated as part of the document.
            read[key] = (try? JSONParser.parse(bytes[span.value])) ?? .null
        }
        if let m = read["model"], m != .null, m.stringValue == nil {
            throw Invalid(description: "'model' must be a string")
        }
        if let s = read["stream"], s != .null, case .bool = s {} else if read["stream"] != nil && read["stream"] != .null {
            throw Invalid(description: "'stream' must be a boolean")
        }
        var messagesEmpty = true
        if let span = spans["messages"] {
            guard bytes[span.value.lowerBound] == UInt8(ascii: "[") else {
                throw Invalid(description: "'messages' must be an array")
            }
            messagesEmpty = bytes.withUnsafeBytes { Facts.isEmptyArray($0, span.value) }
        }
        return Facts(
            model: read["model"]?.stringValue, stream: read["stream"] == .bool(true),
            includeUsage: read["stream_options"]?["include_usage"] == .bool(true), messagesEmpty: messagesEmpty, hasMembers: !spans.isEmpty,
            modelSpan: spans["model"]?.value, streamOptionsSpan: spans["stream_options"]?.value, messagesSpan: spans["messages"]?.value)
    }

    /// The body for one attempt.
    ///
    /// - Parameters:
    ///   - model: the entry's model; replaces (or adds) the client's `model`. Nil keeps the client's.
    ///   - includeUsage: set `stream_options.include_usage` so the gateway can count tokens.
    ///   - prefill: assistant text already sent to the client; appended as an assistant message so a
    ///     model that honours prefill continues the answer.
    public func body(model: String?, includeUsage: Bool = false, prefill: String? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 64)
        writeBody(model: model, includeUsage: includeUsage, prefill: prefill) { out.append(contentsOf: $0) }
        return out
    }

    /// The body for one attempt, handed to `emit` piece by piece (spans of the client's bytes and
    /// the rewritten members), so a caller can write it where it goes without an interim copy.
    /// The parameters are those of `body(model:includeUsage:prefill:)`.
    public func writeBody(model: String?, includeUsage: Bool = false, prefill: String? = nil, _ emit: (UnsafeRawBufferPointer) -> Void) {
        if let plain = ModelOnlyBody(self, model: model, includeUsage: includeUsage, prefill: prefill) {
            // The usual attempt: at most the client's `model` replaced in place; no list of edits.
            return plain.write(self, emit)
        }
        var edits: [(range: Range<Int>, replacement: String)] = []
        var additions: [String] = []
        if let model {
            if let span = facts.modelSpan {
                edits.append((span, JSONValue.quoted(model)))
            } else {
                additions.append("\"model\":\(JSONValue.quoted(model))")
            }
        }
        if includeUsage && stream && !clientWantsStreamUsage {
            if let span = facts.streamOptionsSpan {
                // The client's options, kept with the usage added (parsed here: rare, and
                // already checked as part of the body).
                if case .object(var o)? = try? JSONParser.parse(bytes[span]) {
                    o["include_usage"] = .bool(true)
                    edits.append((span, JSONValue.object(o).canonicalJSON()))
                } else {
                    edits.append((span, "{\"include_usage\":true}"))
                }
            } else {
                additions.append("\"stream_options\":{\"include_usage\":true}")
            }
        }
        if let prefill, let span = facts.messagesSpan {
            // Keep the original message bytes up to the closing bracket, then add the partial answer.
            var close = span.upperBound - 1
            while close > span.lowerBound, bytes[close] != UInt8(ascii: "]") { close -= 1 }
            var text = String(decoding: bytes[span.lowerBound..<close], as: UTF8.self)
            if !messagesEmpty { text += "," }
            text += "{\"role\":\"assistant\",\"content\":\(JSONValue.quoted(prefill))}]"
            edits.append((span, text))
        }
        bytes.withUnsafeBytes { original in
            func emitOriginal(_ r: Range<Int>) {
                if !r.isEmpty { emit(UnsafeRawBufferPointer(rebasing: original[r])) }
            }
            func emitText(_ s: String) {
                var s = s
                s.withUTF8 { emit(UnsafeRawBufferPointer($0)) }
            }
            if edits.isEmpty && additions.isEmpty {
                emitOriginal(0..<original.count)
                return
            }
            edits.sort { $0.range.lowerBound < $1.range.lowerBound }
            var cursor = 0
            // Additions go right after the opening brace.
            if !additions.isEmpty, let brace = bytes.firstIndex(of: UInt8(ascii: "{")) {
                emitOriginal(0..<(brace + 1))
                cursor = brace + 1
                for (k, a) in additions.enumerated() {
                    if k > 0 { emitText(",") }
                    emitText(a)
                }
                if facts.hasMembers { emitText(",") }
            }
            for edit in edits {
                emitOriginal(cursor..<edit.range.lowerBound)
                emitText(edit.replacement)
                cursor = edit.range.upperBound
            }
            emitOriginal(cursor..<original.count)
        }
    }
}

extension ChatRequest {
    /// An attempt's body whose only edit is the client's `model` value replaced (or none): the
    /// usual one. Its size is known before it is written, so a caller can write a head that
    /// states it and then the body, straight into one buffer.
    public struct ModelOnlyBody: Sendable {
        /// The model, the client's value it replaces, and the model as a JSON string when it needs
        /// escaping (else it goes between quotes as it is); nil: the body as sent.
        private let replacement: (model: String, span: Range<Int>, escaped: String?)?
        /// The body's size in bytes.
        public let count: Int

        /// Nil unless `writeBody(model:includeUsage:prefill:)` would at most replace the client's
        /// `model`: no usage option to add, no prefill, and a `model` sent if one is to be set.
        public init?(_ chat: ChatRequest, model: String?, includeUsage: Bool, prefill: String?) {
            guard prefill == nil, !(includeUsage && chat.stream && !chat.clientWantsStreamUsage) else { return nil }
            guard let model else {
                replacement = nil
                count = chat.bytes.count
                return
            }
            guard let span = chat.facts.modelSpan else { return nil }
            // `JSONValue.quoted` escapes these only; a model without them is itself between quotes.
            let plain = !model.utf8.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
            let escaped = plain ? nil : JSONValue.quoted(model)
            replacement = (model, span, escaped)
            count = chat.bytes.count - span.count + (escaped?.utf8.count ?? model.utf8.count + 2)
        }

        /// Hands the body to `emit`: the bytes before the client's value, the new value, the bytes
        /// after it (`chat` is the request this was made for).
        public func write(_ chat: ChatRequest, _ emit: (UnsafeRawBufferPointer) -> Void) {
            chat.bytes.withUnsafeBytes { original in
                guard let (model, span, escaped) = replacement else {
                    if !original.isEmpty { emit(original) }
                    return
                }
                if span.lowerBound > 0 { emit(UnsafeRawBufferPointer(rebasing: original[..<span.lowerBound])) }
                if var value = escaped {
                    value.withUTF8 { emit(UnsafeRawBufferPointer($0)) }
                } else {
                    var value = model
                    withUnsafeBytes(of: UInt8(ascii: "\"")) { quote in
                        emit(quote)
                        value.withUTF8 { emit(UnsafeRawBufferPointer($0)) }
                        emit(quote)
                    }
                }
                if span.upperBound < original.count { emit(UnsafeRawBufferPointer(rebasing: original[span.upperBound...])) }
            }
        }
    }
}

/// The once-parsed conversation of a request; a lock guards it (attempts of one request run on
/// one event loop, but the type cannot know that).
final class ParsedConversation: Sendable {
    let value = Mutex<Result<ChatConversation, ChatConversation.Invalid>?>(nil)
}
