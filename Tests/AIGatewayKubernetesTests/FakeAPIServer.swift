import Foundation
import Synchronization
import Testing

@testable import AIGatewayKubernetes

/// The project's fake Kubernetes API server (`testing/fake-apiserver/fake_apiserver.py`),
/// one process per test, on a random loopback port with TLS and a bearer token.
/// `FAKE_APISERVER_SCRIPT` overrides the script's path.
final class FakeAPIServer: Sendable {
    static let token = "test-token-\(UUID().uuidString.prefix(8))"

    /// The package root (Tests/AIGatewayKubernetesTests/FakeAPIServer.swift -> ../..).
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static var scriptPath: String {
        if let override = ProcessInfo.processInfo.environment["FAKE_APISERVER_SCRIPT"], !override.isEmpty {
            return override
        }
        return packageRoot.appendingPathComponent("testing/fake-apiserver/fake_apiserver.py").path
    }

    /// The Python that runs the script: the project's `.venv` (scripts/setup.sh gives it PyYAML),
    /// else `python3` from PATH.
    static var pythonCommand: [String] {
        let venv = packageRoot.appendingPathComponent(".venv/bin/python3").path
        return FileManager.default.isExecutableFile(atPath: venv) ? [venv] : ["/usr/bin/env", "python3"]
    }

    /// Whether the integration tests run: the script is present, or this is CI (`CI=true`), where
    /// a missing script must fail them rather than skip them.
    static var isAvailable: Bool { FileManager.default.fileExists(atPath: scriptPath) || runsInCI }

    static var runsInCI: Bool {
        ["true", "1", "yes"].contains(ProcessInfo.processInfo.environment["CI"]?.lowercased() ?? "")
    }

    let url: String
    let kubeconfigPath: String
    let config: KubeConfig
    private let process: Process
    private let directory: TempDirectory

    init() async throws {
        let directory = try TempDirectory()
        let kubeconfig = directory.path + "/kubeconfig"
        let stdoutPath = directory.path + "/stdout"
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        let process = Process()
        let python = Self.pythonCommand
        process.executableURL = URL(fileURLWithPath: python[0])
        process.arguments = Array(python.dropFirst()) + [
            Self.scriptPath, "--port", "0", "--tls", "--token", Self.token,
            "--state-dir", directory.path + "/state", "--kubeconfig-out", kubeconfig,
        ]
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: directory.write("stderr", "")))
        process.standardInput = FileHandle.nullDevice
        try process.run()

        // Wait for the first stdout line: "fake-apiserver listening on https://127.0.0.1:PORT".
        var url: String?
        let deadline = ContinuousClock.now + .seconds(60)  // generous: CI machines are shared
        while url == nil {
            let text = (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.contains("listening on ") }),
                let range = line.range(of: "listening on ")
            {
                url = String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces)
            } else if !process.isRunning || ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                let stderr = (try? String(contentsOfFile: directory.path + "/stderr", encoding: .utf8)) ?? ""
                throw FakeServerError(message: "fake-apiserver did not start: \(stderr.suffix(2000))")
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        // The kubeconfig is written before the line is printed; be tolerant anyway.
        while !FileManager.default.fileExists(atPath: kubeconfig), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        self.url = url!
        self.kubeconfigPath = kubeconfig
        self.process = process
        self.directory = directory
        self.config = try KubeConfig.load(path: kubeconfig)
    }

    deinit {
        // SIGKILL, not terminate(): a child spawned from the test runner inherits its blocked
        // signal mask, SIGTERM included, so SIGTERM would never arrive. The server keeps
        // nothing worth flushing (its state directory is temporary).
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    func client(options: KubernetesClient.Options = .init()) -> KubernetesClient {
        KubernetesClient(config: config, options: options)
    }

    /// POSTs to a fault endpoint (`/_fake/...`), which needs no authentication.
    func fault(_ pathAndQuery: String) async throws {
        let response = try await client().raw("POST", pathAndQuery)
        guard (200..<300).contains(response.status) else {
            throw FakeServerError(message: "fault \(pathAndQuery) answered \(response.status)")
        }
    }
}

extension FakeAPIServer {
    /// The number of watch streams the server has open (`GET /_fake/stats`).
    func openWatches() async throws -> Int {
        let response = try await client().raw("GET", "/_fake/stats")
        return try JSONValue(jsonData: response.body)["openWatches"]?.intValue ?? -1
    }

    /// Waits until exactly `count` watches are open (e.g. before dropping them).
    func waitForOpenWatches(_ count: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await eventually("\(count) open watches", sourceLocation: sourceLocation) {
            try await openWatches() == count
        }
    }
}

struct FakeServerError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Waits until `condition` holds, checking every few milliseconds, failing after `timeout`. The
/// wait is for an event; the bound only keeps a broken build from hanging, and is wide because
/// on a 2-core machine the test pool's two threads can be held for many seconds by other suites.
func eventually(
    _ what: @autoclosure () -> String = "condition", timeout: Duration = .seconds(30),
    sourceLocation: SourceLocation = #_sourceLocation, _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    if try await condition() { return }
    Issue.record("timed out waiting for \(what())", sourceLocation: sourceLocation)
    throw FakeServerError(message: "timed out waiting for \(what())")
}

/// Collects values appended from other tasks.
final class Collector<Element: Sendable>: Sendable {
    private let storage = Mutex<[Element]>([])
    func append(_ e: Element) { storage.withLock { $0.append(e) } }
    var values: [Element] { storage.withLock { $0 } }
    var count: Int { storage.withLock { $0.count } }
}

func configMap(_ name: String, namespace: String = "default", labels: [String: String] = [:], data: [String: String] = [:])
    -> JSONValue
{
    var metadata: [String: JSONValue] = ["name": .string(name), "namespace": .string(namespace)]
    if !labels.isEmpty { metadata["labels"] = .object(labels.mapValues { .string($0) }) }
    return [
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": .object(metadata),
        "data": .object(data.mapValues { .string($0) }),
    ]
}

func namespace(named name: String) -> JSONValue {
    ["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(name)]]
}

extension ResourceType {
    static let customResourceDefinitions = ResourceType(
        group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions", namespaced: false)
}

let widgets = ResourceType(group: "test.example.com", version: "v1", plural: "widgets", namespaced: true)

let widgetCRD: JSONValue = [
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": ["name": "widgets.test.example.com"],
    "spec": [
        "group": "test.example.com", "scope": "Namespaced",
        "names": ["plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"],
        "versions": [
            [
                "name": "v1", "served": true, "storage": true, "subresources": ["status": [:]],
                "schema": [
                    "openAPIV3Schema": [
                        "type": "object",
                        "properties": [
                            "spec": ["type": "object", "x-kubernetes-preserve-unknown-fields": true],
                            "status": ["type": "object", "x-kubernetes-preserve-unknown-fields": true],
                        ],
                    ]
                ],
            ]
        ],
    ],
]
