import AIGatewayAPI
import Foundation
import Testing

/// The Backend of the model-failover guide, copied verbatim (indentation of the heredoc removed).
let guideBackendYAML = """
    apiVersion: gateway.kgateway.dev/v1alpha1
    kind: Backend
    metadata:
      labels:
        app: model-failover
      name: model-failover
      namespace: kgateway-system
    spec:
      type: AI
      ai:
        multipool:
          priorities:
          - pool:
            - provider:
                openai:
                  model: "gpt-4o"
                  authToken:
                    kind: SecretRef
                    secretRef:
                      name: openai-secret
          - pool:
            - provider:
                openai:
                  model: "gpt-4.0-turbo"
                  authToken:
                    kind: SecretRef
                    secretRef:
                      name: openai-secret
          - pool:
            - provider:
                openai:
                  model: "gpt-3.5-turbo"
                  authToken:
                    kind: SecretRef
                    secretRef:
                      name: openai-secret
    """

/// The HTTPRoute of the model-failover guide, copied verbatim.
let guideRouteYAML = """
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata:
      name: model-failover
      namespace: kgateway-system
      labels:
        app: model-failover
    spec:
      parentRefs:
        - name: ai-gateway
          namespace: kgateway-system
      rules:
      - matches:
        - path:
            type: PathPrefix
            value: /model
        filters:
        - type: URLRewrite
          urlRewrite:
            path:
              type: ReplaceFullPath
              replaceFullPath: /v1/chat/completions
        backendRefs:
        - name: model-failover
          namespace: kgateway-system
          group: gateway.kgateway.dev
          kind: Backend
    """

/// The package root, found from this file's location.
let packageRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // AIGatewayAPITests
    .deletingLastPathComponent()  // Tests
    .deletingLastPathComponent()

struct DecodeFailure: Error, CustomStringConvertible {
    var description: String
}

/// Decodes every document of a YAML text.
func documents(_ yaml: String, source: String = "test.yaml") throws -> [ManifestDocument] {
    try ManifestLoader.parse(yaml, source: source)
}

/// Decodes a single-document YAML text into a valid resource, or fails with its errors.
func resource(_ yaml: String) throws -> Resource {
    let docs = try documents(yaml)
    guard docs.count == 1 else { throw DecodeFailure(description: "expected one document, found \(docs.count)") }
    switch docs[0].outcome {
    case .resource(let r): return r
    case .ignored(let v, let k): throw DecodeFailure(description: "ignored \(v) \(k)")
    case .invalid(_, _, let errors): throw DecodeFailure(description: errors.map(\.description).joined(separator: "\n"))
    }
}

func backend(_ yaml: String) throws -> Backend {
    guard case .backend(let b) = try resource(yaml) else { throw DecodeFailure(description: "not a Backend") }
    return b
}

func route(_ yaml: String) throws -> HTTPRoute {
    guard case .httpRoute(let r) = try resource(yaml) else { throw DecodeFailure(description: "not an HTTPRoute") }
    return r
}

/// The field errors of a single-document YAML text that must be invalid (empty if it was valid).
func fieldErrors(_ yaml: String) throws -> [String] {
    let docs = try documents(yaml)
    guard docs.count == 1 else { throw DecodeFailure(description: "expected one document, found \(docs.count)") }
    guard case .invalid(_, _, let errors) = docs[0].outcome else { return [] }
    return errors.map(\.description)
}

/// A Backend document with `spec.ai` set to the given YAML (indented by the caller as under `ai:`).
func aiBackend(_ ai: String, name: String = "b") -> String {
    """
    apiVersion: gateway.kgateway.dev/v1alpha1
    kind: Backend
    metadata:
      name: \(name)
      namespace: ns
    spec:
      type: AI
      ai:
    \(ai.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n"))
    """
}

/// An `llm` Backend whose provider entry is the given YAML.
func llmBackend(_ entry: String) -> String {
    aiBackend("llm:\n" + entry.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n"))
}

/// An HTTPRoute with the given `spec.rules` YAML (as list items, unindented).
func routeWithRules(_ rules: String) -> String {
    """
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata:
      name: r
      namespace: ns
    spec:
      rules:
    \(rules.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n"))
    """
}

let inlineToken = "authToken: {kind: Inline, inline: sk-test}"
