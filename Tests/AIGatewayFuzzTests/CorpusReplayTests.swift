@testable import AIGatewayFuzz
import Foundation
import XCTest

/// Every seed of the fuzz corpus and every input a fuzzer once found (fuzz/regressions) goes
/// through its target on each test run: a finding stays fixed.
final class CorpusReplayTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../fuzz").standardized

    func inputs(_ target: String) throws -> [URL] {
        var found: [URL] = []
        for dir in ["corpus", "regressions"] {
            let url = Self.root.appendingPathComponent(dir).appendingPathComponent(target)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
            found += names.filter { !$0.hasPrefix(".") }.sorted().map { url.appendingPathComponent($0) }
        }
        return found
    }

    func replay(_ target: String) throws {
        let run = try XCTUnwrap(FuzzTargets.all[target])
        let files = try inputs(target)
        XCTAssertGreaterThanOrEqual(files.count, 3, "the \(target) corpus has seeds")
        for file in files {
            let data = try Data(contentsOf: file)
            XCTAssertEqual(run(Array(data)), .ok, file.lastPathComponent)
        }
    }

    func testJSONCorpus() throws { try replay("json") }
    func testSSECorpus() throws { try replay("sse") }
    func testManifestCorpus() throws { try replay("manifest") }
    func testHTTPCorpus() throws { try replay("http") }

    /// The differential check can fail: a value Foundation reads differently is reported.
    func testJSONDifferentialSeesADifference() {
        XCTAssertEqual(JSONTarget.run(Array(#"{"a":[1,2.5,"x",true,null]}"#.utf8)), .ok)
        XCTAssertEqual(JSONTarget.run(Array("[1,,]".utf8)), .ok, "both reject")
        XCTAssertEqual(JSONTarget.run(Array("[1,]".utf8)), .ok, "Foundation's trailing comma is a known leniency")
        XCTAssertFalse(JSONTarget.foundationIsLenient(Array("[1,,2]".utf8), at: 4))
        XCTAssertTrue(JSONTarget.same(.int(1), .double(1.0)))
        XCTAssertFalse(JSONTarget.same(.int(1), .bool(true)))
        XCTAssertFalse(JSONTarget.same(.object(["a": .int(1)]), .object(["a": .int(2)])))
    }

    /// The HTTP target answers a well-formed request, so an empty output is not mistaken for success.
    func testHTTPTargetAnswersRequests() throws {
        let notFound = try HTTPTarget.exchange(Array("\u{0}GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        XCTAssertTrue(notFound.starts(with: "HTTP/1.1 404".utf8), String(decoding: notFound, as: UTF8.self))
        let body = #"{"messages":[{"role":"user","content":"hi"}]}"#
        let missingSecret = try HTTPTarget.exchange(Array("\u{0}POST /model HTTP/1.1\r\nHost: x\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)".utf8))
        XCTAssertTrue(missingSecret.starts(with: "HTTP/1.1 5".utf8), String(decoding: missingSecret, as: UTF8.self))
        let garbage = try HTTPTarget.exchange(Array("\u{0}\u{1}\u{2} nonsense\r\n\r\n".utf8))
        XCTAssertTrue(garbage.starts(with: "HTTP/1.1 400".utf8), String(decoding: garbage, as: UTF8.self))
    }
}
