import AIGatewayAPI
import AIGatewayKubernetes
import AIGatewayRouting
import Foundation
import Logging
import Synchronization

/// Writes what the compiler concluded back to the objects' `/status`, only when it changed
/// (ignoring `lastTransitionTime`, which is kept while a condition's status stays the same).
struct StatusWriter: Sendable {
    let client: KubernetesClient
    let controllerName: String
    let logger: Logger
    /// Checked before each write: false on a replica that is not (or no longer) the leader.
    let mayWrite: @Sendable () -> Bool
    /// Objects found up to date in the last pass: their resourceVersion then and what the
    /// compiler concluded. While both are the same, the object needs no second look (any write
    /// to it, by us or anyone, changes its resourceVersion). Thousands of objects then cost a
    /// dictionary lookup each per pass.
    let memo = Memo()

    struct MemoKey: Hashable {
        var kind: String
        var name: NamespacedName
    }

    struct MemoEntry: Sendable {
        var resourceVersion: String
        var compiled: Compiled
    }

    enum Compiled: Sendable, Hashable {
        case conditions([Condition])
        case gateway(GatewayStatus)
        case parents([RouteParentStatus])
    }

    final class Memo: Sendable {
        // Only the status loop uses it; the lock makes that explicit, not contended.
        let entries = Mutex<[MemoKey: MemoEntry]>([:])
    }

    /// Writes what differs from the caches, for the objects in `only` (nil: all of them);
    /// returns how many writes failed (1 when the pass was cut short because the API is unavailable).
    func write(_ status: TableStatus, only: Set<MemoKey>? = nil, informers: [Informer]) async -> Int {
        let started = ContinuousClock.now
        let failures: Int
        do {
            failures = try await writeAll(status, only: only, informers: informers)
        } catch {
            failures = 1
        }
        logger.debug(
            "status pass done",
            metadata: ["duration": "\(ContinuousClock.now - started)", "failures": "\(failures)", "objects": "\(only.map { "\($0.count)" } ?? "all")"])
        return failures
    }

