import AIGatewayAPI
import Testing

/// One invalid manifest and the complete list of errors it must produce.
struct InvalidCase: Sendable, CustomTestStringConvertible {
    var name: String
    var yaml: String
    var errors: [String]
    var testDescription: String { name }

    init(_ name: String, _ yaml: String, _ errors: [String]) {
        self.name = name
        self.yaml = yaml
        self.errors = errors
    }
}

private let passthrough = "authToken: {kind: Passthrough}"
private let providerList = "one of openai, azureopenai, anthropic, gemini, vertexai, bedrock"

private func manyPriorities(_ n: Int) -> String {
    "multipool:\n  priorities:\n" + String(repeating: "  - pool:\n    - openai: {\(passthrough)}\n", count: n)
}

private func manyPoolEntries(_ n: Int) -> String {
    "multipool:\n  priorities:\n  - pool:\n" + String(repeating: "    - openai: {\(passthrough)}\n", count: n)
}

private func manyGroups(_ n: Int) -> String {
    "priorityGroups:\n" + String(repeating: "- providers:\n  - {name: a, openai: {\(passthrough)}}\n", count: n)
}

private func gateway(_ listeners: String, className: String = "gatewayClassName: kgateway") -> String {
    """
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata: {name: gw, namespace: ns}
    spec:
      \(className)
      listeners:
    \(listeners.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
    """
}

private func httpRoute(_ spec: String) -> String {
    """
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: r, namespace: ns}
    spec:
    \(spec.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
    """
}

