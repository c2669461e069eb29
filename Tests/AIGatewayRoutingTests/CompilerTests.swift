import AIGatewayAPI
import AIGatewayProviders
import Foundation
@testable import AIGatewayRouting
import Testing

private let ours = CompileOptions.defaultControllerName
private let guide = NamespacedName(namespace: "kgateway-system", name: "model-failover")

private func backendDoc(_ name: String, namespace: String = "default", annotations: String = "", ai: String) -> String {
    """
    apiVersion: gateway.kgateway.dev/v1alpha1
    kind: Backend
    metadata:
      name: \(name)
      namespace: \(namespace)\(annotations.isEmpty ? "" : "\n  annotations: {\(annotations)}")
    spec:
      type: AI
      ai: \(ai)
    ---

    """
}

/// A route in `namespace` whose single rule points at the given backendRefs (flow YAML items).
private func routeDoc(_ name: String, namespace: String = "default", parents: String = "[]", refs: [String], generation: Int = 1) -> String {
    """
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: \(name), namespace: \(namespace), generation: \(generation)}
    spec:
      parentRefs: \(parents)
      rules:
      - backendRefs: [\(refs.joined(separator: ", "))]
    ---

    """
}

private func ref(_ name: String, namespace: String? = nil, group: String = "gateway.kgateway.dev", kind: String = "Backend") -> String {
    "{group: \(group), kind: \(kind), name: \(name)\(namespace.map { ", namespace: \($0)" } ?? "")}"
}

private func grantDoc(in namespace: String, from: String, toName: String? = nil, fromKind: String = "HTTPRoute") -> String {
    """
    apiVersion: gateway.networking.k8s.io/v1beta1
    kind: ReferenceGrant
    metadata: {name: grant, namespace: \(namespace)}
    spec:
      from: [{group: gateway.networking.k8s.io, kind: \(fromKind), namespace: \(from)}]
      to: [{group: gateway.kgateway.dev, kind: Backend\(toName.map { ", name: \($0)" } ?? "")}]
    ---

    """
}

private let passthroughLLM = "{llm: {openai: {authToken: {kind: Passthrough}}}}"

@Suite("Route compiler")
struct CompilerTests {
    // MARK: Backend status

