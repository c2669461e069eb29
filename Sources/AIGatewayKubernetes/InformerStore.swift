/// A change to an informer's cache.
public enum InformerEvent: Sendable, Hashable {
    case added(JSONValue)
    case modified(old: JSONValue, new: JSONValue)
    /// The object as last seen (from the watch's DELETED event, or from the cache when a
    /// relist found it gone).
    case deleted(JSONValue)
    /// The cache is complete: sent after the initial list and after every relist.
    case synced

    /// Whether this is a modification of the object's `status` (and bookkeeping metadata:
    /// `resourceVersion`, `managedFields`) alone, like controller-runtime's predicates that let
    /// a controller ignore the status it writes itself.
    public var isStatusOnly: Bool {
        guard case .modified(let old, let new) = self else { return false }
        func withoutStatus(_ object: JSONValue) -> JSONValue {
            guard case .object(var fields) = object else { return object }
            fields["status"] = nil
            if case .object(var metadata)? = fields["metadata"] {
                metadata["resourceVersion"] = nil
                metadata["managedFields"] = nil
                fields["metadata"] = .object(metadata)
            }
            return .object(fields)
        }
        return withoutStatus(old) == withoutStatus(new)
    }

    /// The key of the object concerned (nil for `.synced`).
    public var key: ObjectKey? {
        switch self {
        case .added(let o), .deleted(let o), .modified(_, let o): ObjectKey(object: o)
        case .synced: nil
        }
    }
}

/// The pure part of a reflector: the cache keyed by namespace/name and the resourceVersion
/// to resume from, with how lists and watch events change them. No I/O; tested directly.
struct InformerStore: Sendable {
    private(set) var objects: [ObjectKey: JSONValue] = [:]
    /// Where to resume watching: the last list's, event's or bookmark's resourceVersion.
    private(set) var resourceVersion: String = ""

    enum ApplyResult: Equatable {
        /// The event changed the cache (nil: a duplicate, a stale event or a bookmark).
        case applied(InformerEvent?)
        /// The watch reported 410 Expired/Gone: relist.
        case expired
        /// The watch reported another error.
        case failed(KubernetesError)
    }

    /// Replaces the cache with a full list and returns the difference as events, sorted by
    /// key: objects gone are `.deleted` (with their cached state), new ones `.added`, and
    /// ones whose resourceVersion changed `.modified`. Unchanged objects yield nothing.
    mutating func replace(items: [JSONValue], resourceVersion: String) -> [InformerEvent] {
        var fresh: [ObjectKey: JSONValue] = [:]
        fresh.reserveCapacity(items.count)
        for item in items {
            if let key = ObjectKey(object: item) { fresh[key] = item }
        }
        var events: [(ObjectKey, InformerEvent)] = []
        for (key, old) in objects where fresh[key] == nil {
            events.append((key, .deleted(old)))
        }
        for (key, new) in fresh {
            if let old = objects[key] {
                let changed = old.resourceVersion != nil && new.resourceVersion != nil
                    ? old.resourceVersion != new.resourceVersion : old != new
                if changed { events.append((key, .modified(old: old, new: new))) }
            } else {
                events.append((key, .added(new)))
            }
        }
        objects = fresh
        self.resourceVersion = resourceVersion
        return events.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// Applies one watch event. Events whose object is not newer than the cached one (by
    /// numeric resourceVersion) are skipped, so a replayed event is never applied twice.
    mutating func apply(_ event: WatchEvent) -> ApplyResult {
        switch event.type {
        case .error:
            let error = event.error ?? .server
            return error == .gone ? .expired : .failed(error)
        case .bookmark:
            advance(to: event.object.resourceVersion)
            return .applied(nil)
        case .added, .modified:
            guard let key = ObjectKey(object: event.object) else { return .applied(nil) }
            let rv = event.object.resourceVersion
            advance(to: rv)
            if let old = objects[key] {
                if let order = Self.compare(rv, old.resourceVersion), order <= 0 { return .applied(nil) }
                if rv == nil && old == event.object { return .applied(nil) }
                objects[key] = event.object
                return .applied(.modified(old: old, new: event.object))
            }
            objects[key] = event.object
            return .applied(.added(event.object))
        case .deleted:
            guard let key = ObjectKey(object: event.object) else { return .applied(nil) }
            let rv = event.object.resourceVersion
            advance(to: rv)
            guard let old = objects[key] else { return .applied(nil) }
            // A deletion older than what we hold concerns an earlier incarnation.
            if let order = Self.compare(rv, old.resourceVersion), order < 0 { return .applied(nil) }
            objects[key] = nil
            return .applied(.deleted(event.object))
        }
    }

    /// Puts an object read outside the list and watch (a GET) in place of the cached one with
    /// its key, unless it is older (by numeric resourceVersion) or the same. Objects not cached
    /// are left to the watch (it will deliver them), and the resume point does not move (the
    /// watch has not seen what lies between). Returns the change, if any.
    mutating func refresh(_ object: JSONValue) -> InformerEvent? {
        guard let key = ObjectKey(object: object), let old = objects[key] else { return nil }
        if let order = Self.compare(object.resourceVersion, old.resourceVersion), order < 0 { return nil }
        guard object != old else { return nil }
        objects[key] = object
        return .modified(old: old, new: object)
    }

    /// Replaces the cached objects with these keys by `transform` of them, without an event:
    /// the objects did not change, only how much of them is kept.
    mutating func transform(_ keys: some Sequence<ObjectKey>, with transform: (JSONValue) -> JSONValue) {
        for key in keys {
            if let object = objects[key] { objects[key] = transform(object) }
        }
    }

    /// Cached objects sorted by namespace/name.
    func sortedObjects() -> [JSONValue] {
        objects.sorted { $0.key < $1.key }.map(\.value)
    }

    /// Moves the resume point forward (never back, when both are numeric).
    private mutating func advance(to rv: String?) {
        guard let rv, !rv.isEmpty else { return }
        if let order = Self.compare(rv, resourceVersion), order <= 0 { return }
        resourceVersion = rv
    }

    /// Compares resourceVersions numerically (etcd revisions), nil when either is not a number.
    static func compare(_ a: String?, _ b: String?) -> Int? {
        guard let a, let b, let x = UInt64(a), let y = UInt64(b) else { return nil }
        return x < y ? -1 : (x == y ? 0 : 1)
    }
}
