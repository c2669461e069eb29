/// One hostname's match entries, grouped by the paths they can match: `Exact` entries by path,
/// `PathPrefix` entries by prefix (ASCII prefixes other than `/`), and the entries every path is
/// a candidate for (regular expressions, the prefix `/`, prefixes that are not ASCII, which are
/// compared as characters rather than bytes). Each group is in precedence order
/// (`MatchEntry.precedes`).
///
/// A request looks up its candidates (a few dictionary lookups) instead of scanning thousands
/// of routes, and takes the first in precedence order that matches: the one a scan of the whole
/// list in precedence order finds. A route change touches its own small groups only, so the
/// next table shares all the others.
///
/// The byte counts of the keys are kept too (`LengthSet`): a request looks up only the parts of
/// its path as long as some key, so the common request (a path no `Exact` rule names, whose
/// parent directories no prefix names) hashes nothing.
struct MatchList: Sendable {
    private(set) var exact: [String: [MatchEntry]] = [:]
    private(set) var prefix: [String: [MatchEntry]] = [:]
    private(set) var always: [MatchEntry] = []
    private(set) var count = 0
    /// The byte counts of `exact`'s and `prefix`'s keys (kept with the keys: `insert` adds,
    /// `remove` recounts when a key goes).
    private(set) var exactLengths = LengthSet()
    private(set) var prefixLengths = LengthSet()

    var isEmpty: Bool { count == 0 }

    enum Group: Hashable {
        case exact(String)
        case prefix(String)
        case always
    }

    static func group(of e: MatchEntry) -> Group {
        switch e.match.path {
        case .exact(let v): .exact(v)
        case .prefix(let v) where v != "/" && v.utf8.allSatisfy({ $0 < 0x80 }): .prefix(v)
        case .prefix, .regex: .always
        }
    }

    init() {}

    /// All at once: grouped, then each group sorted once.
    init(_ entries: [MatchEntry]) {
        for e in entries {
            switch Self.group(of: e) {
            case .exact(let v): exact[v, default: []].append(e)
            case .prefix(let v): prefix[v, default: []].append(e)
            case .always: always.append(e)
            }
        }
        count = entries.count
        exact = exact.mapValues { $0.sorted(by: MatchEntry.precedes) }
        prefix = prefix.mapValues { $0.sorted(by: MatchEntry.precedes) }
        always.sort(by: MatchEntry.precedes)
        exactLengths = LengthSet(exact.keys)
        prefixLengths = LengthSet(prefix.keys)
    }

    /// Every entry, in precedence order (for dumps and tests; not on the request path).
    var entries: [MatchEntry] {
        (Array(exact.values.joined()) + Array(prefix.values.joined()) + always).sorted(by: MatchEntry.precedes)
    }

    mutating func insert(_ e: MatchEntry) {
        count += 1
        switch Self.group(of: e) {
        case .exact(let v):
            Self.insert(e, into: &exact[v, default: []])
            exactLengths.insert(v.utf8.count)
        case .prefix(let v):
            Self.insert(e, into: &prefix[v, default: []])
            prefixLengths.insert(v.utf8.count)
        case .always: Self.insert(e, into: &always)
        }
    }

    /// Removes an entry inserted before (the same route, rule and match).
    mutating func remove(_ e: MatchEntry) {
        count -= 1
        switch Self.group(of: e) {
        case .exact(let v):
            Self.remove(e, from: &exact[v, default: []])
            if exact[v]?.isEmpty == true {
                exact[v] = nil
                exactLengths = LengthSet(exact.keys)
            }
        case .prefix(let v):
            Self.remove(e, from: &prefix[v, default: []])
            if prefix[v]?.isEmpty == true {
                prefix[v] = nil
                prefixLengths = LengthSet(prefix.keys)
            }
        case .always:
            Self.remove(e, from: &always)
        }
    }

    /// The first entry (in precedence order) that matches the request, as its group and its
    /// place in it. (Entries are read in place, through buffer pointers: reading one out of an
    /// array copies it, a retain and a release of each of its strings and arrays.)
    func first(_ request: RequestFacts, regexes: RegexCache) -> (group: [MatchEntry], index: Int)? {
        var bestGroup: [MatchEntry] = []
        var bestIndex = -1
        func consider(_ group: [MatchEntry]?) {
            guard let group else { return }
            group.withUnsafeBufferPointer { entries in
                for i in entries.indices {
                    if bestIndex >= 0 {
                        let precedes = bestGroup.withUnsafeBufferPointer { MatchEntry.precedes(entries[i], $0[bestIndex]) }
                        if !precedes { return }
                    }
                    if entries[i].match.matches(request, regexes: regexes) {
                        bestGroup = group
                        bestIndex = i
                        return
                    }
                }
            }
        }
        let path = request.path
        let count = path.utf8.count
        if exactLengths.mayContain(count) { consider(exact[path]) }
        if !prefixLengths.isEmpty {
            // A prefix matches the whole path, or the part before a `/`.
            if prefixLengths.mayContain(count) { consider(prefix[path]) }
            let bytes = path.utf8
            var i = bytes.index(bytes.startIndex, offsetBy: 1, limitedBy: bytes.endIndex) ?? bytes.endIndex
            var length = 1
            while i < bytes.endIndex {
                if bytes[i] == UInt8(ascii: "/"), prefixLengths.mayContain(length) { consider(prefix[String(Substring(path.utf8[..<i]))]) }
                i = bytes.index(after: i)
                length += 1
            }
        }
        if !always.isEmpty { consider(always) }
        return bestIndex >= 0 ? (bestGroup, bestIndex) : nil
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
