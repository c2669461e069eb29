import Foundation
import Synchronization
import Yams

/// Where the API server is and how to authenticate to it.
///
/// Load it from a kubeconfig file (`load(path:context:)`), from the pod's service account
/// (`inCluster(...)`), or let `resolve(kubeconfigPath:)` pick like kubectl does.
/// Certificates and keys are held in memory and handed to libcurl as blobs; nothing is
/// written to disk. `description` never shows a token or a key.
public struct KubeConfig: Sendable, CustomStringConvertible {
    /// Base URL of the API server, e.g. `https://10.0.0.1:443` (a path prefix is kept).
    public var server: String
    /// The namespace of the context (kubeconfig) or of the pod (in-cluster); `default` if unset.
    public var namespace: String
    /// Whether `namespace` came from the context or the pod rather than the `default` fallback.
    public var namespaceIsExplicit: Bool
    public var tls: TLS
    public var credentials: Credentials

    public struct TLS: Sendable, CustomStringConvertible {
        /// PEM bundle of the CAs to trust. `nil`: the system trust store.
        public var certificateAuthorityPEM: Data?
        /// Skip verification of the server certificate (`insecure-skip-tls-verify`).
        public var insecureSkipVerify: Bool
        /// PEM client certificate and key for mutual TLS.
        public var clientCertificatePEM: Data?
        public var clientKeyPEM: Data?

        public init(
            certificateAuthorityPEM: Data? = nil, insecureSkipVerify: Bool = false,
            clientCertificatePEM: Data? = nil, clientKeyPEM: Data? = nil
        ) {
            self.certificateAuthorityPEM = certificateAuthorityPEM
            self.insecureSkipVerify = insecureSkipVerify
            self.clientCertificatePEM = clientCertificatePEM
            self.clientKeyPEM = clientKeyPEM
        }

        public var description: String {
            "TLS(ca: \(certificateAuthorityPEM == nil ? "system" : "custom"), insecure: \(insecureSkipVerify), "
                + "clientCertificate: \(clientCertificatePEM != nil), clientKey: \(clientKeyPEM == nil ? "none" : "<redacted>"))"
        }
    }

    /// How requests are authenticated besides a client certificate.
    public enum Credentials: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
        case none
        /// A fixed bearer token.
        case token(String)
        /// A bearer token read from a file, re-read periodically (service account tokens rotate).
        case tokenFile(TokenFile)

        public var description: String {
            switch self {
            case .none: "none"
            case .token: "token(<redacted>)"
            case .tokenFile(let f): "tokenFile(\(f.path))"
            }
        }

        public var debugDescription: String { description }
        public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .enum) }
    }

    public init(
        server: String, namespace: String = "default", namespaceIsExplicit: Bool = false, tls: TLS = TLS(),
        credentials: Credentials = .none
    ) {
        self.server = server
        self.namespace = namespace
        self.namespaceIsExplicit = namespaceIsExplicit
        self.tls = tls
        self.credentials = credentials
    }

    public var description: String {
        "KubeConfig(server: \(server), namespace: \(namespace), \(tls), credentials: \(credentials))"
    }

    /// The bearer token to send now, if any (re-reads a token file when due).
    func bearerToken() throws -> String? {
        switch credentials {
        case .none: return nil
        case .token(let t): return t
        case .tokenFile(let f): return try f.token()
        }
    }
}

// MARK: - Token file

extension KubeConfig {
    /// A bearer token kept in a file and re-read at most every `refreshInterval`, or sooner
    /// after the server rejected it (`invalidate()`), as kubelet rotates projected
    /// service account tokens in place.
    public final class TokenFile: Sendable {
        public let path: String
        public let refreshInterval: Duration
        private let now: @Sendable () -> ContinuousClock.Instant
        private let state = Mutex<(token: String, readAt: ContinuousClock.Instant)?>(nil)

        /// - Parameter now: the clock, injectable for tests.
        public init(
            path: String, refreshInterval: Duration = .seconds(60),
            now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
        ) {
            self.path = path
            self.refreshInterval = refreshInterval
            self.now = now
        }

        /// The current token: the cached one, or the file's content if the cache is older than
        /// `refreshInterval`. If a re-read fails, the previous token is kept.
        public func token() throws -> String {
            let now = self.now()
            if let cached = state.withLock({ $0 }), now - cached.readAt < refreshInterval {
                return cached.token
            }
            do {
                let token = try Self.read(path)
                state.withLock { $0 = (token, now) }
                return token
            } catch {
                if let cached = state.withLock({ $0 }) { return cached.token }
                throw error
            }
        }

        /// Forgets the cached token so the next request re-reads the file.
        public func invalidate() {
            state.withLock { $0 = nil }
        }

        static func read(_ path: String) throws -> String {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw KubernetesError.configuration("token file unreadable")
            }
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw KubernetesError.configuration("token file empty") }
            return token
        }
    }
}

// MARK: - In-cluster