    /// Throws `Unavailable` when the API cannot take writes now (the rest of the pass would fail too).
    private func writeAll(_ status: TableStatus, only: Set<MemoKey>?, informers: [Informer]) async throws -> Int {
        var failures = 0
        let caches = Dictionary(grouping: informers, by: \.resource)
        func current(_ kind: ResourceType, _ name: NamespacedName) -> JSONValue? {
            let key = ObjectKey(namespace: name.namespace.isEmpty ? nil : name.namespace, name: name.name)
            return caches[kind]?.lazy.compactMap { $0.get(key) }.first
        }
        let previous = memo.entries.withLock { $0 }
        // A pass over some objects keeps what the last passes found of the others.
        var verified: [MemoKey: MemoEntry] = only == nil ? [:] : previous
        if let only {
            for key in only { verified[key] = nil }
        } else {
            verified.reserveCapacity(previous.count)
        }
        /// The status entries of one kind to look at in this pass.
        func selected<V>(_ entries: [NamespacedName: V], _ kind: ResourceType) -> [(key: NamespacedName, value: V)] {
            guard let only else { return Array(entries) }
            return only.compactMap { key in key.kind == kind.plural ? entries[key.name].map { (key.name, $0) } : nil }
        }
        let classes = Dictionary(uniqueKeysWithValues: status.gatewayClasses.map { (NamespacedName(namespace: "", name: $0.key), $0.value) })
        defer {
            let done = verified
            memo.entries.withLock { $0 = done }
        }
        /// Whether the object was up to date for the same conclusions at the same resourceVersion.
        func known(_ kind: ResourceType, _ name: NamespacedName, _ object: JSONValue, _ compiled: Compiled) -> Bool {
            let key = MemoKey(kind: kind.plural, name: name)
            guard let rv = object.resourceVersion, let entry = previous[key], entry.resourceVersion == rv, entry.compiled == compiled
            else { return false }
            verified[key] = entry
            return true
        }
        func upToDate(_ kind: ResourceType, _ name: NamespacedName, _ object: JSONValue, _ compiled: Compiled) {
            guard let rv = object.resourceVersion else { return }
            verified[MemoKey(kind: kind.plural, name: name)] = MemoEntry(resourceVersion: rv, compiled: compiled)
        }
        let now = Self.timestamp()

        for (name, conditions) in selected(status.backends, WatchedKinds.backends) {
            guard let object = current(WatchedKinds.backends, name) else { continue }
            if known(WatchedKinds.backends, name, object, .conditions(conditions)) { continue }
            let existing = object["status"]?["conditions"]?.arrayValue ?? []
            let desired = Self.conditions(conditions, existing: existing, now: now)
            guard desired != existing else {
                upToDate(WatchedKinds.backends, name, object, .conditions(conditions))
                continue
            }
            if try await !patch(WatchedKinds.backends, name, ["conditions": .array(desired)]) { failures += 1 }
        }
        for (key, conditions) in selected(classes, WatchedKinds.gatewayClasses) {
            guard let object = current(WatchedKinds.gatewayClasses, key) else { continue }
            if known(WatchedKinds.gatewayClasses, key, object, .conditions(conditions)) { continue }
            let existing = object["status"]?["conditions"]?.arrayValue ?? []
            let desired = Self.conditions(conditions, existing: existing, now: now)
            guard desired != existing else {
                upToDate(WatchedKinds.gatewayClasses, key, object, .conditions(conditions))
                continue
            }
            if try await !patch(WatchedKinds.gatewayClasses, key, ["conditions": .array(desired)]) { failures += 1 }
        }
        for (name, gw) in selected(status.gateways, WatchedKinds.gateways) {
            guard let object = current(WatchedKinds.gateways, name) else { continue }
            if known(WatchedKinds.gateways, name, object, .gateway(gw)) { continue }
            let existingStatus = object["status"]
            let conditions = Self.conditions(gw.conditions, existing: existingStatus?["conditions"]?.arrayValue ?? [], now: now)
            let oldListeners = existingStatus?["listeners"]?.arrayValue ?? []
            let generation = object["metadata"]?["generation"]?.intValue ?? 1
            let listeners: [JSONValue] = gw.attachedRoutes.sorted(by: { $0.key < $1.key }).map { listener, count in
                let old = oldListeners.first { $0["name"]?.stringValue == listener }?["conditions"]?.arrayValue ?? []
                let accepted = Condition(type: "Accepted", status: true, reason: "Accepted", message: "Listener accepted", observedGeneration: generation)
                let programmed = Condition(type: "Programmed", status: true, reason: "Programmed", message: "Listener programmed", observedGeneration: generation)
                return .object([
                    "name": .string(listener), "attachedRoutes": .int(count),
                    "supportedKinds": .array([.object(["group": .string(ResourceDecoder.gatewayGroup), "kind": .string("HTTPRoute")])]),
                    "conditions": .array(Self.conditions([accepted, programmed], existing: old, now: now)),
                ])
            }
            let desired: JSONValue = .object(["conditions": .array(conditions), "listeners": .array(listeners)])
            let existing: JSONValue = .object([
                "conditions": existingStatus?["conditions"] ?? .array([]), "listeners": existingStatus?["listeners"] ?? .array([]),
            ])
            guard desired != existing else {
                upToDate(WatchedKinds.gateways, name, object, .gateway(gw))
                continue
            }
            if try await !patch(WatchedKinds.gateways, name, desired.objectValue ?? [:]) { failures += 1 }
        }
        for (name, parents) in selected(status.routes, WatchedKinds.httpRoutes) {
            guard let object = current(WatchedKinds.httpRoutes, name) else { continue }
            if known(WatchedKinds.httpRoutes, name, object, .parents(parents)) { continue }
            let oldParents = object["status"]?["parents"]?.arrayValue ?? []
            // Keep other controllers' entries; replace ours.
            var desired = oldParents.filter { $0["controllerName"]?.stringValue != controllerName }
            for p in parents {
                var ref: [String: JSONValue] = [
                    "group": .string(p.parent.group), "kind": .string(p.parent.kind), "namespace": .string(p.parentNamespace), "name": .string(p.parent.name),
                ]
                if let s = p.parent.sectionName { ref["sectionName"] = .string(s) }
                if let port = p.parent.port { ref["port"] = .int(port) }
                let old = oldParents.first { $0["controllerName"]?.stringValue == controllerName && $0["parentRef"] == .object(ref) }?["conditions"]?.arrayValue ?? []
                desired.append(.object([
                    "parentRef": .object(ref), "controllerName": .string(controllerName),
                    "conditions": .array(Self.conditions(p.conditions, existing: old, now: now)),
                ]))
            }
            guard desired != oldParents else {
                upToDate(WatchedKinds.httpRoutes, name, object, .parents(parents))
                continue
            }
            if try await !patch(WatchedKinds.httpRoutes, name, ["parents": .array(desired)]) { failures += 1 }
        }
        return failures
    }

    struct Unavailable: Error {}

    /// False when the write failed (not when it was skipped: this replica stopped leading).
    private func patch(_ kind: ResourceType, _ name: NamespacedName, _ status: [String: JSONValue]) async throws -> Bool {
        guard mayWrite() else { return true }
        let ns = name.namespace.isEmpty ? nil : name.namespace
        // A merge patch of `status` needs no resourceVersion; a conflict or a transient error is
        // retried on the next pass, since the informer's cache will still differ.
        do {
            _ = try await client.patchStatus(kind, namespace: ns, name: name.name, patch: .object(["status": .object(status)]))
            logger.debug("status written", metadata: ["object": "\(kind.plural)/\(name)"])
            return true
        } catch let error as KubernetesError where error == .notFound {
            return true  // deleted meanwhile
        } catch let error as KubernetesError where !error.isRetryable {
            logger.warning("status write failed", metadata: ["object": "\(kind.plural)/\(name)", "error": "\(error)"])
            return false
        } catch {
            if !(error is CancellationError) {
                logger.warning("status write failed", metadata: ["object": "\(kind.plural)/\(name)", "error": "\(error)"])
            }
            throw Unavailable()
        }
    }

    /// Conditions as the API stores them, keeping each one's `lastTransitionTime` while its status holds.
    static func conditions(_ conditions: [Condition], existing: [JSONValue], now: String) -> [JSONValue] {
        conditions.map { c in
            let status = c.status ? "True" : "False"
            let old = existing.first { $0["type"]?.stringValue == c.type }
            let since = old?["status"]?.stringValue == status ? (old?["lastTransitionTime"]?.stringValue ?? now) : now
            return .object([
                "type": .string(c.type), "status": .string(status), "reason": .string(c.reason), "message": .string(c.message),
                "observedGeneration": .int(c.observedGeneration), "lastTransitionTime": .string(since),
            ])
        }
    }

    static func timestamp() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date())
    }
}
