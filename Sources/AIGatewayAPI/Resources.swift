import Foundation

/// `namespace/name` of a namespaced object (namespace empty for cluster-scoped ones).
public struct NamespacedName: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var namespace: String
    public var name: String

    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    public var description: String { namespace.isEmpty ? name : "\(namespace)/\(name)" }

    public static func < (a: Self, b: Self) -> Bool {
        (a.namespace, a.name) < (b.namespace, b.name)
    }
}

/// The subset of `metadata` the gateway uses.
public struct ObjectMeta: Sendable, Hashable {
    public var name: String
    public var namespace: String
    public var labels: [String: String]
    public var annotations: [String: String]
    public var generation: Int
    public var resourceVersion: String?
    public var uid: String?
    /// RFC 3339 creation time; used to order routes (oldest first) when precedence ties.
    public var creationTimestamp: String?

    public init(
        name: String, namespace: String = "", labels: [String: String] = [:], annotations: [String: String] = [:],
        generation: Int = 1, resourceVersion: String? = nil, uid: String? = nil, creationTimestamp: String? = nil
    ) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
        self.generation = generation
        self.resourceVersion = resourceVersion
        self.uid = uid
        self.creationTimestamp = creationTimestamp
    }

    public var namespacedName: NamespacedName { NamespacedName(namespace: namespace, name: name) }
}

// MARK: - Backend (gateway.kgateway.dev/v1alpha1)

public struct Backend: Sendable, Hashable {
    public var metadata: ObjectMeta
    public var spec: BackendSpec
}

public enum BackendType: String, Sendable, Hashable, CaseIterable {
    case ai = "AI"
    case aws = "AWS"
    case `static` = "Static"
}

public struct BackendSpec: Sendable, Hashable {
    public var type: BackendType
    public var ai: AIBackend?
}

/// `spec.ai`: a single model (`llm`) or models in priority order (`multipool` or `priorityGroups`),
/// normalised to a list of priority levels.
public struct AIBackend: Sendable, Hashable {
    public enum Shape: String, Sendable, Hashable {
        case llm, multipool, priorityGroups
    }

    public var shape: Shape
    /// Priority levels in order; entries within one level share load.
    public var priorities: [[LLMProviderEntry]]
}

/// One model endpoint: a provider plus optional transport overrides.
public struct LLMProviderEntry: Sendable, Hashable {
    /// The `name` of a `priorityGroups` entry, if any.
    public var name: String?
    public var provider: LLMProvider
    public var host: String?
    public var port: Int?
    /// Full upstream path override (`path.full` or the older `pathOverride.fullPath`).
    public var pathOverride: String?
    public var authHeader: AuthHeaderOverride?
}

public struct AuthHeaderOverride: Sendable, Hashable {
    public var prefix: String?
    public var headerName: String?
}

public enum LLMProvider: Sendable, Hashable {
    case openai(OpenAIProvider)
    case azureopenai(AzureOpenAIProvider)
    case anthropic(AnthropicProvider)
    case gemini(GeminiProvider)
    case vertexai(VertexAIProvider)
    case bedrock(BedrockProvider)

    public static let keys = ["openai", "azureopenai", "anthropic", "gemini", "vertexai", "bedrock"]

    public var key: String {
        switch self {
        case .openai: "openai"
        case .azureopenai: "azureopenai"
        case .anthropic: "anthropic"
        case .gemini: "gemini"
        case .vertexai: "vertexai"
        case .bedrock: "bedrock"
        }
    }

    /// The model configured on the entry, if any (Azure's deployment name stands for it).
    public var model: String? {
        switch self {
        case .openai(let p): p.model
        case .azureopenai(let p): p.deploymentName
        case .anthropic(let p): p.model
        case .gemini(let p): p.model
        case .vertexai(let p): p.model
        case .bedrock(let p): p.model
        }
    }

    public var authToken: AuthToken? {
        switch self {
        case .openai(let p): p.authToken
        case .azureopenai(let p): p.authToken
        case .anthropic(let p): p.authToken
        case .gemini(let p): p.authToken
        case .vertexai(let p): p.authToken
        case .bedrock: nil
        }
    }
}

