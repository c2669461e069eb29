import Foundation
import Testing

@testable import AIGatewayKubernetes

// These tests run against testing/fake-apiserver/fake_apiserver.py; they are reported as
// skipped (with this reason) only while that script is absent from the checkout, and never
// under CI=true, where they run and fail instead.
let fakeServerTrait = Testing.ConditionTrait.enabled(
    if: FakeAPIServer.isAvailable, "needs testing/fake-apiserver/fake_apiserver.py")

@Suite("KubernetesClient against the fake API server", fakeServerTrait)
struct ClientTests {
    let cm = ResourceType.configMaps

    @Test func tlsRoundTripWithCADataAndBearerToken() async throws {
        let server = try await FakeAPIServer()
        #expect(server.url.hasPrefix("https://127.0.0.1:"))
        #expect(server.config.tls.certificateAuthorityPEM != nil)
        #expect(try server.config.bearerToken() == FakeAPIServer.token)

        let client = server.client()
        let created = try await client.create(cm, configMap("tls", data: ["k": "v"]))
        #expect(created.name == "tls")
        #expect(created.resourceVersion?.isEmpty == false)
        let fetched = try await client.get(cm, namespace: "default", name: "tls")
        #expect(fetched["data"]?["k"] == "v")

        // Offering HTTP/2 falls back to HTTP/1.1 where the server does not speak it.
        let h2 = KubernetesClient(config: server.config, options: .init(http2: true))
        #expect(try await h2.get(cm, namespace: "default", name: "tls").name == "tls")

        // A wrong token is refused.
        var wrongToken = server.config
        wrongToken.credentials = .token("wrong")
        await #expect(throws: KubernetesError.unauthorized) {
            try await KubernetesClient(config: wrongToken).get(cm, namespace: "default", name: "tls")
        }
        // Without the CA the server certificate is not trusted.
        var noCA = server.config
        noCA.tls.certificateAuthorityPEM = nil
        await #expect(throws: KubernetesError.transport) {
            try await KubernetesClient(config: noCA).get(cm, namespace: "default", name: "tls")
        }
        // insecure-skip-tls-verify works without it.
        noCA.tls.insecureSkipVerify = true
        #expect(try await KubernetesClient(config: noCA).get(cm, namespace: "default", name: "tls").name == "tls")
    }

    @Test func crudConflictAndTypedErrors() async throws {
        let server = try await FakeAPIServer()
        let client = server.client()
        try await client.create(.namespaces, namespace(named: "apps"))
        #expect(try await client.get(.namespaces, namespace: nil, name: "apps").name == "apps")

        let created = try await client.create(cm, namespace: "apps", configMap("c1", namespace: "apps", data: ["a": "1"]))
        let rv1 = try #require(created.resourceVersion)
        await #expect(throws: KubernetesError.alreadyExists) {
            try await client.create(cm, namespace: "apps", configMap("c1", namespace: "apps"))
        }

        // An invalid name is rejected as invalid (422).
        await #expect(throws: KubernetesError.invalid) {
            try await client.create(cm, namespace: "apps", configMap("Not_A_Valid_Name", namespace: "apps"))
        }
        // Creating in a namespace that does not exist is not found.
        await #expect(throws: KubernetesError.notFound) {
            try await client.create(cm, namespace: "missing", configMap("c1", namespace: "missing"))
        }

        // Update with the current resourceVersion succeeds and bumps it.
        let updated = try await client.update(cm, created.setting("data", to: ["a": "2"]))
        let rv2 = try #require(updated.resourceVersion)
        #expect(rv2 != rv1)
        #expect(updated["data"]?["a"] == "2")

        // Update with the stale one is a conflict.
        await #expect(throws: KubernetesError.conflict) {
            try await client.update(cm, created.setting("data", to: ["a": "3"]))
        }

        // Merge patch adds and removes keys.
        let patched = try await client.mergePatch(
            cm, namespace: "apps", name: "c1", patch: ["data": ["b": "x", "a": nil], "metadata": ["labels": ["p": "y"]]])
        #expect(patched["data"] == ["b": "x"])
        #expect(patched["metadata"]?["labels"]?["p"] == "y")

        let reread = try await client.get(cm, namespace: "apps", name: "c1")
        #expect(reread["data"] == ["b": "x"])

        try await client.delete(cm, namespace: "apps", name: "c1")
        await #expect(throws: KubernetesError.notFound) { try await client.get(cm, namespace: "apps", name: "c1") }
        await #expect(throws: KubernetesError.notFound) { try await client.delete(cm, namespace: "apps", name: "c1") }
        await #expect(throws: KubernetesError.notFound) {
            try await client.mergePatch(cm, namespace: "apps", name: "c1", patch: ["data": ["a": "1"]])
        }
    }

    @Test func statusSubresourceOfACustomResource() async throws {
        let server = try await FakeAPIServer()
        let client = server.client()
        try await client.create(.customResourceDefinitions, widgetCRD)
        try await eventually("the CRD is served") {
            (try? await client.list(widgets, namespace: "default")) != nil
        }
        let widget: JSONValue = [
            "apiVersion": "test.example.com/v1", "kind": "Widget",
            "metadata": ["name": "w1", "namespace": "default"], "spec": ["size": 1],
        ]
        let created = try await client.create(widgets, widget)
        #expect(created["spec"]?["size"]?.intValue == 1)

        // PUT /status changes only the status.
        let withStatus = try await client.updateStatus(
            widgets, created.setting("status", to: ["phase": "Ready"]).setting("spec", to: ["size": 99]))
        #expect(withStatus["status"]?["phase"] == "Ready")
        #expect(withStatus["spec"]?["size"]?.intValue == 1)
        // A stale resourceVersion on /status is a conflict too.
        await #expect(throws: KubernetesError.conflict) {
            try await client.updateStatus(widgets, created.setting("status", to: ["phase": "Stale"]))
        }
        // Merge patch of /status.
        let patched = try await client.patchStatus(
            widgets, namespace: "default", name: "w1", patch: ["status": ["observedGeneration": 1]])
        #expect(patched["status"]?["observedGeneration"]?.intValue == 1)
        #expect(patched["status"]?["phase"] == "Ready")
        // The main resource ignores status changes.
        let main = try await client.mergePatch(
            widgets, namespace: "default", name: "w1", patch: ["spec": ["size": 2], "status": ["phase": "Ignored"]])
        #expect(main["spec"]?["size"]?.intValue == 2)
        #expect(main["status"]?["phase"] == "Ready")
        // Cluster-scoped delete.
        try await client.delete(.customResourceDefinitions, namespace: nil, name: "widgets.test.example.com")
    }

    @Test func injectedServerErrorsAreTyped() async throws {
        let server = try await FakeAPIServer()
        let client = server.client()
        try await server.fault("/_fake/fail-next?count=1&code=500")
        do {
            _ = try await client.list(cm, namespace: "default")
            Issue.record("expected a failure")
        } catch let error as KubernetesError {
            #expect(error == .server)
            #expect(error.httpStatus == 500)
            #expect(error.description == "KubernetesError.server(500)")
        }
        try await server.fault("/_fake/fail-next?count=1&code=429")
        await #expect(throws: KubernetesError.tooManyRequests) { try await client.list(cm, namespace: "default") }
        // Back to normal.
        #expect(try await client.list(cm, namespace: "default").items.isEmpty)
    }

    @Test func listPagingAndSelectors() async throws {
        let server = try await FakeAPIServer()
        let client = server.client(options: .init(listPageSize: 2))
        for i in 0..<7 {
            try await client.create(cm, configMap("item-\(i)", labels: ["tier": i % 3 == 0 ? "front" : "back"]))
        }
        try await client.create(.namespaces, namespace(named: "other"))
        try await client.create(cm, configMap("elsewhere", namespace: "other", labels: ["tier": "front"]))

        let first = try await client.list(cm, namespace: "default", limit: 3)
        #expect(first.items.count == 3)
        let token = try #require(first.continueToken)
        #expect(!first.resourceVersion.isEmpty)
        let second = try await client.list(cm, namespace: "default", limit: 3, continue: token)
        #expect(second.items.count == 3)
        let secondToken: String = try #require(second.continueToken)
        let third = try await client.list(cm, namespace: "default", limit: 3, continue: secondToken)
        #expect(third.items.count == 1)
        #expect(third.continueToken == nil)
        let pagedNames = (first.items + second.items + third.items).compactMap(\.name)
        #expect(Set(pagedNames) == Set((0..<7).map { "item-\($0)" }))
        #expect(pagedNames.count == 7)

        let all = try await client.listAll(cm, namespace: "default")
        #expect(all.items.allSatisfy { $0["kind"] == "ConfigMap" && $0["apiVersion"] == "v1" })
        #expect(all.items.compactMap(\.name).sorted() == (0..<7).map { "item-\($0)" })
        let everywhere = try await client.listAll(cm)
        #expect(everywhere.items.count == 8)

        let front = try await client.listAll(cm, namespace: "default", labelSelector: "tier=front")
        #expect(front.items.compactMap(\.name).sorted() == ["item-0", "item-3", "item-6"])
        let frontEverywhere = try await client.listAll(cm, labelSelector: "tier=front")
        #expect(frontEverywhere.items.count == 4)

        // A continue token older than the compacted history is gone.
        let page = try await client.list(cm, namespace: "default", limit: 2)
        try await client.create(cm, configMap("late"))
        try await server.fault("/_fake/compact")
        await #expect(throws: KubernetesError.gone) {
            try await client.list(cm, namespace: "default", limit: 2, continue: page.continueToken)
        }
    }

    @Test func watchDeliversEventsInOrder() async throws {
        let server = try await FakeAPIServer()
        let client = server.client()
        try await client.create(cm, configMap("before"))
        let list = try await client.list(cm, namespace: "default")

        let stream = try await client.watch(cm, namespace: "default", resourceVersion: list.resourceVersion, timeoutSeconds: 30)
        let created = try await client.create(cm, configMap("w", data: ["n": "1"]))
        _ = try await client.update(cm, created.setting("data", to: ["n": "2"]))
        try await client.delete(cm, namespace: "default", name: "w")

        var seen: [WatchEvent] = []
        for try await event in stream where event.type != .bookmark {
            seen.append(event)
            if seen.count == 3 { break }
        }
        #expect(seen.map(\.type) == [.added, .modified, .deleted])
        #expect(seen.allSatisfy { $0.object.name == "w" })
        #expect(seen[1].object["data"]?["n"] == "2")
        let rvs = seen.compactMap { $0.object.resourceVersion.flatMap { UInt64($0) } }
        #expect(rvs == rvs.sorted() && Set(rvs).count == 3)
    }

    @Test func watchEndsAtServerTimeout() async throws {
        let server = try await FakeAPIServer()
        let client = server.client()
        let list = try await client.list(cm, namespace: "default")
        let started = ContinuousClock.now
        let stream = try await client.watch(cm, resourceVersion: list.resourceVersion, timeoutSeconds: 1)
        var types: [WatchEvent.EventType] = []
        for try await event in stream { types.append(event.type) }
        #expect(types.allSatisfy { $0 == .bookmark })
        #expect(ContinuousClock.now - started < .seconds(15))
    }

    @Test func cancellingTheConsumerAbortsTheWatch() async throws {
        let server = try await FakeAPIServer()
        let client = server.client()
        let list = try await client.list(cm, namespace: "default")
        let stream = try await client.watch(cm, resourceVersion: list.resourceVersion, timeoutSeconds: 300)
        let consumer = Task {
            var count = 0
            for try await event in stream where event.type != .bookmark { count += 1 }
            return count
        }
        try await server.waitForOpenWatches(1)
        try await client.create(cm, configMap("x"))
        consumer.cancel()
        // The abort reaches the server (it sees the watch go at its next bookmark), rather than
        // a 5 s wall-clock bound on the consumer's return: without the abort the watch would stay
        // open for its 300 s and this wait would fail.
        try await server.waitForOpenWatches(0)
        _ = try? await consumer.value

        // The client keeps working afterwards.
        #expect(try await client.get(cm, namespace: "default", name: "x").name == "x")
        // And a watch that was never consumed is abandoned cleanly.
        _ = try await client.watch(cm, resourceVersion: list.resourceVersion, timeoutSeconds: 300)
    }

    @Test func silentWatchIsAbortedByTheIdleLimit() async throws {
        let server = try await FakeAPIServer()
        // Without bookmarks and without changes nothing arrives: a dead connection looks the same.
        let client = server.client(options: .init(watchIdleTimeout: .seconds(1)))
        let list = try await client.list(cm, namespace: "default")
        let stream = try await client.watch(
            cm, resourceVersion: list.resourceVersion, allowBookmarks: false, timeoutSeconds: 60)
        let started = ContinuousClock.now
        await #expect(throws: KubernetesError.transport) {
            for try await _ in stream {}
        }
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    @Test func cancellingAPendingRequestAbortsIt() async throws {
        // A server that reads the request and never answers: the request is surely pending when it
        // is cancelled (the fake API server may answer before the cancellation, leaving nothing
        // to check). Without the abort, the request would wait out its 60 s limit and fail with
        // a transport error instead.
        let silent = try SilentServer()
        defer { silent.stop() }
        let client = KubernetesClient(
            config: KubeConfig(server: "http://127.0.0.1:\(silent.port)"), options: .init(requestTimeout: .seconds(60)))
        let task = Task { try await client.list(cm) }
        try await eventually("the request reached the server") { silent.bytesRead > 0 }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        // The transfer is aborted on the wire, not just abandoned.
        try await eventually("the client closed its connection") { silent.openConnections == 0 }
    }

    @Test func droppedWatchEndsTheStreamAndExpiredVersionIsGone() async throws {
        let server = try await FakeAPIServer()
        let client = server.client()
        let list = try await client.list(cm, namespace: "default")
        let stream = try await client.watch(cm, resourceVersion: list.resourceVersion, timeoutSeconds: 300)
        try await server.waitForOpenWatches(1)
        try await server.fault("/_fake/drop-watches")
        let ended = Task {
            do {
                for try await _ in stream {}
                return "ended"
            } catch let error as KubernetesError {
                return error.label
            }
        }
        let outcome = try await ended.value
        #expect(outcome == "ended" || outcome == "transport")

        // After compaction, a watch from the old resourceVersion is refused as gone, either
        // up front (HTTP 410) or as an ERROR event.
        try await client.create(cm, configMap("after"))
        try await server.fault("/_fake/compact")
        do {
            let old = try await client.watch(cm, resourceVersion: list.resourceVersion, timeoutSeconds: 5)
            var error: KubernetesError?
            for try await event in old where event.type == .error {
                error = event.error
                break
            }
            #expect(error == .gone)
        } catch let error as KubernetesError {
            #expect(error == .gone)
        }
    }
}
