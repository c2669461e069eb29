import AIGatewayRouting
import NIOHTTP1
import Testing

@testable import AIGatewayProxy

/// The facts the gateway builds from a parsed head (the host found by `HTTPHeaders.first(name:)`,
/// the fields searched in place) are the facts built from the head's fields copied into pairs,
/// as before.
@Suite("Request facts from the parsed head")
struct RequestHeaderFieldsTests {
    static func facts(_ fields: [(String, String)], uri: String = "/v1/chat") -> (head: RequestFacts, pairs: RequestFacts) {
        let headers = HTTPHeaders(fields)
        let head = RequestFacts(method: "POST", uri: uri, host: headers.first(name: "host"), fields: RequestHeaderFieldsOfHead(headers: headers))
        let pairs = RequestFacts(method: "POST", uri: uri, headers: headers.map { (name: $0.name, value: $0.value) })
        return (head, pairs)
    }

    @Test("the host: the first field named Host in any ASCII case, port and case dropped")
    func host() {
        for fields in [
            [("Host", "a.example.com")], [("HOST", "A.Example.COM:8443")], [("hOsT", "[::1]:8080"), ("Host", "second")],
            [("x-host", "no"), ("hosts", "no"), ("host", "yes")], [], [("Content-Type", "x")], [("host", "")],
        ] {
            let (head, pairs) = Self.facts(fields)
            #expect(head.host == pairs.host, "\(fields)")
        }
        #expect(Self.facts([("HOST", "A.Example.COM:8443")]).head.host == "a.example.com")
        #expect(Self.facts([("x-host", "no"), ("host", "yes")]).head.host == "yes")
    }

    @Test("a header looked up in place: names ignoring case, the first field")
    func fields() {
        let fields = RequestHeaderFieldsOfHead(headers: HTTPHeaders([("X-Env", "prod"), ("x-env", "stage"), ("Other", "1")]))
        #expect(fields.firstValue(where: { $0.lowercased() == "x-env" }) == "prod")
        #expect(fields.firstValue(where: { $0 == "x-env" }) == "stage")
        #expect(fields.firstValue(where: { $0 == "missing" }) == nil)
    }
}
