import Foundation
import Testing

@testable import AIGatewayTesting

@Suite("Fake provider: Bedrock model id in the path")
struct BedrockFakePathTests {
    /// Foundation's answer, except that a segment whose bytes are not UTF-8 is refused (Foundation
    /// on Linux refuses `%FF` alone but repairs `m%FFx` to U+FFFD).
    static func expected(_ s: String) -> String? {
        guard let decoded = s.removingPercentEncoding, !decoded.unicodeScalars.contains("\u{FFFD}") else { return nil }
        return decoded
    }

    @Test("a model id segment decodes as Foundation's removingPercentEncoding does, invalid escapes included; bytes that are not UTF-8 are refused")
    func decodesAsFoundation() {
        let segments = [
            "anthropic.claude-v2%3A1", "anthropic.claude-v2:1", "plain", "a%2Fb", "%41%42%43", "%e2%82%ac", "%E2%82%AC", "sp%20ace",
            "plus+sign", "%", "%4", "%4g", "%g4", "abc%", "%%41", "%FF", "%C3", "%C3%A9", "%00", "%7e", "a%3a%3A", "",
        ]
        for s in segments {
            #expect(BedrockFakeAPI.percentDecoded(Substring(s)) == Self.expected(s), "\(s)")
        }
        // Every two-character escape, valid or not.
        let hex = Array("0123456789abcdefABCDEFgz%".utf8)
        for h in hex {
            for l in hex {
                let s = "m%" + String(decoding: [h, l], as: UTF8.self) + "x"
                #expect(BedrockFakeAPI.percentDecoded(Substring(s)) == Self.expected(s), "\(s)")
            }
        }
        #expect(BedrockFakeAPI.modelID(path: "/model/anthropic.claude-v2%3A1/converse") == "anthropic.claude-v2:1")
        #expect(BedrockFakeAPI.modelID(path: "/model/bad%zz/converse") == nil)
        #expect(BedrockFakeAPI.modelID(path: "/model//converse") == nil)
        #expect(BedrockFakeAPI.percentDecoded("m%FFx") == nil && BedrockFakeAPI.percentDecoded("m%C3%A9x") == "m\u{E9}x")
    }
}
