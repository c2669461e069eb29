import AIGatewayRouting
import NIOHTTP1

/// Which of a client's request headers may reach a provider.
///
/// Everything the client sends is forwarded except:
/// - hop-by-hop headers (`Connection` and the headers it names, `Keep-Alive`, `Proxy-Connection`,
///   `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`): they belong to the client's connection;
/// - what describes the gateway's own request (`Host`, `Content-Length`, `Expect`, and
///   `Accept-Encoding`: the gateway reads the answer, so it leaves it out to get it uncompressed);
/// - the client's credentials (`Authorization`, `Proxy-Authorization`, `Cookie`, and the provider
///   key headers `api-key`, `x-api-key`, `x-goog-api-key`): the provider's key header is the
///   gateway's to write, from the entry's key or, with Passthrough, from the client's
///   `Authorization`;
/// - when the entry calls the provider with the gateway's own key, the headers that choose whose
///   account that key bills (`OpenAI-Organization`, `OpenAI-Project`): a client must not pick
///   another organisation or project the key can reach. With Passthrough the key is the client's
///   own, and so is the choice: they are forwarded.
///
/// A route's `RequestHeaderModifier` applies afterwards: the operator may set any of them.
struct ClientHeaderPolicy: Sendable {
    /// Headers of the client's connection, not of the request.
    static let hopByHop = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"]
    /// Describe the gateway's own request to the provider.
    static let setByGateway = ["host", "content-length", "expect", "accept-encoding"]
    /// The client's credentials, for the gateway or for a provider.
    /// (AWS's signing headers too: the gateway signs its own request, and a client's session token
    /// or date would break or change that signature.)
    static let clientCredentials = [
        "authorization", "proxy-authorization", "cookie", "api-key", "x-api-key", "x-goog-api-key", "x-amz-security-token", "x-amz-date",
        "x-amz-content-sha256",
    ]
    /// Choose the account that a key bills: dropped when the key is the gateway's.
    static let accountSelection = ["openai-organization", "openai-project"]

    /// For an entry that calls the provider with the gateway's own key (a Secret, or inline).
    static let gatewayKey = ClientHeaderPolicy(dropping: hopByHop + setByGateway + clientCredentials + accountSelection)
    /// For an entry that forwards the client's own key (Passthrough).
    static let passthrough = ClientHeaderPolicy(dropping: hopByHop + setByGateway + clientCredentials)

    static func forAuth(_ auth: CompiledAuth) -> ClientHeaderPolicy {
        switch auth {
        case .key, .aws, .awsDefaultChain: gatewayKey
        case .passthrough: passthrough
        }
    }

    private let dropped: HeaderNameSet

    private init(dropping names: [String]) {
        dropped = HeaderNameSet(names)
    }

    /// Whether a header named `name` is forwarded (the headers named in `Connection` aside).
    func forwards(_ name: String) -> Bool {
        !dropped.contains(name)
    }

    /// The same for a name given as bytes (a field of the client's head: `UpstreamRequestHead`
    /// applies the policy there).
    func forwards(_ name: UnsafeRawBufferPointer) -> Bool {
        !dropped.contains(name)
    }

    /// Appends to `upstream` the client headers that may reach the provider, in the client's order.
    func forward(_ client: HTTPHeaders, into upstream: inout HTTPHeaders) {
        let connectionTokens = HeaderNameSet(client[canonicalForm: "connection"].map(String.init))
        for (name, value) in client where !dropped.contains(name) && !connectionTokens.contains(name) {
            upstream.add(name: name, value: value)
        }
    }
}
