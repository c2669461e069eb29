// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "ai-gateway",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ai-gateway", targets: ["ai-gateway"]),
        .executable(name: "fake-provider", targets: ["fake-provider"]),
        .library(name: "AIGatewayTesting", targets: ["AIGatewayTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
    ],
    targets: [
        // Pure: resource types, decoding with field paths, validation. No I/O.
        .target(
            name: "AIGatewayAPI",
            dependencies: [.product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // Pure: compiles resources into an immutable routing table and matches requests.
        .target(
            name: "AIGatewayRouting",
            dependencies: ["AIGatewayAPI", "AIGatewayProviders"],
            swiftSettings: strict
        ),
        // Pure: how each provider is addressed, authenticated and classified.
        .target(
            name: "AIGatewayProviders",
            dependencies: ["AIGatewayAPI", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // Pure: the failover state machine, passive health and budgets.
        .target(
            name: "AIGatewayFailover",
            dependencies: ["AIGatewayRouting", "AIGatewayProviders"],
            swiftSettings: strict
        ),
        // Metrics and structured logging.
        .target(
            name: "AIGatewayTelemetry",
            dependencies: [
                "AIGatewayAPI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        // Where configuration comes from: manifest files on disk (standalone mode).
        .target(
            name: "AIGatewaySources",
            dependencies: [
                "AIGatewayAPI", "AIGatewayRouting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The data plane: SwiftNIO server, upstream calls, failover execution.
        .target(
            name: "AIGatewayProxy",
            dependencies: [
                "AIGatewayAPI", "AIGatewayRouting", "AIGatewayProviders", "AIGatewayFailover", "AIGatewayTelemetry",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Test support shared by tests, benchmarks and `make run`: an OpenAI-style fake provider.
        .target(
            name: "AIGatewayTesting",
            dependencies: [
                "AIGatewayAPI", "AIGatewayProviders",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // A thin C shim over libcurl (variadic curl_easy_setopt is not callable from Swift).
        .target(
            name: "CCurl",
            linkerSettings: [.linkedLibrary("curl")]
        ),
        // Kubernetes REST client over libcurl: kubeconfig, typed errors, list/watch, informers.
        .target(
            name: "AIGatewayKubernetes",
            dependencies: [
                "AIGatewayAPI", "CCurl",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The Kubernetes controller: informers over the API feed the same compiler and proxy.
        .target(
            name: "AIGatewayController",
            dependencies: [
                "AIGatewayAPI", "AIGatewayRouting", "AIGatewayKubernetes",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "ai-gateway",
            dependencies: [
                "AIGatewayAPI", "AIGatewayRouting", "AIGatewayProxy", "AIGatewaySources", "AIGatewayTelemetry",
                "AIGatewayController", "AIGatewayKubernetes",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Fuzz targets (JSON, SSE, manifests, the client-facing HTTP handler) and their driver:
        // `make fuzz` builds the driver with libFuzzer; the tests replay the corpus through them.
        .target(
            name: "AIGatewayFuzz",
            dependencies: [
                "AIGatewayAPI", "AIGatewayRouting", "AIGatewayFailover", "AIGatewayProviders", "AIGatewayProxy", "AIGatewayTelemetry",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "ai-gateway-fuzz",
            dependencies: ["AIGatewayFuzz"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "fake-provider",
            dependencies: [
                "AIGatewayTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AIGatewayAPITests",
            dependencies: ["AIGatewayAPI"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AIGatewayRoutingTests",
            dependencies: ["AIGatewayAPI", "AIGatewayRouting"],
            resources: [.copy("Golden")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AIGatewayProvidersTests",
            dependencies: ["AIGatewayProviders", "AIGatewayAPI"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AIGatewayFailoverTests",
            dependencies: ["AIGatewayFailover", "AIGatewayProviders", "AIGatewayRouting"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AIGatewayTestingTests",
            dependencies: [
                "AIGatewayTesting", "AIGatewayProviders", "AIGatewayAPI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AIGatewayFuzzTests",
            dependencies: ["AIGatewayFuzz"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AIGatewayKubernetesTests",
            dependencies: ["AIGatewayKubernetes"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AIGatewayEndToEndTests",
            dependencies: [
                "AIGatewayAPI", "AIGatewayRouting", "AIGatewayProxy", "AIGatewaySources", "AIGatewayTesting", "AIGatewayTelemetry",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
    ]
)
