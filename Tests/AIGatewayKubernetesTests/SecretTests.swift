import Foundation
import Testing

@testable import AIGatewayKubernetes

func secret(
    _ name: String, namespace: String = "default", type: String? = nil, data: [String: String] = [:],
    annotations: [String: String] = [:], rv: String? = nil
) -> JSONValue {
    var metadata: [String: JSONValue] = ["name": .string(name), "namespace": .string(namespace)]
    if !annotations.isEmpty { metadata["annotations"] = .object(annotations.mapValues { .string($0) }) }
    if let rv { metadata["resourceVersion"] = .string(rv) }
    var object: [String: JSONValue] = [
        "apiVersion": "v1", "kind": "Secret", "metadata": .object(metadata),
        "data": .object(data.mapValues { .string(Data($0.utf8).base64EncodedString()) }),
    ]
    if let type { object["type"] = .string(type) }
    return .object(object)
}

/// Whether a cached Secret is in its reduced form: name, namespace and resourceVersion, nothing else.
func isReduced(_ object: JSONValue?) -> Bool {
    object?.objectValue?.keys.sorted() == ["apiVersion", "kind", "metadata"]
        && object?["metadata"]?.objectValue?.keys.sorted() == ["name", "namespace", "resourceVersion"]
}

@Suite("SecretScope and InformerStore.refresh")
struct SecretScopeTests {
    @Test func theFieldSelectorExcludesEveryTypeThatHoldsNoKey() {
        #expect(
            SecretScope.fieldSelector
                == "type!=kubernetes.io/service-account-token,type!=kubernetes.io/tls,type!=kubernetes.io/dockerconfigjson,"
                + "type!=kubernetes.io/dockercfg,type!=kubernetes.io/basic-auth,type!=kubernetes.io/ssh-auth,"
                + "type!=bootstrap.kubernetes.io/token,type!=helm.sh/release.v1")
    }

    @Test func anUnreferencedSecretIsReducedToNameNamespaceAndResourceVersion() {
        let scope = SecretScope(referenced: [ObjectKey(namespace: "ns", name: "kept")])
        let applied = secret(
            "other", namespace: "ns", data: ["Authorization": "sk-other"],
            annotations: ["kubectl.kubernetes.io/last-applied-configuration": "{\"data\":\"sk-other\"}"], rv: "7")
        let reduced = scope.reduce(applied)
        #expect(reduced == ["apiVersion": "v1", "kind": "Secret", "metadata": ["name": "other", "namespace": "ns", "resourceVersion": "7"]])
        #expect(!SecretScope.holdsData(reduced))

        // A referenced one keeps its data, but not the annotation that repeats it.
        let kept = scope.reduce(secret("kept", namespace: "ns", data: ["Authorization": "sk-kept"], annotations: ["a": "sk-kept"], rv: "8"))
        #expect(SecretScope.holdsData(kept))
        #expect(kept["data"] == ["Authorization": .string(Data("sk-kept".utf8).base64EncodedString())])
        #expect(kept["metadata"] == ["name": "kept", "namespace": "ns", "resourceVersion": "8"])
        // A Secret without data still says it is held in full (an empty `data`).
        #expect(scope.reduce(secret("kept", namespace: "ns", rv: "9"))["data"] == [:])
        // A referenced name whose Secret has an excluded type (a GET can return one) is reduced.
        #expect(!SecretScope.holdsData(scope.reduce(secret("kept", namespace: "ns", type: "kubernetes.io/tls", data: ["tls.key": "k"]))))
    }

    @Test func setReferencedReportsTheDifference() {
        let a = ObjectKey(namespace: "ns", name: "a")
        let b = ObjectKey(namespace: "ns", name: "b")
        let scope = SecretScope(referenced: [a])
        let change = scope.setReferenced([b])
        #expect(change.added == [b] && change.removed == [a])
        #expect(scope.isReferenced(b) && !scope.isReferenced(a))
    }

    @Test func refreshReplacesACachedObjectUnlessOlderOrTheSame() {
        var store = InformerStore()
        _ = store.replace(items: [object("a", rv: "5")], resourceVersion: "5")
        // Not cached: left to the watch.
        #expect(store.refresh(object("b", rv: "6")) == nil)
        #expect(store.sortedObjects().map(\.name) == ["a"])
        // Older: ignored.
        #expect(store.refresh(object("a", rv: "4", data: ["k": "old"])) == nil)
        // Same resourceVersion, more content (a GET of an object the cache holds reduced).
        let full = object("a", rv: "5", data: ["k": "v"])
        #expect(store.refresh(full) == .modified(old: object("a", rv: "5"), new: full))
        #expect(store.refresh(full) == nil)
        // The resume point stays where the watch left it.
        #expect(store.resourceVersion == "5")
        // A later watch event with the same resourceVersion is not applied twice.
        #expect(store.apply(WatchEvent(type: .modified, object: full)) == .applied(nil))
    }
}

