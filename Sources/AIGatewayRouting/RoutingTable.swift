import AIGatewayAPI

/// A request's header fields as the proxy parsed them, read by the matcher only when a rule it
/// tries matches on a header (most rules match a path alone): the proxy hands its head over as it
/// is rather than copying every field into a pair of strings for every request.
public protocol RequestHeaderFields: Sendable {
    /// The value of the first field, in the order received, whose name satisfies `isName`.
    func firstValue(where isName: (String) -> Bool) -> String?
}

/// What the matcher needs to know about a request.
public struct RequestFacts: Sendable {
    public var method: String
    /// `Host` without the port, lower-cased.
    public var host: String
    /// The path without the query string.
    public var path: String
    /// The query parameters, decoded (read from the target when asked: most requests have none,
    /// and most rules match no parameter).
    public var query: [(name: String, value: String)] {
        switch queryStorage {
        case .pairs(let pairs): pairs
        case .text(let text): Self.parseQuery(text)
        }
    }

    private enum Query: Sendable {
        case pairs([(name: String, value: String)])
        /// The target after its `?`.
        case text(Substring)
    }

    private enum Headers: Sendable {
        case pairs([(name: String, value: String)])
        case fields(any RequestHeaderFields)
    }

    private let queryStorage: Query
    private let headers: Headers

    public init(method: String, host: String, path: String, query: [(name: String, value: String)] = [], headers: [(name: String, value: String)] = []) {
        self.method = method
        self.host = host
        self.path = path
        self.queryStorage = .pairs(query)
        self.headers = .pairs(headers)
    }

    /// Builds the facts from a request target (`/path?query`) and its headers. (Scans bytes,
    /// not characters: it runs for every request.)
    public init(method: String, uri: String, headers: [(name: String, value: String)]) {
        let host = headers.first(where: { $0.name.isASCIICaseInsensitive("host") })?.value
        self.init(method: method, uri: uri, host: host, headers: .pairs(headers))
    }

    /// Builds the facts from a request target and the proxy's parsed header fields, which are
    /// read only if a rule matches on a header.
    ///
    /// - Parameter host: the value of the first field named `Host` (in any ASCII case), which the
    ///   proxy finds with its own search (nil: none).
    public init(method: String, uri: String, host: String?, fields: some RequestHeaderFields) {
        self.init(method: method, uri: uri, host: host, headers: .fields(fields))
    }

    private init(method: String, uri: String, host hostValue: String?, headers: Headers) {
        // Strings are sliced only when they must be: a target without a query is its path, a
        // host without a port or capitals is itself.
        var path = uri
        var query = Query.pairs([])
        if let q = uri.utf8.firstIndex(of: UInt8(ascii: "?")) {
            path = String(uri[..<q])
            query = .text(uri[uri.utf8.index(after: q)...])
        }
        self.method = method
        self.host = Self.host(hostValue ?? "")
        self.path = path.isEmpty ? "/" : path
        self.queryStorage = query
        self.headers = headers
    }

    /// A `Host` value without its port, lower-cased.
    private static func host(_ value: String) -> String {
        // The common forms read from the bytes: `name` and `name:port`, without capitals.
        let fast = value.utf8.withContiguousStorageIfAvailable { b -> String? in
            guard b.first != UInt8(ascii: "[") else { return nil }
            var end = b.count
            while end > 0, b[end - 1] != UInt8(ascii: ":") { end -= 1 }
            end = end > 0 ? end - 1 : b.count
            for k in 0..<end where b[k] >= UInt8(ascii: "A") && b[k] <= UInt8(ascii: "Z") { return nil }
            return end == b.count ? value : String(decoding: UnsafeBufferPointer(rebasing: b[..<end]), as: UTF8.self)
        }
        if let fast, let host = fast { return host }
        var host = Substring(value)
        if host.utf8.first == UInt8(ascii: "[") {
            if let close = host.utf8.firstIndex(of: UInt8(ascii: "]")) { host = host[...close] }
        } else if let colon = host.utf8.lastIndex(of: UInt8(ascii: ":")) {
            host = host[..<colon]
        }
        return host.utf8.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") } ? host.lowercased() : String(host)
    }

