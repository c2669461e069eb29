import AIGatewayRouting
import NIOHTTP1
import Testing

@testable import AIGatewayProxy

/// The facts the gateway builds from a client's parsed head (`RequestHead`: the host found in its
/// bytes, the fields searched in place) are the facts built from the head's fields copied into
/// pairs, as before.
@Suite("Request facts from the parsed head")
struct RequestHeaderFieldsTests {
    /// Nil when the server's parser refuses the head (the gateway never sees it).
    static func facts(_ fields: [(String, String)], uri: String = "/v1/chat") -> (head: RequestFacts, pairs: RequestFacts)? {
        let headers = HTTPHeaders(fields)
        guard let parsed = RequestHead.from(HTTPRequestHead(version: .http1_1, method: .POST, uri: uri, headers: headers)) else { return nil }
        let head = RequestFacts(method: "POST", uri: uri, host: parsed.first("host").map { parsed.string($0) }, fields: RequestHeaderFieldsOfHead(head: parsed))
        let pairs = RequestFacts(method: "POST", uri: uri, headers: headers.map { (name: $0.name, value: $0.value) })
        return (head, pairs)
    }

    static func fields(_ fields: [(String, String)]) -> RequestHeaderFieldsOfHead? {
        RequestHead.from(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/", headers: HTTPHeaders(fields))).map { RequestHeaderFieldsOfHead(head: $0) }
    }

    @Test("the host: the first field named Host in any ASCII case, port and case dropped")
    func host() {
        for fields in [
            [("Host", "a.example.com")], [("HOST", "A.Example.COM:8443")], [("hOsT", "[::1]:8080"), ("Host", "second")],
            [("x-host", "no"), ("hosts", "no"), ("host", "yes")], [], [("Content-Type", "x")], [("host", "")],
        ] {
            guard let (head, pairs) = Self.facts(fields) else { continue }
            #expect(head.host == pairs.host, "\(fields)")
        }
        #expect(Self.facts([("HOST", "A.Example.COM:8443")])?.head.host == "a.example.com")
        #expect(Self.facts([("x-host", "no"), ("host", "yes")])?.head.host == "yes")
        #expect(Self.facts([("hOsT", "[::1]:8080")])?.head.host == Self.facts([("hOsT", "[::1]:8080")])?.pairs.host)
    }

    @Test("a header looked up in place: names ignoring case, the first field")
    func fields() {
        let fields = Self.fields([("X-Env", "prod"), ("x-env", "stage"), ("Other", "1")])
        #expect(fields != nil)
        guard let fields else { return }
        #expect(fields.firstValue(where: { $0.lowercased() == "x-env" }) == "prod")
        #expect(fields.firstValue(where: { $0 == "x-env" }) == "stage")
        #expect(fields.firstValue(where: { $0 == "missing" }) == nil)
    }
}
