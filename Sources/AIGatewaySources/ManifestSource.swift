import AIGatewayAPI
import AIGatewayRouting
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Manifests read from files and directories.
public struct ManifestSnapshot: Sendable {
    public var resources: ResourceSet
    public var errors: [String]
    public var ignoredKinds: [String]
    public var fileCount: Int
}

/// Standalone mode's configuration: manifest files on disk, watched. An edit takes effect without a
/// restart; a broken edit keeps the last good configuration and says why.
public final class ManifestSource: Service, Sendable {
    public let paths: [String]
    public let pollInterval: Duration
    let sink: any ConfigurationSink
    let logger: Logger
    private let loadedFingerprint = Mutex<Int?>(nil)

    public init(paths: [String], pollInterval: Duration = .seconds(1), sink: any ConfigurationSink, logger: Logger) {
        self.paths = paths
        self.pollInterval = pollInterval
        self.sink = sink
        self.logger = logger
    }

    /// Reads every manifest under `paths` now.
    public static func read(paths: [String]) -> ManifestSnapshot {
        var errors: [String] = []
        var documents: [ManifestDocument] = []
        var files = 0
        for path in paths {
            do {
                let list = try ManifestLoader.files(at: path)
                files += list.count
                // An empty directory is an empty configuration: every route is gone (404).
                documents += try ManifestLoader.load(paths: [path])
            } catch {
                errors.append(error.description)
            }
        }
        errors += documents.errorLines
        errors += documents.duplicateLines
        let ignored = documents.compactMap { doc -> String? in
            if case .ignored(let v, let k) = doc.outcome { return "\(doc.source): \(k) (\(v))" }
            return nil
        }
        return ManifestSnapshot(resources: ResourceSet(documents.resources), errors: errors, ignoredKinds: ignored, fileCount: files)
    }

    /// A cheap fingerprint of the files' names and contents, to notice any change.
    static func fingerprint(paths: [String]) -> Int {
        var hasher = Hasher()
        for path in paths {
            guard let files = try? ManifestLoader.files(at: path) else {
                hasher.combine(path)
                hasher.combine(-1)
                continue
            }
            for f in files {
                hasher.combine(f)
                // Data's own hash looks at a prefix only; feed every byte.
                let data = FileManager.default.contents(atPath: f) ?? Data()
                hasher.combine(data.count)
                data.withUnsafeBytes { hasher.combine(bytes: $0) }
            }
        }
        return hasher.finalize()
    }

    /// Loads once; throws with every error when the first load is not valid.
    public func loadInitial() throws -> Int {
        let fp = Self.fingerprint(paths: paths)
        let snapshot = Self.read(paths: paths)
        guard snapshot.errors.isEmpty else {
            throw InvalidConfiguration(errors: snapshot.errors)
        }
        for i in snapshot.ignoredKinds { logger.debug("ignoring object of a kind the gateway does not use", metadata: ["object": "\(i)"]) }
        loadedFingerprint.withLock { $0 = fp }
        let problems = sink.apply(snapshot.resources, origin: "initial").problems
        for p in problems { logger.warning("configuration problem", metadata: ["problem": "\(p)"]) }
        return fp
    }

    public struct InvalidConfiguration: Error, CustomStringConvertible {
        public var errors: [String]
        public var description: String { "invalid configuration:\n" + errors.map { "  " + $0 }.joined(separator: "\n") }
    }

    /// Watches the files until cancelled or shut down. Call `loadInitial()` first.
    public func run() async throws {
        let initial = loadedFingerprint.withLock { $0 } ?? Self.fingerprint(paths: paths)
        let stopping = Mutex(false)
        await withGracefulShutdownHandler {
            var last = initial
            var lastRejected: Int?
            while !Task.isCancelled && !stopping.withLock({ $0 }) {
                do {
                    try await Task.sleep(for: self.pollInterval)
                } catch {
                    return
                }
                let fp = Self.fingerprint(paths: self.paths)
                guard fp != last, fp != lastRejected else { continue }
                let snapshot = Self.read(paths: self.paths)
                if !snapshot.errors.isEmpty {
                    lastRejected = fp
                    self.sink.rejected(snapshot.errors, origin: "reload")
                    continue
                }
                last = fp
                lastRejected = nil
                let problems = self.sink.apply(snapshot.resources, origin: "reload").problems
                for p in problems { self.logger.warning("configuration problem", metadata: ["problem": "\(p)"]) }
            }
        } onGracefulShutdown: {
            stopping.withLock { $0 = true }
        }
    }
}
