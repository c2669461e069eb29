import Logging

/// The gateway's Secret informers (one per watched namespace, or one for all namespaces), which
/// list and watch only the types that can hold a key and cache the data of the referenced
/// Secrets only (see `SecretScope`).
///
/// When a Backend starts to reference a Secret the cache holds without its data (the Secret
/// was there first), `reference(_:)` reads that one Secret (a GET) into the cache; when no
/// Backend references a Secret any more, its data is dropped from the cache at once.
public final class ReferencedSecrets: Sendable {
    public let scope: SecretScope
    /// Run them (and wait for their sync) like any other informer.
    public let informers: [Informer]
    private let client: KubernetesClient
    private let logger: Logger

    /// - Parameters:
    ///   - namespaces: namespaces to watch; empty means all.
    ///   - options: informer options; the field selector and the transform are set here.
    public init(
        client: KubernetesClient, namespaces: [String] = [], options: Informer.Options = Informer.Options(),
        logger: Logger = Logger(label: "ai-gateway.kubernetes.secrets")
    ) {
        let scope = SecretScope()
        var options = options
        options.fieldSelector = SecretScope.fieldSelector
        options.transform = { scope.reduce($0) }
        self.scope = scope
        self.client = client
        self.logger = logger
        self.informers =
            namespaces.isEmpty
            ? [Informer(client: client, resource: .secrets, options: options, logger: logger)]
            : namespaces.map { Informer(client: client, resource: .secrets, namespace: $0, options: options, logger: logger) }
    }

    /// The cached copy of one Secret: with its data only when it is referenced.
    public func cached(_ key: ObjectKey) -> JSONValue? {
        informer(for: key)?.get(key)
    }

    /// Makes `keys` the referenced Secrets. Data of Secrets no longer referenced leaves the
    /// caches; each referenced Secret cached without its data is read with a GET (a Secret not
    /// cached at all does not exist yet, or is of an excluded type: the watch brings the first
    /// kind with its data). Returns false when a read failed; call again later.
    public func reference(_ keys: Set<ObjectKey>) async -> Bool {
        let (_, removed) = scope.setReferenced(keys)
        if !removed.isEmpty {
            for informer in informers { informer.reapplyTransform(to: removed) }
        }
        var complete = true
        for key in keys.sorted() {
            guard let informer = informer(for: key), let cached = informer.get(key), !SecretScope.holdsData(cached) else {
                continue
            }
            do {
                informer.refresh(try await client.get(.secrets, namespace: key.namespace, name: key.name))
            } catch let error as KubernetesError where error == .notFound {
                continue  // deleted meanwhile: the watch will say so
            } catch {
                complete = false
                logger.warning("could not read a referenced Secret", metadata: ["secret": "\(key)", "error": "\(error)"])
            }
        }
        return complete
    }

    private func informer(for key: ObjectKey) -> Informer? {
        informers.first { $0.namespace == nil || $0.namespace == key.namespace }
    }
}
