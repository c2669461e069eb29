#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the facts of one OpenAI `chat.completion.chunk` straight from its JSON bytes, for every
/// event of a relayed stream: the document is checked as strictly as `JSONParser` checks it (an
/// event it refuses is malformed here too) but nothing is built; only the members the relay needs
/// are looked at. Duplicate keys read as in a parsed object: the last one counts.
/// `ChunkFacts(value:)` is the reference it is tested against.
enum ChunkFactsReader {
    static func read(_ json: UnsafeRawBufferPointer) -> ChunkFacts? {
        readWithText(json)?.facts
    }

    /// Where the one text of a chunk sits: the contents of the string its single choice's
    /// `delta.content` was read from.
    struct TextSpan {
        var range: Range<Int>
        /// The chunk is part of the answer whatever its text (a finish, a tool call, a refusal, an error).
        var tokenWithoutText: Bool
    }

    /// `read`, and where the chunk's text sits when it comes from one string.
    static func readWithText(_ json: UnsafeRawBufferPointer) -> (facts: ChunkFacts, text: TextSpan?)? {
        var s = JSONScanner(json)
        do {
            guard s.peek() == UInt8(ascii: "{") else { return nil }
            var facts = ChunkFacts()
            var choices = Choices()
            var hasError = false
            if try s.enterObject() {
                repeat {
                    let key = try s.key()
                    if s.text(key, is: "choices") {
                        choices = try readChoices(&s)
                    } else if s.text(key, is: "usage") {
                        facts.usage = try readUsage(&s)
                    } else if s.text(key, is: "model") {
                        facts.model = try s.stringValue().map { s.string($0) }
                    } else if s.text(key, is: "error") {
                        hasError = true
                        try s.skipValue()
                    } else {
                        try s.skipValue()
                    }
                } while try s.nextMember()
            }
            s.skipWhitespace()
            guard s.atEnd else { return nil }
            facts.content = choices.content
            facts.isToken = choices.isToken
            facts.finished = choices.finished
            facts.usageOnly = choices.count == 0 && facts.usage != nil
            if hasError {
                facts.isToken = true
                facts.isError = choices.count == 0
            }
            let span = choices.count == 1 ? choices.text.map { TextSpan(range: $0, tokenWithoutText: choices.tokenWithoutText || hasError) } : nil
            return (facts, span)
        } catch {
            return nil
        }
    }

    /// What the `choices` array says, all choices together.
    private struct Choices {
        var count = 0
        var content = ""
        var isToken = false
        var finished = false
        /// The string the content was read from (one choice's), and whether the choices are part
        /// of the answer without it.
        var text: Range<Int>?
        var tokenWithoutText = false
    }

    /// `choices`: an array of choices; anything else counts as none.
    private static func readChoices(_ s: inout JSONScanner) throws(JSONScanner.Invalid) -> Choices {
        var choices = Choices()
        guard s.peek() == UInt8(ascii: "[") else {
            try s.skipValue()
            return choices
        }
        guard try s.enterArray() else { return choices }
        repeat {
            choices.count += 1
            guard s.peek() == UInt8(ascii: "{") else {
                try s.skipValue()
                continue
            }
            var delta: Delta?
            var finished = false
            if try s.enterObject() {
                repeat {
                    let key = try s.key()
                    if s.text(key, is: "delta") {
                        delta = try readDelta(&s)
                    } else if s.text(key, is: "finish_reason") {
                        finished = try !s.skipValueIsNull()
                    } else {
                        try s.skipValue()
                    }
                } while try s.nextMember()
            }
            if let delta {
                if let text = delta.content {
                    choices.text = text.range
                    let content = s.string(text)
                    if !content.isEmpty {
                        choices.content += content
                        choices.isToken = true
                    }
                }
                if delta.toolCall || delta.refusal {
                    choices.isToken = true
                    choices.tokenWithoutText = true
                }
            }
            if finished {
                choices.finished = true
                choices.isToken = true
                choices.tokenWithoutText = true
            }
        } while try s.nextElement()
        return choices
    }

    /// What one choice's `delta` says (nil when it is not an object).
    private struct Delta {
        var content: JSONScanner.Text?
        /// `tool_calls` or `function_call` is there (whatever its value).
        var toolCall = false
        /// A non-empty `refusal`.
        var refusal = false
    }

    private static func readDelta(_ s: inout JSONScanner) throws(JSONScanner.Invalid) -> Delta? {
        guard s.peek() == UInt8(ascii: "{") else {
            try s.skipValue()
            return nil
        }
        var delta = Delta()
        guard try s.enterObject() else { return delta }
        repeat {
            let key = try s.key()
            if s.text(key, is: "content") {
                delta.content = try s.stringValue()
            } else if s.text(key, is: "tool_calls") || s.text(key, is: "function_call") {
                delta.toolCall = true
                try s.skipValue()
            } else if s.text(key, is: "refusal") {
                delta.refusal = try s.stringValue().map { !$0.range.isEmpty } ?? false
            } else {
                try s.skipValue()
            }
        } while try s.nextMember()
        return delta
    }

