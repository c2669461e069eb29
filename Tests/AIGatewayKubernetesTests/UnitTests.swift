import Foundation
import Testing

@testable import AIGatewayKubernetes

func object(_ name: String, namespace: String? = "ns", rv: String?, data: JSONValue = .null) -> JSONValue {
    var metadata: [String: JSONValue] = ["name": .string(name)]
    if let namespace { metadata["namespace"] = .string(namespace) }
    if let rv { metadata["resourceVersion"] = .string(rv) }
    return ["apiVersion": "v1", "kind": "ConfigMap", "metadata": .object(metadata), "data": data]
}

@Suite("InformerStore")
struct InformerStoreTests {
    @Test func replaceComputesSortedDiff() {
        var store = InformerStore()
        let initial = store.replace(items: [object("b", rv: "2"), object("a", rv: "1")], resourceVersion: "5")
        #expect(initial == [.added(object("a", rv: "1")), .added(object("b", rv: "2"))])
        #expect(store.resourceVersion == "5")

        let diff = store.replace(
            items: [object("b", rv: "7"), object("c", rv: "8"), object("x", namespace: "another", rv: "3")],
            resourceVersion: "9")
        #expect(
            diff == [
                .added(object("x", namespace: "another", rv: "3")),
                .deleted(object("a", rv: "1")),
                .modified(old: object("b", rv: "2"), new: object("b", rv: "7")),
                .added(object("c", rv: "8")),
            ])
        #expect(store.resourceVersion == "9")
        #expect(store.sortedObjects().map(\.name) == ["x", "b", "c"])

        #expect(store.replace(items: store.sortedObjects(), resourceVersion: "10").isEmpty)
    }

    @Test func statusOnlyModificationsAreRecognised() {
        let old: JSONValue = [
            "metadata": ["name": "a", "resourceVersion": "1", "generation": 1, "managedFields": [["manager": "kubectl"]]],
            "spec": ["x": 1], "status": ["conditions": []],
        ]
        let statusChanged: JSONValue = [
            "metadata": ["name": "a", "resourceVersion": "2", "generation": 1, "managedFields": [["manager": "ai-gateway"]]],
            "spec": ["x": 1], "status": ["conditions": [["type": "Accepted"]]],
        ]
        #expect(InformerEvent.modified(old: old, new: statusChanged).isStatusOnly)
        let specChanged = statusChanged.setting("spec", to: ["x": 2])
        #expect(!InformerEvent.modified(old: old, new: specChanged).isStatusOnly)
        let annotated = statusChanged.setting(
            "metadata", to: ["name": "a", "resourceVersion": "3", "generation": 1, "annotations": ["k": "v"]])
        #expect(!InformerEvent.modified(old: old, new: annotated).isStatusOnly)
        // A Secret has no status: its data is what changes.
        let secret: JSONValue = ["metadata": ["name": "s", "resourceVersion": "1"], "data": ["k": "MQ=="]]
        let rotated: JSONValue = ["metadata": ["name": "s", "resourceVersion": "2"], "data": ["k": "Mg=="]]
        #expect(!InformerEvent.modified(old: secret, new: rotated).isStatusOnly)
        #expect(!InformerEvent.added(old).isStatusOnly)
        #expect(!InformerEvent.deleted(old).isStatusOnly)
        #expect(!InformerEvent.synced.isStatusOnly)
    }

    @Test func watchEventsApplyOnceInOrder() {
        var store = InformerStore()
        _ = store.replace(items: [object("a", rv: "1")], resourceVersion: "1")
        #expect(store.apply(WatchEvent(type: .added, object: object("b", rv: "2"))) == .applied(.added(object("b", rv: "2"))))
        #expect(
            store.apply(WatchEvent(type: .modified, object: object("a", rv: "3")))
                == .applied(.modified(old: object("a", rv: "1"), new: object("a", rv: "3"))))
        // Replays (same or older resourceVersion) are skipped.
        #expect(store.apply(WatchEvent(type: .added, object: object("b", rv: "2"))) == .applied(nil))
        #expect(store.apply(WatchEvent(type: .modified, object: object("a", rv: "2"))) == .applied(nil))
        #expect(store.resourceVersion == "3")
        // A stale delete (older than the cached object) is skipped, a current one applied.
        #expect(store.apply(WatchEvent(type: .deleted, object: object("a", rv: "2"))) == .applied(nil))
        #expect(store.apply(WatchEvent(type: .deleted, object: object("a", rv: "4"))) == .applied(.deleted(object("a", rv: "4"))))
        #expect(store.apply(WatchEvent(type: .deleted, object: object("a", rv: "5"))) == .applied(nil))
        #expect(store.sortedObjects() == [object("b", rv: "2")])
        #expect(store.resourceVersion == "5")
    }

    @Test func bookmarksOnlyMoveTheResourceVersion() {
        var store = InformerStore()
        _ = store.replace(items: [object("a", rv: "1")], resourceVersion: "10")
        let bookmark = WatchEvent(type: .bookmark, object: ["kind": "ConfigMap", "metadata": ["resourceVersion": "42"]])
        #expect(store.apply(bookmark) == .applied(nil))
        #expect(store.resourceVersion == "42")
        #expect(store.sortedObjects() == [object("a", rv: "1")])
        // Never backwards.
        #expect(store.apply(WatchEvent(type: .bookmark, object: ["metadata": ["resourceVersion": "7"]])) == .applied(nil))
        #expect(store.resourceVersion == "42")
    }

    @Test func errorEvents() {
        var store = InformerStore()
        let expired: JSONValue = ["kind": "Status", "status": "Failure", "reason": "Expired", "code": 410]
        #expect(store.apply(WatchEvent(type: .error, object: expired)) == .expired)
        let gone: JSONValue = ["kind": "Status", "code": 410, "reason": "Gone"]
        #expect(store.apply(WatchEvent(type: .error, object: gone)) == .expired)
        let internalError: JSONValue = ["kind": "Status", "code": 500, "reason": "InternalError"]
        #expect(store.apply(WatchEvent(type: .error, object: internalError)) == .failed(.server))
    }

    @Test func clusterScopedKeysAndOrdering() {
        #expect(ObjectKey(namespace: nil, name: "n").description == "n")
        #expect(ObjectKey(namespace: "a", name: "z") < ObjectKey(namespace: "b", name: "a"))
        #expect(ObjectKey(object: ["metadata": ["namespace": "x", "name": "y"]])?.description == "x/y")
        #expect(ObjectKey(object: ["metadata": [:]]) == nil)
    }
}

