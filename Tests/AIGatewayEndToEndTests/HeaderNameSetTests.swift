@testable import AIGatewayProxy
import Testing

@Suite("Header names matched without regard to case")
struct HeaderNameSetTests {
    @Test("membership ignores ASCII case and nothing else")
    func membership() {
        let set = HeaderNameSet(["Connection", "content-length", "x-api-key"])
        for name in ["connection", "CONNECTION", "Content-Length", "X-Api-Key", "x-API-key"] {
            #expect(set.contains(name), "\(name)")
        }
        for name in ["connections", "connectio", "content_length", "x-api-keys", "", "kontent-length", "conn\u{e9}ction"] {
            #expect(!set.contains(name), "\(name)")
        }
        #expect(!HeaderNameSet([]).contains("anything"))
    }
}
