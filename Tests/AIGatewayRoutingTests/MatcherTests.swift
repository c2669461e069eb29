import AIGatewayAPI
import AIGatewayRouting
import Testing

/// An HTTPRoute with no parent (standalone listener) and the given rules.
private func route(
    _ name: String, namespace: String = "default", created: String? = nil, hostnames: [String] = [], rules: String
) -> String {
    let hosts = hostnames.isEmpty ? "" : "\n  hostnames: [\(hostnames.map { "\"\($0)\"" }.joined(separator: ", "))]"
    let ts = created.map { "\n  creationTimestamp: \"\($0)\"" } ?? ""
    return """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata:
          name: \(name)
          namespace: \(namespace)\(ts)
        spec:\(hosts)
          rules:
        \(rules.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        ---

        """
}

/// A rule with one match, given as flow-style YAML of the match.
private func rule(_ match: String) -> String { "- matches: [\(match)]" }

@Suite("Route matching")
struct MatcherTests {
    // MARK: precedence

    @Test("an exact path beats a prefix of the same length")
    func exactBeatsPrefix() throws {
        let t = try compile(
            route("prefix", created: "2020-01-01T00:00:00Z", rules: rule("{path: {type: PathPrefix, value: /v1/chat/completions}}"))
                + route("exact", created: "2024-01-01T00:00:00Z", rules: rule("{path: {type: Exact, value: /v1/chat/completions}}")))
        #expect(t.which(req("/v1/chat/completions")) == "default/exact#0")
        #expect(t.which(req("/v1/chat/completions/x")) == "default/prefix#0")
    }

    @Test("the longest prefix wins, whatever the order")
    func longestPrefix() throws {
        let t = try compile(
            route("short", created: "2020-01-01T00:00:00Z", rules: rule("{path: {type: PathPrefix, value: /v1}}"))
                + route("long", created: "2024-01-01T00:00:00Z", rules: rule("{path: {type: PathPrefix, value: /v1/chat}}"))
                + route("root", created: "2019-01-01T00:00:00Z", rules: rule("{path: {type: PathPrefix, value: /}}")))
        #expect(t.which(req("/v1/chat/completions")) == "default/long#0")
        #expect(t.which(req("/v1/chat")) == "default/long#0")
        #expect(t.which(req("/v1/models")) == "default/short#0")
        #expect(t.which(req("/v1")) == "default/short#0")
        #expect(t.which(req("/v2")) == "default/root#0")
        #expect(t.which(req("/")) == "default/root#0")
    }

    @Test("a method match beats none; a longer prefix beats a method")
    func method() throws {
        let t = try compile(
            route("any", created: "2020-01-01T00:00:00Z", rules: rule("{path: {value: /a}}"))
                + route("post", created: "2024-01-01T00:00:00Z", rules: rule("{path: {value: /a}, method: POST}"))
                + route("longer", created: "2024-06-01T00:00:00Z", rules: rule("{path: {value: /a/b}}")))
        #expect(t.which(req("/a/x", method: "POST")) == "default/post#0")
        #expect(t.which(req("/a/x", method: "GET")) == "default/any#0")
        #expect(t.which(req("/a/b/c", method: "POST")) == "default/longer#0")
    }

    @Test("more header matches win; a method beats headers")
    func headers() throws {
        let t = try compile(
            route(
                "h", created: "2020-01-01T00:00:00Z",
                rules: """
                    - matches: [{path: {value: /h}, headers: [{name: x-a, value: "1"}]}]
                    - matches: [{path: {value: /h}, headers: [{name: x-a, value: "1"}, {name: x-b, value: "2"}]}]
                    - matches: [{path: {value: /h}}]
                    """)
                + route("m", created: "2024-01-01T00:00:00Z", rules: rule("{path: {value: /h}, method: PUT}")))
        #expect(t.which(req("/h", headers: [("x-a", "1"), ("x-b", "2")])) == "default/h#1")
        #expect(t.which(req("/h", headers: [("X-B", "2"), ("X-A", "1")])) == "default/h#1", "header names are case-insensitive")
        #expect(t.which(req("/h", headers: [("x-a", "1"), ("x-b", "3")])) == "default/h#0")
        #expect(t.which(req("/h", headers: [("x-b", "2")])) == "default/h#2")
        #expect(t.which(req("/h", headers: [("x-a", "1 ")])) == "default/h#2", "values match exactly")
        #expect(t.which(req("/h", method: "PUT", headers: [("x-a", "1"), ("x-b", "2")])) == "default/m#0")
    }

