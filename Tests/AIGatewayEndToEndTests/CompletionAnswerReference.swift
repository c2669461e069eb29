import AIGatewayAPI
@testable import AIGatewayProxy

/// `CompletionAnswer.inspect`'s usage read as it was before it walked the usage object in place:
/// `JSONParser.scanTopLevel` builds a dictionary of its members (the last of a key given twice
/// wins). The reference for the differential test.
enum CompletionAnswerReference {
    /// The counts `inspect` read from the usage object `usage` (its bytes, braces included).
    static func counts(_ usage: UnsafeRawBufferPointer) -> CompletionAnswer.Usage? {
        guard let members = (try? JSONParser.scanTopLevel(usage)) ?? nil else { return nil }
        func tokens(_ key: String) -> Int { members[key].flatMap { JSONParser.integer(usage, span: $0) } ?? 0 }
        return CompletionAnswer.Usage(input: tokens("prompt_tokens"), output: tokens("completion_tokens"))
    }
}
