import AIGatewayProviders
import Testing

/// Header names compare equal when their bytes are, ASCII letters without regard to case; the
/// comparison over the strings' storage must say what the byte-by-byte one said.
@Suite("Header names: compared over their storage as byte by byte")
struct HeaderNameStorageTests {
    /// The comparison as it was written before (over the UTF-8 views, byte by byte).
    static func reference(_ a: String, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count
            && zip(a.utf8, b.utf8).allSatisfy { x, y in
                x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= UInt8(ascii: "a") && (x | 0x20) <= UInt8(ascii: "z"))
            }
    }

    static let names = [
        "", "a", "A", "x-amzn-RequestId", "X-AMZN-REQUESTID", "x-amzn-requestid", "x-amzn-requestie", "x-amzn-RequestId ",
        "content-type", "Content-Type", "content_type", "@", "`", "[", "{", "^", "~", "é", "É", "ß", "a-very-long-header-name-past-the-small-string-size",
        "A-VERY-LONG-HEADER-NAME-PAST-THE-SMALL-STRING-SIZE", "a-very-long-header-name-past-the-small-string-sizf", "0", "\u{10}", "\u{30}",
    ]

    @Test("every pair compares as the reference compares it")
    func pairs() {
        var equalPairs = 0
        for a in Self.names {
            for b in Self.names {
                let r = Self.reference(a, b)
                #expect(HeaderName.equal(a, b) == r, "\(a) \(b)")
                // A string without contiguous storage (a substring-backed view) alike.
                #expect(HeaderName.equal(String(a[...]), b) == r)
                if r { equalPairs += 1 }
            }
        }
        #expect(HeaderName.equal("x-amzn-RequestId", "X-AMZN-REQUESTID") && !HeaderName.equal("@", "`") && !HeaderName.equal("é", "É"))
        #expect(equalPairs > Self.names.count)
    }
}