    @Test("more query matches win; headers beat query parameters")
    func queryParams() throws {
        let t = try compile(
            route(
                "q", created: "2020-01-01T00:00:00Z",
                rules: """
                    - matches: [{path: {value: /q}, queryParams: [{name: a, value: "1"}]}]
                    - matches: [{path: {value: /q}, queryParams: [{name: a, value: "1"}, {name: b, value: "2"}]}]
                    - matches: [{path: {value: /q}}]
                    """)
                + route("h", created: "2024-01-01T00:00:00Z", rules: rule("{path: {value: /q}, headers: [{name: x, value: y}]}")))
        #expect(t.which(req("/q", query: [("b", "2"), ("a", "1")])) == "default/q#1")
        #expect(t.which(req("/q", query: [("a", "1")])) == "default/q#0")
        #expect(t.which(req("/q", query: [("A", "1")])) == "default/q#2", "query names are case-sensitive")
        #expect(t.which(req("/q", query: [("a", "1"), ("b", "2")], headers: [("x", "y")])) == "default/h#0")
        let decoded = RequestFacts(method: "GET", uri: "/q?b=2&a=%31&c", headers: [("Host", "h")])
        #expect(t.which(decoded) == "default/q#1", "query values are percent-decoded")
    }

    @Test("ties go to the oldest route, then to namespace/name, then to rule order")
    func tieBreaking() throws {
        let same = rule("{path: {value: /t}}")
        let byAge = try compile(
            route("a-newer", created: "2024-05-01T00:00:00Z", rules: same) + route("z-older", created: "2024-04-30T23:59:59Z", rules: same))
        #expect(byAge.which(req("/t")) == "default/z-older#0")

        let byName = try compile(
            route("b", namespace: "ns2", created: "2024-01-01T00:00:00Z", rules: same)
                + route("z", namespace: "ns1", created: "2024-01-01T00:00:00Z", rules: same)
                + route("a", namespace: "ns2", created: "2024-01-01T00:00:00Z", rules: same))
        #expect(byName.which(req("/t")) == "ns1/z#0")

        let untimed = try compile(route("a", rules: same) + route("b", created: "2024-01-01T00:00:00Z", rules: same))
        #expect(untimed.which(req("/t")) == "default/b#0", "a route with a creation time is older than one without")

        let rules = try compile(
            route(
                "r",
                rules: """
                    - matches: [{path: {value: /x}}]
                    - matches: [{path: {value: /t}}, {path: {value: /u}}]
                    - matches: [{path: {value: /t}}]
                    """))
        #expect(rules.which(req("/t")) == "default/r#1")
        #expect(rules.which(req("/u")) == "default/r#1")
    }

    // MARK: path semantics

    @Test("prefixes match whole path elements")
    func elementWisePrefix() throws {
        let t = try compile(route("foo", rules: rule("{path: {value: /foo}}")) + route("slash", rules: rule("{path: {value: /bar/}}")))
        #expect(t.which(req("/foo")) == "default/foo#0")
        #expect(t.which(req("/foo/")) == "default/foo#0")
        #expect(t.which(req("/foo/bar")) == "default/foo#0")
        #expect(t.which(req("/foobar")) == nil)
        #expect(t.which(req("/fo")) == nil)
        #expect(t.which(req("/Foo")) == nil, "paths are case-sensitive")
        // A trailing slash in the prefix is ignored.
        #expect(t.which(req("/bar")) == "default/slash#0")
        #expect(t.which(req("/bar/baz")) == "default/slash#0")
        #expect(t.which(req("/barn")) == nil)
    }

    @Test("exact and regular-expression paths match the whole path")
    func exactAndRegex() throws {
        let t = try compile(
            route("exact", rules: rule("{path: {type: Exact, value: /foo}}"))
                + route("regex", rules: rule("{path: {type: RegularExpression, value: \"/v[0-9]+/models\"}}")))
        #expect(t.which(req("/foo")) == "default/exact#0")
        #expect(t.which(req("/foo/")) == nil)
        #expect(t.which(req("/foo/bar")) == nil)
        #expect(t.which(req("/v1/models")) == "default/regex#0")
        #expect(t.which(req("/v12/models")) == "default/regex#0")
        #expect(t.which(req("/v1/models/x")) == nil)
        #expect(t.which(req("/x/v1/models")) == nil)
    }