private let backendCases: [InvalidCase] = [
    .init(
        "an older-shape entry without a provider",
        aiBackend(
            """
            multipool:
              priorities:
              - pool:
                - provider:
                    openai: {model: a, authToken: {kind: Inline, inline: k}}
              - pool:
                - provider: {}
            """),
        ["spec.ai.multipool.priorities[1].pool[0].provider: exactly one provider must be set (\(providerList))"]),
    .init(
        "an older-shape entry with two providers",
        aiBackend(
            """
            multipool:
              priorities:
              - pool:
                - provider:
                    openai: {\(passthrough)}
                    anthropic: {\(passthrough)}
            """),
        ["spec.ai.multipool.priorities[0].pool[0].provider: exactly one provider must be set, found openai and anthropic"]),
    .init(
        "a later-shape entry without a provider",
        aiBackend(
            """
            priorityGroups:
            - providers:
              - name: a
                host: h
                port: 80
            """),
        ["spec.ai.priorityGroups[0].providers[0]: exactly one provider must be set (\(providerList))"]),
    .init(
        "both the provider wrapper and a direct provider key",
        llmBackend("provider: {openai: {\(passthrough)}}\nanthropic: {\(passthrough)}"),
        ["spec.ai.llm: set either provider or anthropic directly, not both", "spec.ai.llm.anthropic: unknown field"]),
    .init(
        "a typo in a provider field (modle)",
        llmBackend("openai:\n  modle: gpt-4o\n  \(passthrough)"),
        ["spec.ai.llm.openai.modle: unknown field"]),
    .init(
        "a typo in an entry field",
        llmBackend("provider: {openai: {\(passthrough)}}\nhostOveride: {host: a, port: 1}"),
        ["spec.ai.llm.hostOveride: unknown field"]),
    .init(
        "a typo in the ai shape",
        aiBackend("multiPool:\n  priorities: []"),
        ["spec.ai: exactly one of llm, multipool or priorityGroups must be set", "spec.ai.multiPool: unknown field"]),
    .init(
        "a typo in spec.type",
        """
        apiVersion: gateway.kgateway.dev/v1alpha1
        kind: Backend
        metadata: {name: b, namespace: ns}
        spec:
          tpye: AI
          ai: {llm: {openai: {\(passthrough)}}}
        """,
        ["spec.type: required field is missing", "spec.tpye: unknown field"]),
    .init(
        "a model that is a number",
        llmBackend("openai: {model: 5, \(passthrough)}"),
        ["spec.ai.llm.openai.model: must be a string, found integer"]),
    .init(
        "priorities that are an object",
        aiBackend("multipool:\n  priorities: {pool: []}"),
        ["spec.ai.multipool.priorities: must be an array, found object"]),
    .init(
        "a port that is a string",
        llmBackend("provider: {openai: {\(passthrough)}}\nhostOverride: {host: h, port: \"80\"}"),
        ["spec.ai.llm.hostOverride.port: must be an integer, found string"]),
    .init(
        "an authToken that is a string",
        llmBackend("openai: {authToken: sk-123}"),
        ["spec.ai.llm.openai.authToken: must be an object, found string"]),
    .init(
        "spec.ai that is a list",
        """
        apiVersion: gateway.kgateway.dev/v1alpha1
        kind: Backend
        metadata: {name: b, namespace: ns}
        spec:
          type: AI
          ai: [llm]
        """,
        ["spec.ai: must be an object, found array"]),
    .init(
        "an unknown Backend type",
        """
        apiVersion: gateway.kgateway.dev/v1alpha1
        kind: Backend
        metadata: {name: b, namespace: ns}
        spec:
          type: Foo
          ai: {llm: {openai: {\(passthrough)}}}
        """,
        [#"spec.type: unsupported value "Foo": supported values: "AI", "AWS", "Static""#]),
    .init(
        "an unknown authToken kind",
        llmBackend("openai: {authToken: {kind: Secret, secretRef: {name: s}}}"),
        [#"spec.ai.llm.openai.authToken.kind: unsupported value "Secret": supported values: "Inline", "SecretRef", "Passthrough""#]),
    .init(
        "an unknown Vertex AI publisher",
        llmBackend("vertexai: {\(passthrough), model: m, apiVersion: v1, projectId: p, location: l, publisher: META}"),
        [#"spec.ai.llm.vertexai.publisher: unsupported value "META": supported values: "GOOGLE""#]),
    .init(
        "no priorities",
        aiBackend("multipool:\n  priorities: []"),
        ["spec.ai.multipool.priorities: must have at least 1 item(s), found 0"]),
    .init(
        "an empty pool",
        aiBackend("multipool:\n  priorities:\n  - pool: []"),
        ["spec.ai.multipool.priorities[0].pool: must have at least 1 item(s), found 0"]),
    .init("21 priorities", aiBackend(manyPriorities(21)), ["spec.ai.multipool.priorities: must have at most 20 item(s), found 21"]),
    .init("21 entries in a pool", aiBackend(manyPoolEntries(21)), ["spec.ai.multipool.priorities[0].pool: must have at most 20 item(s), found 21"]),
    .init("33 priority groups", aiBackend(manyGroups(33)), ["spec.ai.priorityGroups: must have at most 32 item(s), found 33"]),
    .init("no priority groups", aiBackend("priorityGroups: []"), ["spec.ai.priorityGroups: must have at least 1 item(s), found 0"]),
    .init(
        "a group without providers",
        aiBackend("priorityGroups:\n- providers: []"),
        ["spec.ai.priorityGroups[0].providers: must have at least 1 item(s), found 0"]),
    .init(
        "a host without a port",
        aiBackend("priorityGroups:\n- providers:\n  - name: a\n    openai: {\(passthrough)}\n    host: llm.internal"),
        ["spec.ai.priorityGroups[0].providers[0].port: host and port must be set together"]),
    .init(
        "a port without a host",
        aiBackend("priorityGroups:\n- providers:\n  - name: a\n    openai: {\(passthrough)}\n    port: 8080"),
        ["spec.ai.priorityGroups[0].providers[0].host: host and port must be set together"]),
    .init(
        "hostOverride together with host/port",
        llmBackend("provider: {openai: {\(passthrough)}}\nhostOverride: {host: a, port: 1}\nhost: b\nport: 2"),
        ["spec.ai.llm: set either hostOverride or host/port, not both"]),
    .init(
        "hostOverride without a port",
        llmBackend("provider: {openai: {\(passthrough)}}\nhostOverride: {host: a}"),
        ["spec.ai.llm.hostOverride.port: required field is missing"]),
    .init(
        "a port out of range",
        llmBackend("provider: {openai: {\(passthrough)}}\nhostOverride: {host: a, port: 70000}"),
        ["spec.ai.llm.hostOverride.port: must be between 1 and 65535, found 70000"]),
    .init(
        "hostOverride.insecureSkipVerify: true (provider TLS is always verified)",
        llmBackend("provider: {openai: {\(passthrough)}}\nhostOverride: {host: a, port: 443, insecureSkipVerify: true}"),
        ["spec.ai.llm.hostOverride.insecureSkipVerify: not supported: provider TLS is always verified (trust a private CA with --provider-ca-file)"]),
    .init(
        "hostOverride.insecureSkipVerify that is no boolean",
        llmBackend("provider: {openai: {\(passthrough)}}\nhostOverride: {host: a, port: 443, insecureSkipVerify: \"yes\"}"),
        ["spec.ai.llm.hostOverride.insecureSkipVerify: must be a boolean, found string"]),
    .init(
        "kind SecretRef without secretRef",
        llmBackend("openai: {authToken: {kind: SecretRef}}"),
        ["spec.ai.llm.openai.authToken.secretRef: required when kind is SecretRef"]),
    .init(
        "kind Inline without inline",
        llmBackend("openai: {authToken: {kind: Inline}}"),
        ["spec.ai.llm.openai.authToken.inline: required when kind is Inline"]),
    .init(
        "kind Inline with an empty inline",
        llmBackend("openai: {authToken: {kind: Inline, inline: \"\"}}"),
        ["spec.ai.llm.openai.authToken.inline: required when kind is Inline"]),
    .init(
        "kind Inline with a secretRef",
        llmBackend("openai: {authToken: {kind: Inline, inline: k, secretRef: {name: s}}}"),
        ["spec.ai.llm.openai.authToken.secretRef: must not be set when kind is Inline"]),
    .init(
        "kind SecretRef with an inline value",
        llmBackend("openai: {authToken: {kind: SecretRef, inline: k, secretRef: {name: s}}}"),
        ["spec.ai.llm.openai.authToken.inline: must not be set when kind is SecretRef"]),
    .init(
        "kind Passthrough with a secretRef",
        llmBackend("openai: {authToken: {kind: Passthrough, secretRef: {name: s}}}"),
        ["spec.ai.llm.openai.authToken: inline and secretRef must not be set when kind is Passthrough"]),
    .init(
        "a secretRef without a name",
        llmBackend("openai: {authToken: {kind: SecretRef, secretRef: {}}}"),
        ["spec.ai.llm.openai.authToken.secretRef.name: required field is missing"]),
    .init(
        "an authToken without a kind",
        llmBackend("openai: {authToken: {inline: k}}"),
        ["spec.ai.llm.openai.authToken.kind: required field is missing"]),
    .init(
        "an OpenAI provider without an authToken",
        llmBackend("openai: {model: m}"),
        ["spec.ai.llm.openai.authToken: required field is missing"]),
    .init(
        "Azure OpenAI without its required fields",
        llmBackend("azureopenai: {\(passthrough)}"),
        [
            "spec.ai.llm.azureopenai.endpoint: required field is missing",
            "spec.ai.llm.azureopenai.deploymentName: required field is missing",
            "spec.ai.llm.azureopenai.apiVersion: required field is missing",
        ]),
    .init(
        "Gemini without a model",
        llmBackend("gemini: {\(passthrough), apiVersion: v1beta}"),
        ["spec.ai.llm.gemini.model: required field is missing"]),
    .init(
        "Vertex AI without project and location",
        llmBackend("vertexai: {\(passthrough), model: m, apiVersion: v1}"),
        ["spec.ai.llm.vertexai.projectId: required field is missing", "spec.ai.llm.vertexai.location: required field is missing"]),
    .init(
        "Bedrock with a bad auth and no model",
        llmBackend("bedrock: {auth: x}"),
        ["spec.ai.llm.bedrock.auth: must be an object, found string", "spec.ai.llm.bedrock.model: required field is missing"]),
    .init(
        "Bedrock auth of type Secret without its secretRef, or of another type",
        llmBackend("bedrock: {model: m, auth: {type: Secret}}"),
        ["spec.ai.llm.bedrock.auth.secretRef: required field is missing"]),
    .init(
        "Bedrock auth of an unknown type",
        llmBackend("bedrock: {model: m, auth: {type: IRSA, secretRef: {name: a}}}"),
        ["spec.ai.llm.bedrock.auth.type: unsupported value \"IRSA\": supported values: \"Secret\""]),
    .init(
        "a relative pathOverride",
        llmBackend("provider: {openai: {\(passthrough)}}\npathOverride: {fullPath: v1/chat}"),
        ["spec.ai.llm.pathOverride.fullPath: must start with /"]),
    .init(
        "a relative path.full",
        aiBackend("priorityGroups:\n- providers:\n  - name: a\n    openai: {\(passthrough)}\n    path: {full: v1/chat}"),
        ["spec.ai.priorityGroups[0].providers[0].path.full: must start with /"]),
    .init(
        "an empty authHeader",
        llmBackend("openai: {\(passthrough)}\nauthHeader: {}"),
        ["spec.ai.llm.authHeader: at least one of prefix or headerName must be set"]),
    .init(
        "an authHeader whose name is no header name",
        llmBackend("openai: {\(passthrough)}\nauthHeader: {headerName: \"api key\"}"),
        [#"spec.ai.llm.authHeader.headerName: must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~, at most 256), found "api key""#, "spec.ai.llm.authHeader: at least one of prefix or headerName must be set"]),
    .init(
        "llm and multipool together",
        aiBackend("llm: {openai: {\(passthrough)}}\nmultipool:\n  priorities:\n  - pool:\n    - openai: {\(passthrough)}"),
        ["spec.ai: exactly one of llm, multipool or priorityGroups must be set, found llm and multipool"]),
    .init(
        "type AI without spec.ai",
        """
        apiVersion: gateway.kgateway.dev/v1alpha1
        kind: Backend
        metadata: {name: b, namespace: ns}
        spec: {type: AI}
        """,
        ["spec.ai: required when type is AI"]),
    .init(
        "type AWS with spec.ai and without spec.aws",
        """
        apiVersion: gateway.kgateway.dev/v1alpha1
        kind: Backend
        metadata: {name: b, namespace: ns}
        spec:
          type: AWS
          ai: {llm: {openai: {\(passthrough)}}}
        """,
        ["spec.ai: must not be set when type is AWS", "spec.aws: required when type is AWS"]),
    .init(
        "duplicate names within a priority group",
        aiBackend(
            """
            priorityGroups:
            - providers:
              - {name: a, openai: {\(passthrough)}}
              - {name: b, openai: {\(passthrough)}}
              - {name: a, openai: {\(passthrough)}}
            """),
        [#"spec.ai.priorityGroups[0].providers[2].name: duplicate name "a" within the group"#]),
    .init(
        "a priority-group entry without a name",
        aiBackend("priorityGroups:\n- providers:\n  - openai: {\(passthrough)}"),
        ["spec.ai.priorityGroups[0].providers[0].name: required field is missing"]),
    .init(
        "an invalid object name",
        guideBackendYAML.replacingOccurrences(of: "name: model-failover", with: "name: Model_Failover"),
        [#"metadata.name: invalid name "Model_Failover": must be a lowercase RFC 1123 subdomain"#]),
    .init(
        "no metadata",
        """
        apiVersion: gateway.kgateway.dev/v1alpha1
        kind: Backend
        spec: {type: AI, ai: {llm: {openai: {\(passthrough)}}}}
        """,
        ["metadata: required field is missing"]),
    .init(
        "an unsupported version of our group",
        guideBackendYAML.replacingOccurrences(of: "gateway.kgateway.dev/v1alpha1", with: "gateway.kgateway.dev/v1"),
        ["apiVersion: unsupported version \"gateway.kgateway.dev/v1\" for Backend: supported: gateway.kgateway.dev/v1alpha1"]),
    .init(
        "a top-level typo (sepc)",
        guideBackendYAML.replacingOccurrences(of: "spec:", with: "sepc:"),
        ["spec: required field is missing", "sepc: unknown field"]),
    .init(
        "a label that is not a string",
        guideBackendYAML.replacingOccurrences(of: "app: model-failover", with: "app: 1"),
        ["metadata.labels.app: must be a string, found integer"]),
]

/// Fields that reach the provider's request line or headers, next to the gateway's key: each one
/// that could carry a line break, a space or syntax of another part of the request is refused.
private let wireCases: [InvalidCase] = [
    .init(
        "a pathOverride that adds a header line after a request line of its own",
        llmBackend("provider: {openai: {\(passthrough)}}\npathOverride: {fullPath: \"/v1/chat HTTP/1.1\\r\\nX-Injected: yes\\r\\n\"}"),
        [#"spec.ai.llm.pathOverride.fullPath: must be a URL path: spaces are not allowed (write %20), found "/v1/chat HTTP/1.1\r\nX-Injected: yes\r\n""#]),
    .init(
        "a path.full with a line break and no space",
        aiBackend("priorityGroups:\n- providers:\n  - name: a\n    openai: {\(passthrough)}\n    path: {full: \"/v1/chat\\r\\nX-Injected:yes\"}"),
        [#"spec.ai.priorityGroups[0].providers[0].path.full: must be a URL path: control characters (CR, LF, NUL, ...) are not allowed, found "/v1/chat\r\nX-Injected:yes""#]),
    .init(
        "a path with a fragment",
        llmBackend("openai: {\(passthrough)}\npath: {full: \"/v1/chat#x\"}"),
        [#"spec.ai.llm.path.full: must be a URL path: # (a fragment) is not allowed, found "/v1/chat#x""#]),
    .init(
        "a path with a stray %",
        llmBackend("openai: {\(passthrough)}\npath: {full: \"/v1/100%\"}"),
        [#"spec.ai.llm.path.full: must be a URL path: % must start a %XX escape, found "/v1/100%""#]),
    .init(
        "a path with raw non-ASCII",
        llmBackend("openai: {\(passthrough)}\npath: {full: \"/v1/caf\u{E9}\"}"),
        ["spec.ai.llm.path.full: must be a URL path: non-ASCII characters must be percent-encoded, found \"/v1/caf\u{E9}\""]),
    .init(
        "a path with an angle bracket",
        llmBackend("openai: {\(passthrough)}\npath: {full: \"/v1/<x>\"}"),
        [#"spec.ai.llm.path.full: must be a URL path: "<" is not allowed (percent-encode it), found "/v1/<x>""#]),
    .init(
        "a hostOverride.host that adds a header",
        llmBackend("provider: {openai: {\(passthrough)}}\nhostOverride: {host: \"api.openai.com\\r\\nX-Injected: yes\", port: 443}"),
        [#"spec.ai.llm.hostOverride.host: must be a host name or IP address: control characters (CR, LF, NUL, ...) are not allowed, found "api.openai.com\r\nX-Injected: yes""#]),
    .init(
        "a hostOverride.host with a port",
        llmBackend("provider: {openai: {\(passthrough)}}\nhostOverride: {host: \"llm.internal:8080\", port: 8080}"),
        [#"spec.ai.llm.hostOverride.host: must be a host name or IP address: a port is not allowed here: give the host only, found "llm.internal:8080""#]),
    .init(
        "a hostOverride.host with a scheme",
        llmBackend("provider: {openai: {\(passthrough)}}\nhostOverride: {host: \"https://llm.internal\", port: 443}"),
        [#"spec.ai.llm.hostOverride.host: must be a host name or IP address: a scheme is not allowed: give the host only, found "https://llm.internal""#]),
    .init(
        "a host with a path",
        aiBackend("priorityGroups:\n- providers:\n  - name: a\n    openai: {\(passthrough)}\n    host: llm.internal/v1\n    port: 80"),
        [#"spec.ai.priorityGroups[0].providers[0].host: must be a host name or IP address: a path is not allowed: give the host only, found "llm.internal/v1""#]),
    .init(
        "a host with user information",
        aiBackend("priorityGroups:\n- providers:\n  - name: a\n    openai: {\(passthrough)}\n    host: user@llm.internal\n    port: 80"),
        [#"spec.ai.priorityGroups[0].providers[0].host: must be a host name or IP address: user information is not allowed: give the host only, found "user@llm.internal""#]),
    .init(
        "a host that is no IPv4 address",
        llmBackend("provider: {openai: {\(passthrough)}}\nhostOverride: {host: 10.0.0.300, port: 80}"),
        [#"spec.ai.llm.hostOverride.host: must be a host name or IP address: not a valid IPv4 address, found "10.0.0.300""#]),
    .init(
        "a host with an empty label",
        llmBackend("provider: {openai: {\(passthrough)}}\nhostOverride: {host: llm..internal, port: 80}"),
        [#"spec.ai.llm.hostOverride.host: must be a host name or IP address: empty label (a leading, trailing or doubled dot), found "llm..internal""#]),
    .init(
        "Azure OpenAI fields that add a header, leave the deployment and add a query parameter",
        llmBackend(
            "azureopenai: {\(passthrough), endpoint: \"x.openai.azure.com\\r\\nX-Injected: yes\", deploymentName: \"../../x\", apiVersion: \"2024-02-01&key=1\"}"),
        [
            #"spec.ai.llm.azureopenai.endpoint: must be a host name such as my-resource.openai.azure.com: control characters (CR, LF, NUL, ...) are not allowed, found "x.openai.azure.com\r\nX-Injected: yes""#,
            #"spec.ai.llm.azureopenai.deploymentName: must be one URL path segment: / is not allowed in a single path segment, found "../../x""#,
            #"spec.ai.llm.azureopenai.apiVersion: must be a version token: only letters, digits and -._~ are allowed, found "2024-02-01&key=1""#,
        ]),
    .init(
        "an Azure endpoint with another port or path, and a dot-segment deployment",
        llmBackend("azureopenai: {\(passthrough), endpoint: \"https://x.openai.azure.com:8443/v2\", deploymentName: \"..\", apiVersion: v}"),
        [
            #"spec.ai.llm.azureopenai.endpoint: must be a host name such as my-resource.openai.azure.com: a path other than /openai is not allowed (set pathOverride for another path), found "https://x.openai.azure.com:8443/v2""#,
            #"spec.ai.llm.azureopenai.deploymentName: must be one URL path segment: must not be . or .., found "..""#,
        ]),
    .init(
        "an Azure endpoint with another port",
        llmBackend("azureopenai: {\(passthrough), endpoint: \"x.openai.azure.com:8443\", deploymentName: d, apiVersion: v}"),
        [#"spec.ai.llm.azureopenai.endpoint: must be a host name such as my-resource.openai.azure.com: a port other than 443 is not allowed (set hostOverride for another port), found "x.openai.azure.com:8443""#]),
    .init(
        "an OpenAI model and an Anthropic apiVersion that add a header",
        aiBackend(
            """
            multipool:
              priorities:
              - pool:
                - openai: {\(passthrough), model: "gpt-4o\\r\\nX-Injected: yes"}
                - anthropic: {\(passthrough), apiVersion: "2023-06-01\\r\\nX-Injected: yes"}
            """),
        [
            #"spec.ai.multipool.priorities[0].pool[0].openai.model: must be a model name: control characters (CR, LF, NUL, ...) are not allowed, found "gpt-4o\r\nX-Injected: yes""#,
            #"spec.ai.multipool.priorities[0].pool[1].anthropic.apiVersion: must be a version token: control characters (CR, LF, NUL, ...) are not allowed, found "2023-06-01\r\nX-Injected: yes""#,
        ]),
    .init(
        "an Anthropic model with a space",
        llmBackend("anthropic: {\(passthrough), model: \"claude 3\"}"),
        [#"spec.ai.llm.anthropic.model: must be a model name: spaces are not allowed (write %20), found "claude 3""#]),
    .init(
        "a Gemini model that adds a query and a version that adds a segment",
        llmBackend("gemini: {\(passthrough), model: \"gemini-pro:generateContent?key=x\", apiVersion: v1/x}"),
        [
            #"spec.ai.llm.gemini.model: must be one URL path segment: ? is not allowed in a single path segment, found "gemini-pro:generateContent?key=x""#,
            #"spec.ai.llm.gemini.apiVersion: must be a version token: only letters, digits and -._~ are allowed, found "v1/x""#,
        ]),
    .init(
        "Vertex AI fields that leave their segment or host label",
        llmBackend(
            "vertexai: {\(passthrough), model: \"m#x\", apiVersion: v1, projectId: \"p x\", location: us-central1.evil.example, modelPath: \"a\\nb\"}"),
        [
            #"spec.ai.llm.vertexai.model: must be one URL path segment: # (a fragment) is not allowed, found "m#x""#,
            #"spec.ai.llm.vertexai.projectId: must be one URL path segment: spaces are not allowed (write %20), found "p x""#,
            #"spec.ai.llm.vertexai.location: must be a region name: only letters, digits and - (not first or last) are allowed, found "us-central1.evil.example""#,
            #"spec.ai.llm.vertexai.modelPath: must be a URL path: control characters (CR, LF, NUL, ...) are not allowed, found "a\nb""#,
        ]),
    .init(
        "Bedrock fields that leave their segment or host label",
        llmBackend(
            "bedrock: {model: \"anthropic.claude v2\", region: \"us-east-1.evil.example\", guardrail: {identifier: \"g/x\", version: \"1\\r\\n\"}}"),
        [
            #"spec.ai.llm.bedrock.model: must be one URL path segment (or an ARN): spaces are not allowed (write %20), found "anthropic.claude v2""#,
            #"spec.ai.llm.bedrock.region: must be a region name: only letters, digits and - (not first or last) are allowed, found "us-east-1.evil.example""#,
            #"spec.ai.llm.bedrock.guardrail.identifier: must be one URL path segment (or an ARN): / is not allowed in a single path segment, found "g/x""#,
            #"spec.ai.llm.bedrock.guardrail.version: must be a version token: control characters (CR, LF, NUL, ...) are not allowed, found "1\r\n""#,
        ]),
    .init(
        "a priority-group entry name with a line break",
        aiBackend("priorityGroups:\n- providers:\n  - {name: \"a\\r\\nb\", openai: {\(passthrough)}}"),
        ["spec.ai.priorityGroups[0].providers[0].name: must not hold control characters (CR, LF, NUL, ...)"]),
    .init(
        "a very long injected value is cut in the message",
        llmBackend("openai: {\(passthrough)}\npath: {full: \"/\(String(repeating: "a", count: 120)) x\"}"),
        ["spec.ai.llm.path.full: must be a URL path: spaces are not allowed (write %20), found \"/\(String(repeating: "a", count: 99))\"..."]),
]

private let routeCases: [InvalidCase] = [
    .init(
        "a request header name with a space, a value with a line break, a removal that is no header name",
        routeWithRules(
            """
            - filters:
              - type: RequestHeaderModifier
                requestHeaderModifier:
                  set: [{name: "x team", value: a}]
                  add: [{name: x-ok, value: "a\\r\\nx-injected: 1"}]
                  remove: ["bad:name"]
            """),
        [
            #"spec.rules[0].filters[0].requestHeaderModifier.set[0].name: must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~, at most 256), found "x team""#,
            "spec.rules[0].filters[0].requestHeaderModifier.add[0].value: must be a header value without control characters (CR, LF, NUL), at most 4096 bytes",
            #"spec.rules[0].filters[0].requestHeaderModifier.remove[0]: must be an HTTP header name, found "bad:name""#,
        ]),
    .init(
        "a request timeout with a space",
        routeWithRules("- timeouts: {request: 30 s}"),
        [#"spec.rules[0].timeouts.request: invalid duration "30 s": expected a Gateway API duration such as 500ms, 10s, 1m or 1h30m"#]),
    .init(
        "a backendRequest timeout in days",
        routeWithRules("- timeouts: {backendRequest: 1d}"),
        [#"spec.rules[0].timeouts.backendRequest: invalid duration "1d": expected a Gateway API duration such as 500ms, 10s, 1m or 1h30m"#]),
    .init(
        "a timeout that is a number",
        routeWithRules("- timeouts: {request: 30}"),
        ["spec.rules[0].timeouts.request: must be a string, found integer"]),
    .init(
        "a backendRequest timeout longer than the request timeout",
        routeWithRules("- timeouts: {request: 1m, backendRequest: 2m}"),
        ["spec.rules[0].timeouts.backendRequest: must not be greater than timeouts.request"]),
    .init(
        "ReplacePrefixMatch with an Exact match",
        routeWithRules(
            """
            - matches:
              - path: {type: Exact, value: /a}
              filters:
              - type: URLRewrite
                urlRewrite:
                  path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}
            """),
        ["spec.rules[0].filters[0].urlRewrite.path.type: ReplacePrefixMatch is only valid with a PathPrefix match"]),
    .init(
        "ReplacePrefixMatch when one of several matches is a regex",
        routeWithRules(
            """
            - matches:
              - path: {type: PathPrefix, value: /a}
              - path: {type: RegularExpression, value: /b.*}
              filters:
              - type: URLRewrite
                urlRewrite:
                  path: {type: ReplacePrefixMatch, replacePrefixMatch: /c}
            """),
        ["spec.rules[0].filters[0].urlRewrite.path.type: ReplacePrefixMatch is only valid with a PathPrefix match"]),
    .init(
        "ReplaceFullPath without its value",
        routeWithRules("- filters:\n  - type: URLRewrite\n    urlRewrite: {path: {type: ReplaceFullPath}}"),
        ["spec.rules[0].filters[0].urlRewrite.path.replaceFullPath: required field is missing"]),
    .init(
        "an unknown path rewrite type",
        routeWithRules("- filters:\n  - type: URLRewrite\n    urlRewrite: {path: {type: ReplacePrefix, replacePrefixMatch: /x}}"),
        [
            #"spec.rules[0].filters[0].urlRewrite.path.type: unsupported value "ReplacePrefix": supported values: "ReplaceFullPath", "ReplacePrefixMatch""#,
            "spec.rules[0].filters[0].urlRewrite.path.replacePrefixMatch: unknown field",
        ]),
    .init(
        "an unknown path match type",
        routeWithRules("- matches:\n  - path: {type: Prefix, value: /a}"),
        [#"spec.rules[0].matches[0].path.type: unsupported value "Prefix": supported values: "Exact", "PathPrefix", "RegularExpression""#]),
    .init(
        "a relative path",
        routeWithRules("- matches:\n  - path: {type: PathPrefix, value: model}"),
        ["spec.rules[0].matches[0].path.value: must be an absolute path starting with /"]),
    .init(
        "an invalid path regex",
        routeWithRules("- matches:\n  - path: {type: RegularExpression, value: \"/([a-\"}"),
        ["spec.rules[0].matches[0].path.value: invalid regular expression"]),
    .init(
        "an invalid header regex",
        routeWithRules("- matches:\n  - headers: [{type: RegularExpression, name: x, value: \"(\"}]"),
        ["spec.rules[0].matches[0].headers[0].value: invalid regular expression"]),
    .init(
        "a header match without a name",
        routeWithRules("- matches:\n  - headers: [{value: v}]"),
        ["spec.rules[0].matches[0].headers[0].name: required field is missing"]),
    .init(
        "an unknown query match type",
        routeWithRules("- matches:\n  - queryParams: [{type: Prefix, name: q, value: v}]"),
        [#"spec.rules[0].matches[0].queryParams[0].type: unsupported value "Prefix": supported values: "Exact", "RegularExpression""#]),
    .init(
        "an unknown method",
        routeWithRules("- matches:\n  - method: FETCH"),
        [
            #"spec.rules[0].matches[0].method: unsupported value "FETCH": supported values: "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH""#
        ]),
    .init(
        "matches that are an object",
        routeWithRules("- matches: {path: {value: /a}}"),
        ["spec.rules[0].matches: must be an array, found object"]),
    .init(
        "a negative weight",
        routeWithRules("- backendRefs: [{group: gateway.kgateway.dev, kind: Backend, name: b, weight: -1}]"),
        ["spec.rules[0].backendRefs[0].weight: must be between 0 and 1000000, found -1"]),
    .init(
        "a backendRef typo (namee)",
        routeWithRules("- backendRefs: [{group: gateway.kgateway.dev, kind: Backend, namee: b}]"),
        ["spec.rules[0].backendRefs[0].name: required field is missing", "spec.rules[0].backendRefs[0].namee: unknown field"]),
    .init(
        "per-backend filters",
        routeWithRules("- backendRefs: [{group: gateway.kgateway.dev, kind: Backend, name: b, filters: []}]"),
        ["spec.rules[0].backendRefs[0].filters: per-backend filters are not supported; set filters on the rule"]),
    .init(
        "a rule typo (backendRef)",
        routeWithRules("- backendRef: [{name: b}]"),
        ["spec.rules[0].backendRef: unknown field"]),
    .init(
        "a typo beside a member the schema ignores and a null one (both count as known)",
        routeWithRules("- sessionPersistence: {sessionName: s}\n  timeouts: null\n  backendRef: [{name: b}]"),
        ["spec.rules[0].backendRef: unknown field"]),
    .init(
        "a retry code that is not an error",
        routeWithRules("- retry: {codes: [503, 200]}"),
        ["spec.rules[0].retry.codes[1]: must be an HTTP status code between 400 and 599"]),
    .init(
        "too many retry attempts",
        routeWithRules("- retry: {attempts: 11}"),
        ["spec.rules[0].retry.attempts: must be between 0 and 10, found 11"]),
    .init(
        "a bad retry backoff",
        routeWithRules("- retry: {backoff: soon}"),
        [#"spec.rules[0].retry.backoff: invalid duration "soon": expected a Gateway API duration such as 500ms, 10s, 1m or 1h30m"#]),
    .init(
        "an unsupported filter type",
        routeWithRules("- filters:\n  - type: RequestRedirect\n    requestRedirect: {statusCode: 301}"),
        [#"spec.rules[0].filters[0].type: unsupported value "RequestRedirect": supported values: "RequestHeaderModifier", "ResponseHeaderModifier", "URLRewrite""#]),
    .init(
        "URLRewrite without urlRewrite",
        routeWithRules("- filters:\n  - type: URLRewrite"),
        ["spec.rules[0].filters[0].urlRewrite: required field is missing"]),
    .init(
        "a filter without a type",
        routeWithRules("- filters:\n  - urlRewrite: {hostname: h}"),
        ["spec.rules[0].filters[0].type: required field is missing", "spec.rules[0].filters[0].urlRewrite: unknown field"]),
    .init(
        "a header modifier entry without a value",
        routeWithRules("- filters:\n  - type: RequestHeaderModifier\n    requestHeaderModifier: {set: [{name: x}]}"),
        ["spec.rules[0].filters[0].requestHeaderModifier.set[0].value: required field is missing"]),
    .init(
        "an upper-case hostname",
        httpRoute("hostnames: [Foo.example.com]"),
        [#"spec.hostnames[0]: invalid hostname "Foo.example.com""#]),
    .init(
        "a wildcard in the middle of a hostname",
        httpRoute("hostnames: [\"a.*.example.com\"]"),
        [#"spec.hostnames[0]: invalid hostname "a.*.example.com""#]),
    .init("a parentRef without a name", httpRoute("parentRefs: [{namespace: ns}]"), ["spec.parentRefs[0].name: required field is missing"]),
    .init(
        "a parentRef port out of range",
        httpRoute("parentRefs: [{name: gw, port: 0}]"),
        ["spec.parentRefs[0].port: must be between 1 and 65535, found 0"]),
    .init(
        "17 rules",
        httpRoute("rules:\n" + String(repeating: "- matches: [{path: {value: /}}]\n", count: 17)),
        ["spec.rules: must have at most 16 item(s), found 17"]),
    .init("a spec typo (hostname)", httpRoute("hostname: [a.example.com]"), ["spec.hostname: unknown field"]),
]

private let otherCases: [InvalidCase] = [
    .init(
        "a Gateway without listeners",
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: ns}
        spec: {gatewayClassName: kgateway}
        """,
        ["spec.listeners: required field is missing"]),
    .init("a Gateway with an empty listener list", gateway("[]"), ["spec.listeners: must have at least 1 item(s), found 0"]),
    .init("a Gateway without a class", gateway("- {name: http, protocol: HTTP, port: 80}", className: ""), ["spec.gatewayClassName: required field is missing"]),
    .init(
        "a listener with an unknown allowedRoutes.from",
        gateway("- {name: http, protocol: HTTP, port: 80, allowedRoutes: {namespaces: {from: Any}}}"),
        [#"spec.listeners[0].allowedRoutes.namespaces.from: unsupported value "Any": supported values: "All", "Same", "Selector""#]),
    .init(
        "a listener port of 0",
        gateway("- {name: http, protocol: HTTP, port: 0}"),
        ["spec.listeners[0].port: must be between 1 and 65535, found 0"]),
    .init(
        "a listener without a protocol",
        gateway("- {name: http, port: 80}"),
        ["spec.listeners[0].protocol: required field is missing"]),
    .init(
        "a GatewayClass without a controllerName",
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: GatewayClass
        metadata: {name: gc}
        spec: {}
        """,
        ["spec.controllerName: required field is missing"]),
    .init(
        "a ReferenceGrant from without a namespace",
        """
        apiVersion: gateway.networking.k8s.io/v1beta1
        kind: ReferenceGrant
        metadata: {name: g, namespace: ns}
        spec:
          from: [{group: gateway.networking.k8s.io, kind: HTTPRoute}]
          to: [{group: gateway.kgateway.dev, kind: Backend}]
        """,
        ["spec.from[0].namespace: required field is missing"]),
    .init(
        "a ReferenceGrant without to",
        """
        apiVersion: gateway.networking.k8s.io/v1beta1
        kind: ReferenceGrant
        metadata: {name: g, namespace: ns}
        spec:
          from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: a}]
        """,
        ["spec.to: required field is missing"]),
    .init(
        "Secret stringData that is not a string",
        """
        apiVersion: v1
        kind: Secret
        metadata: {name: s}
        stringData: {Authorization: [a]}
        """,
        ["stringData.Authorization: must be a string"]),
    .init("a document that is a scalar", "hello", ["must be an object, found string"]),
    .init("an object without kind", "apiVersion: v1\nmetadata: {name: x}", ["kind: required field is missing"]),
]

@Suite("Invalid manifests")
struct InvalidManifestTests {
    @Test("Backend errors name the field path", arguments: backendCases)
    func backendErrors(_ c: InvalidCase) throws {
        #expect(try fieldErrors(c.yaml) == c.errors)
    }

    @Test("Backend fields that reach the provider's request line or headers are checked", arguments: wireCases)
    func wireErrors(_ c: InvalidCase) throws {
        #expect(try fieldErrors(c.yaml) == c.errors)
    }

    @Test("HTTPRoute errors name the field path", arguments: routeCases)
    func routeErrors(_ c: InvalidCase) throws {
        #expect(try fieldErrors(c.yaml) == c.errors)
    }

    @Test("Gateway, GatewayClass, ReferenceGrant and Secret errors", arguments: otherCases)
    func otherErrors(_ c: InvalidCase) throws {
        #expect(try fieldErrors(c.yaml) == c.errors)
    }

    @Test("an invalid object keeps its kind and name for the error line")
    func invalidOutcome() throws {
        let docs = try documents(llmBackend("openai: {modle: x, \(passthrough)}"), source: "f.yaml")
        guard case .invalid(let kind, let name, _) = docs.first?.outcome else {
            Issue.record("not invalid")
            return
        }
        #expect(kind == "Backend")
        #expect(name == NamespacedName(namespace: "ns", name: "b"))
        #expect(docs.errorLines == ["f.yaml Backend ns/b: spec.ai.llm.openai.modle: unknown field"])
    }

    @Test("all errors of one object are reported at once")
    func allErrorsAtOnce() throws {
        let errors = try fieldErrors(
            aiBackend(
                """
                multipool:
                  priorities:
                  - pool:
                    - provider: {openai: {modle: a, \(passthrough)}}
                  - pool:
                    - provider: {gemini: {\(passthrough)}}
                """))
        #expect(
            errors == [
                "spec.ai.multipool.priorities[0].pool[0].provider.openai.modle: unknown field",
                "spec.ai.multipool.priorities[1].pool[0].provider.gemini.model: required field is missing",
                "spec.ai.multipool.priorities[1].pool[0].provider.gemini.apiVersion: required field is missing",
            ])
    }

    // MARK: secrets stay secret

    @Test("a Secret value never appears in error text")
    func secretValuesNotEchoed() throws {
        let value = "sk-live-NOT!!base64@@value"
        let docs = try documents(
            """
            apiVersion: v1
            kind: Secret
            metadata: {name: openai-secret, namespace: kgateway-system}
            data:
              Authorization: "\(value)"
              Other: 12345
            """, source: "secret.yaml")
        guard case .invalid(let kind, _, let errors) = docs.first?.outcome else {
            Issue.record("garbage base64 accepted")
            return
        }
        #expect(kind == "Secret")
        #expect(errors.map(\.description) == ["data.Authorization: must be base64-encoded", "data.Other: must be base64-encoded"])
        let text = docs.errorLines.joined(separator: "\n")
        #expect(!text.contains(value))
        #expect(!text.contains("12345"))
        #expect(!"\(docs)".contains(value), "not even in the documents' description")
    }

    @Test("an inline key never appears in error text")
    func inlineKeyNotEchoed() throws {
        let errors = try fieldErrors(llmBackend("openai: {authToken: {kind: SecretRef, inline: sk-live-inline-key}}"))
        #expect(!errors.isEmpty)
        #expect(!errors.joined().contains("sk-live-inline-key"))
    }

    @Test("a YAML syntax error does not quote the line holding a secret")
    func yamlErrorNotEchoed() {
        let yaml = """
            apiVersion: v1
            kind: Secret
            metadata: {name: s}
            stringData:
              Authorization: "Bearer sk-live-unterminated
            """
        let e = #expect(throws: ManifestError.self) { try ManifestLoader.parse(yaml, source: "s.yaml") }
        #expect(e?.message.hasPrefix("invalid YAML") == true)
        #expect(e.map { !$0.description.contains("sk-live") } == true, "\(e?.description ?? "")")
    }

    @Test("a mapping key that is not a string is refused, not a crash (found by the fuzzer)")
    func nonScalarKey() {
        let yaml = """
            apiVersion: v1
            kind: Secret
            metadata:
              ? name: openai-secret
              : x
            """
        let e = #expect(throws: ManifestError.self) { try ManifestLoader.parse(yaml, source: "s.yaml") }
        #expect(e?.message == "invalid YAML: a mapping key must be a string, found a mapping at line 4, column 5", "\(e?.description ?? "")")
    }

    @Test("nesting deeper than the limit is refused")
    func tooDeep() {
        let yaml = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        let e = #expect(throws: ManifestError.self) { try ManifestLoader.parse(yaml, source: "d.yaml") }
        #expect(e?.message.contains("nested deeper than 128 levels") == true, "\(e?.description ?? "")")
    }
}