    /// `usage` (nil when it is not an object): missing counts read as 0.
    private static func readUsage(_ s: inout JSONScanner) throws(JSONScanner.Invalid) -> TokenUsage? {
        guard s.peek() == UInt8(ascii: "{") else {
            try s.skipValue()
            return nil
        }
        var input: Int?
        var output: Int?
        var cached: Int?
        if try s.enterObject() {
            repeat {
                let key = try s.key()
                if s.text(key, is: "prompt_tokens") {
                    input = try s.intValue()
                } else if s.text(key, is: "completion_tokens") {
                    output = try s.intValue()
                } else if s.text(key, is: "prompt_tokens_details") {
                    cached = try readCached(&s)
                } else {
                    try s.skipValue()
                }
            } while try s.nextMember()
        }
        return TokenUsage(input: input ?? 0, output: output ?? 0, cachedInput: cached)
    }

    /// `prompt_tokens_details.cached_tokens`, when there.
    private static func readCached(_ s: inout JSONScanner) throws(JSONScanner.Invalid) -> Int? {
        guard s.peek() == UInt8(ascii: "{") else {
            try s.skipValue()
            return nil
        }
        var cached: Int?
        if try s.enterObject() {
            repeat {
                let key = try s.key()
                if s.text(key, is: "cached_tokens") { cached = try s.intValue() } else { try s.skipValue() }
            } while try s.nextMember()
        }
        return cached
    }
}

/// Reads the chunks of one stream. Every token of a stream is the same chunk but for the text
/// (same id, model, index, nulls), so the last chunk read in full is kept: a chunk with the same
/// bytes before and after its text string is read by comparing those bytes and checking the new
/// string, instead of scanning it all. Replacing one valid string by another keeps a valid
/// document and its facts but the text, so the result is always `ChunkFactsReader.read`'s.
struct ChunkStreamReader {
    /// The last chunk read in full whose text comes from one string, and that string's contents.
    private var template: [UInt8] = []
    private var text = 0..<0
    private var facts = ChunkFacts()
    private var tokenWithoutText = false
    /// The template holds no line break (so neither does a document that matches it).
    private var templateOneLine = false

    mutating func read(_ json: UnsafeRawBufferPointer) -> ChunkFacts? {
        if !template.isEmpty, let f = readLikeTemplate(json) { return f }
        guard let (facts, span) = ChunkFactsReader.readWithText(json) else { return nil }
        if let span {
            template = Array(json)
            text = span.range
            self.facts = facts
            tokenWithoutText = span.tokenWithoutText
            templateOneLine = !template.contains(UInt8(ascii: "\n")) && !template.contains(UInt8(ascii: "\r"))
        } else {
            template = []
            templateOneLine = false
        }
        return facts
    }

    /// The facts of a whole SSE event `data: {...}\n\n` read in place when its data is the
    /// template with another text, else nil (read it the long way). Such data has no line break
    /// (the template has none, and a JSON string holds no raw control character), so the event
    /// is that one `data:` line and its data what `SSEParser.withData` would give.
    func readEventLikeTemplate(_ raw: UnsafeRawBufferPointer) -> ChunkFacts? {
        guard templateOneLine, raw.count > 8, let r = raw.baseAddress,
            raw[raw.count - 1] == UInt8(ascii: "\n"), raw[raw.count - 2] == UInt8(ascii: "\n"),
            r.loadUnaligned(as: UInt32.self) == UInt32(littleEndian: 0x6174_6164),  // "data"
            raw[4] == UInt8(ascii: ":"), raw[5] == UInt8(ascii: " ")
        else { return nil }
        return readLikeTemplate(UnsafeRawBufferPointer(rebasing: raw[6..<(raw.count - 2)]))
    }

    /// The facts of `json` when it is the template with another text, else nil.
    private func readLikeTemplate(_ json: UnsafeRawBufferPointer) -> ChunkFacts? {
        let prefix = text.lowerBound  // up to and with the opening quote
        let suffix = template.count - text.upperBound  // from the closing quote
        guard json.count >= prefix + suffix, let j = json.baseAddress else { return nil }
        return template.withUnsafeBytes { t -> ChunkFacts? in
            guard let t = t.baseAddress, memcmp(j, t, prefix) == 0 else { return nil }
            var s = JSONScanner(json)
            guard let new = try? s.string(at: prefix - 1), json.count - new.range.upperBound == suffix,
                memcmp(j + new.range.upperBound, t + text.upperBound, suffix) == 0
            else { return nil }
            var f = facts
            f.content = s.string(new)
            f.isToken = tokenWithoutText || !f.content.isEmpty
            return f
        }
    }
}
