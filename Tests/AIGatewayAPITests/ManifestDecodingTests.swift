@testable import AIGatewayAPI
import Foundation
import Testing

private let guideToken = AuthToken.secretRef(name: "openai-secret")

private func openaiEntry(_ model: String?, token: AuthToken = guideToken) -> LLMProviderEntry {
    LLMProviderEntry(
        name: nil, provider: .openai(OpenAIProvider(authToken: token, model: model)), host: nil, port: nil, pathOverride: nil,
        authHeader: nil)
}

private let expectedGuideBackend = Backend(
    metadata: ObjectMeta(name: "model-failover", namespace: "kgateway-system", labels: ["app": "model-failover"]),
    spec: BackendSpec(
        type: .ai,
        ai: AIBackend(shape: .multipool, priorities: [[openaiEntry("gpt-4o")], [openaiEntry("gpt-4.0-turbo")], [openaiEntry("gpt-3.5-turbo")]])))

private let expectedGuideRoute = HTTPRoute(
    metadata: ObjectMeta(name: "model-failover", namespace: "kgateway-system", labels: ["app": "model-failover"]),
    parentRefs: [
        ParentReference(group: "gateway.networking.k8s.io", kind: "Gateway", namespace: "kgateway-system", name: "ai-gateway", sectionName: nil, port: nil)
    ],
    hostnames: [],
    rules: [
        HTTPRouteRule(
            name: nil,
            matches: [HTTPRouteMatch(pathType: .pathPrefix, pathValue: "/model", headers: [], queryParams: [], method: nil)],
            filters: [.urlRewrite(URLRewrite(hostname: nil, path: .replaceFullPath("/v1/chat/completions")))],
            backendRefs: [
                HTTPBackendRef(group: "gateway.kgateway.dev", kind: "Backend", name: "model-failover", namespace: "kgateway-system", port: nil, weight: 1)
            ],
            timeouts: nil, retry: nil)
    ])

/// The single entry of an `llm` Backend.
private func llmEntry(_ entryYAML: String) throws -> LLMProviderEntry {
    let b = try backend(llmBackend(entryYAML))
    #expect(b.spec.ai?.shape == .llm)
    guard let e = b.spec.ai?.priorities.first?.first, b.spec.ai?.priorities.count == 1, b.spec.ai?.priorities[0].count == 1 else {
        throw DecodeFailure(description: "llm Backend without exactly one entry")
    }
    return e
}

@Suite("Manifest decoding")
struct ManifestDecodingTests {
    // MARK: the guide

    @Test("the guide's Backend decodes to three priorities of one OpenAI model each")
    func guideBackend() throws {
        #expect(try backend(guideBackendYAML) == expectedGuideBackend)
    }

    @Test("the guide's HTTPRoute decodes with its rewrite and Backend reference")
    func guideRoute() throws {
        #expect(try route(guideRouteYAML) == expectedGuideRoute)
    }

    @Test("examples/model-failover decodes to the guide's objects plus the Secret")
    func examplesDirectory() throws {
        let dir = packageRoot.appendingPathComponent("examples/model-failover").path
        let docs = try ManifestLoader.load(paths: [dir])
        #expect(docs.map { ($0.source as NSString).lastPathComponent } == ["backend.yaml", "httproute.yaml", "secret.yaml"])
        #expect(docs.errorLines.isEmpty)
        let set = ResourceSet(docs.resources)
        #expect(set.backends == [expectedGuideBackend])
        #expect(set.httpRoutes == [expectedGuideRoute])
        #expect(set.secrets.count == 1)
        #expect(set.secrets.first?.metadata.namespacedName == NamespacedName(namespace: "kgateway-system", name: "openai-secret"))
        #expect(set.secrets.first?.data["Authorization"]?.value == "Bearer sk-demo-not-a-real-key")
        #expect(set.count == 3)
    }