    @Test("header and query regular expressions match whole values")
    func valueRegex() throws {
        let t = try compile(
            route(
                "r",
                rules: """
                    - matches: [{headers: [{type: RegularExpression, name: x-env, value: "prod|stage"}]}]
                    - matches: [{queryParams: [{type: RegularExpression, name: v, value: "[0-9]+"}]}]
                    """))
        #expect(t.which(req("/", headers: [("x-env", "prod")])) == "default/r#0")
        #expect(t.which(req("/", headers: [("X-Env", "stage")])) == "default/r#0")
        #expect(t.which(req("/", headers: [("x-env", "production")])) == nil)
        #expect(t.which(req("/", query: [("v", "42")])) == "default/r#1")
        #expect(t.which(req("/", query: [("v", "42a")])) == nil)
        #expect(t.which(req("/")) == nil)
    }

    @Test("no matching route gives nil")
    func noMatch() throws {
        let t = try compile(route("only", rules: rule("{path: {type: Exact, value: /only}, method: POST}")))
        #expect(t.which(req("/only", method: "GET")) == nil)
        #expect(t.which(req("/other")) == nil)
        #expect(RoutingTable.empty.match(req("/")) == nil)
    }

    // MARK: hostnames

    @Test("exact hostnames, then wildcards, then routes without hostnames")
    func hostnames() throws {
        let t = try compile(
            route("exact", hostnames: ["api.example.com"], rules: rule("{path: {value: /}}"))
                + route("wild", hostnames: ["*.example.com"], rules: rule("{path: {value: /}}"))
                + route("deep", hostnames: ["*.eu.example.com"], rules: rule("{path: {value: /}}"))
                + route("any", rules: rule("{path: {type: Exact, value: /x}}"))
                + route("other", hostnames: ["other.org"], rules: rule("{path: {value: /only}}")))
        #expect(t.which(req("/x", host: "api.example.com")) == "default/exact#0", "hostname specificity comes before path precedence")
        #expect(t.which(req("/x", host: "foo.example.com")) == "default/wild#0")
        #expect(t.which(req("/x", host: "a.b.example.com")) == "default/wild#0", "a wildcard covers more than one label")
        #expect(t.which(req("/x", host: "fr.eu.example.com")) == "default/deep#0", "the longest wildcard suffix first")
        #expect(t.which(req("/x", host: "example.com")) == "default/any#0", "*.example.com does not match example.com")
        #expect(t.which(req("/y", host: "example.com")) == nil)
        #expect(t.which(req("/x", host: "other.org")) == "default/any#0", "a host's own routes that do not match fall through")
        #expect(t.which(req("/only/a", host: "other.org")) == "default/other#0")
        #expect(t.which(req("/only", host: "else.org")) == nil)

        let facts = RequestFacts(method: "GET", uri: "/z", headers: [("HOST", "API.Example.COM:8443")])
        #expect(facts.host == "api.example.com")
        #expect(t.which(facts) == "default/exact#0")
    }

    @Test("request facts from a request target")
    func requestFacts() {
        let f = RequestFacts(method: "POST", uri: "/v1/chat?model=a+b&x=%2F&flag", headers: [("host", "[::1]:8080")])
        #expect(f.path == "/v1/chat")
        #expect(f.host == "[::1]")
        #expect(f.query.map { "\($0.name)=\($0.value)" } == ["model=a b", "x=/", "flag="])
        #expect(RequestFacts(method: "GET", uri: "?a=1", headers: []).path == "/")
        #expect(RequestFacts(method: "GET", uri: "/", headers: []).host == "")
    }

    // MARK: rewrites

    @Test("ReplaceFullPath replaces the whole path")
    func replaceFullPath() throws {
        let t = try compile(guideRouteYAML.replacingOccurrences(of: "  parentRefs:\n    - name: ai-gateway\n      namespace: kgateway-system\n", with: ""))
        #expect(t.match(req("/model"))?.rewrittenPath == "/v1/chat/completions")
        #expect(t.match(req("/model/anything/else"))?.rewrittenPath == "/v1/chat/completions")
        #expect(t.match(req("/modelx")) == nil)
    }

