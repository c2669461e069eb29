import Foundation
import Synchronization
import Testing

@testable import AIGatewayKubernetes

/// A temporary directory removed on deinit.
final class TempDirectory: Sendable {
    let path: String

    init() throws {
        let path = NSTemporaryDirectory() + "kube-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        self.path = path
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let file = path + "/" + name
        try FileManager.default.createDirectory(
            atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: file), options: .atomic)
        return file
    }
}

private let caPEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
private let certPEM = "-----BEGIN CERTIFICATE-----\nMIIBclient\n-----END CERTIFICATE-----\n"
private let keyPEM = "-----BEGIN PRIVATE KEY-----\nMIIBkey\n-----END PRIVATE KEY-----\n"
private func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

@Suite("KubeConfig")
struct KubeConfigTests {
    let fullConfig = """
        apiVersion: v1
        kind: Config
        current-context: dev
        clusters:
        - name: dev-cluster
          cluster:
            server: https://dev.example:6443/
            certificate-authority-data: \(b64(caPEM))
        - name: prod-cluster
          cluster:
            server: https://prod.example:443/prefix
            certificate-authority: certs/ca.crt
        - name: lab-cluster
          cluster:
            server: http://127.0.0.1:8080
            insecure-skip-tls-verify: true
        contexts:
        - name: dev
          context:
            cluster: dev-cluster
            user: token-user
            namespace: team-a
        - name: prod
          context:
            cluster: prod-cluster
            user: file-cert-user
        - name: lab
          context:
            cluster: lab-cluster
            user: data-cert-user
        - name: rotating
          context:
            cluster: dev-cluster
            user: token-file-user
        - name: anonymous
          context:
            cluster: lab-cluster
        - name: plugin
          context:
            cluster: lab-cluster
            user: exec-user
        users:
        - name: token-user
          user:
            token: s3cr3t-token
        - name: file-cert-user
          user:
            client-certificate: certs/client.crt
            client-key: /ABSOLUTE/certs/client.key
        - name: data-cert-user
          user:
            client-certificate-data: \(b64(certPEM))
            client-key-data: \(b64(keyPEM))
        - name: token-file-user
          user:
            tokenFile: token.txt
        - name: exec-user
          user:
            exec:
              command: get-token
        """

    func writeConfig(_ dir: TempDirectory) throws -> String {
        try dir.write("certs/ca.crt", caPEM)
        try dir.write("certs/client.crt", certPEM)
        try dir.write("certs/client.key", keyPEM)
        try dir.write("token.txt", "file-token\n")
        return try dir.write(
            "kube/config", fullConfig.replacingOccurrences(of: "/ABSOLUTE", with: dir.path)
                .replacingOccurrences(of: "certs/ca.crt", with: "../certs/ca.crt")
                .replacingOccurrences(of: "certificate: certs/client.crt", with: "certificate: ../certs/client.crt")
                .replacingOccurrences(of: "tokenFile: token.txt", with: "tokenFile: ../token.txt"))
    }

    @Test func currentContextWithCADataAndToken() throws {
        let dir = try TempDirectory()
        let config = try KubeConfig.load(path: try writeConfig(dir))
        #expect(config.server == "https://dev.example:6443")
        #expect(config.namespace == "team-a")
        #expect(config.tls.certificateAuthorityPEM == Data(caPEM.utf8))
        #expect(config.tls.insecureSkipVerify == false)
        #expect(config.tls.clientCertificatePEM == nil)
        #expect(try config.bearerToken() == "s3cr3t-token")
    }

    @Test func namedContextWithRelativeCAFileAndClientCertificateFiles() throws {
        let dir = try TempDirectory()
        let config = try KubeConfig.load(path: try writeConfig(dir), context: "prod")
        #expect(config.server == "https://prod.example:443/prefix")
        #expect(config.namespace == "default")
        #expect(config.tls.certificateAuthorityPEM == Data(caPEM.utf8))
        #expect(config.tls.clientCertificatePEM == Data(certPEM.utf8))
        #expect(config.tls.clientKeyPEM == Data(keyPEM.utf8))
        #expect(try config.bearerToken() == nil)
    }

