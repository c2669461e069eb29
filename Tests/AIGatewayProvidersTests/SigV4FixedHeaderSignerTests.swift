import AIGatewayAPI
import AIGatewayProviders
import Crypto
import Testing

/// The per-request SigV4 path (`SigV4FixedHeaderSigner`, `SigV4DayKeys`) against the general one
/// (`SigV4.sign`, itself checked against AWS's published vectors in `SigV4Tests`).
@Suite("SigV4 fixed-header signer")
struct SigV4FixedHeaderSignerTests {
    static let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    /// 2015-08-30T12:36:00Z.
    static let time = 1_440_938_160.0

    /// A fixed sequence of pseudo-random numbers (the same inputs on every run).
    struct Numbers: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state ^ (state >> 29)
        }
    }

    /// `SigV4.sign`'s headers for the same request, as the fixed-header signer returns them.
    static func general(
        _ signer: SigV4, method: String, path: String, query: String, host: String, contentType: String?, body: [UInt8], credentials: AWSCredentials,
        time: Double
    ) -> (amzDate: String, token: String?, authorization: String) {
        var headers: [(name: String, value: String)] = [(name: "host", value: host)]
        if let contentType { headers.append((name: "content-type", value: contentType)) }
        let s = signer.sign(SigV4.Request(method: method, path: path, query: query, headers: headers, body: body), credentials: credentials, time: time)
        #expect(s.headers.map(\.name) == (credentials.sessionToken == nil ? ["x-amz-date", "authorization"] : ["x-amz-date", "x-amz-security-token", "authorization"]))
        return (s.headers[0].value, credentials.sessionToken == nil ? nil : s.headers[1].value, s.headers[s.headers.count - 1].value)
    }

    @Test("gives exactly SigV4.sign's headers for any method, path, query, host, content type, token, body and time")
    func differential() {
        let methods = ["POST", "GET", "post", "Put", "PATCH"]
        let paths = [
            "", "/", "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse", "/model/a%3Ab/converse-stream", "/x y/ሴ", "/a//b/", "/%2F%zz",
            "/~-_.AZaz09", "/!$&'()*+,;=:@", String(repeating: "/é%20", count: 40),
        ]
        let queries = ["", "b=2&a=1", "a=b c&a=a", "k=x+y", "x", "&&", "%41=%zz&a=", "ሴ=1"]
        let hosts = ["bedrock-runtime.us-east-1.amazonaws.com", "127.0.0.1:22001", "  h  ", "h\t \r\nx", "", "[::1]:8080", "a  b"]
        let contentTypes: [String?] = [nil, "application/json", "  application/json  ", "a \t b", "", " "]
        let tokens: [String?] = [nil, "tok", " t  o ", String(repeating: "AQoDYXdzEPT//////////wEXAMPLE+/=", count: 40)]
        let times: [Double] = [
            Self.time, Self.time + 0.999, 0, -0.5, -1, 86_399.5, 86_400, 951_782_400, 4_102_444_799.9, 253_402_300_799, -30_610_224_000,
            // Years 999 and 10000: dates of other widths, signed by the general path.
            -30_610_224_001, 253_402_300_800, -62_135_596_800,
        ]
        let bodies: [[UInt8]] = [[], Array(#"{"messages":[]}"#.utf8), (0..<5000).map { UInt8(truncatingIfNeeded: $0 * 7) }]
        let sigV4 = SigV4(region: "us-east-1", service: "bedrock")
        let fast = SigV4FixedHeaderSigner(region: "us-east-1", service: "bedrock")
        var numbers = Numbers(state: 7)
        func pick<T>(_ xs: [T]) -> T { xs[Int(numbers.next() % UInt64(xs.count))] }
        var checked = 0
        for round in 0..<3000 {
            // The first rounds walk each list in full; then random combinations.
            let method = round < methods.count ? methods[round] : pick(methods)
            let path = round < paths.count ? paths[round] : pick(paths)
            let query = round < queries.count ? queries[round] : pick(queries)
            let host = round < hosts.count ? hosts[round] : pick(hosts)
            let contentType = round < contentTypes.count ? contentTypes[round] : pick(contentTypes)
            let token = round < tokens.count ? tokens[round] : pick(tokens)
            let time = round < times.count ? times[round] : pick(times)
            let body = round < bodies.count ? bodies[round] : pick(bodies)
            let secret = round % 5 == 0 ? Self.secret + "x" : Self.secret
            let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: SecretString(secret), sessionToken: token.map(SecretString.init))
            let expected = Self.general(
                sigV4, method: method, path: path, query: query, host: host, contentType: contentType, body: body, credentials: credentials, time: time)
            // As authorize passes them: slices of the request's path.
            let wire = "/p" + path + "?" + query
            let pathSlice = wire.dropFirst(2).prefix(path.count)
            let querySlice = wire.suffix(query.count)
            #expect(pathSlice == path && querySlice == query)
            let got = fast.sign(
                method: method, path: pathSlice, query: querySlice, host: host, contentType: contentType, body: body, credentials: credentials, time: time)
            #expect(got.amzDate == expected.amzDate, "round \(round)")
            #expect(got.authorization == expected.authorization, "round \(round): \(method) \(path)?\(query) host \(host) at \(time)")
            checked += 1
        }
        #expect(checked == 3000)
    }

    @Test("what it signs verifies as AWS checks it, and fails for a changed body or another secret")
    func verifies() {
        let fast = SigV4FixedHeaderSigner(region: "eu-west-3", service: "bedrock")
        let path = "/model/anthropic.claude-v2%3A1/converse"
        let body = Array(#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#.utf8)
        for token in [nil, "tok"] {
            let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: SecretString(Self.secret), sessionToken: token.map(SecretString.init))
            let h = fast.sign(
                method: "POST", path: Substring(path), query: "", host: "bedrock-runtime.eu-west-3.amazonaws.com", contentType: "application/json", body: body,
                credentials: credentials, time: Self.time)
            var sent: [(name: String, value: String)] = [
                (name: "host", value: "bedrock-runtime.eu-west-3.amazonaws.com"), (name: "content-type", value: "application/json"),
                (name: "x-amz-date", value: h.amzDate),
            ]
            if let token { sent.append((name: "x-amz-security-token", value: token)) }
            sent.append((name: "authorization", value: h.authorization))
            #expect(SigV4.verify(method: "POST", path: path, query: "", headers: sent, body: body) { $0 == "AKIDEXAMPLE" ? Self.secret : nil } == nil)
            #expect(SigV4.verify(method: "POST", path: path, query: "", headers: sent, body: Array("{}".utf8)) { _ in Self.secret } != nil)
            #expect(SigV4.verify(method: "POST", path: path, query: "", headers: sent, body: body) { _ in Self.secret + "x" } != nil)
        }
    }

    @Test("Bedrock's authorize signs the path's query, replaces stale signature headers as setHeader did, and its adapters stay comparable")
    func adapter() throws {
        let adapter = BedrockAdapter(region: "eu-west-3", guardrail: nil)
        let target = UpstreamTarget(
            provider: "bedrock", adapter: adapter, tls: false, host: "127.0.0.1", port: 22001, path: "/model/m/converse", authHeaderName: "Authorization",
            authPrefix: "", staticHeaders: [], model: "m", displayModel: "m")
        let body = Array(#"{"messages":[]}"#.utf8)
        for (path, query, token) in [
            ("/model/m/converse", "", "tok"), ("/model/m/converse", "a=1&b=x%20y", nil), ("/model/%E1%88%B4/converse", "k=%E1%88%B4&j", "tok"), ("/p", "", nil),
        ] {
            let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: SecretString(Self.secret), sessionToken: token.map(SecretString.init))
            var request = UpstreamRequest(
                path: path + "?" + query,
                headers: [
                    .init(name: "Content-Type", value: "application/json"), .init(name: "X-Amz-Date", value: "stale"), .init(name: "accept", value: "*/*"),
                    .init(name: "authorization", value: "stale"), .init(name: "x-amz-security-token", value: "static"),
                ], body: .bytes(body))
            try adapter.authorize(&request, credential: .aws(credentials), target: target, now: Self.time).get()
            // What setHeader for each left: the stale ones gone, the new ones last; a token header
            // stays when the credentials bring none.
            let names = request.headers.map(\.name)
            if token != nil {
                #expect(names == ["Content-Type", "accept", "x-amz-date", "x-amz-security-token", "authorization"])
            } else {
                #expect(names == ["Content-Type", "accept", "x-amz-security-token", "x-amz-date", "authorization"])
            }
            #expect(!request.headers.contains { $0.value == "stale" })
            var sent: [(name: String, value: String)] = [(name: "host", value: target.hostHeader)]
            // (The static token header, unsigned without a session token, would fail the check as it should.)
            sent += request.headers.filter { $0.value != "static" }.map { (name: $0.name, value: $0.value) }
            let problem = SigV4.verify(method: "POST", path: path, query: query, headers: sent, body: body) { _ in Self.secret }
            #expect(problem == nil, "\(path)?\(query)")
        }
        #expect(BedrockAdapter(region: "eu-west-3", guardrail: nil) == adapter)
        #expect(BedrockAdapter(region: "eu-west-3", guardrail: nil).hashValue == adapter.hashValue)
        #expect(BedrockAdapter(region: "us-east-1", guardrail: nil) != adapter)
    }

    static func bytes(_ k: SymmetricKey) -> [UInt8] { k.withUnsafeBytes { Array($0) } }

    @Test("a day's key is derived once per day and secret, is the chain's, and follows a rotated secret without a restart")
    func dayKeys() throws {
        let keys = SigV4DayKeys(region: "us-east-1", service: "service", capacity: 3)
        let day = 16_677  // 2015-08-30
        let a = SecretString(Self.secret)
        let first = try #require(keys.key(day: day, secret: a))
        #expect(first.date == "20150830")
        #expect(String(decoding: first.scope, as: UTF8.self) == "20150830/us-east-1/service/aws4_request")
        #expect(Self.bytes(first.signingKey) == Self.bytes(SigV4.signingKey(secret: Self.secret, date: "20150830", region: "us-east-1", service: "service")))
        // The same day and secret (even as another string of the same text): the same key, not derived again.
        #expect(keys.key(day: day, secret: a) === first)
        #expect(keys.key(day: day, secret: SecretString(String(Self.secret.reversed().reversed()))) === first)
        #expect(keys.count == 1)
        // The next day, and a rotated secret: new keys, each the chain's.
        let next = try #require(keys.key(day: day + 1, secret: a))
        #expect(next !== first && next.date == "20150831")
        #expect(Self.bytes(next.signingKey) == Self.bytes(SigV4.signingKey(secret: Self.secret, date: "20150831", region: "us-east-1", service: "service")))
        let b = SecretString("rotated-secret")
        let rotated = try #require(keys.key(day: day, secret: b))
        #expect(rotated !== first)
        #expect(Self.bytes(rotated.signingKey) == Self.bytes(SigV4.signingKey(secret: "rotated-secret", date: "20150830", region: "us-east-1", service: "service")))
        // Secrets equal as Unicode but not as bytes are two secrets.
        let composed = try #require(keys.key(day: day, secret: SecretString("s\u{E9}cret")))
        let decomposed = try #require(keys.key(day: day, secret: SecretString("se\u{301}cret")))
        #expect("s\u{E9}cret" == "se\u{301}cret" && composed !== decomposed)
        #expect(Self.bytes(decomposed.signingKey) == Self.bytes(SigV4.signingKey(secret: "se\u{301}cret", date: "20150830", region: "us-east-1", service: "service")))
        #expect(Self.bytes(composed.signingKey) != Self.bytes(decomposed.signingKey))
        // A secret of the same length that differs in any one byte is another secret.
        let wide = SigV4DayKeys(region: "us-east-1", service: "service", capacity: 1)
        for i in 0..<Self.secret.utf8.count {
            var changed = Array(Self.secret.utf8)
            changed[i] ^= 1
            let original = try #require(wide.key(day: day, secret: a))
            let other = try #require(wide.key(day: day, secret: SecretString(String(decoding: changed, as: UTF8.self))))
            #expect(other !== original && Self.bytes(other.signingKey) != Self.bytes(original.signingKey), "byte \(i)")
        }
        // Back to the first secret (a rotation undone): still the first's key.
        #expect(Self.bytes(try #require(keys.key(day: day, secret: a)).signingKey) == Self.bytes(first.signingKey))
        // Bounded: the oldest goes, and comes back derived again, equal.
        _ = keys.key(day: day + 2, secret: b)
        _ = keys.key(day: day + 3, secret: b)
        #expect(keys.count == 3)
        let again = try #require(keys.key(day: day, secret: a))
        #expect(again !== first && Self.bytes(again.signingKey) == Self.bytes(first.signingKey))
        #expect(keys.count == 3)
        // Years of other than four digits are left to the general path.
        #expect(keys.key(day: -354_286, secret: a) == nil)  // 0999-12-31
        #expect(keys.key(day: -354_285, secret: a)?.date == "10000101")
        #expect(keys.key(day: 2_932_896, secret: a)?.date == "99991231")
        #expect(keys.key(day: 2_932_897, secret: a) == nil)  // 10000-01-01
    }

    @Test("a stamp's x-amz-date is SigV4.amzDate's for every second, in any order, and its key the day's")
    func stamps() throws {
        let keys = SigV4DayKeys(region: "us-east-1", service: "service")
        let a = SecretString(Self.secret)
        var numbers = Numbers(state: 11)
        var seconds = [0, -1, 86_399, 86_400, 951_782_399, 951_782_400, 1_440_938_160, 1_440_938_160, 1_440_938_161, 1_440_938_160, 4_102_444_799]
        seconds += [-30_610_224_000, 253_402_300_799]
        // Random seconds from year 1000 to 9999.
        seconds += (0..<500).map { _ in Int(numbers.next() % 284_012_524_799) - 30_610_224_000 }
        for s in seconds {
            let day = s >= 0 ? s / 86400 : (s - 86399) / 86400
            let (key, amzDate) = try #require(keys.stamp(seconds: s, secret: a), "\(s)")
            #expect(amzDate == SigV4.amzDate(Double(s)), "\(s)")
            #expect(key.day == day && key === keys.key(day: day, secret: a))
        }
        #expect(keys.stamp(seconds: 253_402_300_800, secret: a) == nil)
    }

    @Test("no secret in descriptions or dumps of the cache, its keys, the signer or the HMAC key")
    func redacted() throws {
        let keys = SigV4DayKeys(region: "us-east-1", service: "service")
        let key = try #require(keys.key(day: 16_677, secret: SecretString(Self.secret)))
        let signer = SigV4FixedHeaderSigner(region: "us-east-1", service: "service")
        _ = signer.sign(
            method: "POST", path: "/", query: "", host: "h", contentType: nil, body: [], credentials: AWSCredentials(
                accessKeyID: "AKID", secretAccessKey: SecretString(Self.secret)), time: Self.time)
        let hmac = HMACSHA256Key(key: Array(Self.secret.utf8))
        for text in [
            "\(keys)", "\(key)", "\(signer)", "\(hmac)", String(reflecting: keys), String(reflecting: key), String(reflecting: signer), String(reflecting: hmac),
        ] {
            #expect(!text.contains("EXAMPLEKEY"), "\(text)")
        }
        for value in [keys, key, signer, hmac, BedrockAdapter(region: "us-east-1", guardrail: nil)] as [Any] {
            var dumped = ""
            dump(value, to: &dumped)
            #expect(!dumped.contains("EXAMPLEKEY") && !dumped.contains("DigestContext") && !dumped.contains("Digest"), "\(dumped)")
        }
        #expect(Mirror(reflecting: key).children.isEmpty && Mirror(reflecting: hmac).children.isEmpty)
    }

    /// What `canonicalURI` wrote a byte at a time before its runs were copied whole.
    static func referenceURI(_ path: String) -> String {
        if path.isEmpty { return "/" }
        var out = ""
        for b in path.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"), UInt8(ascii: "/"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out += "%" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true)
            }
        }
        return out
    }

    /// What `canonicalHeaders` wrote for a value a byte at a time before a clean value was copied whole.
    static func referenceTrim(_ value: String) -> String {
        var out: [UInt8] = []
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
        return String(decoding: out, as: UTF8.self)
    }

    @Test("the canonical URI and trimmed header values equal the byte-at-a-time forms for random inputs")
    func helpers() {
        // Every ASCII byte alone, and characters of two, three and four bytes.
        for s in (0..<128).map({ String(UnicodeScalar(UInt8($0))) }) + ["é", "ሴ", "😀"] {
            #expect(SigV4.canonicalURI(s) == Self.referenceURI(s), "\(s.debugDescription)")
            #expect(SigV4.uriEncode(s) == (s == "/" ? "%2F" : Self.referenceURI(s)), "\(s.debugDescription)")
            #expect(SigV4.canonicalHeaders([(name: "x", value: s)]).block == "x:\(Self.referenceTrim(s))\n")
        }
        var numbers = Numbers(state: 3)
        let pieces = [" ", "  ", "\t", "\n", "\r", "a", "Z", "0", "/", "%", "%3A", "é", "ሴ", "~", "-", "_", ".", ":", "+", "=", "?", "😀"]
        for length in 0..<14 {
            for _ in 0..<300 {
                let s = (0..<length).map { _ in pieces[Int(numbers.next() % UInt64(pieces.count))] }.joined()
                #expect(SigV4.canonicalURI(s) == Self.referenceURI(s), "\(s.debugDescription)")
                #expect(SigV4.canonicalHeaders([(name: "x", value: s)]).block == "x:\(Self.referenceTrim(s))\n", "\(s.debugDescription)")
            }
        }
    }
}