    @Test("the guide's Gateway and a GatewayClass")
    func gatewayAndClass() throws {
        let gw = try resource(
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata:
              name: ai-gateway
              namespace: kgateway-system
            spec:
              gatewayClassName: kgateway
              listeners:
              - name: http
                protocol: HTTP
                port: 8080
                allowedRoutes:
                  namespaces:
                    from: All
              - name: https
                protocol: HTTPS
                port: 8443
                hostname: "*.example.com"
                tls: {mode: Terminate}
            """)
        #expect(
            gw
                == .gateway(
                    Gateway(
                        metadata: ObjectMeta(name: "ai-gateway", namespace: "kgateway-system"), gatewayClassName: "kgateway",
                        listeners: [
                            .init(name: "http", hostname: nil, port: 8080, protocol: "HTTP", allowedRoutesFrom: .all, allowedRoutesSelector: [:]),
                            // The Gateway API default for allowedRoutes is Same.
                            .init(name: "https", hostname: "*.example.com", port: 8443, protocol: "HTTPS", allowedRoutesFrom: .same, allowedRoutesSelector: [:]),
                        ])))
        let gc = try resource(
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: GatewayClass
            metadata:
              name: kgateway
              namespace: ignored-for-cluster-scoped
            spec:
              controllerName: kgateway.dev/kgateway
              description: ours
            """)
        #expect(gc == .gatewayClass(GatewayClass(metadata: ObjectMeta(name: "kgateway", namespace: ""), controllerName: "kgateway.dev/kgateway")))
        #expect(gc.metadata.namespacedName.description == "kgateway")
    }

