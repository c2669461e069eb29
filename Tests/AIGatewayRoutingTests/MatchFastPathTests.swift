import AIGatewayAPI
@testable import AIGatewayRouting
import Synchronization
import Testing

/// A route with one `PathPrefix` (or `Exact`) match per path, and optional hostnames and headers.
private func route(_ name: String, created: String, paths: [String], exact: Bool = false, hostnames: [String] = [], header: String? = nil) -> Resource? {
    let hosts = hostnames.isEmpty ? "" : "\n  hostnames: [\(hostnames.map { "\"\($0)\"" }.joined(separator: ", "))]"
    let headers = header.map { ", headers: [{name: \($0), value: \"1\"}]" } ?? ""
    let matches = paths.map { "{path: {type: \(exact ? "Exact" : "PathPrefix"), value: \"\($0)\"}\(headers)}" }.joined(separator: ", ")
    let yaml = """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata:
          name: \(name)
          namespace: default
          creationTimestamp: "\(created)"
        spec:\(hosts)
          rules:
          - matches: [\(matches)]
        """
    return (try? ManifestLoader.parse(yaml, source: "test.yaml"))?.resources.first
}

/// Header fields that count how often the matcher reads them.
private final class CountedFields: RequestHeaderFields {
    let fields: [(name: String, value: String)]
    let reads = Atomic<Int>(0)

    init(_ fields: [(name: String, value: String)]) { self.fields = fields }

    func firstValue(where isName: (String) -> Bool) -> String? {
        reads.add(1, ordering: .relaxed)
        return fields.first(where: { isName($0.name) })?.value
    }
}

extension RoutingTable {
    /// The index and a scan of every list agree; the rule's `namespace/name`, or nil.
    fileprivate func checked(_ r: RequestFacts, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        let found = match(r), scanned = matchByScan(r)
        #expect(found?.rule == scanned?.rule && found?.rewrittenPath == scanned?.rewrittenPath, "\(r.host)\(r.path)", sourceLocation: sourceLocation)
        return found.map { "\($0.rule.route)" }
    }
}

/// The matcher's fast path: lookups only at the byte counts some key has (`LengthSet`), and the
/// header fields read only when a rule matches on one.
@Suite("Route matching: the fast path")
struct MatchFastPathTests {
    @Test("a length set answers for every count it holds; counts of 63 bytes and more share one bit")
    func lengthSet() {
        var s = LengthSet()
        #expect(s.isEmpty && !s.mayContain(0) && !s.mayContain(5))
        s.insert(5)
        s.insert(70)
        #expect(!s.isEmpty && s.mayContain(5) && !s.mayContain(4) && !s.mayContain(6))
        #expect(s.mayContain(63) && s.mayContain(70) && s.mayContain(1_000), "one bit for every long key")
        #expect(!s.mayContain(62) && !s.mayContain(0) && !s.mayContain(1))
        #expect(LengthSet(["", "ab", "é"]) == { var e = LengthSet(); e.insert(0); e.insert(2); return e }())
    }

    /// Paths around the keys' lengths: each directory of a long path, the same length with other
    /// bytes, one byte more or less, and keys of 62, 63 and more bytes.
    static let long62 = "/" + String(repeating: "a", count: 61)
    static let long63 = "/" + String(repeating: "b", count: 62)
    static let long70 = "/" + String(repeating: "c", count: 69)
    static let long71 = "/" + String(repeating: "d", count: 70)

    static let paths: [String] = [
        "/", "/v1", "/v2", "/v1/", "/v1/chat", "/v1/chat/completions", "/v1/chat/completionsx", "/v1/chat/completions/x", "/v1/chatx", "/xx/chat",
        "/v1//chat", "//v1", long62, long62 + "/x", long62 + "x", long63, long63 + "/", long63 + "/x", long70, long70 + "/y/z", long70 + "y",
        long71, long71 + "/", String(long71.dropLast()), "/ab", "/ab/c", "/a\u{301}b/x", "/é", "/é/x",
    ]