extension KubeConfig {
    public static let defaultServiceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The configuration of a pod's service account: `KUBERNETES_SERVICE_HOST`/`_PORT`, and
    /// `token`, `ca.crt` and `namespace` in `serviceAccountDirectory`. The token is re-read
    /// at most every `tokenRefreshInterval` (and after a 401).
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        serviceAccountDirectory: String = defaultServiceAccountDirectory,
        tokenRefreshInterval: Duration = .seconds(60),
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) throws -> KubeConfig {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
            let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty
        else {
            throw KubernetesError.configuration("not in a cluster: KUBERNETES_SERVICE_HOST/PORT unset")
        }
        let dir = serviceAccountDirectory.hasSuffix("/") ? serviceAccountDirectory : serviceAccountDirectory + "/"
        let tokenFile = TokenFile(path: dir + "token", refreshInterval: tokenRefreshInterval, now: now)
        _ = try tokenFile.token()  // fail early when the token is missing
        guard let ca = FileManager.default.contents(atPath: dir + "ca.crt") else {
            throw KubernetesError.configuration("service account ca.crt unreadable")
        }
        var namespace: String?
        if let data = FileManager.default.contents(atPath: dir + "namespace") {
            let ns = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !ns.isEmpty { namespace = ns }
        }
        let hostPart = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return KubeConfig(
            server: "https://\(hostPart):\(port)", namespace: namespace ?? "default", namespaceIsExplicit: namespace != nil,
            tls: TLS(certificateAuthorityPEM: ca), credentials: .tokenFile(tokenFile))
    }
}

// MARK: - Resolution

extension KubeConfig {
    /// Finds the configuration like kubectl and client-go: an explicit kubeconfig path, else
    /// `$KUBECONFIG`, else the in-cluster service account, else `~/.kube/config`.
    public static func resolve(
        kubeconfigPath: String? = nil, context: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        serviceAccountDirectory: String = defaultServiceAccountDirectory
    ) throws -> KubeConfig {
        if let kubeconfigPath, !kubeconfigPath.isEmpty {
            return try load(path: kubeconfigPath, context: context)
        }
        if let list = environment["KUBECONFIG"], !list.isEmpty {
            let paths = list.split(separator: ":").map(String.init).filter { !$0.isEmpty }
            return try load(paths: paths, context: context)
        }
        if environment["KUBERNETES_SERVICE_HOST"]?.isEmpty == false {
            return try inCluster(environment: environment, serviceAccountDirectory: serviceAccountDirectory)
        }
        if let home = environment["HOME"], !home.isEmpty {
            let path = home + "/.kube/config"
            if FileManager.default.fileExists(atPath: path) {
                return try load(path: path, context: context)
            }
        }
        throw KubernetesError.configuration("no kubeconfig, KUBECONFIG or in-cluster service account")
    }
}

// MARK: - Kubeconfig files

extension KubeConfig {
    /// Loads a kubeconfig file, using `context` or else its `current-context`.
    public static func load(path: String, context: String? = nil) throws -> KubeConfig {
        try load(paths: [path], context: context)
    }

    /// Loads several kubeconfig files merged as kubectl does for `KUBECONFIG`: the first file
    /// that sets `current-context` wins it, and the first definition of each named context,
    /// cluster and user wins. Files that do not exist are skipped. Relative file paths in an
    /// entry are relative to the file that defines it.
    public static func load(paths: [String], context: String? = nil) throws -> KubeConfig {
        var merged = MergedKubeconfig()
        var loadedAny = false
        for path in paths {
            guard FileManager.default.fileExists(atPath: path) else { continue }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw KubernetesError.configuration("kubeconfig unreadable")
            }
            let text = String(decoding: data, as: UTF8.self)
            let root: Any?
            do {
                root = try Yams.load(yaml: text)
            } catch {
                throw KubernetesError.configuration("kubeconfig is not valid YAML")
            }
            let base = (path as NSString).deletingLastPathComponent
            merged.add(root as? [String: Any] ?? [:], baseDirectory: base.isEmpty ? "." : base)
            loadedAny = true
        }
        guard loadedAny else { throw KubernetesError.configuration("kubeconfig not found") }
        return try merged.config(context: context)
    }

    /// Parses kubeconfig YAML text; relative paths are resolved against `baseDirectory`.
    public static func parse(yaml: String, context: String? = nil, baseDirectory: String = ".") throws -> KubeConfig {
        let root: Any?
        do {
            root = try Yams.load(yaml: yaml)
        } catch {
            throw KubernetesError.configuration("kubeconfig is not valid YAML")
        }
        var merged = MergedKubeconfig()
        merged.add(root as? [String: Any] ?? [:], baseDirectory: baseDirectory)
        return try merged.config(context: context)
    }
}

/// Named entries of one or more kubeconfig files, first definition wins.
private struct MergedKubeconfig {
    struct Entry {
        var fields: [String: Any]
        var baseDirectory: String
    }