/// A Bedrock entry's `auth`: `{type: Secret, secretRef: {name}}`, the Secret holding `accessKey`,
/// `secretKey` and optionally `sessionToken`.
public enum BedrockAuth: Sendable, Hashable {
    case secret(name: String)
}

public enum AuthToken: Sendable, Hashable {
    case inline(SecretString)
    case secretRef(name: String)
    case passthrough
}

/// A string that never shows itself in descriptions, logs or dumps.
public struct SecretString: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public let value: String
    public init(_ value: String) { self.value = value }
    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: []) }
}

public struct OpenAIProvider: Sendable, Hashable {
    public var authToken: AuthToken
    public var model: String?
}

public struct AzureOpenAIProvider: Sendable, Hashable {
    public var authToken: AuthToken
    public var endpoint: String
    public var deploymentName: String
    public var apiVersion: String
}

public struct AnthropicProvider: Sendable, Hashable {
    public var authToken: AuthToken
    public var model: String?
    public var apiVersion: String?
}

public struct GeminiProvider: Sendable, Hashable {
    public var authToken: AuthToken
    public var model: String
    public var apiVersion: String
}

public struct VertexAIProvider: Sendable, Hashable {
    public var authToken: AuthToken
    public var model: String
    public var apiVersion: String
    public var projectId: String
    public var location: String
    public var modelPath: String?
    public var publisher: String?
}

public struct BedrockProvider: Sendable, Hashable {
    /// Nil: the gateway's own AWS credentials (environment, then web identity).
    public var auth: BedrockAuth?
    public var model: String
    public var region: String
    public var guardrail: Guardrail?

    public init(auth: BedrockAuth?, model: String, region: String, guardrail: Guardrail?) {
        self.auth = auth
        self.model = model
        self.region = region
        self.guardrail = guardrail
    }

    public struct Guardrail: Sendable, Hashable {
        public var identifier: String
        public var version: String

        public init(identifier: String, version: String) {
            self.identifier = identifier
            self.version = version
        }
    }
}

// MARK: - Gateway API (gateway.networking.k8s.io)

public struct GatewayClass: Sendable, Hashable {
    public var metadata: ObjectMeta
    public var controllerName: String
}

public struct Gateway: Sendable, Hashable {
    public var metadata: ObjectMeta
    public var gatewayClassName: String
    public var listeners: [Listener]

    public struct Listener: Sendable, Hashable {
        public var name: String
        public var hostname: String?
        public var port: Int
        public var `protocol`: String
        public var allowedRoutesFrom: AllowedRoutesFrom
        public var allowedRoutesSelector: [String: String]
    }

    public enum AllowedRoutesFrom: String, Sendable, Hashable {
        case all = "All", same = "Same", selector = "Selector"
    }
}

public struct HTTPRoute: Sendable, Hashable {
    public var metadata: ObjectMeta
    public var parentRefs: [ParentReference]
    public var hostnames: [String]
    public var rules: [HTTPRouteRule]
}

public struct ParentReference: Sendable, Hashable {
    public var group: String
    public var kind: String
    public var namespace: String?
    public var name: String
    public var sectionName: String?
    public var port: Int?
}

public struct HTTPRouteRule: Sendable, Hashable {
    public var name: String?
    public var matches: [HTTPRouteMatch]
    public var filters: [HTTPRouteFilter]
    public var backendRefs: [HTTPBackendRef]
    public var timeouts: Timeouts?
    public var retry: Retry?

    public struct Timeouts: Sendable, Hashable {
        public var request: GatewayDuration?
        public var backendRequest: GatewayDuration?
    }

    public struct Retry: Sendable, Hashable {
        public var codes: [Int]
        public var attempts: Int?
        public var backoff: GatewayDuration?
    }
}

public struct HTTPRouteMatch: Sendable, Hashable {
    public enum PathType: String, Sendable, Hashable {
        case exact = "Exact", pathPrefix = "PathPrefix", regularExpression = "RegularExpression"
    }

    public enum ValueType: String, Sendable, Hashable {
        case exact = "Exact", regularExpression = "RegularExpression"
    }