    @Test func insecureClusterWithClientCertificateData() throws {
        let dir = try TempDirectory()
        let config = try KubeConfig.load(path: try writeConfig(dir), context: "lab")
        #expect(config.server == "http://127.0.0.1:8080")
        #expect(config.tls.insecureSkipVerify)
        #expect(config.tls.certificateAuthorityPEM == nil)
        #expect(config.tls.clientCertificatePEM == Data(certPEM.utf8))
        #expect(config.tls.clientKeyPEM == Data(keyPEM.utf8))
    }

    @Test func tokenFileAndAnonymousUser() throws {
        let dir = try TempDirectory()
        let path = try writeConfig(dir)
        let rotating = try KubeConfig.load(path: path, context: "rotating")
        #expect(try rotating.bearerToken() == "file-token")
        let anonymous = try KubeConfig.load(path: path, context: "anonymous")
        #expect(try anonymous.bearerToken() == nil)
    }

    @Test func unusableEntriesAreConfigurationErrors() throws {
        let dir = try TempDirectory()
        let path = try writeConfig(dir)
        #expect(throws: KubernetesError.configuration) { try KubeConfig.load(path: path, context: "missing") }
        #expect(throws: KubernetesError.configuration) { try KubeConfig.load(path: path, context: "plugin") }
        #expect(throws: KubernetesError.configuration) { try KubeConfig.load(path: dir.path + "/nope") }
        #expect(throws: KubernetesError.configuration) { try KubeConfig.parse(yaml: "clusters: [") }
        #expect(throws: KubernetesError.configuration) {
            try KubeConfig.parse(yaml: "current-context: x\ncontexts: []")
        }
        let badBase64 = """
            current-context: c
            contexts: [{name: c, context: {cluster: k}}]
            clusters: [{name: k, cluster: {server: "https://h", certificate-authority-data: "!!notbase64"}}]
            """
        #expect(throws: KubernetesError.configuration) { try KubeConfig.parse(yaml: badBase64) }
    }

    @Test func descriptionsNeverShowSecrets() throws {
        let dir = try TempDirectory()
        let config = try KubeConfig.load(path: try writeConfig(dir))
        let lab = try KubeConfig.load(path: try writeConfig(dir), context: "lab")
        for text in [
            "\(config)", String(reflecting: config), String(describing: config.credentials),
            String(reflecting: config.credentials), "\(lab)", String(reflecting: lab),
        ] {
            #expect(!text.contains("s3cr3t-token"))
            #expect(!text.contains("MIIBkey"))
        }
        var dumped = ""
        dump(config, to: &dumped)
        #expect(!dumped.contains("s3cr3t-token"))
    }

    @Test func kubeconfigEnvironmentListMergesFirstWins() throws {
        let dir = try TempDirectory()
        let first = try dir.write(
            "a.yaml",
            """
            current-context: second
            users:
            - name: u
              user: {token: token-from-a}
            """)
        let second = try dir.write(
            "b.yaml",
            """
            current-context: ignored
            clusters:
            - name: k
              cluster: {server: "https://b.example"}
            contexts:
            - name: second
              context: {cluster: k, user: u, namespace: from-b}
            users:
            - name: u
              user: {token: token-from-b}
            """)
        let env = ["KUBECONFIG": "\(dir.path)/missing.yaml:\(first):\(second)", "HOME": dir.path]
        let config = try KubeConfig.resolve(environment: env)
        #expect(config.server == "https://b.example")
        #expect(config.namespace == "from-b")
        #expect(try config.bearerToken() == "token-from-a")

        // An explicit path wins over KUBECONFIG.
        let explicit = try KubeConfig.resolve(kubeconfigPath: try writeConfig(dir), environment: env)
        #expect(explicit.server == "https://dev.example:6443")
    }

    @Test func resolveFallsBackToInClusterThenHome() throws {
        let dir = try TempDirectory()
        let sa = dir.path + "/sa"
        try dir.write("sa/token", "sa-token")
        try dir.write("sa/ca.crt", caPEM)
        let inCluster = try KubeConfig.resolve(
            environment: ["KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443", "HOME": dir.path],
            serviceAccountDirectory: sa)
        #expect(inCluster.server == "https://10.0.0.1:443")

        try dir.write(".kube/config", try String(contentsOfFile: try writeConfig(dir), encoding: .utf8))
        let home = try KubeConfig.resolve(environment: ["HOME": dir.path])
        #expect(home.server == "https://dev.example:6443")

        #expect(throws: KubernetesError.configuration) {
            try KubeConfig.resolve(environment: ["HOME": dir.path + "/empty"])
        }
    }
}

