import AIGatewayAPI
import AIGatewayProviders
import Testing

private let token = "authToken: {kind: Inline, inline: sk-test}"

/// The parts of a target the tests compare, as one line.
private func summary(_ t: UpstreamTarget) -> String {
    let statics = t.staticHeaders.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
    return "\(t.provider) served=\(t.served) \(t.baseURL)\(t.path) \(t.authHeaderName): '\(t.authPrefix)' model=\(t.model ?? "-") show=\(t.displayModel)"
        + (statics.isEmpty ? "" : " +\(statics)")
}

@Suite("Provider endpoints and targets")
struct ProviderCatalogTests {
    // MARK: --provider-endpoint

    @Test(
        "--provider-endpoint URLs",
        arguments: [
            ("http://127.0.0.1:9000", false, "127.0.0.1", 9000),
            ("http://fake-provider:8080/", false, "fake-provider", 8080),
            ("http://mirror.internal", false, "mirror.internal", 80),
            ("https://mirror.internal", true, "mirror.internal", 443),
            ("https://mirror.internal:8443//", true, "mirror.internal", 8443),
            ("http://[::1]:9000", false, "::1", 9000),
            ("https://[fe80::1]", true, "fe80::1", 443),
            ("http://localhost:65535", false, "localhost", 65535),
            ("http://h:1", false, "h", 1),
        ])
    func endpointURLs(url: String, tls: Bool, host: String, port: Int) {
        #expect(ProviderEndpoint(url: url) == ProviderEndpoint(tls: tls, host: host, port: port))
    }

    @Test(
        "malformed --provider-endpoint URLs are rejected",
        arguments: [
            "127.0.0.1:9000", "ftp://h", "http://", "https:///", "http://:80", "http://h:", "http://h:0", "http://h:65536",
            "http://h:-1", "http://h:+80", "http://h:80x", "http://::1", "http://fe80::1:9000", "http://[::1]:+80", "http://h/v1", "http://[::1", "http://[::1]x", "http://[::1]:", "http://[]:80", "", "http://bad host:80",
            "http://h\r\nX-Injected: 1:80", "http://user@h:80",
        ])
    func badEndpointURLs(url: String) {
        #expect(ProviderEndpoint(url: url) == nil)
    }

    @Test("endpoint descriptions bracket IPv6 hosts")
    func endpointDescription() throws {
        #expect(ProviderEndpoint(url: "http://[::1]:9000")?.description == "http://[::1]:9000")
        #expect(ProviderEndpoint(url: "https://a.example")?.description == "https://a.example:443")
    }

    // MARK: defaults per provider

    @Test("OpenAI defaults")
    func openai() throws {
        let t = ProviderCatalog.target(for: try llmEntry("openai: {model: gpt-4o, \(token)}"))
        #expect(summary(t) == "openai served=true https://api.openai.com:443/v1/chat/completions Authorization: 'Bearer ' model=gpt-4o show=gpt-4o")
        #expect(t.tls && t.port == 443 && t.host == "api.openai.com")
        #expect(t.hostHeader == "api.openai.com")
        #expect(t.staticHeaders.isEmpty)
        let noModel = ProviderCatalog.target(for: try llmEntry("openai: {\(token)}"))
        #expect(noModel.model == nil, "no configured model keeps the client's")
        #expect(noModel.displayModel == "openai")
    }