    /// The Gateway API's own table for ReplacePrefixMatch (HTTPPathModifier).
    @Test(
        "ReplacePrefixMatch",
        arguments: [
            ("/foo", "/xyz", "/foo/bar", "/xyz/bar"),
            ("/foo", "/xyz/", "/foo/bar", "/xyz/bar"),
            ("/foo/", "/xyz", "/foo/bar", "/xyz/bar"),
            ("/foo/", "/xyz/", "/foo/bar", "/xyz/bar"),
            ("/foo", "/xyz", "/foo", "/xyz"),
            ("/foo", "/xyz", "/foo/", "/xyz/"),
            ("/foo", "", "/foo/bar", "/bar"),
            ("/foo", "", "/foo/", "/"),
            ("/foo", "", "/foo", "/"),
            ("/foo", "/", "/foo/", "/"),
            ("/foo", "/", "/foo", "/"),
            ("/foo", "/", "/foo/bar", "/bar"),
            ("/", "/xyz", "/foo", "/xyz/foo"),
            ("/", "/xyz/", "/foo", "/xyz/foo"),
            ("/", "/xyz", "/", "/xyz"),
            ("/model", "/v1/chat/completions", "/model", "/v1/chat/completions"),
        ])
    func replacePrefixMatch(prefix: String, replacement: String, path: String, expected: String) throws {
        let t = try compile(
            route(
                "r",
                rules: """
                    - matches: [{path: {type: PathPrefix, value: "\(prefix)"}}]
                      filters:
                      - type: URLRewrite
                        urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: "\(replacement)"}}
                    """))
        #expect(t.match(req(path))?.rewrittenPath == expected)
    }

    @Test("without a path rewrite the path is unchanged")
    func noRewrite() throws {
        let t = try compile(
            route(
                "r",
                rules: """
                    - matches: [{path: {value: /a}}]
                      filters:
                      - {type: URLRewrite, urlRewrite: {hostname: elsewhere}}
                    - matches: [{path: {value: /b}}]
                    """))
        #expect(t.match(req("/a/1"))?.rewrittenPath == "/a/1")
        #expect(t.match(req("/a/1"))?.rule.rewrite?.hostname == "elsewhere")
        #expect(t.match(req("/b/2"))?.rewrittenPath == "/b/2")
    }

    // MARK: weights

    @Test("weighted targets: boundaries, weight 0 never picked")
    func weights() throws {
        let backends = ["a", "b", "c"].map { name in
            """
            apiVersion: gateway.kgateway.dev/v1alpha1
            kind: Backend
            metadata: {name: \(name)}
            spec: {type: AI, ai: {llm: {openai: {authToken: {kind: Passthrough}}}}}
            ---

            """
        }.joined()
        let refs = """
            - backendRefs:
              - {group: gateway.kgateway.dev, kind: Backend, name: a, weight: 1}
              - {group: gateway.kgateway.dev, kind: Backend, name: zero, weight: 0}
              - {group: gateway.kgateway.dev, kind: Backend, name: b, weight: 3}
              - {group: gateway.kgateway.dev, kind: Backend, name: missing, weight: 2}
              - {group: gateway.kgateway.dev, kind: Backend, name: c}
            """
        let t = try compile(backends + route("w", rules: refs))
        let rule = try #require(t.match(req("/"))?.rule)
        #expect(rule.totalWeight == 7)
        func name(_ roll: Int) -> String? {
            switch rule.pickTarget(roll: roll) {
            case .backend(let n)?: n.name
            case .invalid?: "invalid"
            case nil: nil
            }
        }
        #expect((0..<7).map(name) == ["a", "b", "b", "b", "invalid", "invalid", "c"])
        #expect(name(7) == nil)
        #expect(name(1000) == nil)

        let zero = try compile(
            route("z", rules: "- backendRefs: [{group: gateway.kgateway.dev, kind: Backend, name: a, weight: 0}]"))
        let zr = try #require(zero.match(req("/"))?.rule)
        #expect(zr.totalWeight == 0)
        #expect(zr.pickTarget(roll: 0) == nil)
    }
}
