import AIGatewayAPI
import AIGatewayProviders
import AIGatewayRouting
import Foundation
import Testing

/// Golden files: each `Golden/<name>.yaml` is compiled and its `RoutingTable.dump()` compared with
/// `Golden/<name>.golden`. A first line `# options: implicitGateway=<bool> endpoint=<provider>=<url> ...`
/// sets the compile options.
///
/// To regenerate after an intended change: `AIGW_UPDATE_GOLDEN=1 swift test --skip-build --filter GoldenTests`,
/// then review every changed line by hand against the Gateway API rules before keeping it.
@Suite("Golden routing tables")
struct GoldenTests {
    static let names = ["guide", "precedence", "backends", "attachment"]

    static func options(from yaml: String) throws -> CompileOptions {
        var options = CompileOptions()
        guard let first = yaml.split(separator: "\n").first, first.hasPrefix("# options:") else { return options }
        for word in first.dropFirst("# options:".count).split(separator: " ") {
            let kv = word.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { throw SetupFailure(description: "bad option \(word)") }
            switch kv[0] {
            case "implicitGateway": options.implicitGateway = kv[1] == "true"
            case "endpoint":
                let pv = kv[1].split(separator: "=", maxSplits: 1).map(String.init)
                guard pv.count == 2, let e = ProviderEndpoint(url: pv[1]) else { throw SetupFailure(description: "bad endpoint \(kv[1])") }
                options.endpoints[pv[0]] = e
            default: throw SetupFailure(description: "unknown option \(kv[0])")
            }
        }
        return options
    }

    @Test("compiled tables match the reviewed golden files", arguments: names)
    func golden(name: String) throws {
        let dir = try #require(Bundle.module.url(forResource: "Golden", withExtension: nil))
        let yaml = try String(contentsOf: dir.appendingPathComponent("\(name).yaml"), encoding: .utf8)
        let docs = try ManifestLoader.parse(yaml, source: "\(name).yaml")
        #expect(docs.errorLines.isEmpty, "golden inputs must be valid: \(docs.errorLines)")
        let table = RouteCompiler.compile(ResourceSet(docs.resources), options: try Self.options(from: yaml))
        let dump = table.dump()

        if ProcessInfo.processInfo.environment["AIGW_UPDATE_GOLDEN"] == "1" {
            // Rewriting compares nothing: a CI run (CI=true) with it set must not pass.
            #expect(ProcessInfo.processInfo.environment["CI"] != "true", "AIGW_UPDATE_GOLDEN=1 under CI compares nothing")
            let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/\(name).golden")
            try dump.write(to: source, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: dir.appendingPathComponent("\(name).golden"), encoding: .utf8)
        if dump != expected {
            let got = dump.split(separator: "\n", omittingEmptySubsequences: false)
            let want = expected.split(separator: "\n", omittingEmptySubsequences: false)
            let firstDiff = zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(got.count, want.count)
            Issue.record(
                """
                \(name): dump differs from \(name).golden at line \(firstDiff + 1)
                  want: \(firstDiff < want.count ? String(want[firstDiff]) : "<end>")
                  got:  \(firstDiff < got.count ? String(got[firstDiff]) : "<end>")
                """)
        }
        // A dump never shows a key.
        #expect(!dump.contains("sk-"))
    }

    @Test("compiling is deterministic")
    func deterministic() throws {
        let dir = try #require(Bundle.module.url(forResource: "Golden", withExtension: nil))
        let yaml = try String(contentsOf: dir.appendingPathComponent("precedence.yaml"), encoding: .utf8)
        let docs = try ManifestLoader.parse(yaml, source: "p.yaml")
        let options = try Self.options(from: yaml)
        let first = RouteCompiler.compile(ResourceSet(docs.resources), options: options).dump()
        let reversed = RouteCompiler.compile(ResourceSet(docs.resources.reversed()), options: options).dump()
        #expect(first == reversed, "input order must not change the table")
    }
}