    @Test("Azure OpenAI: host from the endpoint, deployment path with api-version, api-key header")
    func azure() throws {
        let base = "\(token), deploymentName: gpt4o-prod, apiVersion: 2024-02-01"
        let t = ProviderCatalog.target(for: try llmEntry("azureopenai: {endpoint: my-res.openai.azure.com, \(base)}"))
        #expect(
            summary(t)
                == "azureopenai served=true https://my-res.openai.azure.com:443/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-02-01 api-key: '' model=- show=gpt4o-prod"
        )
        for endpoint in ["https://my-res.openai.azure.com/", "https://my-res.openai.azure.com:443", "my-res.openai.azure.com/openai"] {
            let u = ProviderCatalog.target(for: try llmEntry("azureopenai: {endpoint: \"\(endpoint)\", \(base)}"))
            #expect(u.host == "my-res.openai.azure.com", "endpoint \(endpoint)")
            #expect(u.port == 443 && u.tls)
        }
    }

    @Test("the providers that are validated but not served")
    func unservedProviders() throws {
        let anthropic = ProviderCatalog.target(for: try llmEntry("anthropic: {model: claude-3-5-sonnet, \(token)}"))
        #expect(
            summary(anthropic)
                == "anthropic served=true https://api.anthropic.com:443/v1/messages x-api-key: '' model=claude-3-5-sonnet show=claude-3-5-sonnet +anthropic-version=2023-06-01"
        )
        let pinned = ProviderCatalog.target(for: try llmEntry("anthropic: {apiVersion: \"2024-01-01\", \(token)}"))
        #expect(pinned.staticHeaders == [.init(name: "anthropic-version", value: "2024-01-01")])

        let bedrock = ProviderCatalog.target(for: try llmEntry("bedrock: {model: m1, region: eu-west-1}"))
        #expect(bedrock.host == "bedrock-runtime.eu-west-1.amazonaws.com")
        #expect(bedrock.tls && bedrock.port == 443)
        #expect(bedrock.served && bedrock.adapter?.provider == "bedrock")
        #expect(ProviderCatalog.target(for: try llmEntry("bedrock: {model: m1}")).host == "bedrock-runtime.us-east-1.amazonaws.com")
        // A model id with ':' is encoded once on the wire.
        #expect(ProviderCatalog.target(for: try llmEntry("bedrock: {model: \"anthropic.claude-v2:1\"}")).path == "/model/anthropic.claude-v2%3A1/converse")
        let arn = ProviderCatalog.target(for: try llmEntry("bedrock: {model: \"arn:aws:bedrock:us-east-1:1:inference-profile/us.m-v1:0\"}"))
        #expect(arn.path == "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.m-v1%3A0/converse", "an ARN's / stays in its segment")
        #expect(ProviderCatalog.served == ["openai", "azureopenai", "anthropic", "gemini", "vertexai", "bedrock"])
    }

    @Test("Gemini API and Vertex AI targets")
    func googleTargets() throws {
        let gemini = ProviderCatalog.target(for: try llmEntry("gemini: {model: gemini-1.5-pro, apiVersion: v1beta, \(token)}"))
        #expect(
            summary(gemini)
                == "gemini served=true https://generativelanguage.googleapis.com:443/v1beta/models/gemini-1.5-pro:generateContent x-goog-api-key: '' model=gemini-1.5-pro show=gemini-1.5-pro"
        )
        let vertex = ProviderCatalog.target(
            for: try llmEntry("vertexai: {model: gemini-pro, apiVersion: v1, projectId: p1, location: europe-west4, \(token)}"))
        #expect(
            summary(vertex)
                == "vertexai served=true https://europe-west4-aiplatform.googleapis.com:443/v1/projects/p1/locations/europe-west4/publishers/google/models/gemini-pro:generateContent Authorization: 'Bearer ' model=gemini-pro show=gemini-pro"
        )
        let global = ProviderCatalog.target(
            for: try llmEntry("vertexai: {model: gemini-2.5-flash, apiVersion: v1beta1, projectId: p1, location: global, publisher: GOOGLE, modelPath: countTokens, \(token)}"))
        #expect(global.baseURL + global.path == "https://aiplatform.googleapis.com:443/v1beta1/projects/p1/locations/global/publishers/google/models/gemini-2.5-flash:countTokens")
        let us = ProviderCatalog.target(for: try llmEntry("vertexai: {model: m, apiVersion: v1, projectId: p1, location: us, \(token)}"))
        #expect(us.host == "aiplatform.us.rep.googleapis.com")
    }

    // MARK: overrides

    @Test("an endpoint override redirects the provider's default host only")
    func endpointOverride() throws {
        let endpoints = ["openai": ProviderEndpoint(tls: false, host: "127.0.0.1", port: 9000)]
        let t = ProviderCatalog.target(for: try llmEntry("openai: {model: gpt-4o, \(token)}"), endpoints: endpoints)
        #expect(summary(t) == "openai served=true http://127.0.0.1:9000/v1/chat/completions Authorization: 'Bearer ' model=gpt-4o show=gpt-4o")
        #expect(t.hostHeader == "127.0.0.1:9000")
        // Another provider's override does not apply.
        let other = ProviderCatalog.target(
            for: try llmEntry("openai: {\(token)}"), endpoints: ["azureopenai": ProviderEndpoint(tls: false, host: "x", port: 1)])
        #expect(other.host == "api.openai.com" && other.tls)
        // IPv6 endpoint: bracketed in the URL and the Host header.
        let v6 = ProviderCatalog.target(for: try llmEntry("openai: {\(token)}"), endpoints: ["openai": ProviderEndpoint(url: "http://[::1]:9000")!])
        #expect(v6.baseURL == "http://[::1]:9000")
        #expect(v6.hostHeader == "[::1]:9000")
        // Azure keeps its deployment path behind an endpoint override.
        let azure = ProviderCatalog.target(
            for: try llmEntry("azureopenai: {endpoint: r.openai.azure.com, deploymentName: d, apiVersion: v, \(token)}"),
            endpoints: ["azureopenai": ProviderEndpoint(tls: true, host: "mirror", port: 8443)])
        #expect(azure.baseURL + azure.path == "https://mirror:8443/openai/deployments/d/chat/completions?api-version=v")
        #expect(azure.hostHeader == "mirror:8443")
    }

    @Test("an entry's host/port beats the endpoint override; port 443 means TLS, any other plaintext")
    func entryOverride() throws {
        let endpoints = ["openai": ProviderEndpoint(tls: false, host: "127.0.0.1", port: 9000)]
        let plain = ProviderCatalog.target(
            for: try llmEntry("openai: {\(token)}\nhost: llm.internal\nport: 8080"), endpoints: endpoints)
        #expect(plain.baseURL == "http://llm.internal:8080")
        #expect(plain.hostHeader == "llm.internal:8080")
        let tls = ProviderCatalog.target(for: try llmEntry("openai: {\(token)}\nhost: llm.internal\nport: 443"), endpoints: endpoints)
        #expect(tls.baseURL == "https://llm.internal:443")
        #expect(tls.hostHeader == "llm.internal")
        let older = ProviderCatalog.target(for: try llmEntry("provider: {openai: {\(token)}}\nhostOverride: {host: 10.1.2.3, port: 80}"))
        #expect(older.baseURL == "http://10.1.2.3:80")
        #expect(older.hostHeader == "10.1.2.3")
        #expect(older.path == "/v1/chat/completions")
    }

    @Test("path and auth header overrides")
    func pathAndAuthOverrides() throws {
        let later = ProviderCatalog.target(
            for: try llmEntry("openai: {\(token)}\npath: {full: /proxy/v1/chat}\nauthHeader: {prefix: Token, headerName: X-Api-Key}"))
        #expect(later.path == "/proxy/v1/chat")
        #expect(later.authHeaderName == "X-Api-Key")
        #expect(later.authPrefix == "Token ")
        let older = ProviderCatalog.target(
            for: try llmEntry("provider: {openai: {\(token)}}\npathOverride: {fullPath: /x?y=1}\nauthHeaderOverride: {prefix: \"\", headerName: api-key}"))
        #expect(older.path == "/x?y=1")
        #expect(older.authHeaderName == "api-key")
        #expect(older.authPrefix == "")
        let nameOnly = ProviderCatalog.target(for: try llmEntry("openai: {\(token)}\nauthHeader: {headerName: X-Key}"))
        #expect(nameOnly.authHeaderName == "X-Key")
        #expect(nameOnly.authPrefix == "Bearer ", "the prefix is kept when only the header name changes")
        let prefixOnly = ProviderCatalog.target(for: try llmEntry("openai: {\(token)}\nauthHeader: {prefix: \"Basic \"}"))
        #expect(prefixOnly.authHeaderName == "Authorization")
        #expect(prefixOnly.authPrefix == "Basic ")
        let azure = ProviderCatalog.target(
            for: try llmEntry("azureopenai: {endpoint: r, deploymentName: d, apiVersion: v, \(token)}\nauthHeader: {prefix: Bearer, headerName: Authorization}"))
        #expect(azure.authHeaderName == "Authorization")
        #expect(azure.authPrefix == "Bearer ")
    }

    @Test("a priority-group entry's name is shown when it has no model")
    func displayName() throws {
        let set = try resources(
            """
            apiVersion: gateway.kgateway.dev/v1alpha1
            kind: Backend
            metadata: {name: b}
            spec:
              type: AI
              ai:
                priorityGroups:
                - providers:
                  - {name: primary, openai: {\(token)}}
                  - {name: secondary, openai: {model: gpt-4o-mini, \(token)}}
            """)
        let entries = try #require(set.backends.first?.spec.ai?.priorities.first)
        #expect(entries.map { ProviderCatalog.target(for: $0).displayModel } == ["primary", "gpt-4o-mini"])
    }
}
