import AIGatewayAPI

/// Where the gateway's own AWS credentials come from when a Bedrock entry names no Secret, in the
/// order AWS's SDKs use: static keys from the environment, else a web identity (EKS IRSA: a token
/// file and a role, exchanged at STS for temporary keys and exchanged again before they expire).
public enum AWSCredentialChain: Sendable, Hashable {
    case environment(AWSCredentials)
    case webIdentity(WebIdentity)
    /// Nothing configured: entries without a Secret are unusable, saying so.
    case none

    /// `AssumeRoleWithWebIdentity` settings.
    public struct WebIdentity: Sendable, Hashable {
        /// `AWS_WEB_IDENTITY_TOKEN_FILE`: read again at every exchange (the kubelet rotates it).
        public var tokenFile: String
        /// `AWS_ROLE_ARN`.
        public var roleARN: String
        /// `AWS_ROLE_SESSION_NAME`, else `ai-gateway`.
        public var sessionName: String
        /// `AWS_ENDPOINT_URL_STS`, else the regional STS of `AWS_REGION` / `AWS_DEFAULT_REGION`,
        /// else the global `sts.amazonaws.com`.
        public var endpoint: ProviderEndpoint

        public init(tokenFile: String, roleARN: String, sessionName: String, endpoint: ProviderEndpoint) {
            self.tokenFile = tokenFile
            self.roleARN = roleARN
            self.sessionName = sessionName
            self.endpoint = endpoint
        }
    }

    /// Problems with the environment (an STS endpoint that is not a URL), named, never a value.
    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Reads the standard variables.
    public static func from(environment env: [String: String]) throws(Invalid) -> AWSCredentialChain {
        func value(_ k: String) -> String? {
            guard let v = env[k]?.trimmingSpaces, !v.isEmpty else { return nil }
            return v
        }
        if let id = value("AWS_ACCESS_KEY_ID"), let secret = value("AWS_SECRET_ACCESS_KEY") {
            return .environment(AWSCredentials(
                accessKeyID: id, secretAccessKey: SecretString(secret), sessionToken: value("AWS_SESSION_TOKEN").map(SecretString.init)))
        }
        if let file = value("AWS_WEB_IDENTITY_TOKEN_FILE"), let role = value("AWS_ROLE_ARN") {
            let endpoint: ProviderEndpoint
            if let url = value("AWS_ENDPOINT_URL_STS") ?? value("AWS_ENDPOINT_URL") {
                guard let e = ProviderEndpoint(url: url) else {
                    throw Invalid(description: "AWS_ENDPOINT_URL_STS must be http://host:port or https://host[:port]")
                }
                endpoint = e
            } else if let region = value("AWS_REGION") ?? value("AWS_DEFAULT_REGION") {
                endpoint = ProviderEndpoint(tls: true, host: "sts.\(region).amazonaws.com", port: 443)
            } else {
                endpoint = ProviderEndpoint(tls: true, host: "sts.amazonaws.com", port: 443)
            }
            return .webIdentity(WebIdentity(tokenFile: file, roleARN: role, sessionName: value("AWS_ROLE_SESSION_NAME") ?? "ai-gateway", endpoint: endpoint))
        }
        return .none
    }
}

/// STS `AssumeRoleWithWebIdentity`: the request (unsigned: the token is the proof) and the
/// answer's temporary credentials.
public enum STSWebIdentity {
    /// The form body of the `POST /` request.
    public static func requestBody(_ w: AWSCredentialChain.WebIdentity, token: String, durationSeconds: Int = 3600) -> [UInt8] {
        let fields = [
            ("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", w.roleARN), ("RoleSessionName", w.sessionName),
            ("WebIdentityToken", token), ("DurationSeconds", String(durationSeconds)),
        ]
        return Array(fields.map { "\($0.0)=\(SigV4.uriEncode($0.1))" }.joined(separator: "&").utf8)
    }

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Temporary credentials and when they expire (seconds since 1970), from STS's XML answer.
    /// An error answer gives its `Code` and `Message` (STS's own words, never the token).
    public static func parse(status: Int, body: [UInt8]) -> Result<(credentials: AWSCredentials, expiration: Double), Failure> {
        let xml = String(decoding: body, as: UTF8.self)
        func element(_ name: String) -> String? {
            guard let open = xml.firstRange(of: "<\(name)>"), let close = xml[open.upperBound...].firstRange(of: "</\(name)>") else { return nil }
            return String(xml[open.upperBound..<close.lowerBound]).trimmingSpaces
        }
        guard status == 200 else {
            let code = element("Code") ?? "HTTP \(status)"
            return .failure(Failure(description: "STS AssumeRoleWithWebIdentity failed: \(code): \(element("Message") ?? "")"))
        }
        guard let id = element("AccessKeyId"), let secret = element("SecretAccessKey"), let token = element("SessionToken"),
            let expiration = element("Expiration").flatMap(iso8601)
        else {
            return .failure(Failure(description: "STS AssumeRoleWithWebIdentity answered without complete credentials"))
        }
        return .success((AWSCredentials(accessKeyID: id, secretAccessKey: SecretString(unescape(secret)), sessionToken: SecretString(unescape(token))), expiration))
    }

    /// When to exchange again: five minutes before expiry, or halfway for short-lived keys.
    public static func refreshTime(now: Double, expiration: Double) -> Double {
        let lifetime = expiration - now
        return lifetime > 600 ? expiration - 300 : now + max(1, lifetime / 2)
    }

    static func unescape(_ s: String) -> String {
        guard s.contains("&") else { return s }
        return s.replacingAll("&lt;", "<").replacingAll("&gt;", ">").replacingAll("&quot;", "\"").replacingAll("&apos;", "'").replacingAll("&amp;", "&")
    }

    /// `2026-12-07T10:00:00Z` (fractional seconds allowed) as seconds since 1970.
    public static func iso8601(_ s: String) -> Double? {
        let u = Array(s.utf8)
        guard u.count >= 20, u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-"), u[10] == UInt8(ascii: "T"), u.last == UInt8(ascii: "Z") else { return nil }
        func num(_ r: Range<Int>) -> Int? { Int(String(decoding: u[r], as: UTF8.self)) }
        guard let y = num(0..<4), let mo = num(5..<7), let d = num(8..<10), let h = num(11..<13), let mi = num(14..<16), let sec = num(17..<19),
            (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, sec < 61
        else { return nil }
        // Days from civil (Howard Hinnant's algorithm), the inverse of SigV4.civil.
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Double(days * 86400 + h * 3600 + mi * 60 + sec)
    }
}

extension String {
    func replacingAll(_ target: String, _ replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}
