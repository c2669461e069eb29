import AIGatewayAPI

/// Where a provider's default host is redirected (`--provider-endpoint openai=http://127.0.0.1:9000`),
/// for air-gapped mirrors and tests.
public struct ProviderEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var tls: Bool
    public var host: String
    public var port: Int

    public init(tls: Bool, host: String, port: Int) {
        self.tls = tls
        self.host = host
        self.port = port
    }

    /// Parses `http://host:port` or `https://host[:port]`.
    public init?(url: String) {
        let tls: Bool
        var rest: Substring
        if url.hasPrefix("http://") {
            tls = false
            rest = url.dropFirst(7)
        } else if url.hasPrefix("https://") {
            tls = true
            rest = url.dropFirst(8)
        } else {
            return nil
        }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.isEmpty, !rest.contains("/") else { return nil }
        var host = rest
        var port = tls ? 443 : 80
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Self.port(after.dropFirst()) else { return nil }
                port = p
            } else if !after.isEmpty {
                return nil
            }
        } else if let colon = rest.firstIndex(of: ":") {
            host = rest[..<colon]
            // An IPv6 address must be bracketed: `http://::1` or `http://fe80::1:9000` is ambiguous.
            guard let p = Self.port(rest[rest.index(after: colon)...]) else { return nil }
            port = p
        }
        // Only a host: it becomes the `Host` header and the TLS server name.
        guard !host.isEmpty, WireSyntax.hostProblem(String(host)) == nil else { return nil }
        self.init(tls: tls, host: String(host), port: port)
    }

    /// A URL port: decimal digits only (no sign), 1...65535.
    private static func port(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy({ $0.isASCII && $0.isNumber }), let p = Int(text), (1...65535).contains(p) else {
            return nil
        }
        return p
    }

    public var description: String { "\(tls ? "https" : "http")://\(host.contains(":") ? "[\(host)]" : host):\(port)" }
}

/// How a request reaches one provider entry: transport, default path, auth header and model
/// placement, and the adapter that builds and translates its requests.
public struct UpstreamTarget: Sendable, Hashable {
    /// The provider key (`openai`, `azureopenai`, ...).
    public var provider: String
    /// Builds each attempt's request and reads the answer; nil for a provider this gateway does not serve.
    public let adapter: (any ProviderAdapter)?
    /// Whether this gateway serves the provider; others are parsed and validated only.
    public var served: Bool { adapter != nil }
    public let tls: Bool
    public let host: String
    public let port: Int
    /// Path and query sent upstream.
    public var path: String
    /// Header carrying the key, and the text before the key (`Bearer `).
    public var authHeaderName: String
    public var authPrefix: String
    /// Fixed headers the provider needs (e.g. `anthropic-version`).
    public var staticHeaders: [HeaderField]
    /// The model to put in the request body, or nil to keep the client's.
    public var model: String?
    /// What the attempt trail calls this entry: its model, deployment or name.
    public var displayModel: String

    public struct HeaderField: Sendable, Hashable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// `Host` header value: the upstream host, with the port when it is not the scheme's default.
    /// (Made once here: every attempt sends it.)
    public let hostHeader: String

    public init(
        provider: String, adapter: (any ProviderAdapter)?, tls: Bool, host: String, port: Int, path: String, authHeaderName: String, authPrefix: String,
        staticHeaders: [HeaderField], model: String?, displayModel: String
    ) {
        self.provider = provider
        self.adapter = adapter
        self.tls = tls
        self.host = host
        self.port = port
        self.path = path
        self.authHeaderName = authHeaderName
        self.authPrefix = authPrefix
        self.staticHeaders = staticHeaders
        self.model = model
        self.displayModel = displayModel
        let h = host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]" : host
        hostHeader = (tls && port == 443) || (!tls && port == 80) ? h : "\(h):\(port)"
    }

    public var baseURL: String {
        "\(tls ? "https" : "http")://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    public static func == (a: UpstreamTarget, b: UpstreamTarget) -> Bool {
        guard a.provider == b.provider, a.tls == b.tls, a.host == b.host, a.port == b.port, a.path == b.path, a.authHeaderName == b.authHeaderName,
            a.authPrefix == b.authPrefix, a.staticHeaders == b.staticHeaders, a.model == b.model, a.displayModel == b.displayModel
        else { return false }
        switch (a.adapter, b.adapter) {
        case (nil, nil): return true
        case (let x?, let y?): return x.isEqual(to: y)
        default: return false
        }
    }

    public func hash(into h: inout Hasher) {
        h.combine(provider)
        h.combine(host)
        h.combine(port)
        h.combine(path)
        h.combine(model)
        adapter?.hash(into: &h)
    }
}

