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
        let (canonical, signed) = Self.canonicalRequest(request)
        let date = String(amzDate.prefix(8))
        let scope = "\(date)/\(region)/\(service)/aws4_request"
        let stringToSign = "\(Self.algorithm)\n\(amzDate)\n\(scope)\n\(Self.hex(SHA256.hash(data: Array(canonical.utf8))))"
        let key = Self.cachedSigningKey(secret: credentials.secretAccessKey.value, date: date, region: region, service: service)
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        var headers: [UpstreamTarget.HeaderField] = [.init(name: "x-amz-date", value: amzDate)]
        if let token = credentials.sessionToken {
            headers.append(.init(name: "x-amz-security-token", value: token.value))
        }
        headers.append(.init(
            name: "authorization",
            value: "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signed), Signature=\(signature)"))
        return Signature(headers: headers, canonicalRequest: canonical, stringToSign: stringToSign, signedHeaders: signed, signature: signature)
    }

    /// Signing keys already derived, by date, region, service and secret: the derivation is four
    /// HMACs and the same for every request of a day (it was a sixth of the gateway's CPU on a
    /// Bedrock route). Bounded: emptied when it holds 16 keys (rotated secrets, new days).
    private static let derivedKeys = Mutex<[String: SymmetricKey]>([:])

    /// `signingKey`, derived once per date, region, service and secret.
    public static func cachedSigningKey(secret: String, date: String, region: String, service: String) -> SymmetricKey {
        let id = "\(date)\n\(region)\n\(service)\n\(secret)"
        if let key = derivedKeys.withLock({ $0[id] }) { return key }
        let key = signingKey(secret: secret, date: date, region: region, service: service)
        derivedKeys.withLock { keys in
            if keys.count >= 16 { keys.removeAll() }
            keys[id] = key
        }
        return key
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
        let (headers, signed) = canonicalHeaders(r.headers)
        let payload = hex(SHA256.hash(data: r.body))
        let text = "\(r.method.uppercased())\n\(canonicalURI(r.path))\n\(canonicalQuery(r.query))\n\(headers)\n\(signed)\n\(payload)"
        return (text, signed)
    }

    /// Each segment of the wire path URI-encoded once more (so `%3A` becomes `%253A`).
    public static func canonicalURI(_ path: String) -> String {
        if path.isEmpty { return "/" }
        return path.split(separator: "/", omittingEmptySubsequences: false).map { uriEncode(Substring($0)) }.joined(separator: "/")
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
        var merged: [String: [String]] = [:]
        for (name, value) in headers {
            merged[name.lowercased(), default: []].append(trimAll(value))
        }
        let names = merged.keys.sorted()
        var block = ""
        for n in names {
            block += "\(n):\(merged[n]!.joined(separator: ","))\n"
        }
        return (block, names.joined(separator: ";"))
    }

    /// Leading and trailing whitespace removed, runs of spaces and tabs inside made one space.
    static func trimAll(_ value: String) -> String {
        var out = ""
        var pendingSpace = false
        for scalar in value.unicodeScalars {
            if scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r" {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out += " " }
                pendingSpace = false
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// RFC 3986 encoding as AWS defines it: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX` (uppercase).
    public static func uriEncode<S: StringProtocol>(_ s: S) -> String {
        let hexDigits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(b)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(b >> 4)])
                out.append(hexDigits[Int(b & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
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
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(y)\(two(m))\(two(d))T\(two(secondOfDay / 3600))\(two(secondOfDay / 60 % 60))\(two(secondOfDay % 60))Z"
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
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in digest {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Hex SHA-256 of `bytes` (the payload hash).
    public static func sha256Hex(_ bytes: [UInt8]) -> String { hex(SHA256.hash(data: bytes)) }

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
