import Foundation
import NIOCore
import NIOHTTP1

/// AWS STS `AssumeRoleWithWebIdentity` (`POST /`, a form body), enough for the gateway's web
/// identity credentials: any non-empty token and role are exchanged for the fake's own AWS keys
/// (access key `awsAccessKeyID`, secret the required key) with a session token the Bedrock API
/// then insists on being signed, valid for an hour.
enum FakeSTS {
    static let sessionTokenPrefix = "FAKESTS"

    static func answer(method: HTTPMethod, path: String, body: ByteBuffer?, provider: FakeProvider) -> (status: Int, body: String)? {
        guard method == .POST, path == "/", let body else { return nil }
        var form: [String: String] = [:]
        for pair in String(buffer: body).split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0) }
            if kv.count == 2 { form[kv[0]] = kv[1] }
        }
        guard form["Action"] == "AssumeRoleWithWebIdentity" else { return nil }
        func error(_ code: String, _ message: String) -> (Int, String) {
            (400, "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>\(code)</Code><Message>\(message)</Message></Error><RequestId>fake</RequestId></ErrorResponse>")
        }
        guard let token = form["WebIdentityToken"], !token.isEmpty else { return error("ValidationError", "WebIdentityToken is required") }
        guard token != "expired" else { return error("ExpiredTokenException", "Token expired") }
        guard let role = form["RoleArn"], role.hasPrefix("arn:") else { return error("ValidationError", "RoleArn is invalid") }
        let expiration = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600))
        let xml = """
            <AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
              <AssumeRoleWithWebIdentityResult>
                <Credentials>
                  <AccessKeyId>\(provider.configuration.awsAccessKeyID)</AccessKeyId>
                  <SecretAccessKey>\(provider.configuration.requiredKey ?? "fake-secret")</SecretAccessKey>
                  <SessionToken>\(sessionTokenPrefix)-\(provider.nextResponseID())</SessionToken>
                  <Expiration>\(expiration)</Expiration>
                </Credentials>
                <AssumedRoleUser><Arn>\(role)/\(form["RoleSessionName"] ?? "session")</Arn></AssumedRoleUser>
              </AssumeRoleWithWebIdentityResult>
            </AssumeRoleWithWebIdentityResponse>
            """
        return (200, xml)
    }
}
