import AIGatewayAPI
import AIGatewayProviders

/// Fuzz target: the server-sent-event splitter the stream relay runs on every provider byte.
///
/// The first two input bytes choose two cut points; the rest is the stream. Fed whole or in three
/// pieces, the parser must produce the same events, their raw bytes must be exactly the input's
/// prefix they cover, and every `data` payload reads the same through the chunk reader as parsed.
public enum SSETarget {
    public static func run(_ input: [UInt8]) -> FuzzVerdict {
        guard input.count >= 2 else { return .ok }
        let stream = Array(input.dropFirst(2))
        let cut1 = stream.isEmpty ? 0 : Int(input[0]) % (stream.count + 1)
        let cut2 = stream.isEmpty ? 0 : max(cut1, Int(input[1]) % (stream.count + 1))
        let limit = 512
        let whole = feed([stream[...]], limit: limit)
        let pieces = feed([stream[..<cut1], stream[cut1..<cut2], stream[cut2...]], limit: limit)
        if whole.oversize != pieces.oversize {
            // A piece may cross the limit on its own before a separator arrives in the next one;
            // only the other way round is a bug.
            if whole.oversize { return .mismatch("whole input over the limit but pieces were not") }
            return .ok
        }
        if whole.oversize { return .ok }
        guard whole.events.map(\.raw) == pieces.events.map(\.raw), whole.events.map(\.data) == pieces.events.map(\.data) else {
            return .mismatch("events differ with the input split at \(cut1) and \(cut2)")
        }
        let covered = whole.events.flatMap(\.raw)
        guard covered.count <= stream.count, Array(stream[..<covered.count]) == covered else {
            return .mismatch("the events' bytes are not the input's prefix")
        }
        for e in whole.events + (whole.rest.map { [$0] } ?? []) {
            // The relay reads a chunk's facts from its bytes; they must be the parsed chunk's.
            if let data = e.data, ChunkFacts(json: data) != (try? JSONParser.parse(Array(data.utf8))).flatMap({ ChunkFacts(value: $0) }) {
                return .mismatch("the chunk reader and the parser disagree on an event's data")
            }
        }
        return .ok
    }

    private static func feed(_ parts: [ArraySlice<UInt8>], limit: Int) -> (events: [SSEEvent], rest: SSEEvent?, oversize: Bool) {
        var parser = SSEParser(maxEventBytes: limit)
        var events: [SSEEvent] = []
        for p in parts {
            do {
                events += try parser.feed(p)
            } catch {
                return (events, nil, true)
            }
        }
        return (events, parser.finish(), false)
    }
}
