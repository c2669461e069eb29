import AIGatewayAPI
import AIGatewayProviders
import AIGatewayRouting
import Foundation
import Testing

struct SetupFailure: Error, CustomStringConvertible {
    var description: String
}

/// Decodes YAML manifests that must all be valid.
func resources(_ yaml: String) throws -> ResourceSet {
    let docs = try ManifestLoader.parse(yaml, source: "test.yaml")
    let errors = docs.errorLines
    guard errors.isEmpty else { throw SetupFailure(description: errors.joined(separator: "\n")) }
    return ResourceSet(docs.resources)
}

/// Joins YAML documents into one multi-document text.
func yamlDocs(_ parts: String...) -> String { parts.joined(separator: "\n---\n") }

/// Compiles YAML manifests.
func compile(_ yaml: String, implicitGateway: Bool = true, endpoints: [String: ProviderEndpoint] = [:]) throws -> RoutingTable {
    RouteCompiler.compile(try resources(yaml), options: CompileOptions(implicitGateway: implicitGateway, endpoints: endpoints))
}

/// The single provider entry of an `llm` Backend given as the YAML of the entry.
func llmEntry(_ entryYAML: String) throws -> LLMProviderEntry {
    let yaml = """
        apiVersion: gateway.kgateway.dev/v1alpha1
        kind: Backend
        metadata: {name: b, namespace: ns}
        spec:
          type: AI
          ai:
            llm:
        \(entryYAML.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n"))
        """
    let set = try resources(yaml)
    guard let e = set.backends.first?.spec.ai?.priorities.first?.first else { throw SetupFailure(description: "no entry") }
    return e
}

/// The guide's Backend and HTTPRoute, from `examples/model-failover` (the API tests check that
/// those files decode to exactly the guide's objects).
let guideBackendYAML = exampleFile("backend.yaml")
let guideRouteYAML = exampleFile("httproute.yaml")

func exampleFile(_ name: String) -> String {
    let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // AIGatewayRoutingTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()
    let url = root.appendingPathComponent("examples/model-failover").appendingPathComponent(name)
    guard let text = try? String(contentsOf: url, encoding: .utf8) else {
        fatalError("missing \(url.path): the routing tests read the guide's manifests from examples/")
    }
    return text
}

/// What `kubectl create secret generic openai-secret --from-literal="Authorization=Bearer $KEY"` makes.
func openAISecret(_ value: String = "Bearer sk-guide", namespace: String = "kgateway-system", key: String = "Authorization") -> String {
    """
    apiVersion: v1
    kind: Secret
    metadata: {name: openai-secret, namespace: \(namespace)}
    type: Opaque
    data:
      \(key): "\(Data(value.utf8).base64EncodedString())"
    """
}

let guideGatewayYAML = """
    apiVersion: gateway.networking.k8s.io/v1
    kind: GatewayClass
    metadata: {name: kgateway}
    spec: {controllerName: kgateway.dev/kgateway}
    ---
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata: {name: ai-gateway, namespace: kgateway-system}
    spec:
      gatewayClassName: kgateway
      listeners:
      - name: http
        protocol: HTTP
        port: 8080
        allowedRoutes:
          namespaces:
            from: All
    """

/// Request facts for a path (and optional query, headers, host, method).
func req(
    _ path: String, method: String = "POST", host: String = "gw.local", query: [(String, String)] = [], headers: [(String, String)] = []
) -> RequestFacts {
    RequestFacts(
        method: method, host: host, path: path, query: query.map { (name: $0.0, value: $0.1) },
        headers: headers.map { (name: $0.0, value: $0.1) })
}

extension RoutingTable {
    /// `namespace/name#rule` of the rule a request matches, or nil.
    func which(_ r: RequestFacts) -> String? {
        match(r).map { "\($0.rule.route)#\($0.rule.ruleIndex)" }
    }
}
