/// A table's match entries by hostname, each list in precedence order (`MatchEntry.precedes`),
/// kept sorted as routes come and go: one route's entries are placed and removed by binary
/// search, and the lists are shared with the tables built from them (copy on write).
struct MatchIndex: Sendable {
    private(set) var exactHosts: [String: [MatchEntry]] = [:]
    /// Keyed by the suffix after `*.`.
    private(set) var wildcardHosts: [String: [MatchEntry]] = [:]
    private(set) var anyHost: [MatchEntry] = []
    private(set) var count = 0
    /// How many entries use each regular expression (path, header or query match).
    private(set) var patterns: [String: Int] = [:]

    init() {}

    /// All at once: grouped, then each list sorted once.
    init(entries: some Sequence<MatchEntry>) {
        for e in entries {
            for p in Self.patterns(of: e) { patterns[p, default: 0] += 1 }
            count += 1
            if e.hostnames.isEmpty { anyHost.append(e) }
            for h in e.hostnames {
                if h.hasPrefix("*.") {
                    wildcardHosts[String(h.dropFirst(2)), default: []].append(e)
                } else {
                    exactHosts[h, default: []].append(e)
                }
            }
        }
        exactHosts = exactHosts.mapValues { $0.sorted(by: MatchEntry.precedes) }
        wildcardHosts = wildcardHosts.mapValues { $0.sorted(by: MatchEntry.precedes) }
        anyHost.sort(by: MatchEntry.precedes)
    }

    /// The regular expressions an entry uses.
    static func patterns(of e: MatchEntry) -> [String] {
        var out: [String] = []
        if case .regex(let p) = e.match.path { out.append(p) }
        for h in e.match.headers + e.match.queryParams where h.type == .regularExpression { out.append(h.value) }
        return out
    }

    /// Adds an entry in its place; returns whether the set of patterns changed.
    mutating func insert(_ e: MatchEntry) -> Bool {
        count += 1
        if e.hostnames.isEmpty { Self.insert(e, into: &anyHost) }
        for h in e.hostnames {
            if h.hasPrefix("*.") {
                Self.insert(e, into: &wildcardHosts[String(h.dropFirst(2)), default: []])
            } else {
                Self.insert(e, into: &exactHosts[h, default: []])
            }
        }
        var changed = false
        for p in Self.patterns(of: e) {
            patterns[p, default: 0] += 1
            if patterns[p] == 1 { changed = true }
        }
        return changed
    }

    /// Removes an entry added before (the same route, rule and match); returns whether the set
    /// of patterns changed.
    mutating func remove(_ e: MatchEntry) -> Bool {
        count -= 1
        if e.hostnames.isEmpty { Self.remove(e, from: &anyHost) }
        for h in e.hostnames {
            if h.hasPrefix("*.") {
                let key = String(h.dropFirst(2))
                Self.remove(e, from: &wildcardHosts[key, default: []])
                if wildcardHosts[key]?.isEmpty == true { wildcardHosts[key] = nil }
            } else {
                Self.remove(e, from: &exactHosts[h, default: []])
                if exactHosts[h]?.isEmpty == true { exactHosts[h] = nil }
            }
        }
        var changed = false
        for p in Self.patterns(of: e) {
            let n = (patterns[p] ?? 1) - 1
            patterns[p] = n > 0 ? n : nil
            if n <= 0 { changed = true }
        }
        return changed
    }

    /// The first position whose entry does not precede `e`.
    private static func lowerBound(_ e: MatchEntry, in list: [MatchEntry]) -> Int {
        var low = 0, high = list.count
        while low < high {
            let mid = (low + high) / 2
            if MatchEntry.precedes(list[mid], e) { low = mid + 1 } else { high = mid }
        }
        return low
    }

    private static func insert(_ e: MatchEntry, into list: inout [MatchEntry]) {
        list.insert(e, at: lowerBound(e, in: list))
    }

    private static func remove(_ e: MatchEntry, from list: inout [MatchEntry]) {
        let i = lowerBound(e, in: list)
        if i < list.count, list[i].order == e.order {
            list.remove(at: i)
        } else if let j = list.firstIndex(where: { $0.order == e.order }) {
            list.remove(at: j)  // not where its rank says (cannot happen while names are unique)
        }
    }
}