@Suite("Building blocks")
struct BuildingBlockTests {
    @Test func backoffDoublesToTheCapAndResets() {
        var backoff = Backoff(initial: .milliseconds(200), maximum: .seconds(1), multiplier: 2, jitter: 0.5)
        let noJitter = { 0.0 }
        #expect(backoff.next(random: noJitter) == .milliseconds(200))
        #expect(backoff.next(random: noJitter) == .milliseconds(400))
        #expect(backoff.next(random: noJitter) == .milliseconds(800))
        #expect(backoff.next(random: noJitter) == .seconds(1))
        #expect(backoff.next(random: noJitter) == .seconds(1))
        backoff.reset()
        #expect(backoff.next(random: { 0.999999 }) > .milliseconds(100))
        #expect(backoff.next(random: { 1.0 }) == .milliseconds(200), "full jitter halves the 400 ms step")
    }

    @Test func lineSplitterHandlesSplitAndJoinedLines() {
        var splitter = LineSplitter(maxLineLength: 1000)
        func feed(_ s: String) -> [String] {
            Array(s.utf8).withUnsafeBytes { splitter.append($0) }.map { String(decoding: $0, as: UTF8.self) }
        }
        #expect(feed("{\"a\":1}\n{\"b\"") == ["{\"a\":1}"])
        #expect(feed(":2}") == [])
        #expect(feed("\n\n{\"c\":3}\r\n{\"d\":4}\n") == ["{\"b\":2}", "{\"c\":3}\r", "{\"d\":4}"])
        #expect(feed("{\"e\"") == [])
        #expect(splitter.flush().map { String(decoding: $0, as: UTF8.self) } == "{\"e\"")
        #expect(splitter.flush() == nil)

        var small = LineSplitter(maxLineLength: 4)
        _ = Array("123456".utf8).withUnsafeBytes { small.append($0) }
        #expect(small.overflowed)
    }