/// The default wire details of each provider (see backend-api.md), with entry and endpoint overrides applied.
public enum ProviderCatalog {
    /// Providers whose requests this gateway serves (those with an adapter).
    public static var served: Set<String> { ProviderAdapters.servedKeys }

    public static func target(for entry: LLMProviderEntry, endpoints: [String: ProviderEndpoint] = [:]) -> UpstreamTarget {
        var host: String
        var path: String
        var header = "Authorization"
        var prefix = "Bearer "
        var staticHeaders: [UpstreamTarget.HeaderField] = []
        var model = entry.provider.model
        switch entry.provider {
        case .openai:
            host = "api.openai.com"
            path = "/v1/chat/completions"
        case .azureopenai(let p):
            host = azureHost(p.endpoint)
            path = "/openai/deployments/\(p.deploymentName)/chat/completions?api-version=\(p.apiVersion)"
            header = "api-key"
            prefix = ""
            model = nil  // the deployment names the model; the body's model is left as sent
        case .anthropic(let p):
            host = "api.anthropic.com"
            path = "/v1/messages"
            header = "x-api-key"
            prefix = ""
            staticHeaders.append(.init(name: "anthropic-version", value: p.apiVersion ?? "2023-06-01"))
        case .gemini(let p):
            // The streamed variant is chosen per request by the adapter (GeminiAdapter.path).
            host = GeminiEndpoint.geminiHost
            path = GeminiEndpoint.geminiPath(apiVersion: p.apiVersion, model: p.model, stream: false)
            header = "x-goog-api-key"
            prefix = ""
        case .vertexai(let p):
            host = GeminiEndpoint.vertexHost(location: p.location)
            path = GeminiEndpoint.vertexPath(p, stream: false)
        case .bedrock(let p):
            host = "bedrock-runtime.\(p.region).amazonaws.com"
            path = BedrockAdapter.path(model: p.model, stream: false)
            header = "Authorization"
            prefix = ""
        }
        var tls = true
        var port = 443
        if let endpoint = endpoints[entry.provider.key] {
            host = endpoint.host
            port = endpoint.port
            tls = endpoint.tls
        }
        if let h = entry.host, let p = entry.port {
            host = h
            port = p
            tls = p == 443
        }
        if let full = entry.pathOverride { path = full }
        if let o = entry.authHeader {
            if let name = o.headerName { header = name }
            if let p = o.prefix { prefix = p.isEmpty || p.hasSuffix(" ") ? p : p + " " }
        }
        let display = entry.provider.model ?? entry.name ?? entry.provider.key
        return UpstreamTarget(
            provider: entry.provider.key, adapter: ProviderAdapters.adapter(for: entry.provider), tls: tls, host: host, port: port,
            path: path, authHeaderName: header, authPrefix: prefix, staticHeaders: staticHeaders, model: model,
            displayModel: display)
    }

    /// Azure's `endpoint` may be a bare host or a URL; the host is what matters.
    static func azureHost(_ endpoint: String) -> String {
        var s = Substring(endpoint)
        if let r = s.range(of: "://") { s = s[r.upperBound...] }
        if let slash = s.firstIndex(of: "/") { s = s[..<slash] }
        if let colon = s.lastIndex(of: ":"), !s.contains("]") { s = s[..<colon] }
        return String(s)
    }
}
