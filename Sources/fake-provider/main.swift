import AIGatewayTesting
import ArgumentParser
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

struct FakeProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fake-provider",
        abstract: "A fake LLM provider (OpenAI/Azure and Anthropic native APIs) that misbehaves on demand.",
        discussion: """
            Fault specs: ok | status=<code>[,retry-after=<s>][,ratelimit-reset=<dur>][,code=<str>] | context-length | \
            content-filter | unauthorized | model-not-found | bad-request | reset | silence | slow-first-token=<ms> | \
            cut-after=<n> | stall-after=<n> | malformed-event=<n> | no-done | no-prefill | stream-error=<n> | tool-call | blocked; \
            modifiers: times=<k>, delay=<ms>. Example: --fault gpt-4o=status=429,retry-after=2,times=3
            Control: PUT /_fake/faults/<model> (body: spec), DELETE /_fake/faults, GET|DELETE /_fake/requests, GET /_fake/health.
            """
    )

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to bind (0 = ephemeral).")
    var port = 9000

    @Option(name: .customLong("fault"), help: ArgumentHelp("A fault for one model (repeatable).", valueName: "MODEL=SPEC"))
    var faultArguments: [String] = []

    @Option(help: "Content tokens per answer.")
    var tokens = 12

    @Option(name: .customLong("token-interval-ms"), help: "Delay between streamed tokens, in milliseconds.")
    var tokenIntervalMilliseconds = 0

    @Option(name: .customLong("require-key"), help: "Reject requests without `Authorization: Bearer KEY` or `api-key: KEY`.")
    var requiredKey: String?

    @Flag(name: .customLong("no-record"), help: "Do not keep received requests (for benchmarks).")
    var noRecord = false

    @Option(name: .customLong("tls-cert"), help: "Serve HTTPS: PEM certificate chain (with --tls-key).")
    var tlsCertificate: String?

    @Option(name: .customLong("tls-key"), help: "Serve HTTPS: PEM private key (with --tls-cert).")
    var tlsKey: String?

    func validate() throws {
        _ = try self.parsedFaults()
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard tokens >= 0 else { throw ValidationError("--tokens must not be negative") }
        guard tokenIntervalMilliseconds >= 0 else { throw ValidationError("--token-interval-ms must not be negative") }
        guard (tlsCertificate == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
    }

    func parsedFaults() throws -> [String: FaultSpec] {
        var faults: [String: FaultSpec] = [:]
        for argument in faultArguments {
            guard let eq = argument.firstIndex(of: "="), eq != argument.startIndex else {
                throw ValidationError("--fault \(argument): expected MODEL=SPEC, e.g. gpt-4o=status=503")
            }
            let model = String(argument[..<eq])
            do {
                faults[model] = try FaultSpec(parsing: String(argument[argument.index(after: eq)...]))
            } catch let error as FaultSpecParseError {
                throw ValidationError("--fault \(argument): \(error.description)")
            }
        }
        return faults
    }

    func run() async throws {
        let provider = FakeProvider(
            configuration: FakeProviderConfiguration(
                host: host,
                port: port,
                faults: try parsedFaults(),
                tokens: tokens,
                tokenInterval: .milliseconds(tokenIntervalMilliseconds),
                requiredKey: requiredKey,
                recordRequests: !noRecord,
                tls: tlsCertificate.map { .init(certificateChain: $0, privateKey: tlsKey ?? "") }
            )
        )
        let signals = SignalWaiter()
        let sources = signals.install(signals: [SIGINT, SIGTERM])
        let boundPort = try await provider.start()
        let displayHost = host.contains(":") ? "[\(host)]" : host
        FileHandle.standardOutput.write(Data("fake-provider listening on \(tlsCertificate == nil ? "http" : "https")://\(displayHost):\(boundPort)\n".utf8))
        await signals.wait()
        try await provider.stop()
        for source in sources { source.cancel() }
    }
}

/// Turns SIGINT/SIGTERM into an awaitable event (the signals' default actions are disabled).
final class SignalWaiter: Sendable {
    private struct State {
        var fired = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// Installs handlers for `signals`; the returned sources must be kept alive while waiting.
    func install(signals: [Int32]) -> [any DispatchSourceSignal] {
        let queue = DispatchQueue(label: "fake-provider.signals")
        return signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [self] in self.fire() }
            source.resume()
            return source
        }
    }

    private func fire() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.fired = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                if state.fired { return true }
                state.waiter = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}

/// `main.swift` cannot use `@main`, and at top level `main()` resolves to the synchronous entry point;
/// inside an async function the async overload is chosen.
func runFakeProvider() async {
    await FakeProviderCommand.main(nil)
}

await runFakeProvider()