    public struct ValueMatch: Sendable, Hashable {
        public var type: ValueType
        public var name: String
        public var value: String
    }

    public var pathType: PathType
    public var pathValue: String
    public var headers: [ValueMatch]
    public var queryParams: [ValueMatch]
    public var method: String?

    public static let `default` = HTTPRouteMatch(pathType: .pathPrefix, pathValue: "/", headers: [], queryParams: [], method: nil)
}

public enum HTTPRouteFilter: Sendable, Hashable {
    case requestHeaderModifier(HeaderModifier)
    case responseHeaderModifier(HeaderModifier)
    case urlRewrite(URLRewrite)
}

public struct HeaderModifier: Sendable, Hashable {
    public var setPairs: [HeaderPair]
    public var addPairs: [HeaderPair]
    public var remove: [String]

    public struct HeaderPair: Sendable, Hashable {
        public var name: String
        public var value: String
    }
}

public struct URLRewrite: Sendable, Hashable {
    public enum PathRewrite: Sendable, Hashable {
        case replaceFullPath(String)
        case replacePrefixMatch(String)
    }

    public var hostname: String?
    public var path: PathRewrite?
}

public struct HTTPBackendRef: Sendable, Hashable {
    public var group: String
    public var kind: String
    public var name: String
    public var namespace: String?
    public var port: Int?
    public var weight: Int
}

/// `gateway.networking.k8s.io/v1beta1` ReferenceGrant.
public struct ReferenceGrant: Sendable, Hashable {
    public var metadata: ObjectMeta
    public var from: [From]
    public var to: [To]

    public struct From: Sendable, Hashable {
        public var group: String
        public var kind: String
        public var namespace: String
    }

    public struct To: Sendable, Hashable {
        public var group: String
        public var kind: String
        public var name: String?
    }
}

// MARK: - Secret (v1)

public struct Secret: Sendable, Hashable {
    public var metadata: ObjectMeta
    /// Decoded values (`data` base64-decoded, overlaid by `stringData`).
    public var data: [String: SecretString]
}

// MARK: - Any supported object

public enum Resource: Sendable, Hashable {
    case backend(Backend)
    case httpRoute(HTTPRoute)
    case gateway(Gateway)
    case gatewayClass(GatewayClass)
    case secret(Secret)
    case referenceGrant(ReferenceGrant)

    public var metadata: ObjectMeta {
        switch self {
        case .backend(let r): r.metadata
        case .httpRoute(let r): r.metadata
        case .gateway(let r): r.metadata
        case .gatewayClass(let r): r.metadata
        case .secret(let r): r.metadata
        case .referenceGrant(let r): r.metadata
        }
    }

    public var kind: String {
        switch self {
        case .backend: "Backend"
        case .httpRoute: "HTTPRoute"
        case .gateway: "Gateway"
        case .gatewayClass: "GatewayClass"
        case .secret: "Secret"
        case .referenceGrant: "ReferenceGrant"
        }
    }
}

/// Every object the compiler looks at, from whichever source (files or the Kubernetes API).
public struct ResourceSet: Sendable, Hashable {
    public var backends: [Backend] = []
    public var httpRoutes: [HTTPRoute] = []
    public var gateways: [Gateway] = []
    public var gatewayClasses: [GatewayClass] = []
    public var secrets: [Secret] = []
    public var referenceGrants: [ReferenceGrant] = []

    public init() {}

    public init(_ resources: [Resource]) {
        for r in resources { insert(r) }
    }

    public mutating func insert(_ resource: Resource) {
        switch resource {
        case .backend(let r): backends.append(r)
        case .httpRoute(let r): httpRoutes.append(r)
        case .gateway(let r): gateways.append(r)
        case .gatewayClass(let r): gatewayClasses.append(r)
        case .secret(let r): secrets.append(r)
        case .referenceGrant(let r): referenceGrants.append(r)
        }
    }

    public var count: Int {
        backends.count + httpRoutes.count + gateways.count + gatewayClasses.count + secrets.count + referenceGrants.count
    }
}