/// A settable clock for token refresh tests.
final class ManualClock: Sendable {
    private let offset = Mutex<Duration>(.zero)
    private let start = ContinuousClock.now

    var now: ContinuousClock.Instant { start + offset.withLock { $0 } }

    func advance(by d: Duration) {
        offset.withLock { $0 += d }
    }
}

@Suite("In-cluster config")
struct InClusterTests {
    @Test func readsServiceAccountAndEnvironment() throws {
        let dir = try TempDirectory()
        try dir.write("token", "token-1\n")
        try dir.write("ca.crt", caPEM)
        try dir.write("namespace", "gateway-system\n")
        let config = try KubeConfig.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"],
            serviceAccountDirectory: dir.path)
        #expect(config.server == "https://10.96.0.1:443")
        #expect(config.namespace == "gateway-system")
        #expect(config.tls.certificateAuthorityPEM == Data(caPEM.utf8))
        #expect(try config.bearerToken() == "token-1")
        #expect(!"\(config)".contains("token-1"))
    }

    @Test func ipv6HostAndDefaultNamespace() throws {
        let dir = try TempDirectory()
        try dir.write("token", "t")
        try dir.write("ca.crt", caPEM)
        let config = try KubeConfig.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"],
            serviceAccountDirectory: dir.path)
        #expect(config.server == "https://[fd00::1]:6443")
        #expect(config.namespace == "default")
    }

    @Test func missingPiecesAreConfigurationErrors() throws {
        let dir = try TempDirectory()
        #expect(throws: KubernetesError.configuration) {
            try KubeConfig.inCluster(environment: [:], serviceAccountDirectory: dir.path)
        }
        let env = ["KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1"]
        #expect(throws: KubernetesError.configuration) {
            try KubeConfig.inCluster(environment: env, serviceAccountDirectory: dir.path)
        }
        try dir.write("token", "t")
        #expect(throws: KubernetesError.configuration) {
            try KubeConfig.inCluster(environment: env, serviceAccountDirectory: dir.path)
        }
    }

    @Test func tokenIsReReadWhenDueOrInvalidated() throws {
        let dir = try TempDirectory()
        try dir.write("token", "token-1")
        try dir.write("ca.crt", caPEM)
        let clock = ManualClock()
        let config = try KubeConfig.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1"],
            serviceAccountDirectory: dir.path, tokenRefreshInterval: .seconds(60), now: { clock.now })
        #expect(try config.bearerToken() == "token-1")

        try dir.write("token", "token-2")
        clock.advance(by: .seconds(30))
        #expect(try config.bearerToken() == "token-1", "cached within the refresh interval")
        clock.advance(by: .seconds(31))
        #expect(try config.bearerToken() == "token-2", "re-read after the interval")

        try dir.write("token", "token-3")
        guard case .tokenFile(let file) = config.credentials else {
            Issue.record("expected a token file")
            return
        }
        file.invalidate()
        #expect(try config.bearerToken() == "token-3", "re-read after a 401")

        // A failed re-read keeps the last good token.
        try FileManager.default.removeItem(atPath: dir.path + "/token")
        clock.advance(by: .seconds(61))
        #expect(try config.bearerToken() == "token-3")
    }
}
