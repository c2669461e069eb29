import AIGatewayAPI
import AIGatewayProviders
import Crypto
import Testing

/// AWS's published Signature Version 4 test suite (aws-sig-v4-test-suite): credentials
/// AKIDEXAMPLE, 2015-08-30T12:36:00Z, us-east-1, service `service`. The expected values are
/// AWS's, not computed here.
@Suite("SigV4")
struct SigV4Tests {
    static let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: SecretString("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"))
    static let signer = SigV4(region: "us-east-1", service: "service")
    /// 2015-08-30T12:36:00Z.
    static let time = 1_440_938_160.0
    static let host = (name: "Host", value: "example.amazonaws.com")
    static let scope = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"

    static func sign(_ method: String, _ path: String, query: String = "", headers: [(name: String, value: String)] = [], body: String = "", credentials: AWSCredentials = credentials) -> SigV4.Signature {
        signer.sign(
            SigV4.Request(method: method, path: path, query: query, headers: [host] + headers, body: Array(body.utf8)),
            credentials: credentials, time: time)
    }

    @Test("a signing key is derived once per date, region, service and secret, and is the chain's")
    func cachedKey() {
        func bytes(_ k: SymmetricKey) -> [UInt8] { k.withUnsafeBytes { Array($0) } }
        let secret = Self.credentials.secretAccessKey.value
        let derived = SigV4.signingKey(secret: secret, date: "20150830", region: "us-east-1", service: "service")
        #expect(bytes(SigV4.cachedSigningKey(secret: secret, date: "20150830", region: "us-east-1", service: "service")) == bytes(derived))
        #expect(bytes(SigV4.cachedSigningKey(secret: secret, date: "20150830", region: "us-east-1", service: "service")) == bytes(derived))
        for (date, region, service, other) in [("20150831", "us-east-1", "service", secret), ("20150830", "eu-west-1", "service", secret),
                                               ("20150830", "us-east-1", "bedrock", secret), ("20150830", "us-east-1", "service", secret + "x")] {
            let key = SigV4.cachedSigningKey(secret: other, date: date, region: region, service: service)
            #expect(bytes(key) != bytes(derived))
            #expect(bytes(key) == bytes(SigV4.signingKey(secret: other, date: date, region: region, service: service)))
        }
        // Secrets equal as Unicode but not as bytes are two secrets: each gets its own chain's key.
        for secret in ["s\u{E9}cret", "se\u{301}cret"] {
            let key = SigV4.cachedSigningKey(secret: secret, date: "20150830", region: "us-east-1", service: "service")
            #expect(bytes(key) == bytes(SigV4.signingKey(secret: secret, date: "20150830", region: "us-east-1", service: "service")))
        }
    }

    @Test("the precomputed HMAC-SHA256 key equals HMAC<SHA256> for random keys (short, block-sized, long) and messages")
    func precomputedHMAC() {
        var rng = SystemRandomNumberGenerator()
        for keyLength in [0, 1, 20, 32, 63, 64, 65, 100, 200] {
            for messageLength in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 300, 1000] {
                let key = (0..<keyLength).map { _ in UInt8.random(in: 0...255, using: &rng) }
                let message = (0..<messageLength).map { _ in UInt8.random(in: 0...255, using: &rng) }
                let expected = Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
                let fast = HMACSHA256Key(key: key)
                #expect(Array(fast.authenticationCode(for: message)) == expected, "key \(keyLength) bytes, message \(messageLength) bytes")
                // The state is reused, not consumed: a second code is the same.
                #expect(Array(fast.authenticationCode(for: message)) == expected)
                #expect(Array(HMACSHA256Key(key: SymmetricKey(data: key)).authenticationCode(for: message)) == expected)
            }
        }
        // RFC 4231 test case 2.
        let code = HMACSHA256Key(key: Array("Jefe".utf8)).authenticationCode(for: Array("what do ya want for nothing?".utf8))
        #expect(code.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test("signatureHeaders (the per-request path) gives exactly sign's headers")
    func headersOnly() {
        var creds = Self.credentials
        for token in [nil, "tok"] {
            creds.sessionToken = token.map(SecretString.init)
            for (method, path, query, body) in [("GET", "/", "", ""), ("POST", "/model/a%3Ab/converse", "", #"{"messages":[]}"#), ("GET", "/x y", "b=2&a=1", "")] {
                let headers = [Self.host, (name: "Content-Type", value: " application/json ")]
                let full = Self.signer.sign(
                    SigV4.Request(method: method, path: path, query: query, headers: headers, body: Array(body.utf8)), credentials: creds, time: Self.time)
                let fast = Self.signer.signatureHeaders(
                    method: method, path: Substring(path), query: Substring(query), headers: headers, body: Array(body.utf8), credentials: creds,
                    time: Self.time)
                #expect(fast == full.headers)
            }
        }
    }

    @Test("the clock formats as x-amz-date")
    func date() {
        #expect(SigV4.amzDate(Self.time) == "20150830T123600Z")
        #expect(SigV4.amzDate(0) == "19700101T000000Z")
        #expect(SigV4.amzDate(951_782_400) == "20000229T000000Z")
        #expect(SigV4.amzDate(4_102_444_799.9) == "20991231T235959Z")
    }

    @Test("get-vanilla: canonical request, string to sign and Authorization exactly as published")
    func getVanilla() {
        let s = Self.sign("GET", "/")
        #expect(s.canonicalRequest == """
            GET
            /

            host:example.amazonaws.com
            x-amz-date:20150830T123600Z

            host;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(s.stringToSign == """
            AWS4-HMAC-SHA256
            20150830T123600Z
            20150830/us-east-1/service/aws4_request
            bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63
            """)
        #expect(s.headers.map(\.name) == ["x-amz-date", "authorization"])
        #expect(s.headers.last?.value == "AWS4-HMAC-SHA256 Credential=\(Self.scope), SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    }

    @Test("get-vanilla-query-order-key-case: parameters sorted by name, case-sensitively")
    func queryOrder() {
        let s = Self.sign("GET", "/", query: "Param2=value2&Param1=value1")
        #expect(s.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[2] == "Param1=value1&Param2=value2")
        #expect(s.signature == "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
    }

    @Test("get-utf8 and get-space: the path encoded one more time, %20 for a space")
    func pathEncoding() {
        let utf8 = Self.sign("GET", "/ሴ")
        #expect(utf8.canonicalRequest.split(separator: "\n")[1] == "/%E1%88%B4")
        #expect(utf8.signature == "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85")
        let space = Self.sign("GET", "/example space/")
        #expect(space.canonicalRequest.split(separator: "\n")[1] == "/example%20space/")
        #expect(space.signature == "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741")
        #expect(SigV4.canonicalQuery("a=b c&a=a") == "a=a&a=b%20c")
        #expect(SigV4.canonicalQuery("k=x+y") == "k=x%2By")
    }

    @Test("post-vanilla and post-x-www-form-urlencoded: the body's hash and content-type are signed")
    func post() {
        #expect(Self.sign("POST", "/").signature == "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
        let s = Self.sign("POST", "/", headers: [(name: "Content-Type", value: "application/x-www-form-urlencoded")], body: "Param1=value1")
        #expect(s.canonicalRequest.hasSuffix("\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"))
        #expect(s.stringToSign.hasSuffix("\n42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281"))
        #expect(s.headers.last?.value == "AWS4-HMAC-SHA256 Credential=\(Self.scope), SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a")
    }

    @Test("post-sts-header-before: a session token is sent and signed")
    func sessionToken() {
        let token = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
        var creds = Self.credentials
        creds.sessionToken = SecretString(token)
        let s = Self.sign("POST", "/", credentials: creds)
        #expect(s.stringToSign.hasSuffix("\nc237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6"))
        #expect(s.signedHeaders == "host;x-amz-date;x-amz-security-token")
        #expect(s.signature == "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead")
        #expect(s.headers.map(\.name) == ["x-amz-date", "x-amz-security-token", "authorization"])
        #expect(s.headers[1].value == token)
        #expect(!"\(creds)".contains(token) && !"\(creds)".contains("EXAMPLEKEY"))
    }

    @Test("header values are trimmed and inner spaces collapsed; names sorted and lowercased")
    func headerCanonicalForm() {
        let (block, signed) = SigV4.canonicalHeaders([
            (name: "My-Header1", value: "  value1  "), (name: "my-header2", value: "\"a   b   c\""), (name: "Host", value: "h"),
            (name: "my-header1", value: "value2"),
        ])
        #expect(block == "host:h\nmy-header1:value1,value2\nmy-header2:\"a b c\"\n")
        #expect(signed == "host;my-header1;my-header2")
        // Tabs and line breaks count as spaces; an all-blank value is empty; repeated names keep their order.
        let (block2, signed2) = SigV4.canonicalHeaders([
            (name: "X-B", value: "\t1\t \r\n2 "), (name: "x-a", value: "   "), (name: "x-b", value: "0"), (name: "X-A", value: "z"),
        ])
        #expect(block2 == "x-a:,z\nx-b:1 2,0\n")
        #expect(signed2 == "x-a;x-b")
    }

    @Test("a Bedrock model id with ':' goes %3A on the wire and %253A in the canonical URI")
    func bedrockColon() {
        let wire = "/model/\(SigV4.uriEncode("us.anthropic.claude-3-5-sonnet-20241022-v2:0"))/converse"
        #expect(wire == "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse")
        #expect(SigV4.canonicalURI(wire) == "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%253A0/converse")
        let signer = SigV4(region: "us-west-2", service: "bedrock")
        let request = SigV4.Request(
            method: "POST", path: wire,
            headers: [(name: "host", value: "bedrock-runtime.us-west-2.amazonaws.com"), (name: "content-type", value: "application/json")],
            body: Array(#"{"messages":[]}"#.utf8))
        let s = signer.sign(request, credentials: Self.credentials, time: Self.time)
        #expect(s.canonicalRequest.split(separator: "\n")[1] == "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%253A0/converse")
        #expect(s.stringToSign.contains("20150830/us-west-2/bedrock/aws4_request"))
        // What arrives verifies against the wire path, and fails for a wrong secret or a changed body.
        let sent = request.headers + s.headers.map { (name: $0.name, value: $0.value) }
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        #expect(SigV4.verify(method: "POST", path: wire, query: "", headers: sent, body: request.body) { $0 == "AKIDEXAMPLE" ? secret : nil } == nil)
        #expect(SigV4.verify(method: "POST", path: wire, query: "", headers: sent, body: request.body) { _ in "wrong" }?.contains("does not match") == true)
        #expect(SigV4.verify(method: "POST", path: wire, query: "", headers: sent, body: Array("{}".utf8)) { _ in secret } != nil)
        #expect(SigV4.verify(method: "POST", path: wire, query: "", headers: sent, body: request.body) { _ in nil } != nil)
        // Signing the path encoded once too few times (the classic bug) fails verification.
        let raw = SigV4.Request(method: "POST", path: "/model/us.anthropic.claude-3-5-sonnet-20241022-v2:0/converse", headers: request.headers, body: request.body)
        let bad = signer.sign(raw, credentials: Self.credentials, time: Self.time)
        let badSent = request.headers + bad.headers.map { (name: $0.name, value: $0.value) }
        #expect(SigV4.verify(method: "POST", path: wire, query: "", headers: badSent, body: request.body) { _ in secret } != nil)
    }
}
