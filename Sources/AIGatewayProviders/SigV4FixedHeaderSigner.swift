import AIGatewayAPI
import Crypto

/// SigV4 for the one request shape the Bedrock adapter sends: the signed headers are exactly
/// `content-type` (when there is one), `host`, `x-amz-date` and, with a session token,
/// `x-amz-security-token`. The headers are exactly `SigV4.sign`'s for such a request (a
/// differential test compares the two), for less work per request: the names are known, already
/// lowercase and in sorted order (no lowercasing, sort or name arrays); the day's key, the
/// credential scope and the second's `x-amz-date` come from `SigV4DayKeys` (`Int`s and a secret
/// compared, no date string); the canonical request, the string to sign and the `Authorization`
/// value are written one after the other into one buffer sized beforehand (on the stack when
/// small, as it is without a session token), with no interim arrays or strings.
///
/// Per request what is left is mostly swift-crypto's: four SHA-256 contexts (payload, canonical
/// request, HMAC inner and outer), each a class instance allocated, zeroed and freed.
public struct SigV4FixedHeaderSigner: Sendable, Hashable {
    public let sigV4: SigV4
    private let keys: SigV4DayKeys

    public init(region: String, service: String) {
        sigV4 = SigV4(region: region, service: service)
        keys = SigV4DayKeys(region: region, service: service)
    }

    /// What `SigV4.sign` adds, but the token (which is the credentials' `sessionToken` when there
    /// is one): send `x-amz-date`, then `x-amz-security-token`, then `authorization`.
    public struct Headers: Sendable, Hashable {
        public var amzDate: String
        public var authorization: String
    }

    /// Signs a request whose signed headers are `host` and `content-type` (nil: not sent) plus the
    /// date and token this adds, at `time` (seconds since 1970).
    public func sign(
        method: String, path: Substring, query: Substring, host: String, contentType: String?, body: [UInt8], credentials: AWSCredentials,
        time: Double
    ) -> Headers {
        let seconds = Int(time.rounded(.down))
        // A method other than ASCII could grow when uppercased, past the buffer's bound.
        guard Self.isASCII(method), let (key, amzDate) = keys.stamp(seconds: seconds, secret: credentials.secretAccessKey) else {
            return generalSign(method: method, path: path, query: query, host: host, contentType: contentType, body: body, credentials: credentials, time: time)
        }
        // The token's string taken by a pattern (copying the optional `SecretString` as a whole
        // went through its type's value witnesses).
        var token: String?
        if case .some(let t) = credentials.sessionToken { token = t.value }
        let canonicalQuery = query.isEmpty ? "" : SigV4.canonicalQuery(String(query))
        // Room for all three texts: each variable part at its longest (the path encoded three
        // bytes a byte; values only shrink when trimmed), and the fixed lines with room to spare.
        let bound =
            Self.fixedBytes + method.utf8.count + 3 * path.utf8.count + canonicalQuery.utf8.count + host.utf8.count + (contentType?.utf8.count ?? 0)
            + (token?.utf8.count ?? 0) + credentials.accessKeyID.utf8.count + 2 * key.scope.count + 3 * amzDate.utf8.count
        return withUnsafeTemporaryAllocation(byteCount: bound, alignment: 1) { memory in
            var out = SigV4BoundedBuffer(memory)
            // The canonical request.
            SigV4.appendUppercased(method, into: &out)
            out.append(UInt8(ascii: "\n"))
            SigV4.appendCanonicalURI(path, into: &out)
            out.append(UInt8(ascii: "\n"))
            out.append(utf8: canonicalQuery)
            out.append(UInt8(ascii: "\n"))
            if let contentType {
                out.append(utf8: "content-type:")
                SigV4.appendTrimmed(contentType, into: &out)
                out.append(UInt8(ascii: "\n"))
            }
            out.append(utf8: "host:")
            SigV4.appendTrimmed(host, into: &out)
            out.append(utf8: "\nx-amz-date:")
            out.append(utf8: amzDate)
            out.append(UInt8(ascii: "\n"))
            if let token {
                out.append(utf8: "x-amz-security-token:")
                SigV4.appendTrimmed(token, into: &out)
                out.append(UInt8(ascii: "\n"))
            }
            out.append(UInt8(ascii: "\n"))
            Self.appendSignedHeaders(contentType: contentType != nil, token: token != nil, into: &out)
            out.append(UInt8(ascii: "\n"))
            body.withUnsafeBytes { SigV4.appendHex(SigV4.sha256($0), into: &out) }

            // The string to sign, after the canonical request (of which only the hash is needed now).
            let canonicalEnd = out.count
            out.append(utf8: SigV4.algorithm)
            out.append(UInt8(ascii: "\n"))
            out.append(utf8: amzDate)
            out.append(UInt8(ascii: "\n"))
            key.scope.withUnsafeBytes { out.append(raw: $0) }
            out.append(UInt8(ascii: "\n"))
            SigV4.appendHex(SigV4.sha256(out.bytes(0..<canonicalEnd)), into: &out)

            // The Authorization value, after the string to sign.
            let authStart = out.count
            let code = key.signer.authenticationCode(for: out.bytes(canonicalEnd..<authStart))
            out.append(utf8: SigV4.algorithm)
            out.append(utf8: " Credential=")
            out.append(utf8: credentials.accessKeyID)
            out.append(UInt8(ascii: "/"))
            key.scope.withUnsafeBytes { out.append(raw: $0) }
            out.append(utf8: ", SignedHeaders=")
            Self.appendSignedHeaders(contentType: contentType != nil, token: token != nil, into: &out)
            out.append(utf8: ", Signature=")
            SigV4.appendHex(code, into: &out)
            return Headers(amzDate: amzDate, authorization: String(decoding: out.bytes(authStart..<out.count), as: UTF8.self))
        }
    }

    /// More than the fixed text of the three (about 450 bytes): the header names and separators,
    /// the algorithm twice, the signed header list twice and three hex hashes.
    private static let fixedBytes = 640

    /// Whether every byte is ASCII (read in place; a generic walk of the view cost more).
    private static func isASCII(_ s: String) -> Bool {
        s.utf8.withContiguousStorageIfAvailable { !$0.contains { $0 >= 0x80 } } ?? s.utf8.allSatisfy { $0 < 0x80 }
    }

    /// `content-type;host;x-amz-date;x-amz-security-token`, less the absent ones.
    private static func appendSignedHeaders<Sink: SigV4ByteSink>(contentType: Bool, token: Bool, into out: inout Sink) {
        if contentType { out.append(utf8: "content-type;") }
        out.append(utf8: "host;x-amz-date")
        if token { out.append(utf8: ";x-amz-security-token") }
    }

    /// The same request through `SigV4.signatureHeaders` (dates `SigV4DayKeys` does not hold).
    private func generalSign(
        method: String, path: Substring, query: Substring, host: String, contentType: String?, body: [UInt8], credentials: AWSCredentials,
        time: Double
    ) -> Headers {
        var signed: [(name: String, value: String)] = [(name: "host", value: host)]
        if let contentType { signed.append((name: "content-type", value: contentType)) }
        let headers = sigV4.signatureHeaders(method: method, path: path, query: query, headers: signed, body: body, credentials: credentials, time: time)
        return Headers(amzDate: headers[0].value, authorization: headers[headers.count - 1].value)
    }
}