    /// `name=value` pairs split at `&`, each side percent-decoded (`+` as a space; left as sent
    /// when it does not decode).
    private static func parseQuery(_ text: Substring) -> [(name: String, value: String)] {
        var query: [(name: String, value: String)] = []
        for pair in text.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            query.append((String(kv[0]).removingPercentEncoding ?? String(kv[0]), kv.count > 1 ? (String(kv[1]).removingPercentEncoding ?? String(kv[1])) : ""))
        }
        return query
    }

    func header(_ name: String) -> String? {
        switch headers {
        case .pairs(let pairs): pairs.first(where: { $0.name.caseInsensitiveCompare(name) }).map(\.value)
        case .fields(let fields): fields.firstValue(where: { $0.caseInsensitiveCompare(name) })
        }
    }
}

extension String {
    fileprivate func caseInsensitiveCompare(_ other: String) -> Bool {
        self.utf8.count == other.utf8.count && self.lowercased() == other.lowercased()
    }

    /// Equal to `lowered` (already lowercase ASCII) ignoring ASCII case, without making a string.
    fileprivate func isASCIICaseInsensitive(_ lowered: String) -> Bool {
        guard utf8.count == lowered.utf8.count else { return false }
        return zip(utf8, lowered.utf8).allSatisfy { a, b in
            (a >= UInt8(ascii: "A") && a <= UInt8(ascii: "Z") ? a | 0x20 : a) == b
        }
    }

