import AIGatewayAPI
@testable import AIGatewayProviders

/// `ChatRequest` as it was before its body was read in one pass (`JSONParser.scanTopLevel`'s
/// dictionary of top-level spans and a dictionary of the members read, parsed as values), kept
/// verbatim as the reference the differential test compares the current request with: the same
/// facts, the same bodies written, the same errors word for word.
struct ChatRequestReference {
    let bytes: [UInt8]
    let spans: [String: JSONMemberSpan]
    let read: [String: JSONValue]
    let messagesEmpty: Bool
    let model: String?
    let stream: Bool
    let clientWantsStreamUsage: Bool

    init(bytes: [UInt8]) throws(ChatRequest.Invalid) {
        let (spans, read, messagesEmpty) = try Self.check(bytes)
        self.bytes = bytes
        self.spans = spans
        self.read = read
        self.messagesEmpty = messagesEmpty
        // Read once here: every attempt asks.
        self.model = read["model"]?.stringValue
        self.stream = read["stream"] == .bool(true)
        self.clientWantsStreamUsage = read["stream_options"]?["include_usage"] == .bool(true)
    }

    /// Validates the body; returns its top-level spans, the members read, and whether `messages` is empty.
    private static func check(_ bytes: [UInt8]) throws(ChatRequest.Invalid) -> (spans: [String: JSONMemberSpan], read: [String: JSONValue], messagesEmpty: Bool) {
        let scanned: [String: JSONMemberSpan]?
        do {
            scanned = try JSONParser.scanTopLevel(bytes)
        } catch {
            throw ChatRequest.Invalid(description: "request body is not valid JSON: \(error.description)")
        }
        guard let spans = scanned else {
            let found = (try? JSONParser.parse(bytes))?.typeName ?? "another value"
            throw ChatRequest.Invalid(description: "request body must be a JSON object, found \(found)")
        }
        var read: [String: JSONValue] = [:]
        for key in ["model", "stream", "stream_options"] {
            guard let span = spans[key] else { continue }
            // Already validated as part of the document.
            read[key] = (try? JSONParser.parse(bytes[span.value])) ?? .null
        }
        if let m = read["model"], m != .null, m.stringValue == nil {
            throw ChatRequest.Invalid(description: "'model' must be a string")
        }
        if let s = read["stream"], s != .null, case .bool = s {} else if read["stream"] != nil && read["stream"] != .null {
            throw ChatRequest.Invalid(description: "'stream' must be a boolean")
        }
        var messagesEmpty = true
        if let span = spans["messages"] {
            guard bytes[span.value.lowerBound] == UInt8(ascii: "[") else {
                throw ChatRequest.Invalid(description: "'messages' must be an array")
            }
            let inside = bytes[(span.value.lowerBound + 1)..<span.value.upperBound]
            messagesEmpty = inside.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) } == UInt8(ascii: "]")
        }
        return (spans, read, messagesEmpty)
    }

    /// The body for one attempt.
    ///
    /// - Parameters:
    ///   - model: the entry's model; replaces (or adds) the client's `model`. Nil keeps the client's.
    ///   - includeUsage: set `stream_options.include_usage` so the gateway can count tokens.
    ///   - prefill: assistant text already sent to the client; appended as an assistant message so a
    ///     model that honours prefill continues the answer.
    func body(model: String?, includeUsage: Bool = false, prefill: String? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 64)
        writeBody(model: model, includeUsage: includeUsage, prefill: prefill) { out.append(contentsOf: $0) }
        return out
    }

    /// The body for one attempt, handed to `emit` piece by piece (spans of the client's bytes and
    /// the rewritten members), so a caller can write it where it goes without an interim copy.
    /// The parameters are those of `body(model:includeUsage:prefill:)`.
    func writeBody(model: String?, includeUsage: Bool = false, prefill: String? = nil, _ emit: (UnsafeRawBufferPointer) -> Void) {
        var edits: [(range: Range<Int>, replacement: String)] = []
        var additions: [String] = []
        if let model {
            if let span = spans["model"] {
                edits.append((span.value, JSONValue.quoted(model)))
            } else {
                additions.append("\"model\":\(JSONValue.quoted(model))")
            }
        }
        if includeUsage && stream && !clientWantsStreamUsage {
            if let span = spans["stream_options"], case .object(var o) = read["stream_options"] {
                o["include_usage"] = .bool(true)
                edits.append((span.value, JSONValue.object(o).canonicalJSON()))
            } else if spans["stream_options"] != nil {
                edits.append((spans["stream_options"]!.value, "{\"include_usage\":true}"))
            } else {
                additions.append("\"stream_options\":{\"include_usage\":true}")
            }
        }
        if let prefill, let span = spans["messages"] {
            // Keep the original message bytes up to the closing bracket, then add the partial answer.
            var close = span.value.upperBound - 1
            while close > span.value.lowerBound, bytes[close] != UInt8(ascii: "]") { close -= 1 }
            var text = String(decoding: bytes[span.value.lowerBound..<close], as: UTF8.self)
            if !messagesEmpty { text += "," }
            text += "{\"role\":\"assistant\",\"content\":\(JSONValue.quoted(prefill))}]"
            edits.append((span.value, text))
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
                if !spans.isEmpty { emitText(",") }
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
