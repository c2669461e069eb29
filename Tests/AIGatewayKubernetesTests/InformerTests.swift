import Foundation
import Synchronization
import Testing

@testable import AIGatewayKubernetes

/// Records the informer's backoff sleeps; can hold the informer inside a sleep until released.
final class SleepControl: Sendable {
    private let state = Mutex<(delays: [Duration], holding: Bool, held: Int)>(([], false, 0))

    var delays: [Duration] { state.withLock { $0.delays } }
    /// How many sleeps are currently held.
    var held: Int { state.withLock { $0.held } }

    func hold() { state.withLock { $0.holding = true } }
    func release() { state.withLock { $0.holding = false } }

    /// The informer's `sleep`: records, then waits (briefly, or while held). Throws on cancellation.
    func sleep(_ d: Duration) async throws {
        let holding = state.withLock { s -> Bool in
            s.delays.append(d)
            if s.holding { s.held += 1 }
            return s.holding
        }
        if holding {
            defer { state.withLock { $0.held -= 1 } }
            while state.withLock({ $0.holding }) {
                try await Task.sleep(for: .milliseconds(5))
            }
        } else {
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}

/// Runs `informer` for the duration of `body`, collecting its changes; cancels it afterwards
/// and checks that `run()` returned.
func withRunningInformer(
    _ informer: Informer, _ body: (Collector<InformerEvent>) async throws -> Void
) async throws {
    let events = Collector<InformerEvent>()
    let changes = informer.changes()
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await informer.run() }
        group.addTask { for await event in changes { events.append(event) } }
        do {
            try await body(events)
        } catch {
            group.cancelAll()
            throw error
        }
        group.cancelAll()
        try await group.waitForAll()
    }
}

@Suite("Informer against the fake API server", fakeServerTrait)
struct InformerTests {
    let cm = ResourceType.configMaps