    var currentContext: String?
    var contexts: [String: Entry] = [:]
    var clusters: [String: Entry] = [:]
    var users: [String: Entry] = [:]

    mutating func add(_ root: [String: Any], baseDirectory: String) {
        if currentContext == nil, let c = root["current-context"] as? String, !c.isEmpty {
            currentContext = c
        }
        Self.collect(root["contexts"], field: "context", into: &contexts, baseDirectory: baseDirectory)
        Self.collect(root["clusters"], field: "cluster", into: &clusters, baseDirectory: baseDirectory)
        Self.collect(root["users"], field: "user", into: &users, baseDirectory: baseDirectory)
    }

    private static func collect(_ list: Any?, field: String, into map: inout [String: Entry], baseDirectory: String) {
        guard let list = list as? [Any] else { return }
        for item in list {
            guard let item = item as? [String: Any], let name = item["name"] as? String else { continue }
            if map[name] == nil {
                map[name] = Entry(fields: item[field] as? [String: Any] ?? [:], baseDirectory: baseDirectory)
            }
        }
    }

    func config(context requested: String?) throws -> KubeConfig {
        guard let contextName = requested ?? currentContext else {
            throw KubernetesError.configuration("kubeconfig has no current-context")
        }
        guard let context = contexts[contextName] else {
            throw KubernetesError.configuration("context not found in kubeconfig")
        }
        guard let clusterName = context.fields["cluster"] as? String, let cluster = clusters[clusterName] else {
            throw KubernetesError.configuration("cluster of the context not found in kubeconfig")
        }
        guard var server = cluster.fields["server"] as? String, !server.isEmpty else {
            throw KubernetesError.configuration("cluster has no server")
        }
        while server.hasSuffix("/") { server.removeLast() }

        var tls = KubeConfig.TLS()
        tls.insecureSkipVerify = Self.bool(cluster.fields["insecure-skip-tls-verify"])
        tls.certificateAuthorityPEM = try Self.dataOrFile(
            cluster, data: "certificate-authority-data", file: "certificate-authority", what: "certificate authority")

        var credentials = KubeConfig.Credentials.none
        if let userName = context.fields["user"] as? String, !userName.isEmpty {
            guard let user = users[userName] else {
                throw KubernetesError.configuration("user of the context not found in kubeconfig")
            }
            if user.fields["exec"] != nil || user.fields["auth-provider"] != nil,
                user.fields["token"] == nil, user.fields["tokenFile"] == nil,
                user.fields["client-certificate"] == nil, user.fields["client-certificate-data"] == nil
            {
                throw KubernetesError.configuration("exec and auth-provider credentials are not supported")
            }
            tls.clientCertificatePEM = try Self.dataOrFile(
                user, data: "client-certificate-data", file: "client-certificate", what: "client certificate")
            tls.clientKeyPEM = try Self.dataOrFile(user, data: "client-key-data", file: "client-key", what: "client key")
            if (tls.clientCertificatePEM == nil) != (tls.clientKeyPEM == nil) {
                throw KubernetesError.configuration("client certificate and client key must be given together")
            }
            if let token = user.fields["token"] as? String, !token.isEmpty {
                credentials = .token(token)
            } else if let file = user.fields["tokenFile"] as? String, !file.isEmpty {
                let tokenFile = KubeConfig.TokenFile(path: Self.absolute(file, base: user.baseDirectory))
                _ = try tokenFile.token()
                credentials = .tokenFile(tokenFile)
            }
        }
        let namespace = (context.fields["namespace"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        return KubeConfig(
            server: server, namespace: namespace ?? "default", namespaceIsExplicit: namespace != nil, tls: tls,
            credentials: credentials)
    }

    private static func bool(_ value: Any?) -> Bool {
        switch value {
        case let b as Bool: return b
        case let s as String: return s.lowercased() == "true"
        default: return false
        }
    }

    private static func absolute(_ path: String, base: String) -> String {
        if path.hasPrefix("/") { return path }
        if path.hasPrefix("~/"), let home = ProcessInfo.processInfo.environment["HOME"] {
            return home + String(path.dropFirst())
        }
        return (base as NSString).appendingPathComponent(path)
    }

    /// The `<data>` field (base64) if present, else the content of the `<file>` field's path.
    private static func dataOrFile(_ entry: Entry, data: String, file: String, what: String) throws -> Data? {
        if let b64 = entry.fields[data] as? String, !b64.isEmpty {
            let cleaned = b64.filter { !$0.isWhitespace }
            guard let decoded = Data(base64Encoded: cleaned) else {
                throw KubernetesError.configuration("\(what) data is not valid base64")
            }
            return decoded
        }
        if let path = entry.fields[file] as? String, !path.isEmpty {
            guard let contents = FileManager.default.contents(atPath: absolute(path, base: entry.baseDirectory)) else {
                throw KubernetesError.configuration("\(what) file unreadable")
            }
            return contents
        }
        return nil
    }
}
