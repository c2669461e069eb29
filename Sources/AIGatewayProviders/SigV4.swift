import AIGatewayAPI
import Crypto
import Synchronization

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`), pure: the same request, credentials and time give
/// the same signature.
///
/// The canonical URI follows the rule for every service but S3: each path segment is URI-encoded
/// once more than it is on the wire. Callers pass the *wire* path (a Bedrock model id
/// `anthropic.claude-v2:1` travels as `anthropic.claude-v2%3A1`), and the canonical request holds
/// `anthropic.claude-v2%253A1`, which is what AWS computes on its side.
public struct SigV4: Sendable, Hashable {
    public var region: String
    public var service: String

    public static let algorithm = "AWS4-HMAC-SHA256"

    public init(region: String, service: String) {
        self.region = region
        self.service = service
    }

    /// One request as it goes on the wire.
    public struct Request: Sendable {
        public var method: String
        /// The path as sent on the request line (already URI-encoded once), without the query.
        public var path: String
        /// The query as sent, without the `?`; empty when there is none.
        public var query: String
        /// The headers to sign (`host` included); other headers may travel unsigned.
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]

        public init(method: String, path: String, query: String = "", headers: [(name: String, value: String)], body: [UInt8]) {
            self.method = method
            self.path = path
            self.query = query
            self.headers = headers
            self.body = body
        }
    }

    /// What `sign` adds to the request.
    public struct Signature: Sendable, Hashable {
        /// `x-amz-date`, `x-amz-security-token` (with temporary credentials) and `authorization`,
        /// in that order: send them all.
        public var headers: [UpstreamTarget.HeaderField]
        public var canonicalRequest: String
        public var stringToSign: String
        public var signedHeaders: String
        public var signature: String
    }

    /// Signs `request` at `time` (seconds since 1970). `x-amz-date` and, with a session token,
    /// `x-amz-security-token` are added to the signed headers; `request.headers` must not hold them.
    public func sign(_ request: Request, credentials: AWSCredentials, time: Double) -> Signature {
        let amzDate = Self.amzDate(time)
        var request = request
        request.headers.append((name: "x-amz-date", value: amzDate))
        if let token = credentials.sessionToken {
            request.headers.append((name: "x-amz-security-token", value: token.value))
        }
        return sign(request, credentials: credentials, amzDate: amzDate)
    }

    /// Signs `request` whose headers already hold `x-amz-date` (and the session token, if any) with
    /// the value `amzDate`.
    public func sign(_ request: Request, credentials: AWSCredentials, amzDate: String) -> Signature {
        let c = compute(
            method: request.method, path: Substring(request.path), query: Substring(request.query), headers: request.headers,
            body: request.body, credentials: credentials, amzDate: amzDate)
        return Signature(
            headers: Self.headers(c, credentials: credentials, amzDate: amzDate), canonicalRequest: String(decoding: c.canonical, as: UTF8.self),
            stringToSign: String(decoding: c.stringToSign, as: UTF8.self), signedHeaders: String(decoding: c.signedHeaders, as: UTF8.self),
            signature: String(decoding: c.signature, as: UTF8.self))
    }

    /// What `sign(_:credentials:time:)` returns in `Signature.headers`, and nothing else (the
    /// per-request path: no text of the canonical request or the string to sign is kept).
    /// `headers` are the headers to sign (`host` included), without `x-amz-date` and the token.
    public func signatureHeaders(
        method: String, path: Substring, query: Substring = "", headers: [(name: String, value: String)], body: [UInt8],
        credentials: AWSCredentials, time: Double
    ) -> [UpstreamTarget.HeaderField] {
        let amzDate = Self.amzDate(time)
        var headers = headers
        headers.append((name: "x-amz-date", value: amzDate))
        if let token = credentials.sessionToken {
            headers.append((name: "x-amz-security-token", value: token.value))
        }
        let c = compute(method: method, path: path, query: query, headers: headers, body: body, credentials: credentials, amzDate: amzDate)
        return Self.headers(c, credentials: credentials, amzDate: amzDate)
    }

    /// The canonical request, the string to sign, the signed header list and the signature, as
    /// bytes: each built in one buffer, hashed as raw bytes.
    struct Computed {
        var canonical: [UInt8]
        var stringToSign: [UInt8]
        /// Where the credential scope (`date/region/service/aws4_request`) is in `stringToSign`.
        var scope: Range<Int>
        var signedHeaders: [UInt8]
        var signature: [UInt8]
    }

    func compute(
        method: String, path: Substring, query: Substring, headers: [(name: String, value: String)], body: [UInt8],
        credentials: AWSCredentials, amzDate: String
    ) -> Computed {
        var canonical: [UInt8] = []
        canonical.reserveCapacity(256 + path.utf8.count + query.utf8.count + headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 2 } * 2)
        Self.appendUppercased(method, into: &canonical)
        canonical.append(UInt8(ascii: "\n"))
        Self.appendCanonicalURI(path, into: &canonical)
        canonical.append(UInt8(ascii: "\n"))
        if !query.isEmpty { canonical.append(contentsOf: Self.canonicalQuery(String(query)).utf8) }
        canonical.append(UInt8(ascii: "\n"))
        var signed: [UInt8] = []
        signed.reserveCapacity(64)
        Self.appendCanonicalHeaders(headers, into: &canonical, signed: &signed)
        canonical.append(UInt8(ascii: "\n"))
        canonical.append(contentsOf: signed)
        canonical.append(UInt8(ascii: "\n"))
        body.withUnsafeBytes { Self.appendHex(Self.sha256($0), into: &canonical) }

        let date = amzDate.utf8.prefix(8)
        var toSign: [UInt8] = []
        toSign.reserveCapacity(128 + region.utf8.count + service.utf8.count)
        toSign.append(contentsOf: Self.algorithm.utf8)
        toSign.append(UInt8(ascii: "\n"))
        toSign.append(contentsOf: amzDate.utf8)
        toSign.append(UInt8(ascii: "\n"))
        let scopeStart = toSign.count
        appendScope(date: date, into: &toSign)
        let scope = scopeStart..<toSign.count
        toSign.append(UInt8(ascii: "\n"))
        canonical.withUnsafeBytes { Self.appendHex(Self.sha256($0), into: &toSign) }

        let key = Self.cachedSigner(secret: credentials.secretAccessKey.value, date: String(decoding: date, as: UTF8.self), region: region, service: service)
        var signature: [UInt8] = []
        signature.reserveCapacity(64)
        Self.appendHex(key.authenticationCode(for: toSign), into: &signature)
        return Computed(canonical: canonical, stringToSign: toSign, scope: scope, signedHeaders: signed, signature: signature)
    }

    /// `date/region/service/aws4_request`.
    private func appendScope(date: Substring.UTF8View, into out: inout [UInt8]) {
        out.append(contentsOf: date)
        out.append(UInt8(ascii: "/"))
        out.append(contentsOf: region.utf8)
        out.append(UInt8(ascii: "/"))
        out.append(contentsOf: service.utf8)
        out.append(contentsOf: "/aws4_request".utf8)
    }

    /// `x-amz-date`, the token if any, and `authorization`.
    private static func headers(_ c: Computed, credentials: AWSCredentials, amzDate: String) -> [UpstreamTarget.HeaderField] {
        var headers: [UpstreamTarget.HeaderField] = []
        headers.reserveCapacity(3)
        headers.append(.init(name: "x-amz-date", value: amzDate))
        if let token = credentials.sessionToken {
            headers.append(.init(name: "x-amz-security-token", value: token.value))
        }
        var auth: [UInt8] = []
        auth.reserveCapacity(96 + credentials.accessKeyID.utf8.count + c.scope.count + c.signedHeaders.count + c.signature.count)
        auth.append(contentsOf: algorithm.utf8)
        auth.append(contentsOf: " Credential=".utf8)
        auth.append(contentsOf: credentials.accessKeyID.utf8)
        auth.append(UInt8(ascii: "/"))
        auth.append(contentsOf: c.stringToSign[c.scope])
        auth.append(contentsOf: ", SignedHeaders=".utf8)
        auth.append(contentsOf: c.signedHeaders)
        auth.append(contentsOf: ", Signature=".utf8)
        auth.append(contentsOf: c.signature)
        headers.append(.init(name: "authorization", value: String(decoding: auth, as: UTF8.self)))
        return headers
    }

    /// A signing key already derived, with its HMAC state set up.
    private struct DerivedKey: Sendable {
        var secret: String
        var date: String
        var region: String
        var service: String
        var key: SymmetricKey
        var signer: HMACSHA256Key
    }

    /// Signing keys already derived, by date, region, service and secret: the derivation is four
    /// HMACs and the same for every request of a day (it was a sixth of the gateway's CPU on a
    /// Bedrock route), and the key's HMAC setup (two more blocks) is done once with it. Bounded:
    /// emptied when it holds 16 keys (rotated secrets, new days).
    private static let derivedKeys = Mutex<[DerivedKey]>([])

    private static func cached(secret: String, date: String, region: String, service: String) -> DerivedKey {
        let found = derivedKeys.withLock { keys in
            keys.first { $0.date == date && $0.secret.utf8.elementsEqual(secret.utf8) && $0.region == region && $0.service == service }
        }
        if let found { return found }
        let key = signingKey(secret: secret, date: date, region: region, service: service)
        let derived = DerivedKey(secret: secret, date: date, region: region, service: service, key: key, signer: HMACSHA256Key(key: key))
        derivedKeys.withLock { keys in
            if keys.count >= 16 { keys.removeAll() }
            keys.append(derived)
        }
        return derived
    }

    /// `signingKey`, derived once per date, region, service and secret.
    public static func cachedSigningKey(secret: String, date: String, region: String, service: String) -> SymmetricKey {
        cached(secret: secret, date: date, region: region, service: service).key
    }

    /// The HMAC of the cached signing key, its key blocks already hashed.
    static func cachedSigner(secret: String, date: String, region: String, service: String) -> HMACSHA256Key {
        cached(secret: secret, date: date, region: region, service: service).signer
    }

    /// The HMAC key chain: `"AWS4" + secret` → date → region → service → `aws4_request`.
    public static func signingKey(secret: String, date: String, region: String, service: String) -> SymmetricKey {
        var key = SymmetricKey(data: Array(("AWS4" + secret).utf8))
        for part in [date, region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        return key
    }

    /// `METHOD\nURI\nQUERY\nHEADERS\n\nSIGNED_HEADERS\nPAYLOAD_HASH`, and the signed header list.
    public static func canonicalRequest(_ r: Request) -> (text: String, signedHeaders: String) {
        var out: [UInt8] = []
        appendUppercased(r.method, into: &out)
        out.append(UInt8(ascii: "\n"))
        appendCanonicalURI(Substring(r.path), into: &out)
        out.append(UInt8(ascii: "\n"))
        out.append(contentsOf: canonicalQuery(r.query).utf8)
        out.append(UInt8(ascii: "\n"))
        var signed: [UInt8] = []
        appendCanonicalHeaders(r.headers, into: &out, signed: &signed)
        out.append(UInt8(ascii: "\n"))
        out.append(contentsOf: signed)
        out.append(UInt8(ascii: "\n"))
        r.body.withUnsafeBytes { appendHex(sha256($0), into: &out) }
        return (String(decoding: out, as: UTF8.self), String(decoding: signed, as: UTF8.self))
    }

    /// Each segment of the wire path URI-encoded once more (so `%3A` becomes `%253A`).
    public static func canonicalURI(_ path: String) -> String {
        var out: [UInt8] = []
        appendCanonicalURI(Substring(path), into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Every byte of each segment as `uriEncode` writes it, the `/` between segments kept.
    /// Runs of bytes kept as they are are copied in one append each (a per-byte append was most of
    /// this function's time on a Bedrock path).
    static func appendCanonicalURI<Sink: SigV4ByteSink>(_ path: Substring, into out: inout Sink) {
        if path.isEmpty {
            out.append(UInt8(ascii: "/"))
            return
        }
        let done: Void? = path.utf8.withContiguousStorageIfAvailable { bytes in
            var run = 0
            for i in bytes.indices where !isUnreserved(bytes[i]) && bytes[i] != UInt8(ascii: "/") {
                out.append(raw: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[run..<i])))
                appendPercentEncoded(bytes[i], into: &out)
                run = i + 1
            }
            out.append(raw: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[run...])))
        }
        if done == nil {
            for b in path.utf8 {
                if b == UInt8(ascii: "/") { out.append(b) } else { appendURIEncoded(b, into: &out) }
            }
        }
    }

    /// Parameters decoded, re-encoded with AWS's rules (`%20`, never `+`), sorted by name then value.
    public static func canonicalQuery(_ query: String) -> String {
        guard !query.isEmpty else { return "" }
        var pairs: [(String, String)] = []
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            let (k, v): (Substring, Substring)
            if let eq = part.firstIndex(of: "=") {
                (k, v) = (part[..<eq], part[part.index(after: eq)...])
            } else {
                (k, v) = (part, "")
            }
            pairs.append((uriEncode(percentDecode(k)), uriEncode(percentDecode(v))))
        }
        pairs.sort { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }
        return pairs.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// Names lowercased, values trimmed with inner runs of spaces collapsed, repeated names joined
    /// with commas, sorted by name. Returns the block (each line ending in `\n`) and the name list.
    public static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (block: String, signed: String) {
        var block: [UInt8] = []
        var signed: [UInt8] = []
        appendCanonicalHeaders(headers, into: &block, signed: &signed)
        return (String(decoding: block, as: UTF8.self), String(decoding: signed, as: UTF8.self))
    }

    /// `canonicalHeaders` written into `out` (the block) and `signed` (the name list).
    static func appendCanonicalHeaders(_ headers: [(name: String, value: String)], into out: inout [UInt8], signed: inout [UInt8]) {
        let names = headers.map { lowercasedName($0.name) }
        // Sorted by name; a repeated name keeps its values in the order given (insertion sort: a
        // signed header list is a handful of names, and a stable sort needs no tie-break).
        var order = Array(names.indices)
        if order.count > 1 {
            for i in 1..<order.count {
                let item = order[i]
                var j = i
                while j > 0, names[item] < names[order[j - 1]] {
                    order[j] = order[j - 1]
                    j -= 1
                }
                order[j] = item
            }
        }
        var k = 0
        while k < order.count {
            let name = names[order[k]]
            if !signed.isEmpty { signed.append(UInt8(ascii: ";")) }
            signed.append(contentsOf: name.utf8)
            out.append(contentsOf: name.utf8)
            out.append(UInt8(ascii: ":"))
            appendTrimmed(headers[order[k]].value, into: &out)
            k += 1
            while k < order.count, names[order[k]] == name {
                out.append(UInt8(ascii: ","))
                appendTrimmed(headers[order[k]].value, into: &out)
                k += 1
            }
            out.append(UInt8(ascii: "\n"))
        }
    }

    /// The name lowercased; the same string (no copy) when it already is.
    static func lowercasedName(_ name: String) -> String {
        name.utf8.contains { $0 >= 0x80 || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) } ? name.lowercased() : name
    }

    /// The method uppercased, written into `out`.
    static func appendUppercased<Sink: SigV4ByteSink>(_ method: String, into out: inout Sink) {
        func changes(_ b: UInt8) -> Bool { b >= 0x80 || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) }
        // Read in place when it can be (a generic walk of the view cost more than the rest).
        if method.utf8.withContiguousStorageIfAvailable({ $0.contains(where: changes) }) ?? method.utf8.contains(where: changes) {
            out.append(utf8: method.uppercased())
        } else {
            out.append(utf8: method)
        }
    }

    /// Leading and trailing whitespace removed, runs of spaces and tabs inside made one space.
    static func trimAll(_ value: String) -> String {
        var out: [UInt8] = []
        appendTrimmed(value, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `trimAll(value)` written into `out`. A value with nothing to collapse inside (the usual
    /// case: a host, a content type, a token) is copied in one append.
    static func appendTrimmed<Sink: SigV4ByteSink>(_ value: String, into out: inout Sink) {
        let copied: Bool? = value.utf8.withContiguousStorageIfAvailable { bytes in
            var start = 0
            var end = bytes.count
            while start < end, isBlank(bytes[start]) { start += 1 }
            while end > start, isBlank(bytes[end - 1]) { end -= 1 }
            var previousSpace = false
            for i in start..<end {
                let b = bytes[i]
                // Only a lone space stays as it is; a tab, a line break or a second blank collapses.
                if isBlank(b), b != UInt8(ascii: " ") || previousSpace { return false }
                previousSpace = b == UInt8(ascii: " ")
            }
            out.append(raw: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[start..<end])))
            return true
        }
        if copied != true { appendCollapsed(value, into: &out) }
    }

    @inline(__always)
    private static func isBlank(_ b: UInt8) -> Bool {
        b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\n") || b == UInt8(ascii: "\r")
    }

    /// `trimAll(value)` written into `out` a byte at a time.
    static func appendCollapsed<Sink: SigV4ByteSink>(_ value: String, into out: inout Sink) {
        var wrote = false
        var pendingSpace = false
        for b in value.utf8 {
            if b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\n") || b == UInt8(ascii: "\r") {
                pendingSpace = wrote
            } else {
                if pendingSpace { out.append(UInt8(ascii: " ")) }
                pendingSpace = false
                wrote = true
                out.append(b)
            }
        }
    }

    /// RFC 3986 encoding as AWS defines it: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX` (uppercase).
    public static func uriEncode<S: StringProtocol>(_ s: S) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 { appendURIEncoded(b, into: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    private static let lowerHexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    static func appendURIEncoded<Sink: SigV4ByteSink>(_ b: UInt8, into out: inout Sink) {
        if isUnreserved(b) { out.append(b) } else { appendPercentEncoded(b, into: &out) }
    }

    /// `A-Z a-z 0-9 - _ . ~`: the bytes `uriEncode` keeps.
    @inline(__always)
    static func isUnreserved(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    /// `%XX`, uppercase hex.
    static func appendPercentEncoded<Sink: SigV4ByteSink>(_ b: UInt8, into out: inout Sink) {
        func digit(_ n: UInt8) -> UInt8 { n < 10 ? UInt8(ascii: "0") + n : UInt8(ascii: "A") - 10 + n }
        out.append(UInt8(ascii: "%"))
        out.append(digit(b >> 4))
        out.append(digit(b & 0xF))
    }

    /// `%XX` sequences decoded; anything malformed is kept as written.
    static func percentDecode(_ s: Substring) -> String {
        guard s.contains("%") else { return String(s) }
        var bytes = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count, let h = value(bytes[i + 1]), let l = value(bytes[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        bytes = out
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `YYYYMMDDTHHMMSSZ` in UTC for `time` seconds since 1970.
    public static func amzDate(_ time: Double) -> String {
        let seconds = Int(time.rounded(.down))
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        let (y, m, d) = civil(days: days)
        var out: [UInt8] = []
        out.reserveCapacity(16)
        func digits(_ n: Int, _ width: Int) {
            var place = 1
            for _ in 1..<width { place *= 10 }
            while place > 0 {
                out.append(UInt8(ascii: "0") + UInt8(n / place % 10))
                place /= 10
            }
        }
        if (1000...9999).contains(y) { digits(y, 4) } else { out.append(contentsOf: String(y).utf8) }
        digits(m, 2)
        digits(d, 2)
        out.append(UInt8(ascii: "T"))
        digits(secondOfDay / 3600, 2)
        digits(secondOfDay / 60 % 60, 2)
        digits(secondOfDay % 60, 2)
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }

    /// The proleptic Gregorian date of a day count from 1970-01-01 (Howard Hinnant's algorithm).
    static func civil(days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        var out: [UInt8] = []
        for b in digest {
            out.append(lowerHexDigits[Int(b >> 4)])
            out.append(lowerHexDigits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The digest in lowercase hex, written into `out`.
    /// Written in one append of the 64 characters (a per-byte append checked capacity 64 times).
    static func appendHex<Sink: SigV4ByteSink>(_ digest: SHA256Digest, into out: inout Sink) {
        digest.withUnsafeBytes { bytes in
            let count = bytes.count * 2
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { hex in
                var i = 0
                for b in bytes {
                    hex[i] = hexDigit(b >> 4)
                    hex[i + 1] = hexDigit(b & 0xF)
                    i += 2
                }
                out.append(raw: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: hex[0..<count])))
            }
        }
    }

    /// The lowercase hex digit of a nibble (0...15), without a branch (a hash's nibbles are
    /// random, so a branch on them is unpredictable). `9 &- nibble` wraps past 127 exactly for
    /// 10...15, which then move from after `9` to `a`.
    @inline(__always)
    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        UInt8(ascii: "0") &+ nibble &+ ((9 &- nibble) >> 7) &* (UInt8(ascii: "a") - UInt8(ascii: "9") - 1)
    }

    /// SHA-256 of raw bytes (no generic `DataProtocol` walk).
    static func sha256(_ bytes: UnsafeRawBufferPointer) -> SHA256Digest {
        var h = SHA256()
        h.update(bufferPointer: bytes)
        return h.finalize()
    }

    /// Hex SHA-256 of `bytes` (the payload hash).
    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        bytes.withUnsafeBytes { appendHex(sha256($0), into: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Checks the `authorization` header of a received request (the fake provider plays AWS with
    /// it). `headers` are all the request's headers; the ones its `SignedHeaders` names are
    /// canonicalised. Returns nil when the signature holds, else why not (never the secret).
    public static func verify(
        method: String, path: String, query: String, headers: [(name: String, value: String)], body: [UInt8],
        secretFor: (String) -> String?
    ) -> String? {
        guard let auth = headers.first(where: { $0.name.lowercased() == "authorization" })?.value else {
            return "Missing Authentication Token"
        }
        guard auth.hasPrefix(algorithm + " ") else { return "Authorization header requires the \(algorithm) algorithm" }
        var fields: [String: String] = [:]
        for part in auth.dropFirst(algorithm.count + 1).split(separator: ",") {
            let p = trimAll(String(part))
            guard let eq = p.firstIndex(of: "=") else { continue }
            fields[String(p[..<eq])] = String(p[p.index(after: eq)...])
        }
        guard let credential = fields["Credential"], let signedList = fields["SignedHeaders"], let given = fields["Signature"] else {
            return "Authorization header requires Credential, SignedHeaders and Signature"
        }
        let scopeParts = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard scopeParts.count == 5, scopeParts[4] == "aws4_request" else { return "Credential is malformed" }
        guard let secret = secretFor(scopeParts[0]) else { return "The security token included in the request is invalid." }
        let names = signedList.split(separator: ";").map(String.init)
        guard names.contains("host"), names.contains("x-amz-date") else { return "SignedHeaders must include host and x-amz-date" }
        var signedHeaders: [(name: String, value: String)] = []
        for n in names {
            let values = headers.filter { $0.name.lowercased() == n }
            guard !values.isEmpty else { return "signed header \(n) is missing from the request" }
            signedHeaders.append(contentsOf: values)
        }
        for (n, _) in headers where n.lowercased() == "x-amz-security-token" && !names.contains("x-amz-security-token") {
            return "x-amz-security-token is sent but not signed"
        }
        guard let amzDate = headers.first(where: { $0.name.lowercased() == "x-amz-date" })?.value, amzDate.hasPrefix(scopeParts[1]) else {
            return "x-amz-date does not match the credential scope date"
        }
        let signer = SigV4(region: scopeParts[2], service: scopeParts[3])
        let request = Request(method: method, path: path, query: query, headers: signedHeaders, body: body)
        let expected = signer.sign(
            request, credentials: AWSCredentials(accessKeyID: scopeParts[0], secretAccessKey: SecretString(secret)), amzDate: amzDate)
        guard expected.signature == given else {
            return "The request signature we calculated does not match the signature you provided. The Canonical String for this request should have been\n'\(expected.canonicalRequest)'"
        }
        return nil
    }
}
