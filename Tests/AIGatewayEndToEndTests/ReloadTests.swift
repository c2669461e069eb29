import AIGatewayTesting
import Foundation
import Synchronization
import Testing

@Suite("Manifest reload under load", .serialized)
struct ReloadTests {
    @Test("editing the Backend while requests flow: the change takes effect and no request fails")
    func reloadUnderLoad() async throws {
        try await withGateway { h in
            let failures = Box<[String]>([])
            let served = Box<[String: Int]>([:])
            let switched = Box(false)
            let servedAfterSwitch = Box<[String: Int]>([:])
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        // Each worker keeps sending until the new configuration has been seen, then a bit more.
                        var extra = 50
                        while extra > 0 {
                            // A request already in flight when the table changed may still get the old
                            // model; one sent after the new model was seen must not.
                            let sentAfterSwitch = switched.withLock { $0 }
                            do {
                                let r = try await h.send()
                                if r.status != 200 { failures.withLock { $0.append("status \(r.status): \(r.body)") } }
                                let model = r.servedModel ?? "?"
                                served.withLock { $0[model, default: 0] += 1 }
                                if sentAfterSwitch { servedAfterSwitch.withLock { $0[model, default: 0] += 1 } }
                            } catch {
                                failures.withLock { $0.append("\(error)") }
                            }
                            if sentAfterSwitch { extra -= 1 }
                        }
                    }
                }
                group.addTask {
                    try await waitUntil { served.withLock { $0["gpt-4o", default: 0] } >= 40 }
                    // Reverse the priorities: gpt-3.5-turbo first.
                    try h.write("backend.yaml", guideBackend(models: ["gpt-3.5-turbo", "gpt-4.0-turbo", "gpt-4o"]))
                    try await waitUntil { served.withLock { $0["gpt-3.5-turbo", default: 0] } > 0 }
                    switched.withLock { $0 = true }
                }
                try await group.waitForAll()
            }
            #expect(failures.withLock { $0 }.isEmpty, "failed requests: \(failures.withLock { $0.prefix(5) })")
            let counts = served.withLock { $0 }
            #expect(counts["gpt-4o", default: 0] >= 40)
            #expect(counts["gpt-3.5-turbo", default: 0] >= 400)
            #expect(servedAfterSwitch.withLock { $0 } == ["gpt-3.5-turbo": 400], "every request sent after the switch was seen used the new table")
        }
    }
}

@Suite("Removing manifests")
struct RemovalTests {
    @Test("deleting the route's file (like kubectl delete -l app=model-failover) ends in 404")
    func deleteEndsIn404() async throws {
        try await withGateway { h in
            #expect(try await h.send().status == 200)
            for f in ["backend.yaml", "httproute.yaml", "secret.yaml"] {
                try FileManager.default.removeItem(at: h.directory.appendingPathComponent(f))
            }
            try await waitUntil { try await h.send().status == 404 }
        }
    }
}

/// Shared mutable test state for concurrent workers.
final class Box<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ v: Value) { value = Mutex(v) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { value.withLock { body(&$0) } }
}
