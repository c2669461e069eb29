import Synchronization

/// Which Secrets the gateway reads, and how much of them it keeps.
///
/// - `fieldSelector` leaves out, at the API server, the Secret types that never hold a provider
///   key: service-account tokens, TLS keys, registry credentials, basic-auth and SSH keys,
///   bootstrap tokens and Helm release records. A deny-list rather than `type=Opaque`: a key
///   Secret made with `kubectl create secret generic` (as kgateway's guides do) is `Opaque`, but
///   one rendered by another tool may carry a type of its own, and that must keep working.
/// - `reduce` (the Secret informers' transform) keeps the `data` of the Secrets in the
///   referenced set only (those a Backend names); every other Secret is kept as its name,
///   namespace and resourceVersion. Annotations are never kept, as `kubectl apply` copies the
///   whole Secret, data included, into one of them.
public final class SecretScope: Sendable {
    /// The Secret types the gateway never reads.
    public static let excludedTypes = [
        "kubernetes.io/service-account-token", "kubernetes.io/tls", "kubernetes.io/dockerconfigjson",
        "kubernetes.io/dockercfg", "kubernetes.io/basic-auth", "kubernetes.io/ssh-auth",
        "bootstrap.kubernetes.io/token", "helm.sh/release.v1",
    ]

    /// The field selector of the Secret list and watch: every type but `excludedTypes`.
    public static let fieldSelector = excludedTypes.map { "type!=\($0)" }.joined(separator: ",")

    private let referenced: Mutex<Set<ObjectKey>>

    public init(referenced: Set<ObjectKey> = []) {
        self.referenced = Mutex(referenced)
    }

    /// Whether the data of this Secret is kept.
    public func isReferenced(_ key: ObjectKey) -> Bool {
        referenced.withLock { $0.contains(key) }
    }

    /// Makes `keys` the referenced Secrets; returns those that were not before, and those that
    /// are no longer.
    @discardableResult
    public func setReferenced(_ keys: Set<ObjectKey>) -> (added: Set<ObjectKey>, removed: Set<ObjectKey>) {
        referenced.withLock { current in
            defer { current = keys }
            return (keys.subtracting(current), current.subtracting(keys))
        }
    }

    /// What is kept of a Secret: `apiVersion`, `kind`, `metadata` reduced to name, namespace and
    /// resourceVersion, and `data` only when the Secret is referenced (and not of an excluded
    /// type, which a GET could still return).
    public func reduce(_ secret: JSONValue) -> JSONValue {
        var metadata: [String: JSONValue] = [:]
        for field in ["name", "namespace", "resourceVersion"] {
            if let value = secret["metadata"]?[field] { metadata[field] = value }
        }
        var kept: [String: JSONValue] = ["apiVersion": "v1", "kind": "Secret", "metadata": .object(metadata)]
        if let key = ObjectKey(object: secret), isReferenced(key),
            !Self.excludedTypes.contains(secret["type"]?.stringValue ?? "")
        {
            kept["data"] = .object(secret["data"]?.objectValue ?? [:])
        }
        return .object(kept)
    }

    /// Whether a Secret as `reduce` left it holds its data (a referenced one always has `data`,
    /// possibly empty; a reduced one never).
    public static func holdsData(_ secret: JSONValue) -> Bool {
        secret["data"] != nil
    }
}
