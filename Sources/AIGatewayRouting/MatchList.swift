/// One hostname's match entries in precedence order, with an index by path: the entries a
/// request's path can match at all are looked up, not scanned (thousands of routes cost a few
/// dictionary lookups per request). The first entry in precedence order among those candidates
/// that matches is the one a scan of the whole list would find.
struct MatchList: Sendable {
    let entries: [MatchEntry]
    /// Positions (ascending) of the `Exact` entries by path.
    private let exact: [String: [Int]]
    /// Positions (ascending) of the `PathPrefix` entries by prefix (ASCII prefixes other than `/`).
    private let prefix: [String: [Int]]
    /// Positions (ascending) of the entries every path is a candidate for: regular expressions,
    /// the prefix `/`, and prefixes that are not ASCII (compared as characters, not bytes).
    private let always: [Int]

    init(_ entries: [MatchEntry]) {
        self.entries = entries
        var exact: [String: [Int]] = [:]
        var prefix: [String: [Int]] = [:]
        var always: [Int] = []
        for (i, e) in entries.enumerated() {
            switch e.match.path {
            case .exact(let v): exact[v, default: []].append(i)
            case .prefix(let v) where v != "/" && v.utf8.allSatisfy({ $0 < 0x80 }): prefix[v, default: []].append(i)
            case .prefix, .regex: always.append(i)
            }
        }
        self.exact = exact
        self.prefix = prefix
        self.always = always
    }

    /// The position of the first entry (in precedence order) that matches the request.
    func first(_ request: RequestFacts, regexes: RegexCache) -> Int? {
        var best = Int.max
        func consider(_ positions: [Int]?) {
            for p in positions ?? [] {
                if p >= best { return }
                if entries[p].match.matches(request, regexes: regexes) {
                    best = p
                    return
                }
            }
        }
        let path = request.path
        consider(exact[path])
        // A prefix matches the whole path, or the part before a `/`.
        consider(prefix[path])
        let bytes = path.utf8
        var i = bytes.index(bytes.startIndex, offsetBy: 1, limitedBy: bytes.endIndex) ?? bytes.endIndex
        while i < bytes.endIndex {
            if bytes[i] == UInt8(ascii: "/"), let candidate = prefix[String(Substring(path.utf8[..<i]))] {
                consider(candidate)
            }
            i = bytes.index(after: i)
        }
        consider(always)
        return best == Int.max ? nil : best
    }
}
