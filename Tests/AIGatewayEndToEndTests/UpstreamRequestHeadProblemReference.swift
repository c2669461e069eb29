@testable import AIGatewayProxy
import AIGatewayProviders
import NIOCore
import Testing

/// `UpstreamRequestHead.problem()` as it was before it checked the parts in one pass with the byte
/// classes at hand: `RequestHeadCheck` part by part, kept verbatim as the reference.
private func problemReference(_ h: UpstreamRequestHead) -> String? {
    if let p = RequestHeadCheck.lineProblem(method: h.method, uri: h.path) { return p }
    if let p = RequestHeadCheck.fieldProblem(name: "host", value: h.host) { return p }
    for f in h.provider {
        if let p = RequestHeadCheck.fieldProblem(name: f.name, value: f.value) { return p }
    }
    return RequestHeadCheck.fieldProblem(name: "x-request-id", value: h.requestID)
}

@Suite("UpstreamRequestHead.problem against its reference")
struct UpstreamRequestHeadProblemTests {
    /// Short strings over bytes of every class the check tells apart: token characters, other
    /// visible ASCII, space, tab, CR, LF, other controls, DEL, non-ASCII; often empty.
    static func part(_ rng: inout SeededRandom) -> String {
        let pieces = ["a", "Z", "0", "-", "!", "/", "?", "=", "\"", "(", ":", " ", "\t", "\r", "\n", "\u{0}", "\u{1F}", "\u{7F}", "é", "€"]
        // Rarely empty; mostly clean, so that heads with one bad part are common.
        let length = Int.random(in: 0..<12, using: &rng) == 0 ? 0 : Int.random(in: 1...4, using: &rng)
        let clean = Int.random(in: 0..<12, using: &rng) > 0
        return (0..<length).map { _ in clean ? ["a", "Z", "0", "-", "/"].randomElement(using: &rng)! : pieces.randomElement(using: &rng)! }.joined()
    }

    @Test("the same answer as RequestHeadCheck part by part, over generated heads")
    func generated() async throws {
        var rng = SeededRandom(state: 9)
        let client = try RequestHead.parse(ByteBuffer(string: "POST / HTTP/1.1\r\nX-Ok: fine\r\n\r\n"))
        var refused = 0
        for round in 0..<20_000 {
            // Leave the test pool's threads to the other suites now and then (see the note in
            // IncrementalCompilerTests): their waits would otherwise time out on a 2-core machine.
            if round % 500 == 0 { await Task.yield() }
            let provider = (0..<Int.random(in: 0...3, using: &rng)).map { _ in UpstreamTarget.HeaderField(name: Self.part(&rng), value: Self.part(&rng)) }
            let head = UpstreamRequestHead(
                method: Self.part(&rng), path: Self.part(&rng), host: Self.part(&rng), client: client, policy: .gatewayKey, provider: provider,
                requestID: Self.part(&rng), contentLength: 0)
            let expected = problemReference(head)
            #expect(head.problem() == expected, "\(head.method) \(head.path) \(head.host) \(provider) \(head.requestID)")
            if expected != nil { refused += 1 }
        }
        // Both answers occur often.
        #expect(refused > 2_000 && refused < 18_000)
    }

    @Test("a body written after the head in its buffer: the same request as with a buffer of its own")
    func bodyInPlace() async throws {
        var rng = SeededRandom(state: 11)
        let client = try RequestHead.parse(ByteBuffer(string: "POST / HTTP/1.1\r\nX-Ok: fine\r\nHost: c\r\n\r\n"))
        for round in 0..<2_000 {
            // Leave the test pool's threads to the other suites now and then (see the note in
            // IncrementalCompilerTests): their waits would otherwise time out on a 2-core machine.
            if round % 200 == 0 { await Task.yield() }
            let size = [0, 1, 63, Int.random(in: 0...RequestEncoder.gatherLimit, using: &rng), RequestEncoder.gatherLimit][round % 5]
            let body = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let provider = (0..<Int.random(in: 0...2, using: &rng)).map { _ in UpstreamTarget.HeaderField(name: Self.part(&rng), value: Self.part(&rng)) }
            let head = UpstreamRequestHead(
                method: round % 7 == 0 ? "HEAD" : "POST", path: "/" + Self.part(&rng), host: Self.part(&rng), client: client, policy: .gatewayKey,
                provider: provider, requestID: "r", contentLength: size)
            let own = UpstreamRequestBytes(head, body: ByteBuffer(bytes: body))
            // Written in two pieces, as the chat body is.
            let inPlace = UpstreamRequestBytes(head, bodyCount: size) { out in
                out.writeBytes(body[..<(size / 2)])
                out.writeBytes(body[(size / 2)...])
            }
            #expect(own.largeBody == nil && inPlace.largeBody == nil)
            #expect(inPlace.bytes == own.bytes)
            #expect(inPlace.problem == own.problem && inPlace.bodylessAnswer == own.bodylessAnswer)
        }
    }
}
