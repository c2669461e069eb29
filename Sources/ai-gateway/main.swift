import AIGatewayAPI
import AIGatewayController
import AIGatewayKubernetes
import AIGatewayFailover
import AIGatewayProviders
import AIGatewayProxy
import AIGatewayRouting
import AIGatewaySources
import AIGatewayTelemetry
import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

struct AIGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ai-gateway",
        abstract: "An AI gateway: routes OpenAI-style chat requests to kgateway Backends and fails over between models.",
        subcommands: [Run.self, Validate.self],
        defaultSubcommand: Run.self)
}

/// Parses `PROVIDER=URL`.
struct EndpointOverride: ExpressibleByArgument {
    var provider: String
    var endpoint: ProviderEndpoint

    init?(argument: String) {
        let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, LLMProvider.keys.contains(parts[0]), let e = ProviderEndpoint(url: parts[1]) else { return nil }
        provider = parts[0]
        endpoint = e
    }
}

extension GatewayDuration: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

extension LoggingSetup.Format: ExpressibleByArgument {}

extension Logger.Level: @retroactive ExpressibleByArgument {}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway.")

    @Option(name: .customLong("manifests"), help: "A manifest file or directory (repeatable). Standalone mode.")
    var manifests: [String] = []

    @Option(name: .customLong("kubeconfig"), help: "Kubernetes mode: a kubeconfig file. Without --manifests, also KUBECONFIG, the in-cluster service account, then ~/.kube/config.")
    var kubeconfig: String?

    @Option(name: .customLong("context"), help: "The kubeconfig context (default: its current-context).")
    var context: String?

    @Option(name: .customLong("watch-namespace"), help: "Kubernetes mode: a namespace to watch (repeatable; default: all).")
    var watchNamespaces: [String] = []

    @Flag(
        name: .customLong("leader-elect"), inversion: .prefixedNo,
        help: "Kubernetes mode: elect one replica (through a Lease) to write status; with --no-leader-elect every replica writes it.")
    var leaderElect = true

    @Option(name: .customLong("leader-election-namespace"), help: "Namespace of the Lease (default: POD_NAMESPACE, the in-cluster or kubeconfig context namespace, else kgateway-system).")
    var leaderElectionNamespace: String?

    @Option(name: .customLong("leader-election-id"), help: "Name of the Lease.")
    var leaderElectionID: String = "ai-gateway"

    @Option(name: .customLong("leader-election-lease-duration"), help: "How long non-leaders wait before taking over an unrenewed lease (whole seconds).")
    var leaseDuration: GatewayDuration = GatewayDuration(milliseconds: 15_000)

    @Option(name: .customLong("leader-election-renew-deadline"), help: "The leader steps down when it could not renew for this long.")
    var renewDeadline: GatewayDuration = GatewayDuration(milliseconds: 10_000)

    @Option(name: .customLong("leader-election-retry-period"), help: "Time between acquire or renew attempts.")
    var retryPeriod: GatewayDuration = GatewayDuration(milliseconds: 2_000)

    @Option(help: "Address to listen on.")
    var host: String = "0.0.0.0"

    @Option(help: "Port for client traffic.")
    var port: Int = 8080

    @Option(name: .customLong("admin-port"), help: "Port for /healthz, /readyz, /metrics and /debug/table.")
    var adminPort: Int = 9091

    @Option(name: .customLong("provider-endpoint"), help: "Redirect a provider's default host: PROVIDER=URL, e.g. openai=http://127.0.0.1:9000 (repeatable).")
    var providerEndpoints: [EndpointOverride] = []

    @Option(name: .customLong("controller-name"), help: "GatewayClass controllerName this gateway implements.")
    var controllerName: String = CompileOptions.defaultControllerName

    @Option(name: .customLong("request-timeout"), help: "Whole-request deadline when a route sets no timeouts.request.")
    var requestTimeout: GatewayDuration = GatewayDuration(milliseconds: 300_000)

    @Option(name: .customLong("connect-timeout"), help: "TCP connect timeout to providers (a TLS handshake gets as long again).")
    var connectTimeout: GatewayDuration = GatewayDuration(milliseconds: 5_000)

    @Option(
        name: .customLong("retry-after-cap"),
        help: "Longest cool-down a provider's Retry-After or x-ratelimit-reset-* can impose on a model; after it one request probes the model again.")
    var retryAfterCap: GatewayDuration = GatewayDuration(milliseconds: 300_000)

    @Option(name: .customLong("provider-ca-file"), help: "PEM file of CA certificates trusted for providers, in addition to the system store.")
    var providerCAFile: String?

    @Option(name: .customLong("max-upstream-connections"), help: "Connections per provider origin on each event loop; a burst beyond waits for one.")
    var maxUpstreamConnections: Int = 1024

    @Option(
        name: .customLong("event-loops"),
        help: "Event loops (threads) serving clients and providers, 1 to \(EventLoopCount.maximum) (default: one per core).")
    var eventLoops: Int?

    @Option(name: .customLong("max-body-bytes"), help: "Largest request body; larger gets 413.")
    var maxBodyBytes: Int = 4 * 1024 * 1024

    @Option(name: .customLong("max-header-bytes"), help: "Largest total request header size.")
    var maxHeaderBytes: Int = 32 * 1024

    @Option(name: .customLong("idle-timeout"), help: "Close client connections idle (or stuck mid-request) this long.")
    var idleTimeout: GatewayDuration = GatewayDuration(milliseconds: 60_000)

    @Option(name: .customLong("drain-timeout"), help: "On SIGTERM, how long in-flight requests may take to finish.")
    var drainTimeout: GatewayDuration = GatewayDuration(milliseconds: 30_000)

    @Option(name: .customLong("poll-interval"), help: "How often manifest files are checked for changes.")
    var pollInterval: GatewayDuration = GatewayDuration(milliseconds: 1_000)

    @Option(name: .customLong("log-format"), help: "auto (JSON unless stderr is a terminal), json or text.")
    var logFormat: LoggingSetup.Format = .auto

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        if !manifests.isEmpty && kubeconfig != nil {
            throw ValidationError("pass either --manifests (standalone mode) or --kubeconfig (Kubernetes mode), not both")
        }
        for p in [port, adminPort] where !(0...65535).contains(p) {
            throw ValidationError("port \(p) is out of range")
        }
        if maxBodyBytes < 1 { throw ValidationError("--max-body-bytes must be positive") }
        if retryAfterCap.milliseconds < 1 { throw ValidationError("--retry-after-cap must be positive") }
        if maxUpstreamConnections < 1 { throw ValidationError("--max-upstream-connections must be positive") }
        if let eventLoops, let problem = EventLoopCount.problem(eventLoops) { throw ValidationError("--event-loops \(problem)") }
        if let problem = leaderElectionTiming.problem { throw ValidationError("leader election: \(problem)") }
    }

    var leaderElectionTiming: LeaderElectionTiming {
        LeaderElectionTiming(leaseDuration: leaseDuration.duration, renewDeadline: renewDeadline.duration, retryPeriod: retryPeriod.duration)
    }

    func run() async throws {
        LoggingSetup.bootstrap(format: logFormat, level: logLevel)
        let logger = Logger(label: "ai-gateway")
        logger.info("event loops", metadata: ["count": "\(NIOSingletons.groupLoopCountSuggestion)"])
        let metrics = GatewayMetrics()
        let store = TableStore()
        var endpoints: [String: ProviderEndpoint] = [:]
        for o in providerEndpoints { endpoints[o.provider] = o.endpoint }
        let standalone = !manifests.isEmpty
        let options = CompileOptions(controllerName: controllerName, implicitGateway: standalone, endpoints: endpoints)
        let health = HealthRegistry()
        let updater = TableUpdater(store: store, options: options, metrics: metrics, logger: logger, health: health)
        let source: any Service
        var leaderElection: LeaderElectionService?
        if standalone {
            let manifestSource = ManifestSource(paths: manifests, pollInterval: pollInterval.duration, sink: updater, logger: logger)
            do {
                _ = try manifestSource.loadInitial()
            } catch let e as ManifestSource.InvalidConfiguration {
                FileHandle.standardError.write(Data((e.description + "\n").utf8))
                throw ExitCode(1)
            }
            source = manifestSource
        } else {
            let config: KubeConfig
            do {
                config = try KubeConfig.resolve(kubeconfigPath: kubeconfig, context: context)
            } catch {
                FileHandle.standardError.write(Data("no configuration source: pass --manifests PATH, or --kubeconfig PATH for Kubernetes mode (\(error))\n".utf8))
                throw ExitCode(1)
            }
            logger.info("kubernetes mode", metadata: ["server": "\(config.server)", "namespaces": "\(watchNamespaces.isEmpty ? "all" : watchNamespaces.joined(separator: ","))"])
            let kube = KubernetesClient(config: config, logger: logger)
            if leaderElect {
                let environment = ProcessInfo.processInfo.environment
                let namespace =
                    leaderElectionNamespace ?? environment["POD_NAMESPACE"].flatMap { $0.isEmpty ? nil : $0 }
                    ?? (config.namespaceIsExplicit ? config.namespace : "kgateway-system")
                metrics.leader(false)
                let elector = LeaderElector(
                    client: kube,
                    configuration: .init(
                        namespace: namespace, name: leaderElectionID, identity: LeaderElector.Configuration.defaultIdentity(environment: environment),
                        timing: leaderElectionTiming),
                    logger: logger, onChange: { metrics.leader($0) })
                leaderElection = LeaderElectionService(elector: elector)
            }
            source = KubernetesSource(
                client: kube, sink: updater, namespaces: watchNamespaces, controllerName: controllerName,
                leaderElector: leaderElection?.elector, logger: logger,
                onReconcile: { report in
                    metrics.reconciled(objects: report.objects, routes: report.routes, decode: report.decodeTime, compile: report.compileTime)
                })
        }

        var proxyConfig = ProxyConfiguration()
        proxyConfig.defaultRequestTimeout = requestTimeout.duration
        proxyConfig.connectTimeout = connectTimeout.duration
        proxyConfig.providerCAFile = providerCAFile
        proxyConfig.retryAfterCap = retryAfterCap.duration
        proxyConfig.maxUpstreamConnections = maxUpstreamConnections
        proxyConfig.limits.maxBodyBytes = maxBodyBytes
        proxyConfig.limits.maxHeaderBytes = maxHeaderBytes
        proxyConfig.limits.idleTimeout = idleTimeout.duration
        let client: UpstreamClient
        do {
            client = try GatewayHandler.makeUpstreamClient(configuration: proxyConfig)
        } catch {
            FileHandle.standardError.write(Data("cannot set up TLS for providers (--provider-ca-file \(providerCAFile ?? "-")): \(error)\n".utf8))
            throw ExitCode(1)
        }
        let awsChain: AWSCredentialChain
        do {
            awsChain = try AWSCredentialChain.from(environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(1)
        }
        let aws = AWSCredentialSource(chain: awsChain, client: client, logger: logger)
        let handler = GatewayHandler(
            store: store, client: client, health: health, metrics: metrics, configuration: proxyConfig, logger: logger, awsCredentials: aws)
        let gateway = HTTPServer(name: "gateway", host: host, port: port, limits: proxyConfig.limits, handler: handler, logger: logger) {
            store.markDraining()
        }
        let admin = HTTPServer(name: "admin", host: host, port: adminPort, handler: AdminHandler(store: store, metrics: metrics, health: health), logger: logger)
        // Shut down in reverse order: leadership is released first (a peer takes over status at
        // once), then the gateway drains, then the admin port, then the watcher.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: source), .init(service: admin), .init(service: gateway)]
        if let leaderElection { services.append(.init(service: leaderElection)) }
        if case .webIdentity = awsChain { services.append(.init(service: aws)) }
        var groupConfig = ServiceGroupConfiguration(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        groupConfig.maximumGracefulShutdownDuration = drainTimeout.duration
        do {
            try await ServiceGroup(configuration: groupConfig).run()
        } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
    }
}

struct Validate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check manifests offline; exits non-zero with field-path errors.")

    @Argument(help: "Manifest files or directories.")
    var paths: [String]

    @Flag(help: "Print the compiled routing table.")
    var dump = false

    @Flag(help: "Treat problems found when compiling (a missing Secret, say) as errors too.")
    var strict = false

    func run() async throws {
        let snapshot = ManifestSource.read(paths: paths)
        if !snapshot.errors.isEmpty {
            for e in snapshot.errors { print("error: \(e)") }
            throw ExitCode(1)
        }
        let table = RouteCompiler.compile(snapshot.resources, options: CompileOptions(implicitGateway: true))
        let problems = table.status.problems + table.status.keysInClear.map(\.description)
        for p in problems { print("warning: \(p)") }
        if dump { print(table.dump(), terminator: "") }
        print("\(snapshot.resources.count) object(s) in \(snapshot.fileCount) file(s): valid\(problems.isEmpty ? "" : ", with \(problems.count) warning(s)")")
        if strict && !problems.isEmpty { throw ExitCode(1) }
    }
}