    @Test("the guide with its Secret: Accepted, keys with Bearer stripped, three priorities")
    func guideAccepted() throws {
        let t = try compile(yamlDocs(guideBackendYAML, openAISecret("Bearer sk-guide-123"), guideRouteYAML, guideGatewayYAML), implicitGateway: false)
        #expect(t.status.backends[guide] == [Condition(type: "Accepted", status: true, reason: "Accepted", message: "Backend accepted", observedGeneration: 1)])
        let b = try #require(t.backends[guide])
        #expect(b.problem == nil)
        #expect(b.priorities.map { $0.map(\.model) } == [["gpt-4o"], ["gpt-4.0-turbo"], ["gpt-3.5-turbo"]])
        #expect(b.entries.allSatisfy { $0.auth == .key(SecretString("sk-guide-123")) })
        #expect(b.entries.allSatisfy { $0.isUsable })
        #expect(
            b.entries.map(\.id) == ["gpt-4o", "gpt-4.0-turbo", "gpt-3.5-turbo"].map {
                "kgateway-system/model-failover openai https://api.openai.com:443/v1/chat/completions \($0) #0"
            })
        #expect(b.entries.map(\.fieldPath) == (0..<3).map { "spec.ai.multipool.priorities[\($0)].pool[0]" })
        #expect(b.entries.map(\.priority) == [0, 1, 2])
        #expect(t.status.problems.isEmpty)
    }

    @Test("entry ids name what the entry is: reordering priorities keeps each model's id; identical entries stay distinct")
    func entryIdentity() throws {
        func pool(_ models: [String]) -> String {
            let levels = models.map { "{pool: [{provider: {openai: {model: \($0), authToken: {kind: Passthrough}}}}]}" }
            return "{multipool: {priorities: [\(levels.joined(separator: ", "))]}}"
        }
        func ids(_ models: [String]) throws -> [String: [String]] {
            let b = try #require(try compile(backendDoc("b", ai: pool(models))).backends[NamespacedName(namespace: "default", name: "b")])
            return Dictionary(grouping: b.entries, by: \.model).mapValues { $0.map(\.id) }
        }
        let before = try ids(["m1", "m2", "m3"])
        let after = try ids(["m3", "m1", "m2"])
        #expect(before == after, "each model keeps its id when the priorities are reordered")
        #expect(Set(before.values.flatMap { $0 }).count == 3)
        // The same model twice in one Backend: two entries, two ids, in order of appearance.
        let twice = try ids(["m1", "m2", "m1"])
        #expect(twice["m1"] == ["default/b openai https://api.openai.com:443/v1/chat/completions m1 #0", "default/b openai https://api.openai.com:443/v1/chat/completions m1 #1"])
        // Same model, another endpoint or another Backend: another entry.
        let other = try compile(
            backendDoc(
                "b",
                ai: "{priorityGroups: [{providers: [{name: a, host: 10.0.0.1, port: 8080, openai: {model: m1, authToken: {kind: Passthrough}}}]}, {providers: [{name: b, openai: {model: m1, authToken: {kind: Passthrough}}}]}]}")
                + backendDoc("c", ai: pool(["m1"])))
        let b = try #require(other.backends[NamespacedName(namespace: "default", name: "b")])
        #expect(b.entries.map(\.id) == ["default/b openai http://10.0.0.1:8080/v1/chat/completions m1 #0", "default/b openai https://api.openai.com:443/v1/chat/completions m1 #0"])
        #expect(other.backends[NamespacedName(namespace: "default", name: "c")]?.entries.map(\.id) == ["default/c openai https://api.openai.com:443/v1/chat/completions m1 #0"])
    }

    @Test("a missing Secret: Accepted False/Invalid naming it, entries unusable")
    func missingSecret() throws {
        let t = try compile(yamlDocs(guideBackendYAML, openAISecret(namespace: "default")))
        let c = try #require(t.status.backends[guide]?.first)
        #expect(c.type == "Accepted" && !c.status && c.reason == "Invalid")
        #expect(
            c.message
                == (0..<3).map { "spec.ai.multipool.priorities[\($0)].pool[0]: Secret kgateway-system/openai-secret not found" }.joined(separator: "; "))
        let b = try #require(t.backends[guide])
        #expect(b.entries.allSatisfy { !$0.isUsable && $0.auth == nil && $0.problem == "Secret kgateway-system/openai-secret not found" })
        #expect(t.status.problems.first?.hasPrefix("Backend kgateway-system/model-failover: spec.ai.multipool.priorities[0].pool[0]: Secret") == true)
    }

    @Test(
        "Secret contents",
        arguments: [
            ("Bearer sk-1", "Authorization", "sk-1"),
            ("sk-raw", "Authorization", "sk-raw"),
            ("bearer   sk-2  \n", "Authorization", "sk-2"),
            ("BEARER sk-3", "Authorization", "sk-3"),
            ("Bearerish", "Authorization", "Bearerish"),
        ])
    func secretKeys(value: String, key: String, expected: String) throws {
        let t = try compile(yamlDocs(guideBackendYAML, openAISecret(value, key: key)))
        #expect(t.backends[guide]?.entries.first?.auth == .key(SecretString(expected)))
        #expect(t.status.backends[guide]?.first?.status == true)
    }

    @Test("a Secret without a usable Authorization key", arguments: [("Bearer sk-1", "authorization"), ("sk-1", "api-key"), ("", "Authorization"), ("Bearer ", "Authorization"), ("  ", "Authorization")])
    func secretWithoutKey(value: String, key: String) throws {
        let t = try compile(yamlDocs(guideBackendYAML, openAISecret(value, key: key)))
        let c = try #require(t.status.backends[guide]?.first)
        #expect(!c.status && c.reason == "Invalid")
        #expect(c.message.hasPrefix("spec.ai.multipool.priorities[0].pool[0]: Secret kgateway-system/openai-secret has no non-empty key Authorization"))
        #expect(t.backends[guide]?.entries.allSatisfy { !$0.isUsable } == true)
    }

    @Test("a key with a line break inside (a file with two lines) is unusable, and the message does not show it")
    func keyWithLineBreak() throws {
        let t = try compile(yamlDocs(guideBackendYAML, openAISecret("sk-first\nsk-second\n")))
        let c = try #require(t.status.backends[guide]?.first)
        #expect(!c.status && c.reason == "Invalid")
        #expect(c.message.hasPrefix("spec.ai.multipool.priorities[0].pool[0]: Secret kgateway-system/openai-secret key Authorization holds a control character"))
        #expect(!c.message.contains("sk-"))
        #expect(t.backends[guide]?.entries.allSatisfy { !$0.isUsable } == true)
        // A trailing newline alone (`kubectl create secret --from-file`) is trimmed, not an error.
        let trimmed = try compile(yamlDocs(guideBackendYAML, openAISecret("sk-only\n")))
        #expect(trimmed.backends[guide]?.entries.first?.auth == .key(SecretString("sk-only")))
    }

    @Test("inline and passthrough tokens")
    func inlineAndPassthrough() throws {
        let t = try compile(
            backendDoc("inline", ai: "{llm: {openai: {authToken: {kind: Inline, inline: Bearer sk-inline}}}}")
                + backendDoc("pass", ai: passthroughLLM)
                + backendDoc("empty", ai: "{llm: {openai: {authToken: {kind: Inline, inline: \"Bearer \"}}}}"))
        #expect(t.backends[NamespacedName(namespace: "default", name: "inline")]?.entries.first?.auth == .key(SecretString("sk-inline")))
        #expect(t.backends[NamespacedName(namespace: "default", name: "pass")]?.entries.first?.auth == .passthrough)
        #expect(t.status.backends[NamespacedName(namespace: "default", name: "pass")]?.first?.status == true)
        let empty = try #require(t.status.backends[NamespacedName(namespace: "default", name: "empty")]?.first)
        #expect(!empty.status && empty.message == "spec.ai.llm: authToken.inline holds no key")
    }

    @Test("a type the gateway does not serve (AWS) is not served and says why")
    func unsupportedType() throws {
        let t = try compile(
            """
            apiVersion: gateway.kgateway.dev/v1alpha1
            kind: Backend
            metadata: {name: lambda, namespace: default, generation: 4}
            spec:
              type: AWS
              aws: {region: us-east-1}
            """)
        let name = NamespacedName(namespace: "default", name: "lambda")
        let msg = "Backend type AWS is not supported by this gateway; only type AI is served"
        #expect(t.status.backends[name] == [Condition(type: "Accepted", status: false, reason: "Invalid", message: msg, observedGeneration: 4)])
        #expect(t.backends[name]?.problem == msg)
        #expect(t.backends[name]?.priorities.isEmpty == true)
    }

    @Test("a missing Secret is reported for a translated provider too")
    func unservedWithMissingSecret() throws {
        let t = try compile(backendDoc("a", ai: "{llm: {anthropic: {authToken: {kind: SecretRef, secretRef: {name: nope}}}}}"))
        let c = try #require(t.status.backends[NamespacedName(namespace: "default", name: "a")]?.first)
        #expect(!c.status && c.message == "spec.ai.llm: Secret default/nope not found")
    }

    static func awsSecret(_ data: [String: String]) -> String {
        let lines = data.sorted { $0.key < $1.key }.map { "  \($0.key): \"\(Data($0.value.utf8).base64EncodedString())\"" }.joined(separator: "\n")
        return "apiVersion: v1\nkind: Secret\nmetadata: {name: aws, namespace: default}\ntype: Opaque\ndata:\n" + lines
    }

    @Test("Bedrock: keys from the Secret (session token optional), else the gateway's own chain")
    func bedrockCredentials() throws {
        let ai = "{multipool: {priorities: [{pool: [{bedrock: {model: m, auth: {type: Secret, secretRef: {name: aws}}}}, {bedrock: {model: m}}]}]}}"
        let t = try compile(yamlDocs(backendDoc("b", ai: ai), Self.awsSecret(["accessKey": "AKID1", "secretKey": "s3cr3t\n", "sessionToken": "tok"])))
        let b = try #require(t.backends[NamespacedName(namespace: "default", name: "b")])
        #expect(b.entries[0].auth == .aws(AWSCredentials(accessKeyID: "AKID1", secretAccessKey: SecretString("s3cr3t"), sessionToken: SecretString("tok"))))
        #expect(b.entries[1].auth == .awsDefaultChain)
        // A rotated Secret is a new compilation with the new keys.
        let rotated = try compile(yamlDocs(backendDoc("b", ai: ai), Self.awsSecret(["accessKey": "AKID2", "secretKey": "other"])))
        #expect(rotated.backends[NamespacedName(namespace: "default", name: "b")]?.entries[0].auth
            == .aws(AWSCredentials(accessKeyID: "AKID2", secretAccessKey: SecretString("other"))))
    }

    @Test("Bedrock: a missing Secret or key is named, the value never shown", arguments: [
        ([:], "Secret default/nope not found"),
        (["accessKey": "AKID1"], "Secret default/aws has no non-empty key secretKey"),
        (["secretKey": "hunter2"], "Secret default/aws has no non-empty key accessKey"),
        (["accessKey": "AKID1", "secretKey": "hun\nter2"], "Secret default/aws key secretKey holds a control character (a line break?), which no header can carry"),
    ])
    func bedrockSecretProblems(data: [String: String], problem: String) throws {
        let secretName = data.isEmpty ? "nope" : "aws"
        let ai = "{llm: {bedrock: {model: m, auth: {type: Secret, secretRef: {name: \(secretName)}}}}}"
        let t = try compile(yamlDocs(backendDoc("b", ai: ai), Self.awsSecret(data.isEmpty ? ["x": "y"] : data)))
        let b = try #require(t.backends[NamespacedName(namespace: "default", name: "b")])
        #expect(b.entries[0].problem == problem)
        #expect(b.entries[0].auth == nil)
        let c = try #require(t.status.backends[NamespacedName(namespace: "default", name: "b")]?.first)
        #expect(c.message == "spec.ai.llm: \(problem)")
        #expect(!c.message.contains("hunter2") && !c.message.contains("hun\nter2"))
    }

    @Test("priority groups keep their field paths and share load within a level")
    func priorityGroupPaths() throws {
        let t = try compile(
            backendDoc(
                "pg",
                ai: """
                    {priorityGroups: [{providers: [{name: a, openai: {model: m1, authToken: {kind: Passthrough}}}, {name: b, openai: {model: m2, authToken: {kind: Passthrough}}}]}, {providers: [{name: c, openai: {authToken: {kind: Passthrough}}}]}]}
                    """))
        let b = try #require(t.backends[NamespacedName(namespace: "default", name: "pg")])
        #expect(b.priorities.map { $0.map(\.fieldPath) } == [["spec.ai.priorityGroups[0].providers[0]", "spec.ai.priorityGroups[0].providers[1]"], ["spec.ai.priorityGroups[1].providers[0]"]])
        #expect(b.priorities.map { $0.map(\.model) } == [["m1", "m2"], ["c"]])
        #expect(b.entries.map(\.index) == [0, 1, 0])
    }

    @Test("endpoint overrides reach the compiled entries")
    func endpointsInCompiledEntries() throws {
        let endpoint = try #require(ProviderEndpoint(url: "http://127.0.0.1:9000"))
        let t = try compile(yamlDocs(guideBackendYAML, openAISecret()), endpoints: ["openai": endpoint])
        #expect(t.backends[guide]?.entries.map { $0.target.baseURL } == Array(repeating: "http://127.0.0.1:9000", count: 3))
    }

    // MARK: annotations

    @Test("Backend settings from annotations")
    func settings() {
        let p = BackendSettings.annotationPrefix
        let (s, errors) = BackendSettings.parse([
            p + "stream-continuation": "TRUE", p + "connect-timeout": "250ms", p + "first-byte-timeout": "1m",
            p + "first-token-timeout": "2s", p + "stream-idle-timeout": "1m30s", p + "retries": "0", p + "ejection-threshold": "7",
            p + "ejection-base": "1s", p + "ejection-max": "1h", "kubectl.kubernetes.io/last-applied-configuration": "{}",
        ])
        #expect(errors.isEmpty)
        #expect(s.streamContinuation)
        #expect(s.connectTimeout == .milliseconds(250))
        #expect(s.firstByteTimeout == .seconds(60))
        #expect(s.firstTokenTimeout == .seconds(2))
        #expect(s.streamIdleTimeout == .seconds(90))
        #expect(s.retries == 0)
        #expect(s.ejectionThreshold == 7)
        #expect(s.ejectionBase == .seconds(1))
        #expect(s.ejectionMax == .seconds(3600))

        let defaults = BackendSettings.parse([:]).0
        #expect(defaults == BackendSettings())
        #expect(!defaults.streamContinuation && defaults.retries == 1 && defaults.connectTimeout == .seconds(5))
    }

    @Test(
        "invalid Backend settings",
        arguments: [
            ("connect-timeout", "soon", #"metadata.annotations[ai-gateway.kgateway.dev/connect-timeout]: invalid duration "soon""#),
            ("first-byte-timeout", "0s", #"metadata.annotations[ai-gateway.kgateway.dev/first-byte-timeout]: invalid duration "0s""#),
            ("retries", "6", "metadata.annotations[ai-gateway.kgateway.dev/retries]: must be an integer between 0 and 5"),
            ("retries", "one", "metadata.annotations[ai-gateway.kgateway.dev/retries]: must be an integer between 0 and 5"),
            ("ejection-threshold", "0", "metadata.annotations[ai-gateway.kgateway.dev/ejection-threshold]: must be an integer between 1 and 100"),
            ("stream-continuation", "yes", #"metadata.annotations[ai-gateway.kgateway.dev/stream-continuation]: must be "true" or "false""#),
            ("retry", "1", "metadata.annotations[ai-gateway.kgateway.dev/retry]: unknown setting"),
        ])
    func invalidSettings(key: String, value: String, error: String) {
        let (s, errors) = BackendSettings.parse([BackendSettings.annotationPrefix + key: value])
        #expect(errors == [error])
        #expect(s == BackendSettings(), "a bad value leaves the default")
    }

    @Test("bad annotations make the Backend Invalid")
    func settingsInStatus() throws {
        let t = try compile(backendDoc("b", annotations: "ai-gateway.kgateway.dev/connect-timeout: soon", ai: passthroughLLM))
        let c = try #require(t.status.backends[NamespacedName(namespace: "default", name: "b")]?.first)
        #expect(!c.status && c.reason == "Invalid")
        #expect(c.message == #"metadata.annotations[ai-gateway.kgateway.dev/connect-timeout]: invalid duration "soon""#)
        let ok = try compile(backendDoc("b", annotations: "ai-gateway.kgateway.dev/retries: \"3\"", ai: passthroughLLM))
        #expect(ok.backends[NamespacedName(namespace: "default", name: "b")]?.settings.retries == 3)
    }

    // MARK: references

    private func resolved(_ t: RoutingTable, _ route: String, namespace: String = "default") -> Condition? {
        t.status.routes[NamespacedName(namespace: namespace, name: route)]?.first?.conditions.first { $0.type == "ResolvedRefs" }
    }

    @Test("unresolved references: BackendNotFound, InvalidKind, RefNotPermitted")
    func unresolvedRefs() throws {
        let parents = "[{name: gw}]"
        let t = try compile(
            backendDoc("here", ai: passthroughLLM) + backendDoc("there", namespace: "models", ai: passthroughLLM)
                + routeDoc("ok", parents: parents, refs: [ref("here")])
                + routeDoc("missing", parents: parents, refs: [ref("nope")])
                + routeDoc("service", parents: parents, refs: ["{name: svc, port: 80}"])
                + routeDoc("foreign", parents: parents, refs: [ref("x", group: "example.com", kind: "Thing")])
                + routeDoc("cross", parents: parents, refs: [ref("there", namespace: "models")])
                + routeDoc("two", parents: parents, refs: [ref("nope"), ref("there", namespace: "models")], generation: 3))
        #expect(resolved(t, "ok") == Condition(type: "ResolvedRefs", status: true, reason: "ResolvedRefs", message: "All references resolved", observedGeneration: 1))
        #expect(resolved(t, "missing")?.reason == "BackendNotFound")
        #expect(resolved(t, "missing")?.message == "spec.rules[0].backendRefs[0]: Backend default/nope not found")
        #expect(resolved(t, "service")?.reason == "InvalidKind")
        #expect(
            resolved(t, "service")?.message
                == "spec.rules[0].backendRefs[0]: unsupported backend kind Service; this gateway routes to Backend.gateway.kgateway.dev")
        #expect(resolved(t, "foreign")?.message.contains("unsupported backend kind Thing.example.com") == true)
        #expect(resolved(t, "cross")?.reason == "RefNotPermitted")
        #expect(
            resolved(t, "cross")?.message
                == "spec.rules[0].backendRefs[0]: reference to Backend models/there is not permitted by any ReferenceGrant in namespace models")
        let two = try #require(resolved(t, "two"))
        #expect(!two.status && two.reason == "BackendNotFound" && two.observedGeneration == 3)
        #expect(two.message.contains("; spec.rules[0].backendRefs[1]: reference to Backend models/there is not permitted"))
        for name in ["missing", "service", "foreign", "cross", "two"] {
            #expect(resolved(t, name)?.status == false, "\(name)")
        }
        // Unresolved refs still route, to an error target (the proxy answers 500). With no creation
        // times, routes are ordered by namespace/name: "cross" comes first.
        let m = try #require(t.match(req("/")))
        #expect(m.rule.route.name == "cross")
        #expect(
            m.rule.targets == [
                WeightedTarget(
                    weight: 1,
                    target: .invalid("spec.rules[0].backendRefs[0]: reference to Backend models/there is not permitted by any ReferenceGrant in namespace models"))
            ])
    }

    @Test("a ReferenceGrant permits a cross-namespace reference, only as it says")
    func referenceGrants() throws {
        let base = backendDoc("there", namespace: "models", ai: passthroughLLM) + routeDoc("cross", namespace: "apps", parents: "[{name: gw}]", refs: [ref("there", namespace: "models")])
        func reason(_ extra: String) throws -> String? {
            resolved(try compile(base + extra), "cross", namespace: "apps")?.reason
        }
        #expect(try reason("") == "RefNotPermitted")
        #expect(try reason(grantDoc(in: "models", from: "apps")) == "ResolvedRefs")
        #expect(try reason(grantDoc(in: "models", from: "apps", toName: "there")) == "ResolvedRefs")
        #expect(try reason(grantDoc(in: "models", from: "apps", toName: "other")) == "RefNotPermitted")
        #expect(try reason(grantDoc(in: "apps", from: "apps")) == "RefNotPermitted", "the grant must live in the target namespace")
        #expect(try reason(grantDoc(in: "models", from: "else")) == "RefNotPermitted")
        #expect(try reason(grantDoc(in: "models", from: "apps", fromKind: "GRPCRoute")) == "RefNotPermitted")
        let missing = routeDoc("cross", namespace: "apps", parents: "[{name: gw}]", refs: [ref("absent", namespace: "models")])
        #expect(resolved(try compile(missing + grantDoc(in: "models", from: "apps")), "cross", namespace: "apps")?.reason == "BackendNotFound")

        let ok = try compile(base + grantDoc(in: "models", from: "apps"))
        #expect(ok.match(req("/"))?.rule.targets == [WeightedTarget(weight: 1, target: .backend(NamespacedName(namespace: "models", name: "there")))])
    }

    // MARK: Gateway attachment (implicitGateway false)

    private static let classes = """
        apiVersion: gateway.networking.k8s.io/v1
        kind: GatewayClass
        metadata: {name: ours}
        spec: {controllerName: kgateway.dev/kgateway}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: GatewayClass
        metadata: {name: theirs}
        spec: {controllerName: example.com/other}
        ---

        """

    private static let gateways = """
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: infra, generation: 2}
        spec:
          gatewayClassName: ours
          listeners:
          - {name: same, protocol: HTTP, port: 8080}
          - {name: all, protocol: HTTP, port: 8081, allowedRoutes: {namespaces: {from: All}}}
          - {name: tcp, protocol: TCP, port: 9000, allowedRoutes: {namespaces: {from: All}}}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: foreign, namespace: infra}
        spec:
          gatewayClassName: theirs
          listeners: [{name: http, protocol: HTTP, port: 80, allowedRoutes: {namespaces: {from: All}}}]
        ---

        """

    private func accepted(_ t: RoutingTable, _ route: String, namespace: String) -> [String] {
        (t.status.routes[NamespacedName(namespace: namespace, name: route)] ?? []).map { p in
            let c = p.conditions.first { $0.type == "Accepted" }
            return "\(p.parentNamespace)/\(p.parent.name)\(p.parent.sectionName.map { "." + $0 } ?? ""): \(c.map { "\($0.status) \($0.reason)" } ?? "-")"
        }
    }

    @Test("routes attach to Gateways of our GatewayClass by listener rules")
    func attachment() throws {
        let routes =
            routeDoc("in-infra", namespace: "infra", parents: "[{name: gw}]", refs: [])
            + routeDoc("from-apps", namespace: "apps", parents: "[{name: gw, namespace: infra}]", refs: [])
            + routeDoc("same-only", namespace: "apps", parents: "[{name: gw, namespace: infra, sectionName: same}]", refs: [])
            + routeDoc("no-such-section", namespace: "apps", parents: "[{name: gw, namespace: infra, sectionName: nope}]", refs: [])
            + routeDoc("by-port", namespace: "apps", parents: "[{name: gw, namespace: infra, port: 8081}]", refs: [])
            + routeDoc("tcp-only", namespace: "apps", parents: "[{name: gw, namespace: infra, sectionName: tcp}]", refs: [])
            + routeDoc("foreign", namespace: "apps", parents: "[{name: foreign, namespace: infra}]", refs: [])
            + routeDoc("absent", namespace: "apps", parents: "[{name: ghost, namespace: infra}]", refs: [])
        let t = try compile(Self.classes + Self.gateways + routes, implicitGateway: false)

        #expect(accepted(t, "in-infra", namespace: "infra") == ["infra/gw: true Accepted"])
        #expect(accepted(t, "from-apps", namespace: "apps") == ["infra/gw: true Accepted"])
        #expect(accepted(t, "same-only", namespace: "apps") == ["infra/gw.same: false NotAllowedByListeners"])
        #expect(accepted(t, "no-such-section", namespace: "apps") == ["infra/gw.nope: false NoMatchingParent"])
        #expect(accepted(t, "by-port", namespace: "apps") == ["infra/gw: true Accepted"])
        #expect(accepted(t, "tcp-only", namespace: "apps") == ["infra/gw.tcp: false NotAllowedByListeners"])
        let messages = { (route: String) in
            t.status.routes[NamespacedName(namespace: "apps", name: route)]?.first?.conditions.first?.message
        }
        #expect(messages("tcp-only") == "no listener of Gateway infra/gw accepts HTTPRoutes (protocol HTTP or HTTPS)")
        #expect(messages("same-only") == "no listener of Gateway infra/gw allows routes from namespace apps")
        #expect(messages("no-such-section") == "no listener of Gateway infra/gw matches sectionName/port")
        #expect(t.status.routes[NamespacedName(namespace: "apps", name: "foreign")] == nil, "another controller's Gateway: no status from us")
        #expect(t.status.routes[NamespacedName(namespace: "apps", name: "absent")] == nil)

        let gw = try #require(t.status.gateways[NamespacedName(namespace: "infra", name: "gw")])
        // same: in-infra; all: in-infra, from-apps, by-port; tcp: none (not an HTTP listener).
        #expect(gw.attachedRoutes == ["same": 1, "all": 3, "tcp": 0])
        #expect(gw.conditions.map { "\($0.type)=\($0.status) gen \($0.observedGeneration)" } == ["Accepted=true gen 2", "Programmed=true gen 2"])
        #expect(t.status.gateways[NamespacedName(namespace: "infra", name: "foreign")] == nil)
        #expect(t.status.gatewayClasses["ours"]?.first?.status == true)
        #expect(t.status.gatewayClasses["theirs"] == nil)

        // Only attached routes are served: all these routes match "/", the oldest by name order that attached wins.
        #expect(t.which(req("/")) == "apps/by-port#0")
        let onlyRejected = try compile(
            Self.classes + Self.gateways + routeDoc("same-only", namespace: "apps", parents: "[{name: gw, namespace: infra, sectionName: same}]", refs: [])
                + routeDoc("foreign", namespace: "apps", parents: "[{name: foreign, namespace: infra}]", refs: []),
            implicitGateway: false)
        #expect(onlyRejected.which(req("/")) == nil)
    }

    @Test("the guide's Gateway takes the guide's route")
    func guideGateway() throws {
        let t = try compile(yamlDocs(guideBackendYAML, openAISecret(), guideRouteYAML, guideGatewayYAML), implicitGateway: false)
        let route = NamespacedName(namespace: "kgateway-system", name: "model-failover")
        let parents = try #require(t.status.routes[route])
        #expect(parents.count == 1)
        #expect(
            parents[0].conditions == [
                Condition(type: "Accepted", status: true, reason: "Accepted", message: "Route accepted", observedGeneration: 1),
                Condition(type: "ResolvedRefs", status: true, reason: "ResolvedRefs", message: "All references resolved", observedGeneration: 1),
            ])
        #expect(t.status.gateways[NamespacedName(namespace: "kgateway-system", name: "ai-gateway")]?.attachedRoutes == ["http": 1])
        let m = try #require(t.match(req("/model")))
        #expect(m.rewrittenPath == "/v1/chat/completions")
        #expect(m.rule.targets == [WeightedTarget(weight: 1, target: .backend(guide))])

        // Without the Gateway and with implicitGateway false, nothing is served.
        let bare = try compile(yamlDocs(guideBackendYAML, guideRouteYAML), implicitGateway: false)
        #expect(bare.match(req("/model")) == nil)
        #expect(bare.status.routes.isEmpty)
        // In standalone mode the same route attaches to the built-in listener.
        let standalone = try compile(yamlDocs(guideBackendYAML, guideRouteYAML), implicitGateway: true)
        #expect(standalone.match(req("/model"))?.rule.route == route)
        #expect(standalone.status.routes[route]?.first?.conditions.first?.message == "Route accepted (standalone listener)")
    }

    @Test("standalone mode does not take routes meant for another controller's Gateway")
    func standaloneRespectsForeignGateways() throws {
        let t = try compile(
            Self.classes + Self.gateways + routeDoc("foreign", namespace: "apps", parents: "[{name: foreign, namespace: infra}]", refs: []),
            implicitGateway: true)
        #expect(t.which(req("/")) == nil)
        let noParents = try compile(routeDoc("free", refs: []), implicitGateway: true)
        #expect(noParents.which(req("/")) == "default/free#0")
        #expect(noParents.status.routes.isEmpty)
    }

    @Test("a controllerName option other than the default")
    func otherControllerName() throws {
        let yaml = Self.classes + Self.gateways + routeDoc("r", namespace: "infra", parents: "[{name: foreign}]", refs: [])
        let t = RouteCompiler.compile(try resources(yaml), options: CompileOptions(controllerName: "example.com/other"))
        #expect(t.status.gateways.keys.map(\.description) == ["infra/foreign"])
        #expect(t.which(req("/")) == "infra/r#0")
        #expect(ours == "kgateway.dev/kgateway")
    }

    @Test("timeouts and retry policy are compiled onto the rule")
    func timeoutsAndRetry() throws {
        let t = try compile(
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: r}
            spec:
              rules:
              - matches: [{path: {value: /a}}]
                timeouts: {request: 30s, backendRequest: 0s}
                retry: {codes: [429], attempts: 2, backoff: 250ms}
              - matches: [{path: {value: /b}}]
            """)
        let a = try #require(t.match(req("/a"))?.rule)
        #expect(a.requestTimeout == .seconds(30))
        #expect(a.backendRequestTimeout == nil, "0s means no timeout")
        #expect(a.retry == RetryPolicy(codes: [429], attempts: 2, backoff: .milliseconds(250)))
        let b = try #require(t.match(req("/b"))?.rule)
        #expect(b.requestTimeout == nil)
        #expect(b.retry == RetryPolicy())
        #expect(b.retry.codes == [500, 502, 503, 504])
    }
}

@Suite("Listener hostnames narrow the hostnames a route is served on")
struct ListenerHostnameTests {
    private static let setup = """
        apiVersion: gateway.networking.k8s.io/v1
        kind: GatewayClass
        metadata: {name: ours}
        spec: {controllerName: kgateway.dev/kgateway}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: infra}
        spec:
          gatewayClassName: ours
          listeners:
          - {name: api, protocol: HTTP, port: 8080, hostname: "api.example.com", allowedRoutes: {namespaces: {from: All}}}
          - {name: wild, protocol: HTTP, port: 8081, hostname: "*.corp.example", allowedRoutes: {namespaces: {from: All}}}
        ---

        """

    private func route(_ name: String, section: String, hostnames: [String], path: String) -> String {
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: \(name), namespace: apps}
        spec:
          parentRefs: [{name: gw, namespace: infra, sectionName: \(section)}]
          hostnames: [\(hostnames.map { "\"\($0)\"" }.joined(separator: ", "))]
          rules:
          - matches: [{path: {type: PathPrefix, value: \(path)}}]
            backendRefs: []
        ---

        """
    }

    @Test("a route without hostnames takes the listener's; a wildcard route is narrowed to the listener's name; a disjoint one is not accepted")
    func intersection() throws {
        let t = try compile(
            Self.setup
                + route("no-hosts", section: "api", hostnames: [], path: "/a")
                + route("wildcard", section: "wild", hostnames: ["*.corp.example", "x.other.example"], path: "/w")
                + route("narrower", section: "wild", hostnames: ["db.corp.example"], path: "/n")
                + route("disjoint", section: "api", hostnames: ["www.example.com"], path: "/d"),
            implicitGateway: false)
        #expect(t.which(req("/a", host: "api.example.com")) == "apps/no-hosts#0")
        #expect(t.which(req("/a", host: "other.example.com")) == nil, "not on a host the listener does not serve")
        #expect(t.which(req("/w", host: "build.corp.example")) == "apps/wildcard#0")
        #expect(t.which(req("/w", host: "x.other.example")) == nil, "outside the listener's wildcard")
        #expect(t.which(req("/n", host: "db.corp.example")) == "apps/narrower#0")
        #expect(t.which(req("/n", host: "web.corp.example")) == nil)
        #expect(t.which(req("/d", host: "www.example.com")) == nil)
        let disjoint = t.status.routes[NamespacedName(namespace: "apps", name: "disjoint")]?.first?.conditions.first
        #expect(disjoint?.status == false)
        #expect(disjoint?.reason == "NoMatchingListenerHostname")
        let gw = try #require(t.status.gateways[NamespacedName(namespace: "infra", name: "gw")])
        #expect(gw.attachedRoutes == ["api": 1, "wild": 2])
    }

    @Test("hostname intersection rules", arguments: [
        ("a.example.com", "a.example.com", "a.example.com"),
        ("*.example.com", "a.example.com", "a.example.com"),
        ("a.example.com", "*.example.com", "a.example.com"),
        ("*.b.example.com", "*.example.com", "*.b.example.com"),
        ("*.example.com", "example.com", nil),
        ("a.example.com", "b.example.com", nil),
        ("*.example.com", "*.other.com", nil),
    ] as [(String, String, String?)])
    func pairwise(_ a: String, _ b: String, _ expected: String?) {
        #expect(RouteCompiler.intersect(a, b) == expected)
    }
}
