import AIGatewayAPI
import AIGatewayProviders
import Testing

/// Stream translators must not care where the network splits their input. These helpers feed a
/// translator its input whole, cut at every byte boundary, and byte by byte, and return what it
/// emitted as text, so a test can check all ways agree and then check the one result.
enum StreamSplitting {
    /// One event as comparable text: its kind and bytes.
    static func render(_ e: StreamEvent) -> String {
        switch e.kind {
        case .chunk(let f):
            return "chunk(token=\(f.isToken),finished=\(f.finished),usageOnly=\(f.usageOnly),usage=\(f.usage.map { "\($0.input)/\($0.output)/\($0.cachedInput ?? -1)" } ?? "-")) "
                + String(decoding: e.bytes, as: UTF8.self)
        case .other: return "other " + String(decoding: e.bytes, as: UTF8.self)
        case .done: return "done"
        case .malformed: return "malformed"
        case .fault(let f): return "fault(\(f.failure)) \(f.message)"
        }
    }

    static func run<T: StreamTranslator>(_ make: () -> T, _ pieces: [[UInt8]]) -> [String] {
        var t = make()
        var out: [String] = []
        for p in pieces {
            out += p.withUnsafeBytes { t.feed($0) }.map(render)
        }
        out += t.finish().map(render)
        return out
    }

    /// Translates `input` whole, then checks that every two-piece split and the byte-by-byte feed
    /// give exactly the same events; returns them.
    static func translate<T: StreamTranslator>(_ input: String, sourceLocation: SourceLocation = #_sourceLocation, _ make: () -> T) -> [String] {
        let bytes = Array(input.utf8)
        let whole = run(make, [bytes])
        for cut in 1..<max(bytes.count, 1) {
            let split = run(make, [Array(bytes[..<cut]), Array(bytes[cut...])])
            if split != whole {
                Issue.record("split at byte \(cut) changed the output", sourceLocation: sourceLocation)
                return whole
            }
        }
        #expect(run(make, bytes.map { [$0] }) == whole, "byte by byte", sourceLocation: sourceLocation)
        return whole
    }

    /// The JSON of each `data:` chunk among the rendered events (parsed), in order.
    static func chunks(_ rendered: [String]) -> [JSONValue] {
        rendered.compactMap { line in
            guard line.hasPrefix("chunk("), let r = line.range(of: "data: ") else { return nil }
            return try? JSONParser.parse(Array(line[r.upperBound...].utf8))
        }
    }
}
