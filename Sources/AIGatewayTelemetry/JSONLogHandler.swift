import AIGatewayAPI
import Foundation
import Logging
import Synchronization

/// Writes one JSON object per line: `{"ts":…,"level":…,"label":…,"msg":…, metadata…}`.
/// Messages are constant; details travel as metadata (never secrets: callers log names, not values).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: LogOutput

    public init(label: String, output: LogOutput = .standardError) {
        self.label = label
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = "{\"ts\":"
        line += quoted(Self.timestamp())
        line += ",\"level\":\(quoted(event.level.rawValue)),\"label\":\(quoted(label)),\"msg\":\(quoted(event.message.description))"
        var merged = self.metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let m = event.metadata { merged.merge(m) { _, new in new } }
        for (k, v) in merged.sorted(by: { $0.key < $1.key }) {
            line += ",\(quoted(k)):\(render(v))"
        }
        line += "}\n"
        output.write(line)
    }

    private func render(_ v: Logger.Metadata.Value) -> String {
        switch v {
        case .string(let s): return quoted(s)
        case .stringConvertible(let c): return quoted(c.description)
        case .array(let a): return "[" + a.map(render).joined(separator: ",") + "]"
        case .dictionary(let d): return "{" + d.sorted(by: { $0.key < $1.key }).map { "\(quoted($0.key)):\(render($0.value))" }.joined(separator: ",") + "}"
        }
    }

    private func quoted(_ s: String) -> String { JSONValue.quoted(s) }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var tm = tm()
        gmtime_r(&t, &tm)
        let ms = Int(ts.tv_nsec) / 1_000_000
        func pad(_ n: Int32, _ w: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ms), 3))Z"
    }
}

/// Where log lines go; serialised so lines never interleave.
public final class LogOutput: Sendable {
    public static let standardError = LogOutput(fd: 2)
    public static let standardOutput = LogOutput(fd: 1)
    private let fd: Int32
    private let lock = Mutex(())

    public init(fd: Int32) { self.fd = fd }

    func write(_ line: String) {
        lock.withLock { _ in
            var bytes = Array(line.utf8)
            bytes.withUnsafeMutableBytes { buf in
                var off = 0
                while off < buf.count {
                    let n = Foundation.write(fd, buf.baseAddress! + off, buf.count - off)
                    if n <= 0 { break }
                    off += n
                }
            }
        }
    }
}

/// Sets up swift-log once for the process: JSON lines (the default when stderr is not a terminal,
/// as in a container) or swift-log's plain text.
public enum LoggingSetup {
    public enum Format: String, Sendable, CaseIterable {
        case json, text, auto
    }

    public static func bootstrap(format: Format, level: Logger.Level) {
        let useJSON: Bool
        switch format {
        case .json: useJSON = true
        case .text: useJSON = false
        case .auto: useJSON = isatty(2) == 0
        }
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = useJSON ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
