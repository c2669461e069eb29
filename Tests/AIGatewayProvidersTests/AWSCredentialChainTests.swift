import AIGatewayAPI
import AIGatewayProviders
import Testing

@Suite("AWS credential chain")
struct AWSCredentialChainTests {
    @Test("static keys from the environment win; a session token is optional")
    func environment() throws {
        let chain = try AWSCredentialChain.from(environment: [
            "AWS_ACCESS_KEY_ID": "AKID1", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t", "AWS_WEB_IDENTITY_TOKEN_FILE": "/f", "AWS_ROLE_ARN": "r",
        ])
        #expect(chain == .environment(AWSCredentials(accessKeyID: "AKID1", secretAccessKey: SecretString("s"), sessionToken: SecretString("t"))))
        #expect(try AWSCredentialChain.from(environment: ["AWS_ACCESS_KEY_ID": "AKID1"]) == .none)
        #expect(try AWSCredentialChain.from(environment: [:]) == .none)
    }

    @Test("web identity: token file and role, STS endpoint from the override, the region, or the global one")
    func webIdentity() throws {
        let base = ["AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token", "AWS_ROLE_ARN": "arn:aws:iam::1:role/r"]
        guard case .webIdentity(let w) = try AWSCredentialChain.from(environment: base.merging(["AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9000"]) { a, _ in a }) else {
            Issue.record("not web identity"); return
        }
        #expect(w.tokenFile == "/var/run/token" && w.roleARN == "arn:aws:iam::1:role/r" && w.sessionName == "ai-gateway")
        #expect(w.endpoint == ProviderEndpoint(tls: false, host: "127.0.0.1", port: 9000))
        guard case .webIdentity(let regional) = try AWSCredentialChain.from(environment: base.merging(["AWS_REGION": "eu-west-3", "AWS_ROLE_SESSION_NAME": "gw"]) { a, _ in a })
        else { Issue.record("not web identity"); return }
        #expect(regional.endpoint.host == "sts.eu-west-3.amazonaws.com" && regional.endpoint.tls && regional.sessionName == "gw")
        guard case .webIdentity(let global) = try AWSCredentialChain.from(environment: base) else { Issue.record("not web identity"); return }
        #expect(global.endpoint.host == "sts.amazonaws.com")
        #expect(throws: AWSCredentialChain.Invalid.self) { try AWSCredentialChain.from(environment: base.merging(["AWS_ENDPOINT_URL_STS": "sts"]) { a, _ in a }) }
    }

    @Test("the STS request is a form with the role, the session name and the token encoded")
    func request() {
        let w = AWSCredentialChain.WebIdentity(tokenFile: "/f", roleARN: "arn:aws:iam::1:role/r", sessionName: "gw", endpoint: .init(tls: true, host: "sts.amazonaws.com", port: 443))
        let body = String(decoding: STSWebIdentity.requestBody(w, token: "a.b+c/="), as: UTF8.self)
        #expect(body == "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&RoleSessionName=gw&WebIdentityToken=a.b%2Bc%2F%3D&DurationSeconds=3600")
    }

    @Test("STS's answer gives temporary keys and their expiry; an error answer gives STS's code")
    func parse() throws {
        let xml = """
            <AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
              <AssumeRoleWithWebIdentityResult>
                <Credentials>
                  <SessionToken>FwoG&amp;token</SessionToken>
                  <SecretAccessKey>wJalr/secret</SecretAccessKey>
                  <Expiration>2026-12-07T11:00:00Z</Expiration>
                  <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
                </Credentials>
              </AssumeRoleWithWebIdentityResult>
            </AssumeRoleWithWebIdentityResponse>
            """
        let (c, expiration) = try STSWebIdentity.parse(status: 200, body: Array(xml.utf8)).get()
        #expect(c == AWSCredentials(accessKeyID: "ASIAEXAMPLE", secretAccessKey: SecretString("wJalr/secret"), sessionToken: SecretString("FwoG&token")))
        #expect(SigV4.amzDate(expiration) == "20261207T110000Z")
        let error = "<ErrorResponse><Error><Code>InvalidIdentityToken</Code><Message>Token expired</Message></Error></ErrorResponse>"
        guard case .failure(let f) = STSWebIdentity.parse(status: 400, body: Array(error.utf8)) else { Issue.record("accepted"); return }
        #expect(f.description.contains("InvalidIdentityToken: Token expired"))
        #expect((try? STSWebIdentity.parse(status: 200, body: Array("<x/>".utf8)).get()) == nil)
        #expect(STSWebIdentity.iso8601("2026-12-07T11:00:00.123Z") == expiration)
        #expect(STSWebIdentity.iso8601("yesterday") == nil)
    }

    @Test("refreshed five minutes before expiry, or halfway for short-lived keys")
    func refresh() {
        #expect(STSWebIdentity.refreshTime(now: 0, expiration: 3600) == 3300)
        #expect(STSWebIdentity.refreshTime(now: 0, expiration: 120) == 60)
        #expect(STSWebIdentity.refreshTime(now: 0, expiration: 0) == 1)
    }
}