    fileprivate var removingPercentEncoding: String? {
        guard contains("%") || contains("+") else { return self }
        var bytes: [UInt8] = []
        var it = utf8.makeIterator()
        while let c = it.next() {
            if c == UInt8(ascii: "+") { bytes.append(UInt8(ascii: " ")); continue }
            guard c == UInt8(ascii: "%") else { bytes.append(c); continue }
            guard let h = it.next(), let l = it.next(), let v = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(v)
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

/// A compiled `HTTPRouteMatch`.
struct CompiledMatch: Sendable, Hashable {
    enum PathMatch: Sendable, Hashable {
        case exact(String)
        case prefix(String)
        case regex(String)
    }

    var path: PathMatch
    var method: String?
    var headers: [HTTPRouteMatch.ValueMatch]
    var queryParams: [HTTPRouteMatch.ValueMatch]

    init(_ m: HTTPRouteMatch) {
        switch m.pathType {
        case .exact: path = .exact(m.pathValue)
        case .pathPrefix:
            var v = m.pathValue
            while v.count > 1 && v.hasSuffix("/") { v.removeLast() }
            path = .prefix(v)
        case .regularExpression: path = .regex(m.pathValue)
        }
        method = m.method
        headers = m.headers
        queryParams = m.queryParams
    }

    /// Gateway API precedence: exact path, then longest prefix, then regex; then method; then the
    /// number of header and query matches. Larger sorts first.
    var rank: (Int, Int, Int, Int, Int) {
        let pathRank: (Int, Int)
        switch path {
        case .exact(let v): pathRank = (3, v.utf8.count)
        case .prefix(let v): pathRank = (2, v.utf8.count)
        case .regex(let v): pathRank = (1, v.utf8.count)
        }
        return (pathRank.0, pathRank.1, method == nil ? 0 : 1, headers.count, queryParams.count)
    }

    func matches(_ r: RequestFacts, regexes: RegexCache) -> Bool {
        switch path {
        case .exact(let v):
            guard r.path == v else { return false }
        case .prefix(let v):
            if v != "/" {
                guard r.path.hasPrefix(v) else { return false }
                if r.path.utf8.count != v.utf8.count {
                    // Element-wise: /foo matches /foo and /foo/bar, not /foobar.
                    let next = r.path.utf8[r.path.utf8.index(r.path.utf8.startIndex, offsetBy: v.utf8.count)]
                    guard next == UInt8(ascii: "/") else { return false }
                }
            }
        case .regex(let v):
            guard regexes.wholeMatch(v, r.path) else { return false }
        }
        if let method, method != r.method { return false }
        for h in headers {
            guard let value = r.header(h.name) else { return false }
            switch h.type {
            case .exact: guard value == h.value else { return false }
            case .regularExpression: guard regexes.wholeMatch(h.value, value) else { return false }
            }
        }
        let query = queryParams.isEmpty ? [] : r.query
        for q in queryParams {
            guard let value = query.first(where: { $0.name == q.name })?.value else { return false }
            switch q.type {
            case .exact: guard value == q.value else { return false }
            case .regularExpression: guard regexes.wholeMatch(q.value, value) else { return false }
            }
        }
        return true
    }
}

/// Regular expressions compiled once per table.
final class RegexCache: Sendable {
    // `Regex` is not `Sendable`; each is built once in `init` and only read afterwards, and
    // matching does not mutate it. The box is immutable after construction.
    private let regexes: [String: UncheckedRegex]

    struct UncheckedRegex: @unchecked Sendable {
        // Immutable after creation; Regex matching does not mutate shared state.
        let regex: Regex<AnyRegexOutput>
    }

    init(patterns: Set<String>) {
        var out: [String: UncheckedRegex] = [:]
        for p in patterns {
            if let r = try? Regex(p) { out[p] = UncheckedRegex(regex: r) }
        }
        regexes = out
    }

    func wholeMatch(_ pattern: String, _ text: String) -> Bool {
        guard let r = regexes[pattern] else { return false }
        return (try? r.regex.wholeMatch(in: text)) != nil
    }
}

/// One (route, rule, match) triple in precedence order.
struct MatchEntry: Sendable, Hashable {
    /// A route's place among routes: oldest first, then namespace/name (Gateway API
    /// tie-breaking), then `tiebreak` (the same name twice in a set of manifests). Absolute, so
    /// that one route can be compiled and placed without renumbering the others.
    struct RouteKey: Sendable, Hashable, Comparable {
        /// Empty when the route has none: it sorts last.
        var creationTimestamp: String
        var name: NamespacedName
        var tiebreak: Int

        init(_ route: HTTPRoute, tiebreak: Int) {
            creationTimestamp = route.metadata.creationTimestamp ?? ""
            name = route.metadata.namespacedName
            self.tiebreak = tiebreak
        }

        static func < (a: RouteKey, b: RouteKey) -> Bool {
            if a.creationTimestamp != b.creationTimestamp {
                if a.creationTimestamp.isEmpty { return false }
                if b.creationTimestamp.isEmpty { return true }
                return a.creationTimestamp < b.creationTimestamp
            }
            if a.name != b.name { return a.name < b.name }
            return a.tiebreak < b.tiebreak
        }
    }

    struct Order: Sendable, Hashable, Comparable {
        var route: RouteKey
        var rule: Int
        var match: Int
        static func < (a: Order, b: Order) -> Bool {
            if a.route != b.route { return a.route < b.route }
            return (a.rule, a.match) < (b.rule, b.match)
        }
    }

    var hostnames: [String]
    var match: CompiledMatch
    var rule: CompiledRule
    var order: Order

    static func precedes(_ a: MatchEntry, _ b: MatchEntry) -> Bool {
        let ra = a.match.rank, rb = b.match.rank
        if ra != rb { return ra > rb }
        return a.order < b.order
    }
}

/// The result of matching a request.
public struct RouteMatch: Sendable {
    public var rule: CompiledRule
    /// The path after `URLRewrite`, for logs (AI Backends always set their provider's path).
    public var rewrittenPath: String
}

/// An immutable, compiled view of every route and Backend. Built off the hot path and swapped
/// in whole; requests in flight keep the table they started with.
public final class RoutingTable: Sendable {
    public let backends: [NamespacedName: CompiledBackend]
    public let status: TableStatus
    /// The id of every entry of every Backend, and every Backend's label: what passive health
    /// keeps state for (kept by the compiler, so that a new table does not walk all Backends).
    public let entryIDs: Set<String>
    public let backendLabels: Set<String>
    /// Rules by hostname specificity, each list in precedence order.
    private let exactHosts: [String: MatchList]
    /// The byte counts of `exactHosts`' names: a request whose host no route names looks nothing up.
    private let exactHostLengths: LengthSet
    private let wildcardHosts: [String: MatchList]
    private let anyHost: MatchList
    private let regexes: RegexCache
    public let ruleCount: Int

    public static let empty = RoutingTable(entries: [], backends: [:], status: TableStatus())

    convenience init(entries: [MatchEntry], backends: [NamespacedName: CompiledBackend], status: TableStatus) {
        let index = MatchIndex(entries: entries)
        var ids: Set<String> = []
        for b in backends.values {
            for e in b.entries { ids.insert(e.id) }
        }
        self.init(
            index: index, regexes: RegexCache(patterns: Set(index.patterns.keys)), backends: backends, status: status, entryIDs: ids,
            backendLabels: Set(backends.values.map(\.label)))
    }

    /// A table from lists already in precedence order (see `MatchIndex`), sharing them.
    init(
        index: MatchIndex, regexes: RegexCache, backends: [NamespacedName: CompiledBackend], status: TableStatus, entryIDs: Set<String>,
        backendLabels: Set<String>
    ) {
        self.backends = backends
        self.status = status
        self.entryIDs = entryIDs
        self.backendLabels = backendLabels
        exactHosts = index.exactHosts
        exactHostLengths = LengthSet(index.exactHosts.keys)
        wildcardHosts = index.wildcardHosts
        anyHost = index.anyHost
        self.regexes = regexes
        ruleCount = index.count
    }

    /// Finds the rule for a request: the most specific hostname first, then Gateway API match precedence.
    public func match(_ request: RequestFacts) -> RouteMatch? {
        if exactHostLengths.mayContain(request.host.utf8.count), let list = exactHosts[request.host], let m = firstMatch(list, request) { return m }
        if !wildcardHosts.isEmpty {
            var labels = request.host.split(separator: ".")
            while labels.count > 1 {
                labels.removeFirst()
                if let list = wildcardHosts[labels.joined(separator: ".")], let m = firstMatch(list, request) { return m }
            }
        }
        return firstMatch(anyHost, request)
    }

    /// `match` by scanning each list whole, without the path index: what the tests hold the index to.
    func matchByScan(_ request: RequestFacts) -> RouteMatch? {
        func scan(_ list: MatchList?) -> RouteMatch? {
            guard let e = list?.entries.first(where: { $0.match.matches(request, regexes: regexes) }) else { return nil }
            return RouteMatch(rule: e.rule, rewrittenPath: rewrite(request.path, match: e.match, rewrite: e.rule.rewrite))
        }
        if let m = scan(exactHosts[request.host]) { return m }
        var labels = request.host.split(separator: ".")
        while labels.count > 1 {
            labels.removeFirst()
            if let m = scan(wildcardHosts[labels.joined(separator: ".")]) { return m }
        }
        return scan(anyHost)
    }

    private func firstMatch(_ list: MatchList, _ request: RequestFacts) -> RouteMatch? {
        guard let (group, i) = list.first(request, regexes: regexes) else { return nil }
        return group.withUnsafeBufferPointer { g in
            RouteMatch(rule: g[i].rule, rewrittenPath: rewrite(request.path, match: g[i].match, rewrite: g[i].rule.rewrite))
        }
    }

    private func rewrite(_ path: String, match: CompiledMatch, rewrite: URLRewrite?) -> String {
        switch rewrite?.path {
        case .replaceFullPath(let p)?:
            return p
        case .replacePrefixMatch(let replacement)?:
            guard case .prefix(let prefix) = match.path else { return path }
            let rest = prefix == "/" ? Substring(path.dropFirst()) : path.dropFirst(prefix.count)
            let out: String
            if replacement.hasSuffix("/") || rest.isEmpty {
                out = replacement + (rest.hasPrefix("/") ? rest.dropFirst() : rest)
            } else {
                out = replacement + (rest.hasPrefix("/") ? rest : "/" + rest)
            }
            // An empty replacement of the whole path leaves `/` (Gateway API: `/foo` with "" → `/`).
            return out.isEmpty ? "/" : out
        case nil:
            return path
        }
    }

    /// Stable text of the whole table, for golden tests and `ai-gateway validate --dump`.
    public func dump() -> String {
        var lines: [String] = []
        let all = (exactHosts.values.flatMap(\.entries) + wildcardHosts.values.flatMap(\.entries) + anyHost.entries)
        var seen: Set<MatchEntry.Order> = []
        let ordered = all.sorted(by: MatchEntry.precedes).filter { seen.insert($0.order).inserted }
        lines.append("routes:")
        for e in ordered {
            let r = e.rule
            var path: String
            switch e.match.path {
            case .exact(let v): path = "Exact \(v)"
            case .prefix(let v): path = "PathPrefix \(v)"
            case .regex(let v): path = "RegularExpression \(v)"
            }
            if let m = e.match.method { path += " method=\(m)" }
            for h in e.match.headers { path += " header[\(h.name)]\(h.type == .exact ? "=" : "~")\(h.value)" }
            for q in e.match.queryParams { path += " query[\(q.name)]\(q.type == .exact ? "=" : "~")\(q.value)" }
            let hosts = e.hostnames.isEmpty ? "*" : e.hostnames.joined(separator: ",")
            lines.append("- \(hosts) \(path) -> \(r.route) rule \(r.ruleIndex)")
            if let rw = r.rewrite {
                switch rw.path {
                case .replaceFullPath(let p)?: lines.append("    rewrite: ReplaceFullPath \(p)")
                case .replacePrefixMatch(let p)?: lines.append("    rewrite: ReplacePrefixMatch \(p)")
                case nil: break
                }
                if let h = rw.hostname { lines.append("    rewrite hostname: \(h)") }
            }
            for t in r.targets {
                switch t.target {
                case .backend(let b): lines.append("    backend \(b) weight=\(t.weight)")
                case .invalid(let msg): lines.append("    invalid weight=\(t.weight): \(msg)")
                }
            }
            if let t = r.requestTimeout { lines.append("    timeout request=\(t)") }
            if let t = r.backendRequestTimeout { lines.append("    timeout backendRequest=\(t)") }
            lines.append("    retry codes=\(r.retry.codes.sorted()) attempts=\(r.retry.attempts.map(String.init) ?? "default") backoff=\(r.retry.backoff)")
        }
        lines.append("backends:")
        for (name, b) in backends.sorted(by: { $0.key < $1.key }) {
            lines.append("- \(name)\(b.problem.map { " (not served: \($0))" } ?? "")")
            if b.settings.streamContinuation { lines.append("    stream-continuation: true") }
            for (p, level) in b.priorities.enumerated() {
                lines.append("    priority \(p):")
                for e in level {
                    let t = e.target
                    let auth: String
                    switch e.auth {
                    case .key?: auth = "\(t.authHeaderName): \(t.authPrefix)<key>"
                    case .passthrough?: auth = "\(t.authHeaderName): passthrough"
                    case .aws(let c)?: auth = "sigv4 \(c.accessKeyID)\(c.sessionToken == nil ? "" : " +session token")"
                    case .awsDefaultChain?: auth = "sigv4 (environment / web identity)"
                    case nil: auth = "none"
                    }
                    lines.append("      - \(t.provider) model=\(t.model ?? "(client's)") \(t.tls ? "https" : "http")://\(t.host):\(t.port)\(t.path) auth=[\(auth)]\(e.problem.map { " problem=[\($0)]" } ?? "")")
                }
            }
        }
        lines.append("status:")
        for (name, conds) in status.backends.sorted(by: { $0.key < $1.key }) {
            for c in conds { lines.append("- Backend \(name): \(c)") }
        }
        for (name, parents) in status.routes.sorted(by: { $0.key < $1.key }) {
            for p in parents {
                for c in p.conditions { lines.append("- HTTPRoute \(name) parent \(p.parentNamespace)/\(p.parent.name): \(c)") }
            }
        }
        for (name, g) in status.gateways.sorted(by: { $0.key < $1.key }) {
            for c in g.conditions { lines.append("- Gateway \(name): \(c)") }
            for (l, n) in g.attachedRoutes.sorted(by: { $0.key < $1.key }) { lines.append("- Gateway \(name) listener \(l): attachedRoutes=\(n)") }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