    @Test("a ReferenceGrant")
    func referenceGrant() throws {
        let r = try resource(
            """
            apiVersion: gateway.networking.k8s.io/v1beta1
            kind: ReferenceGrant
            metadata: {name: allow-routes, namespace: models}
            spec:
              from:
              - group: gateway.networking.k8s.io
                kind: HTTPRoute
                namespace: apps
              to:
              - group: gateway.kgateway.dev
                kind: Backend
              - group: gateway.kgateway.dev
                kind: Backend
                name: one
            """)
        #expect(
            r
                == .referenceGrant(
                    ReferenceGrant(
                        metadata: ObjectMeta(name: "allow-routes", namespace: "models"),
                        from: [.init(group: "gateway.networking.k8s.io", kind: "HTTPRoute", namespace: "apps")],
                        to: [.init(group: "gateway.kgateway.dev", kind: "Backend", name: nil), .init(group: "gateway.kgateway.dev", kind: "Backend", name: "one")])))
    }

    @Test("metadata: default namespace, labels, annotations, generation, creation time")
    func metadata() throws {
        let b = try backend(
            """
            apiVersion: gateway.kgateway.dev/v1alpha1
            kind: Backend
            metadata:
              name: m.v1
              labels: {a: "1"}
              annotations: {ai-gateway.kgateway.dev/retries: "2"}
              generation: 7
              resourceVersion: "123"
              uid: abc
              creationTimestamp: "2025-01-02T03:04:05Z"
              managedFields: []
            spec:
              type: AI
              ai: {llm: {openai: {\(inlineToken)}}}
            """)
        #expect(
            b.metadata
                == ObjectMeta(
                    name: "m.v1", namespace: "default", labels: ["a": "1"], annotations: ["ai-gateway.kgateway.dev/retries": "2"], generation: 7,
                    resourceVersion: "123", uid: "abc", creationTimestamp: "2025-01-02T03:04:05Z"))
        let docs = try ManifestLoader.parse(guideBackendYAML.replacingOccurrences(of: "  namespace: kgateway-system\n", with: ""), source: "x", defaultNamespace: "team-a")
        #expect(docs.resources.first?.metadata.namespace == "team-a")
    }

    // MARK: Backend shapes

    @Test("priorityGroups with named providers and the later entry fields")
    func priorityGroups() throws {
        let b = try backend(
            aiBackend(
                """
                priorityGroups:
                - providers:
                  - name: primary
                    openai:
                      model: gpt-4o
                      authToken: {kind: SecretRef, secretRef: {name: s}}
                    host: llm.internal
                    port: 8080
                    path: {full: /custom/chat}
                    authHeader: {prefix: Token, headerName: X-Api-Key}
                  - name: secondary
                    openai:
                      authToken: {kind: Passthrough}
                - providers:
                  - name: primary
                    openai:
                      model: gpt-3.5-turbo
                      authToken: {kind: Inline, inline: sk-inline}
                    authHeader: {headerName: api-key}
                """))
        let ai = try #require(b.spec.ai)
        #expect(ai.shape == .priorityGroups)
        #expect(
            ai.priorities == [
                [
                    LLMProviderEntry(
                        name: "primary", provider: .openai(OpenAIProvider(authToken: .secretRef(name: "s"), model: "gpt-4o")), host: "llm.internal",
                        port: 8080, pathOverride: "/custom/chat", authHeader: AuthHeaderOverride(prefix: "Token", headerName: "X-Api-Key")),
                    LLMProviderEntry(
                        name: "secondary", provider: .openai(OpenAIProvider(authToken: .passthrough, model: nil)), host: nil, port: nil,
                        pathOverride: nil, authHeader: nil),
                ],
                [
                    // The same name in another group is fine: names are unique per group.
                    LLMProviderEntry(
                        name: "primary", provider: .openai(OpenAIProvider(authToken: .inline(SecretString("sk-inline")), model: "gpt-3.5-turbo")),
                        host: nil, port: nil, pathOverride: nil, authHeader: AuthHeaderOverride(prefix: nil, headerName: "api-key")),
                ],
            ])
    }

    @Test("the older entry fields: hostOverride, pathOverride.fullPath, authHeaderOverride")
    func olderEntryShape() throws {
        let b = try backend(
            aiBackend(
                """
                multipool:
                  priorities:
                  - pool:
                    - provider:
                        openai: {model: a, \(inlineToken)}
                      hostOverride: {host: 10.0.0.7, port: 443}
                      pathOverride: {fullPath: /v1/x}
                      authHeaderOverride: {prefix: "", headerName: api-key}
                    - provider:
                        openai: {model: b, \(inlineToken)}
                """))
        #expect(
            b.spec.ai?.priorities == [
                [
                    LLMProviderEntry(
                        name: nil, provider: .openai(OpenAIProvider(authToken: .inline(SecretString("sk-test")), model: "a")), host: "10.0.0.7", port: 443,
                        pathOverride: "/v1/x", authHeader: AuthHeaderOverride(prefix: "", headerName: "api-key")),
                    openaiEntry("b", token: .inline(SecretString("sk-test"))),
                ]
            ])
    }

    @Test("what the wire checks accept: real model ids, hosts, IP literals, escaped paths with a query")
    func wireValuesAccepted() throws {
        let host = { (yaml: String) in try llmEntry("provider: {openai: {\(inlineToken)}}\nhostOverride: {\(yaml)}").host }
        #expect(try host("host: llm-1.internal_zone.example, port: 8080") == "llm-1.internal_zone.example")
        #expect(try host("host: 10.0.0.5, port: 80") == "10.0.0.5")
        #expect(try host("host: \"::1\", port: 80") == "::1")
        #expect(try host("host: \"[fe80::1]\", port: 80") == "fe80::1", "brackets are dropped")
        #expect(try host("host: localhost, port: 80") == "localhost")
        #expect(try host("host: a.example, port: 443, insecureSkipVerify: false") == "a.example", "false says what happens anyway")
        let path = "/v1/chat/completions?api-version=2024-02-01&x=%20y;z=@:!$'()*+,~"
        #expect(try llmEntry("openai: {\(inlineToken)}\npath: {full: \"\(path)\"}").pathOverride == path)
        let bedrock = { (model: String) in try llmEntry("bedrock: {model: \"\(model)\"}").provider.model }
        for model in [
            "anthropic.claude-3-5-sonnet-20240620-v1:0", "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
        ] {
            #expect(try bedrock(model) == model)
        }
        #expect(try llmEntry("openai: {\(inlineToken), model: \"ft:gpt-4o-mini:org:name:9xyz\"}").provider.model == "ft:gpt-4o-mini:org:name:9xyz")
        #expect(try llmEntry("openai: {\(inlineToken), model: meta-llama/Llama-3-70b-chat-hf}").provider.model == "meta-llama/Llama-3-70b-chat-hf", "a body-only model may hold /")
        #expect(try llmEntry("gemini: {\(inlineToken), model: gemini-1.5-pro-002, apiVersion: v1beta}").provider.model == "gemini-1.5-pro-002")
        for endpoint in ["my.openai.azure.com", "https://my.openai.azure.com/", "https://my.openai.azure.com:443/openai/", "HTTPS://my.openai.azure.com"] {
            let e = try llmEntry("azureopenai: {\(inlineToken), endpoint: \"\(endpoint)\", deploymentName: gpt-4o_prod.1, apiVersion: 2024-10-21-preview}")
            #expect(e.provider.model == "gpt-4o_prod.1", "endpoint \(endpoint)")
        }
    }

    @Test("llm, in both the provider-wrapped and the direct shape")
    func llm() throws {
        let wrapped = try llmEntry("provider:\n  openai: {model: gpt-4o, \(inlineToken)}")
        let direct = try llmEntry("openai: {model: gpt-4o, \(inlineToken)}")
        #expect(wrapped == direct)
        #expect(wrapped == openaiEntry("gpt-4o", token: .inline(SecretString("sk-test"))))
    }

    @Test("every provider with its required fields")
    func providers() throws {
        let token = AuthToken.inline(SecretString("sk-test"))
        #expect(try llmEntry("openai: {\(inlineToken)}").provider == .openai(OpenAIProvider(authToken: token, model: nil)))
        // An unquoted date-like apiVersion stays a string (no YAML timestamp resolution).
        #expect(
            try llmEntry("azureopenai: {\(inlineToken), endpoint: my.openai.azure.com, deploymentName: gpt4o-dep, apiVersion: 2024-02-01}").provider
                == .azureopenai(AzureOpenAIProvider(authToken: token, endpoint: "my.openai.azure.com", deploymentName: "gpt4o-dep", apiVersion: "2024-02-01")))
        #expect(
            try llmEntry("anthropic: {\(inlineToken), model: claude-3-5-sonnet, apiVersion: \"2023-06-01\"}").provider
                == .anthropic(AnthropicProvider(authToken: token, model: "claude-3-5-sonnet", apiVersion: "2023-06-01")))
        #expect(
            try llmEntry("anthropic: {\(inlineToken)}").provider == .anthropic(AnthropicProvider(authToken: token, model: nil, apiVersion: nil)))
        #expect(
            try llmEntry("gemini: {\(inlineToken), model: gemini-1.5-pro, apiVersion: v1beta}").provider
                == .gemini(GeminiProvider(authToken: token, model: "gemini-1.5-pro", apiVersion: "v1beta")))
        #expect(
            try llmEntry(
                "vertexai: {\(inlineToken), model: gemini-pro, apiVersion: v1, projectId: p-1, location: us-central1, publisher: GOOGLE, modelPath: x/y}"
            ).provider
                == .vertexai(
                    VertexAIProvider(
                        authToken: token, model: "gemini-pro", apiVersion: "v1", projectId: "p-1", location: "us-central1", modelPath: "x/y",
                        publisher: "GOOGLE")))
        #expect(
            try llmEntry("bedrock: {auth: {type: Secret, secretRef: {name: aws}}, model: anthropic.claude-v2}").provider
                == .bedrock(
                    BedrockProvider(
                        auth: .secret(name: "aws"), model: "anthropic.claude-v2",
                        region: "us-east-1", guardrail: nil)))
        #expect(
            try llmEntry("bedrock: {model: m, region: eu-west-1, guardrail: {identifier: g, version: \"1\"}}").provider
                == .bedrock(BedrockProvider(auth: nil, model: "m", region: "eu-west-1", guardrail: .init(identifier: "g", version: "1"))))
    }

    @Test("the auth token kinds")
    func authTokens() throws {
        #expect(try llmEntry("openai: {authToken: {kind: Passthrough}}").provider.authToken == .passthrough)
        #expect(try llmEntry("openai: {authToken: {kind: SecretRef, secretRef: {name: k}}}").provider.authToken == .secretRef(name: "k"))
        #expect(try llmEntry("openai: {authToken: {kind: Inline, inline: abc}}").provider.authToken == .inline(SecretString("abc")))
    }

    @Test("provider keys, models and accessors")
    func providerAccessors() throws {
        let azure = try llmEntry("azureopenai: {\(inlineToken), endpoint: e, deploymentName: dep, apiVersion: v}").provider
        #expect(azure.key == "azureopenai")
        #expect(azure.model == "dep", "Azure's deployment stands for the model")
        let bedrock = try llmEntry("bedrock: {model: m}").provider
        #expect(bedrock.key == "bedrock")
        #expect(bedrock.authToken == nil)
        #expect(LLMProvider.keys == ["openai", "azureopenai", "anthropic", "gemini", "vertexai", "bedrock"])
    }

    @Test("Backend types other than AI are accepted by the schema")
    func otherTypes() throws {
        let aws = try backend(
            """
            apiVersion: gateway.kgateway.dev/v1alpha1
            kind: Backend
            metadata: {name: lambda}
            spec:
              type: AWS
              aws: {region: us-east-1, lambda: {functionName: f}}
            """)
        #expect(aws.spec == BackendSpec(type: .aws, ai: nil))
        let stat = try backend(
            """
            apiVersion: gateway.kgateway.dev/v1alpha1
            kind: Backend
            metadata: {name: s}
            spec:
              type: Static
              static: {hosts: [{host: a, port: 80}]}
            """)
        #expect(stat.spec == BackendSpec(type: .static, ai: nil))
    }

    // MARK: Secret

    @Test("Secret data is base64-decoded and stringData overrides it")
    func secrets() throws {
        let r = try resource(
            """
            apiVersion: v1
            kind: Secret
            metadata: {name: s, namespace: ns}
            type: Opaque
            data:
              Authorization: QmVhcmVyIHNrLTEyMw==
              other: |
                cmF3
                LWtleQ==
            stringData:
              extra: plain
            """)
        guard case .secret(let s) = r else { throw DecodeFailure(description: "not a Secret") }
        #expect(s.data.mapValues(\.value) == ["Authorization": "Bearer sk-123", "other": "raw-key", "extra": "plain"])
        let overlaid = try resource(
            """
            apiVersion: v1
            kind: Secret
            metadata: {name: s, namespace: ns}
            data: {Authorization: QmVhcmVyIHNrLTEyMw==}
            stringData: {Authorization: from-string-data}
            """)
        guard case .secret(let o) = overlaid else { throw DecodeFailure(description: "not a Secret") }
        #expect(o.data["Authorization"]?.value == "from-string-data")
    }

    @Test("secret values never show in descriptions")
    func secretRedaction() throws {
        let s = SecretString("sk-very-secret")
        #expect("\(s)" == "<redacted>")
        #expect(String(reflecting: s) == "<redacted>")
        let r = try resource(
            """
            apiVersion: v1
            kind: Secret
            metadata: {name: s}
            stringData: {Authorization: sk-very-secret}
            """)
        #expect(!String(describing: r).contains("sk-very-secret"))
        #expect(!String(reflecting: r).contains("sk-very-secret"))
        var dumped = ""
        dump(r, to: &dumped)
        #expect(!dumped.contains("sk-very-secret"))
        let b = try backend(llmBackend("openai: {authToken: {kind: Inline, inline: sk-very-secret}}"))
        #expect(!String(describing: b).contains("sk-very-secret"))
    }

    // MARK: HTTPRoute details

    @Test("HTTPRoute matches, filters, weights, timeouts and retry")
    func routeDetails() throws {
        let r = try route(
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: r, namespace: apps}
            spec:
              parentRefs:
              - {name: gw, namespace: infra, sectionName: http, port: 8080}
              hostnames: [api.example.com, "*.example.org"]
              rules:
              - name: chat
                matches:
                - path: {type: Exact, value: /v1/chat/completions}
                  method: POST
                  headers:
                  - {name: x-tenant, value: a}
                  - {type: RegularExpression, name: x-env, value: "prod|stage"}
                  queryParams:
                  - {name: debug, value: "1"}
                - path: {type: RegularExpression, value: "/v[0-9]+/.*"}
                - headers: [{name: x-only, value: ""}]
                filters:
                - type: RequestHeaderModifier
                  requestHeaderModifier:
                    set: [{name: x-a, value: "1"}]
                    add: [{name: x-b, value: "2"}]
                    remove: [x-c]
                - type: ResponseHeaderModifier
                  responseHeaderModifier: {remove: [server]}
                - type: URLRewrite
                  urlRewrite: {hostname: upstream.example}
                backendRefs:
                - {group: gateway.kgateway.dev, kind: Backend, name: a, weight: 3}
                - {group: gateway.kgateway.dev, kind: Backend, name: b, namespace: models, weight: 0}
                - {name: svc, port: 80}
                timeouts: {request: 1m30s, backendRequest: 500ms}
                retry: {codes: [429, 503], attempts: 3, backoff: 1s}
              - matches:
                - path: {type: PathPrefix, value: /p}
                filters:
                - type: URLRewrite
                  urlRewrite:
                    path: {type: ReplacePrefixMatch, replacePrefixMatch: /q}
            """)
        #expect(r.parentRefs == [ParentReference(group: "gateway.networking.k8s.io", kind: "Gateway", namespace: "infra", name: "gw", sectionName: "http", port: 8080)])
        #expect(r.hostnames == ["api.example.com", "*.example.org"])
        #expect(r.rules.count == 2)
        let rule = r.rules[0]
        #expect(rule.name == "chat")
        #expect(
            rule.matches == [
                HTTPRouteMatch(
                    pathType: .exact, pathValue: "/v1/chat/completions",
                    headers: [.init(type: .exact, name: "x-tenant", value: "a"), .init(type: .regularExpression, name: "x-env", value: "prod|stage")],
                    queryParams: [.init(type: .exact, name: "debug", value: "1")], method: "POST"),
                HTTPRouteMatch(pathType: .regularExpression, pathValue: "/v[0-9]+/.*", headers: [], queryParams: [], method: nil),
                // A match without a path matches PathPrefix /.
                HTTPRouteMatch(pathType: .pathPrefix, pathValue: "/", headers: [.init(type: .exact, name: "x-only", value: "")], queryParams: [], method: nil),
            ])
        #expect(
            rule.filters == [
                .requestHeaderModifier(HeaderModifier(setPairs: [.init(name: "x-a", value: "1")], addPairs: [.init(name: "x-b", value: "2")], remove: ["x-c"])),
                .responseHeaderModifier(HeaderModifier(setPairs: [], addPairs: [], remove: ["server"])),
                .urlRewrite(URLRewrite(hostname: "upstream.example", path: nil)),
            ])
        #expect(
            rule.backendRefs == [
                HTTPBackendRef(group: "gateway.kgateway.dev", kind: "Backend", name: "a", namespace: nil, port: nil, weight: 3),
                HTTPBackendRef(group: "gateway.kgateway.dev", kind: "Backend", name: "b", namespace: "models", port: nil, weight: 0),
                // Gateway API defaults: core group, kind Service, weight 1.
                HTTPBackendRef(group: "", kind: "Service", name: "svc", namespace: nil, port: 80, weight: 1),
            ])
        #expect(rule.timeouts == .init(request: GatewayDuration(milliseconds: 90_000), backendRequest: GatewayDuration(milliseconds: 500)))
        #expect(rule.retry == .init(codes: [429, 503], attempts: 3, backoff: GatewayDuration(milliseconds: 1000)))
        #expect(r.rules[1].filters == [.urlRewrite(URLRewrite(hostname: nil, path: .replacePrefixMatch("/q")))])
    }

    @Test("an HTTPRoute without rules gets the default rule")
    func routeWithoutRules() throws {
        let r = try route(
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: r}
            spec:
              parentRefs: [{name: gw}]
            """)
        #expect(r.rules == [HTTPRouteRule(name: nil, matches: [.default], filters: [], backendRefs: [], timeouts: nil, retry: nil)])
        #expect(r.parentRefs.first?.namespace == nil)
    }

    @Test(
        "Gateway API durations",
        arguments: [
            ("0s", Int64(0)), ("500ms", 500), ("10s", 10_000), ("1m", 60_000), ("1h", 3_600_000), ("1h30m", 5_400_000),
            ("1h2m3s4ms", 3_723_004), ("99999ms", 99_999), ("2m500ms", 120_500),
        ])
    func durations(text: String, ms: Int64) {
        #expect(GatewayDuration(parsing: text)?.milliseconds == ms)
    }

    @Test("invalid Gateway API durations", arguments: ["", "s", "10", "1.5s", "-1s", "1d", "10 s", "100000s", "1h1m1s1ms1s", "ms", "1S", "1sm"])
    func badDurations(text: String) {
        #expect(GatewayDuration(parsing: text) == nil)
    }

    // MARK: files with several objects

    @Test("multi-document YAML, empty documents, kind List and foreign kinds")
    func multiDocument() throws {
        let text = """
            \(guideBackendYAML)
            ---
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: ai-gateway}
            spec: {replicas: 1}
            ---
            apiVersion: v1
            kind: List
            items:
            - apiVersion: v1
              kind: Secret
              metadata: {name: openai-secret, namespace: kgateway-system}
              stringData: {Authorization: Bearer x}
            - apiVersion: networking.istio.io/v1
              kind: Gateway
              metadata: {name: istio}
              spec: {}
            - apiVersion: v1
              kind: ConfigMap
              metadata: {name: c}
            ---
            \(guideRouteYAML)
            """
        let docs = try ManifestLoader.parse(text, source: "m.yaml")
        #expect(docs.map(\.source) == ["m.yaml#1", "m.yaml#3", "m.yaml#4 items[0]", "m.yaml#4 items[1]", "m.yaml#4 items[2]", "m.yaml#5"])
        #expect(docs[1].outcome == .ignored(apiVersion: "apps/v1", kind: "Deployment"))
        #expect(docs[3].outcome == .ignored(apiVersion: "networking.istio.io/v1", kind: "Gateway"), "a Gateway of another group is not ours")
        #expect(docs[4].outcome == .ignored(apiVersion: "v1", kind: "ConfigMap"))
        #expect(docs.resources.map(\.kind) == ["Backend", "Secret", "HTTPRoute"])
        #expect(docs.errorLines.isEmpty)
        #expect(docs.duplicateLines.isEmpty)
    }

    @Test("a JSON manifest and a single document keep the plain source name")
    func jsonManifest() throws {
        let docs = try ManifestLoader.parse(
            #"{"apiVersion":"gateway.kgateway.dev/v1alpha1","kind":"Backend","metadata":{"name":"j"},"spec":{"type":"AI","ai":{"llm":{"openai":{"authToken":{"kind":"Passthrough"}}}}}}"#,
            source: "b.json")
        #expect(docs.map(\.source) == ["b.json"])
        #expect(docs.resources.first?.metadata.namespacedName == NamespacedName(namespace: "default", name: "j"))
    }

    @Test("duplicates and error lines name the document")
    func duplicatesAndErrorLines() throws {
        let text = "\(guideBackendYAML)\n---\n\(guideBackendYAML)\n---\n\(guideBackendYAML.replacingOccurrences(of: "type: AI", with: "type: Ai"))"
        let docs = try ManifestLoader.parse(text, source: "d.yaml")
        #expect(docs.duplicateLines == ["d.yaml#2 Backend kgateway-system/model-failover: already defined in d.yaml#1"])
        #expect(
            docs.errorLines == [
                #"d.yaml#3 Backend kgateway-system/model-failover: spec.type: unsupported value "Ai": supported values: "AI", "AWS", "Static""#
            ])
    }

    @Test("YAML syntax errors are reported with a position")
    func yamlSyntax() {
        let e = #expect(throws: ManifestError.self) {
            _ = try ManifestLoader.parse("a: [1, 2\nb: c", source: "bad.yaml")
        }
        #expect(e?.source == "bad.yaml")
        #expect(e?.message.hasPrefix("invalid YAML:") == true)
        #expect(e?.message.contains(" at line ") == true, "\(e?.message ?? "")")
    }

    @Test("duplicate keys are an error naming the key, as in Kubernetes")
    func duplicateKeys() {
        let e = #expect(throws: ManifestError.self) {
            _ = try ManifestLoader.parse("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nkind: Secret\n", source: "dup.yaml")
        }
        #expect(e?.message.hasPrefix("invalid YAML: duplicate key kind in a mapping at line ") == true, "\(e?.message ?? "")")
    }

    @Test("a syntax error in a later document fails the whole file")
    func laterDocumentSyntaxError() {
        let e = #expect(throws: ManifestError.self) {
            _ = try ManifestLoader.parse("\(guideBackendYAML)\n---\nkind: [unclosed\n", source: "two.yaml")
        }
        #expect(e?.message.contains(" at line ") == true, "\(e?.message ?? "")")
    }

    @Test("loading a missing path fails, a directory lists only manifest files")
    func loadingFiles() throws {
        #expect(throws: ManifestError.self) { try ManifestLoader.files(at: "/nonexistent/path/\(UInt64.random(in: 0...UInt64.max))") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aigw-api-tests-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["b.yml", "a.yaml", "c.json", "notes.txt", ".hidden.yaml"] {
            try Data("{}".utf8).write(to: dir.appendingPathComponent(name))
        }
        let files = try ManifestLoader.files(at: dir.path).map { ($0 as NSString).lastPathComponent }
        #expect(files == ["a.yaml", "b.yml", "c.json"])
    }
}