    func informerOptions(_ sleeps: SleepControl) -> Informer.Options {
        Informer.Options(
            backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(200), multiplier: 2, jitter: 0),
            sleep: { try await sleeps.sleep($0) }, random: { 0 })
    }

    @Test func initialSyncThenEventsFlow() async throws {
        let server = try await FakeAPIServer()
        let client = server.client(options: .init(listPageSize: 2))
        for name in ["c", "a", "b"] { try await client.create(cm, configMap(name)) }
        let sleeps = SleepControl()
        let informer = Informer(client: client, resource: cm, namespace: "default", options: informerOptions(sleeps))
        #expect(!informer.hasSynced)

        try await withRunningInformer(informer) { events in
            try await informer.waitForSync()
            #expect(informer.hasSynced)
            #expect(informer.snapshot().compactMap(\.name) == ["a", "b", "c"])
            try await eventually("initial events") { events.count == 4 }
            #expect(events.values.map(\.key?.name) == ["a", "b", "c", nil])
            #expect(events.values.last == .synced)

            let d = try await client.create(cm, configMap("d", data: ["v": "1"]))
            let d2 = try await client.update(cm, d.setting("data", to: ["v": "2"]))
            try await client.delete(cm, namespace: "default", name: "a")
            try await eventually("watch events") { events.count == 7 }
            let tail = Array(events.values.suffix(3))
            #expect(tail[0] == .added(d))
            #expect(tail[1] == .modified(old: d, new: d2))
            if case .deleted(let gone) = tail[2] { #expect(gone.name == "a") } else { Issue.record("expected a delete") }
            #expect(informer.snapshot().compactMap(\.name) == ["b", "c", "d"])
            #expect(informer.get(ObjectKey(namespace: "default", name: "d")) == d2)
            let lastRV = UInt64(informer.lastResourceVersion) ?? 0
            #expect(lastRV >= UInt64(d2.resourceVersion ?? "") ?? .max)
        }
        #expect(sleeps.delays.isEmpty, "no backoff without errors")
    }

    @Test func resumesAfterDroppedWatchesWithoutDuplicates() async throws {
        let server = try await FakeAPIServer()
        let client = server.client()
        try await client.create(cm, configMap("a"))
        let sleeps = SleepControl()
        let informer = Informer(client: client, resource: cm, namespace: "default", options: informerOptions(sleeps))
        try await withRunningInformer(informer) { events in
            try await informer.waitForSync()
            try await eventually { events.count == 2 }  // added(a), synced

            // Changes made while the watch is down are replayed from the last resourceVersion.
            sleeps.hold()
            try await server.waitForOpenWatches(1)
            try await server.fault("/_fake/drop-watches")
            try await eventually("the informer backs off after the drop") { sleeps.held == 1 }
            let b = try await client.create(cm, configMap("b"))
            let a = try await client.mergePatch(cm, namespace: "default", name: "a", patch: ["data": ["k": "v"]])
            sleeps.release()
            try await eventually("replayed events") { events.count == 4 }

            // Dropping again, with a change after the resume, still yields each change once.
            try await server.waitForOpenWatches(1)
            try await server.fault("/_fake/drop-watches")
            let c = try await client.create(cm, configMap("c"))
            try await eventually("event after second drop") { events.count == 5 }

            #expect(events.values.count == 5)
            #expect(events.values[2] == .added(b))
            if case .modified(_, let new) = events.values[3] { #expect(new == a) } else { Issue.record("expected modified") }
            #expect(events.values[4] == .added(c))
            #expect(events.values.filter { $0 == .synced }.count == 1, "resumed without relisting")
            #expect(informer.snapshot().compactMap(\.name) == ["a", "b", "c"])
        }
    }

    @Test func relistsAfterExpiryWithACorrectDiff() async throws {
        let server = try await FakeAPIServer()
        let client = server.client()
        for name in ["a", "b", "c"] { try await client.create(cm, configMap(name)) }
        let sleeps = SleepControl()
        let informer = Informer(client: client, resource: cm, namespace: "default", options: informerOptions(sleeps))
        try await withRunningInformer(informer) { events in
            try await informer.waitForSync()
            try await eventually { events.count == 4 }

            // Hold the informer in its backoff after a dropped watch, change things, and
            // compact the history so that its resourceVersion is gone.
            sleeps.hold()
            try await server.waitForOpenWatches(1)
            try await server.fault("/_fake/drop-watches")
            try await eventually("the informer backs off after the drop") { sleeps.held == 1 }
            try await client.delete(cm, namespace: "default", name: "b")
            let c = try await client.mergePatch(cm, namespace: "default", name: "c", patch: ["data": ["k": "v"]])
            let d = try await client.create(cm, configMap("d"))
            // Created and deleted while away: never seen, never reported.
            try await client.create(cm, configMap("e"))
            try await client.delete(cm, namespace: "default", name: "e")
            try await server.fault("/_fake/compact")
            sleeps.release()

            try await eventually("relist diff") { events.count == 8 }
            let diff = Array(events.values.suffix(4))
            if case .deleted(let gone) = diff[0] { #expect(gone.name == "b") } else { Issue.record("expected delete of b") }
            if case .modified(let old, let new) = diff[1] {
                #expect(old.name == "c" && old["data"]?["k"] == nil)
                #expect(new == c)
            } else {
                Issue.record("expected modify of c")
            }
            #expect(diff[2] == .added(d))
            #expect(diff[3] == .synced)
            #expect(informer.snapshot().compactMap(\.name) == ["a", "c", "d"])

            // And it keeps watching from the new list.
            let f = try await client.create(cm, configMap("f"))
            try await eventually("event after relist") { events.count == 9 }
            #expect(events.values.last == .added(f))
        }
    }

    @Test func backsOffOnFailuresThenSyncs() async throws {
        let server = try await FakeAPIServer()
        let client = server.client()
        try await client.create(cm, configMap("a"))
        try await server.fault("/_fake/fail-next?count=3&code=500")
        let sleeps = SleepControl()
        let informer = Informer(client: client, resource: cm, namespace: "default", options: informerOptions(sleeps))
        try await withRunningInformer(informer) { events in
            try await informer.waitForSync()
            #expect(sleeps.delays == [.milliseconds(10), .milliseconds(20), .milliseconds(40)])
            #expect(informer.snapshot().compactMap(\.name) == ["a"])

            // A 429 waits at least its Retry-After (1 s from the fake), above the backoff's
            // 200 ms maximum.
            try await server.fault("/_fake/fail-next?count=1&code=429&verb=watch")
            try await server.waitForOpenWatches(1)
            try await server.fault("/_fake/drop-watches")
            try await eventually("a Retry-After delay") { sleeps.delays.contains { $0 >= .seconds(1) } }
            let b = try await client.create(cm, configMap("b"))
            try await eventually("events flow again") { events.values.last == .added(b) }
        }
    }

    @Test func cancellationEndsRunAndChangeStreams() async throws {
        let server = try await FakeAPIServer()
        let client = server.client()
        let informer = Informer(client: client, resource: cm)
        let changes = informer.changes()
        let run = Task { await informer.run() }
        try await informer.waitForSync()
        run.cancel()
        let started = ContinuousClock.now
        await run.value
        #expect(ContinuousClock.now - started < .seconds(5))
        var count = 0
        for await _ in changes { count += 1 }  // finishes because run() returned
        #expect(count == 1)  // .synced
        // A stopped informer hands out finished streams and fails sync waits.
        for await _ in informer.changes() { Issue.record("no events after stop") }
    }
}