@Suite("ReferencedSecrets against the fake API server", fakeServerTrait)
struct ReferencedSecretsTests {
    let key = { (name: String) in ObjectKey(namespace: "default", name: name) }

    @Test func onlyReferencedSecretsKeepTheirDataAndExcludedTypesAreNeverListed() async throws {
        let server = try await FakeAPIServer()
        let client = server.client()
        try await client.create(.secrets, secret("first", data: ["Authorization": "sk-first"]))
        try await client.create(.secrets, secret("second", data: ["Authorization": "sk-second"]))
        try await client.create(.secrets, secret("custom", type: "example.com/api-key", data: ["Authorization": "sk-custom"]))
        try await client.create(.secrets, secret("cert", type: "kubernetes.io/tls", data: ["tls.crt": "c", "tls.key": "tls-private"]))
        try await client.create(
            .secrets,
            secret(
                "sa-token", type: "kubernetes.io/service-account-token", data: ["token": "sa-private"],
                annotations: ["kubernetes.io/service-account.name": "default"]))
        try await client.create(.secrets, secret("pull", type: "kubernetes.io/dockerconfigjson", data: [".dockerconfigjson": "{}"]))

        let secrets = ReferencedSecrets(client: client)
        let informer = try #require(secrets.informers.first)
        #expect(secrets.informers.count == 1)
        try await withRunningInformer(informer) { events in
            try await informer.waitForSync()
            // Excluded types never reach the gateway; the rest is held without data.
            #expect(informer.snapshot().compactMap(\.name) == ["custom", "first", "second"])
            for object in informer.snapshot() { #expect(isReduced(object)) }

            // A Backend starts referencing `first`: it is read, and only it holds data.
            #expect(await secrets.reference([key("first")]))
            let first = try #require(secrets.cached(key("first")))
            #expect(first["data"]?["Authorization"] == .string(Data("sk-first".utf8).base64EncodedString()))
            #expect(isReduced(secrets.cached(key("second"))))
            try await eventually("the refresh is emitted") {
                events.values.contains { if case .modified(_, let new) = $0 { new.name == "first" } else { false } }
            }

            // Changes arrive through the watch with their data while referenced ...
            var updated = try await client.get(.secrets, namespace: "default", name: "first")
            updated = updated.setting("data", to: ["Authorization": .string(Data("sk-rotated".utf8).base64EncodedString())])
            _ = try await client.update(.secrets, updated)
            try await eventually("the rotated key is cached") {
                secrets.cached(key("first"))?["data"]?["Authorization"] == .string(Data("sk-rotated".utf8).base64EncodedString())
            }
            // ... and without it when not.
            try await client.create(.secrets, secret("later", data: ["Authorization": "sk-later"]))
            try await eventually("the new Secret is cached") { secrets.cached(key("later")) != nil }
            #expect(isReduced(secrets.cached(key("later"))))

            // The reference moves to `custom` (a type of its own is read too): `first`'s data goes.
            #expect(await secrets.reference([key("custom")]))
            #expect(isReduced(secrets.cached(key("first"))))
            #expect(secrets.cached(key("custom"))?["data"]?["Authorization"] == .string(Data("sk-custom".utf8).base64EncodedString()))
            #expect(informer.snapshot().filter(SecretScope.holdsData).compactMap(\.name) == ["custom"])

            // A referenced Secret that does not exist yet arrives with its data from the watch.
            #expect(await secrets.reference([key("custom"), key("future")]))
            try await client.create(.secrets, secret("future", data: ["Authorization": "sk-future"]))
            try await eventually("the referenced Secret is cached with its data") {
                secrets.cached(key("future")).map(SecretScope.holdsData) == true
            }
        }
    }

    @Test func aFailedReadIsReportedAndTheNextCallReadsIt() async throws {
        let server = try await FakeAPIServer()
        let client = server.client()
        try await client.create(.secrets, secret("first", data: ["Authorization": "sk-first"]))
        let secrets = ReferencedSecrets(client: client, namespaces: ["default"])
        let informer = try #require(secrets.informers.first)
        #expect(informer.namespace == "default")
        try await withRunningInformer(informer) { _ in
            try await informer.waitForSync()
            try await server.fault("/_fake/fail-next?count=1&code=500&verb=get&path=/api/v1/namespaces/default/secrets/first")
            #expect(await secrets.reference([key("first")]) == false)
            #expect(isReduced(secrets.cached(key("first"))))
            #expect(await secrets.reference([key("first")]))
            #expect(SecretScope.holdsData(try #require(secrets.cached(key("first")))))
        }
    }
}
