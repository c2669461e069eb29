/// How a `FakeProvider` listens and answers.
public struct FakeProviderConfiguration: Sendable {
    /// Address to bind. Default `127.0.0.1`.
    public var host: String
    /// Port to bind; 0 picks an ephemeral port (see `FakeProvider.start()`).
    public var port: Int
    /// Initial faults, model name -> fault.
    public var faults: [String: FaultSpec]
    /// Content tokens per full answer.
    public var tokens: Int
    /// Delay between streamed content tokens.
    public var tokenInterval: Duration
    /// When set, requests get a 401 unless they carry `Authorization: Bearer <key>` or `api-key: <key>`.
    public var requiredKey: String?
    /// The AWS access key id the Bedrock API accepts; its secret is `requiredKey` (SigV4 is checked
    /// whenever `requiredKey` is set).
    public var awsAccessKeyID = FakeProviderConfiguration.defaultAWSAccessKeyID
    public static let defaultAWSAccessKeyID = "AKIDFAKEGATEWAY"
    /// Whether to keep the last `FakeProvider.recordedRequestLimit` requests for `recordedRequests()`.
    public var recordRequests: Bool
    /// Serve HTTPS with this certificate chain and key (PEM files) instead of plain HTTP.
    public var tls: TLSFiles?

    public struct TLSFiles: Sendable, Hashable {
        public var certificateChain: String
        public var privateKey: String

        public init(certificateChain: String, privateKey: String) {
            self.certificateChain = certificateChain
            self.privateKey = privateKey
        }
    }

    public init(
        host: String = "127.0.0.1",
        port: Int = 0,
        faults: [String: FaultSpec] = [:],
        tokens: Int = 12,
        tokenInterval: Duration = .zero,
        requiredKey: String? = nil,
        recordRequests: Bool = true,
        tls: TLSFiles? = nil
    ) {
        self.host = host
        self.port = port
        self.faults = faults
        self.tokens = tokens
        self.tokenInterval = tokenInterval
        self.requiredKey = requiredKey
        self.recordRequests = recordRequests
        self.tls = tls
    }
}