    @Test("prefixes and exact paths of every length, looked up only at their lengths, match what a scan matches")
    func lengths() throws {
        var compiler = IncrementalCompiler(options: CompileOptions(implicitGateway: true))
        let routes = [
            route("v1", created: "2020-01-01T00:00:00Z", paths: ["/v1"]),
            route("chat", created: "2020-01-02T00:00:00Z", paths: ["/v1/chat"]),
            route("exact", created: "2020-01-03T00:00:00Z", paths: ["/v1/chat/completions", Self.long63], exact: true),
            route("long", created: "2020-01-04T00:00:00Z", paths: [Self.long62, Self.long63, Self.long70]),
            route("other", created: "2020-01-05T00:00:00Z", paths: ["/xy", "/é"]),
            route("host", created: "2020-01-06T00:00:00Z", paths: ["/v1/chat"], hostnames: ["api.example.com", "x.io"]),
            route("wild", created: "2020-01-07T00:00:00Z", paths: ["/ab"], hostnames: ["*.example.com"]),
        ].compactMap { $0 }
        #expect(routes.count == 7)
        for r in routes { compiler.insert(r) }
        let t = compiler.table()
        for host in ["", "api.example.com", "b.example.com", "x.io", "y.io", "api.example.co"] {
            for path in Self.paths { _ = t.checked(RequestFacts(method: "POST", host: host, path: path)) }
        }
        let facts = { (path: String) in RequestFacts(method: "POST", host: "gw", path: path) }
        #expect(t.checked(facts("/v1/chat/completions")) == "default/exact")
        #expect(t.checked(facts("/v1/chat/completions/x")) == "default/chat")
        #expect(t.checked(facts("/v1/chatx")) == "default/v1")
        #expect(t.checked(facts("/xx/chat")) == nil, "a directory as long as a prefix, other bytes")
        #expect(t.checked(facts(Self.long63)) == "default/exact")
        #expect(t.checked(facts(Self.long63 + "/x")) == "default/long")
        #expect(t.checked(facts(Self.long70 + "/y/z")) == "default/long")
        #expect(t.checked(facts(Self.long71)) == nil, "as long as no key, sharing the long keys' bit")
        #expect(t.checked(facts(Self.long62 + "x")) == nil)
        #expect(t.checked(facts("/é/x")) == "default/other")
        #expect(t.checked(RequestFacts(method: "POST", host: "x.io", path: "/v1/chat/1")) == "default/host")
        #expect(t.checked(RequestFacts(method: "POST", host: "b.example.com", path: "/ab/c")) == "default/wild")

        // Keys go as routes go: the others of the same length are still found, the gone ones not.
        compiler.remove(routes[3])
        compiler.remove(routes[5])
        let after = compiler.table()
        for host in ["", "api.example.com", "x.io"] {
            for path in Self.paths { _ = after.checked(RequestFacts(method: "POST", host: host, path: path)) }
        }
        #expect(after.checked(facts(Self.long63)) == "default/exact")
        #expect(after.checked(facts(Self.long63 + "/x")) == nil)
        #expect(after.checked(facts(Self.long70)) == nil)
        #expect(after.checked(RequestFacts(method: "POST", host: "x.io", path: "/v1/chat/1")) == "default/chat")
        compiler.insert(routes[3])
        #expect(compiler.table().checked(facts(Self.long70)) == "default/long")
    }

    @Test("header fields are read only for a rule that matches on a header")
    func lazyHeaders() throws {
        var compiler = IncrementalCompiler(options: CompileOptions(implicitGateway: true))
        let plain = try #require(route("plain", created: "2020-01-01T00:00:00Z", paths: ["/v1"]))
        let headed = try #require(route("headed", created: "2020-01-02T00:00:00Z", paths: ["/h"], header: "x-a"))
        compiler.insert(plain)
        compiler.insert(headed)
        let t = compiler.table()

        let fields = CountedFields([("Content-Type", "application/json"), ("HOST", "API.Example.com:8443"), ("X-A", "1"), ("x-a", "2")])
        let facts = RequestFacts(method: "POST", uri: "/v1/chat?x=1", host: "API.Example.com:8443", fields: fields)
        #expect(facts.host == "api.example.com" && facts.path == "/v1/chat")
        #expect(t.checked(facts) == "default/plain")
        #expect(fields.reads.load(ordering: .relaxed) == 0, "no rule tried matches on a header")

        let h = RequestFacts(method: "POST", uri: "/h/x", host: nil, fields: fields)
        #expect(t.checked(h) == "default/headed", "names compared ignoring case; the first field counts")
        #expect(fields.reads.load(ordering: .relaxed) > 0)
        let second = CountedFields([("x-a", "2"), ("X-A", "1")])
        #expect(t.checked(RequestFacts(method: "POST", uri: "/h", host: nil, fields: second)) == nil, "the first field counts")

        // The same facts as from pairs of strings (which find the host themselves).
        let pairs = RequestFacts(method: "POST", uri: "/h/x", headers: fields.fields)
        #expect(pairs.host == "api.example.com" && pairs.path == h.path && t.checked(pairs) == "default/headed")
        for host in ["[::1]:80", "Example.COM", "h:1:2", "", "[::1", "127.0.0.1:8080", "h:", ":80", ":", "é.example:1", "É.example", "a.b", "[::1]"] {
            let a = RequestFacts(method: "GET", uri: "/", host: host, fields: second)
            let b = RequestFacts(method: "GET", uri: "/", headers: [(name: "Host", value: host)])
            #expect(a.host == Self.referenceHost(host) && b.host == a.host, "\(host)")
        }
    }

    /// The host as `RequestFacts` read it before its fast path (by substrings).
    static func referenceHost(_ value: String) -> String {
        var host = Substring(value)
        if host.utf8.first == UInt8(ascii: "[") {
            if let close = host.utf8.firstIndex(of: UInt8(ascii: "]")) { host = host[...close] }
        } else if let colon = host.utf8.lastIndex(of: UInt8(ascii: ":")) {
            host = host[..<colon]
        }
        return host.utf8.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") } ? host.lowercased() : String(host)
    }

    @Test("the query is parsed when asked, as it was when built")
    func lazyQuery() {
        let f = RequestFacts(method: "GET", uri: "/q?a=%31&b&c=x+y&=v&d=%zz&&e=1=2", host: nil, fields: CountedFields([]))
        #expect(f.path == "/q" && f.host == "")
        #expect(f.query.map { "\($0.name)|\($0.value)" } == ["a|1", "b|", "c|x y", "|v", "d|%zz", "e|1=2"])
        #expect(RequestFacts(method: "GET", uri: "/q?", headers: []).query.isEmpty)
        #expect(RequestFacts(method: "GET", uri: "/q", headers: []).query.isEmpty)
    }
}