    @Test func watchEventParsing() throws {
        let event = try WatchEvent.parse(line: Data(#"{"type":"ADDED","object":{"metadata":{"name":"x","resourceVersion":"3"}}}"#.utf8))
        #expect(event.type == .added)
        #expect(event.object.name == "x")
        #expect(event.object.resourceVersion == "3")
        #expect(throws: KubernetesError.invalidResponse) { try WatchEvent.parse(line: Data("nope".utf8)) }
        #expect(throws: KubernetesError.invalidResponse) { try WatchEvent.parse(line: Data(#"{"type":"WHAT"}"#.utf8)) }
        let error = try WatchEvent.parse(line: Data(#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}"#.utf8))
        #expect(error.error == .gone)
    }

    @Test func errorsFromStatusResponses() {
        func classify(_ code: Int, _ reason: String?, retryAfter: String? = nil, details: JSONValue = .null) -> KubernetesError {
            var body: [String: JSONValue] = ["kind": "Status", "status": "Failure", "code": .int(code), "details": details]
            if let reason { body["reason"] = .string(reason) }
            return KubernetesError.fromResponse(httpStatus: code, body: .object(body), retryAfterHeader: retryAfter)
        }
        #expect(classify(404, "NotFound") == .notFound)
        #expect(classify(409, "Conflict") == .conflict)
        #expect(classify(409, "AlreadyExists") == .alreadyExists)
        #expect(classify(410, "Gone") == .gone)
        #expect(classify(410, "Expired") == .gone)
        #expect(classify(401, nil) == .unauthorized)
        #expect(classify(403, "Forbidden") == .forbidden)
        #expect(classify(422, "Invalid") == .invalid)
        #expect(classify(400, "BadRequest") == .badRequest)
        #expect(classify(503, "ServiceUnavailable") == .server)
        #expect(classify(503, "ServiceUnavailable").httpStatus == 503)
        let throttled = classify(429, "TooManyRequests", retryAfter: "3")
        #expect(throttled == .tooManyRequests)
        #expect(throttled.retryAfter == .seconds(3))
        #expect(classify(429, nil, details: ["retryAfterSeconds": 7]).retryAfter == .seconds(7))
        // A non-Status body falls back to the HTTP code.
        #expect(KubernetesError.fromResponse(httpStatus: 404, body: nil, retryAfterHeader: nil) == .notFound)
        #expect(KubernetesError.fromResponse(httpStatus: 500, body: nil, retryAfterHeader: nil).description == "KubernetesError.server(500)")
    }

    @Test func errorDescriptionsAreShortAndStable() {
        #expect(KubernetesError.notFound.description == "KubernetesError.notFound")
        #expect(KubernetesError.server(status: 502).description == "KubernetesError.server(502)")
        #expect(KubernetesError.transport("Timeout was reached").description == "KubernetesError.transport(Timeout was reached)")
        #expect(KubernetesError.tooManyRequests(retryAfter: .seconds(2)).label == "tooManyRequests")
        #expect(KubernetesError.tooManyRequests(retryAfter: .seconds(2)) == .tooManyRequests)
        #expect(KubernetesError.server(status: 503).isRetryable)
        #expect(!KubernetesError.notFound.isRetryable)
    }

    @Test func resourcePaths() {
        #expect(ResourceType.configMaps.path(namespace: "a", name: "b") == "/api/v1/namespaces/a/configmaps/b")
        #expect(ResourceType.configMaps.path(namespace: nil) == "/api/v1/configmaps")
        #expect(ResourceType.namespaces.path(namespace: "ignored", name: "x") == "/api/v1/namespaces/x")
        let routes = ResourceType(group: "aigateway.example.com", version: "v1alpha1", plural: "routes", namespaced: true)
        #expect(routes.path(namespace: "n", name: "r", subresource: "status") == "/apis/aigateway.example.com/v1alpha1/namespaces/n/routes/r/status")
        #expect(routes.apiVersion == "aigateway.example.com/v1alpha1")
        #expect(PercentEncoding.query([("labelSelector", "app=x,tier in (a,b)"), ("limit", nil)]) == "?labelSelector=app%3Dx%2Ctier%20in%20%28a%2Cb%29")
    }

    @Test func jsonValueRoundTrip() throws {
        let value: JSONValue = ["a": [1, 2.5, "s", true, nil], "b": ["c": -3]]
        let data = try value.jsonData()
        #expect(String(decoding: data, as: UTF8.self) == #"{"a":[1,2.5,"s",true,null],"b":{"c":-3}}"#)
        #expect(try JSONValue(jsonData: data) == value)
        struct Meta: Codable, Equatable { var name: String }
        #expect(try JSONValue(encoding: Meta(name: "n")).decode(as: Meta.self) == Meta(name: "n"))
    }
}
