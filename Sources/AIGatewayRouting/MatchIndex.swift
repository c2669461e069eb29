/// A table's match entries by hostname (`MatchList`s), kept in order as routes come and go:
/// one route's entries are placed and removed by binary search in their small groups, and
/// everything else is shared with the tables built before (copy on write).
struct MatchIndex: Sendable {
    private(set) var exactHosts: [String: MatchList] = [:]
    /// Keyed by the suffix after `*.`.
    private(set) var wildcardHosts: [String: MatchList] = [:]
    private(set) var anyHost = MatchList()
    private(set) var count = 0
    /// How many entries use each regular expression (path, header or query match).
    private(set) var patterns: [String: Int] = [:]

    init() {}

    /// All at once: grouped by hostname, then each list sorted once.
    init(entries: some Sequence<MatchEntry>) {
        var exact: [String: [MatchEntry]] = [:]
        var wildcard: [String: [MatchEntry]] = [:]
        var any: [MatchEntry] = []
        for e in entries {
            for p in Self.patterns(of: e) { patterns[p, default: 0] += 1 }
            count += 1
            if e.hostnames.isEmpty { any.append(e) }
            for h in e.hostnames {
                if h.hasPrefix("*.") {
                    wildcard[String(h.dropFirst(2)), default: []].append(e)
                } else {
                    exact[h, default: []].append(e)
                }
            }
        }
        exactHosts = exact.mapValues(MatchList.init)
        wildcardHosts = wildcard.mapValues(MatchList.init)
        anyHost = MatchList(any)
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
        if e.hostnames.isEmpty { anyHost.insert(e) }
        for h in e.hostnames {
            if h.hasPrefix("*.") {
                wildcardHosts[String(h.dropFirst(2)), default: MatchList()].insert(e)
            } else {
                exactHosts[h, default: MatchList()].insert(e)
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
        if e.hostnames.isEmpty { anyHost.remove(e) }
        for h in e.hostnames {
            if h.hasPrefix("*.") {
                let key = String(h.dropFirst(2))
                wildcardHosts[key, default: MatchList()].remove(e)
                if wildcardHosts[key]?.isEmpty == true { wildcardHosts[key] = nil }
            } else {
                exactHosts[h, default: MatchList()].remove(e)
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
}