/// At top level `main()` resolves to the synchronous entry point; inside an async function the
/// async overload (needed for the async subcommands) is chosen.
func runGateway() async {
    await AIGateway.main(nil)
}

/// `--event-loops N`: the size of NIO's singleton event loop group, which serves clients and
/// providers and (below) runs Swift concurrency. The group is created before the arguments are
/// parsed, so the count is read from the raw arguments first; a missing or invalid value leaves the
/// default (one loop per core), and the parser then rejects an invalid one with a clear message.
enum EventLoopCount {
    static let maximum = 1024

    static func problem(_ count: Int) -> String? {
        (1...maximum).contains(count) ? nil : "must be between 1 and \(maximum), got \(count)"
    }

    /// The last `--event-loops N` or `--event-loops=N` before a `--`, if it is valid.
    static func requested(in arguments: [String]) -> Int? {
        var value: String?
        var i = 0
        while i < arguments.count, arguments[i] != "--" {
            if arguments[i] == "--event-loops", i + 1 < arguments.count {
                value = arguments[i + 1]
                i += 1
            } else if arguments[i].hasPrefix("--event-loops=") {
                value = String(arguments[i].dropFirst("--event-loops=".count))
            }
            i += 1
        }
        guard let value, let count = Int(value), problem(count) == nil else { return nil }
        return count
    }
}

if let count = EventLoopCount.requested(in: CommandLine.arguments) { NIOSingletons.groupLoopCountSuggestion = count }

// Run Swift concurrency on the NIO event loops: requests then hop between the server, the
// failover logic and the HTTP client without crossing thread pools.
let installedNIOExecutor = ProcessInfo.processInfo.environment["AIGW_NO_NIO_EXECUTOR"] == nil && NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
if ProcessInfo.processInfo.environment["AIGW_DEBUG_EXECUTOR"] != nil { print("NIO executor installed: \(installedNIOExecutor)") }

await runGateway()
