import AIGatewayAPI
@testable import AIGatewayProviders
import Testing

/// `ChatRequest.ModelOnlyBody` (the usual attempt's body, sized before it is written) against
/// `ChatRequestReference`'s bodies: taken exactly when the only edit is the model, the size it
/// states is the size of the body, and it writes the reference's bytes.
@Suite("The chat body whose only edit is the model")
struct ChatRequestModelOnlyBodyTests {
    static let models: [String?] = [nil, "gpt-4o", "we\"ird\n\u{1} é", "", String(repeating: "m", count: 300)]

    @Test("over the reader's bodies and models: the reference's bytes and size, and taken when only the model changes")
    func differential() throws {
        var taken = 0
        for text in ChatRequestReaderTests.bodies {
            let bytes = Array(text.utf8)
            guard let ref = try? ChatRequestReference(bytes: bytes), let chat = try? ChatRequest(bytes: bytes) else { continue }
            for model in Self.models {
                for (includeUsage, prefill) in [(false, nil), (true, nil), (false, "so far")] as [(Bool, String?)] {
                    let expected = ref.body(model: model, includeUsage: includeUsage, prefill: prefill)
                    #expect(chat.body(model: model, includeUsage: includeUsage, prefill: prefill) == expected, "\(text)")
                    let onlyModel = prefill == nil && !(includeUsage && ref.stream && !ref.clientWantsStreamUsage) && (model == nil || ref.spans["model"] != nil)
                    let plain = ChatRequest.ModelOnlyBody(chat, model: model, includeUsage: includeUsage, prefill: prefill)
                    #expect((plain != nil) == onlyModel, "\(text) \(String(describing: model)) \(includeUsage) \(String(describing: prefill))")
                    guard let plain else { continue }
                    taken += 1
                    var out: [UInt8] = []
                    plain.write(chat) { out.append(contentsOf: $0) }
                    #expect(out == expected, "\(text)")
                    #expect(plain.count == expected.count, "\(text)")
                }
            }
        }
        #expect(taken > 50)
    }
}
