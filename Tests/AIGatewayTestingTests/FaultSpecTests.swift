import Foundation
import Testing

@testable import AIGatewayTesting

@Suite("FaultSpec parsing")
struct FaultSpecTests {
    @Test(
        "canonical specs parse and print back unchanged",
        arguments: [
            "ok",
            "status=503",
            "status=429,retry-after=2",
            "status=429,ratelimit-reset=500ms",
            "status=429,retry-after=1,ratelimit-reset=1m0s,code=rate_limit_exceeded,times=3,delay=50",
            "context-length",
            "content-filter",
            "unauthorized",
            "model-not-found",
            "bad-request",
            "reset",
            "silence",
            "slow-first-token=250",
            "cut-after=3",
            "stall-after=0",
            "malformed-event=2",
            "no-done",
            "no-prefill",
            "stream-error=3",
            "tool-call",
            "blocked,times=1",
            "reset,times=2",
            "ok,delay=100",
            "context-length,code=custom",
        ]
    )
    func roundTrip(_ text: String) throws {
        let spec = try FaultSpec(parsing: text)
        #expect(spec.description == text)
        #expect(try FaultSpec(parsing: spec.description) == spec)
    }

    @Test("parsed values")
    func parsedValues() throws {
        let spec = try FaultSpec(parsing: " times=2 , status=429,retry-after=7, ratelimit-reset=2s ,delay=10")
        #expect(spec.behavior == .status(429))
        #expect(spec.retryAfterSeconds == 7)
        #expect(spec.rateLimitReset == "2s")
        #expect(spec.times == 2)
        #expect(spec.delayMilliseconds == 10)
        #expect(spec.description == "status=429,retry-after=7,ratelimit-reset=2s,times=2,delay=10")

        #expect(try FaultSpec(parsing: "cut-after=4").behavior == .cutAfter(tokens: 4))
        #expect(try FaultSpec(parsing: "STALL-AFTER=1").behavior == .stallAfter(tokens: 1))
        #expect(try FaultSpec(parsing: "malformed-event=0").behavior == .malformedEvent(afterTokens: 0))
        #expect(try FaultSpec(parsing: "slow-first-token=9").behavior == .slowFirstToken(milliseconds: 9))
        // Modifiers alone mean a healthy model with that modifier.
        #expect(try FaultSpec(parsing: "delay=5") == FaultSpec(.ok, delayMilliseconds: 5))
        #expect(try FaultSpec(parsing: "status=500,ratelimit-reset=1.5s").rateLimitReset == "1.5s")
    }

    @Test(
        "invalid specs throw an error naming the bad part",
        arguments: [
            ("", "empty"),
            ("   ", "empty"),
            ("status", "`status` needs a value"),
            ("status=", "`status=` needs a value"),
            ("status=abc", "status=abc"),
            ("status=200", "status=200"),
            ("status=600", "status=600"),
            ("bogus", "unknown element `bogus`"),
            ("status=500,frobnicate=1", "unknown element `frobnicate=1`"),
            ("reset=1", "`reset` takes no value"),
            ("cut-after=-1", "cut-after=-1"),
            ("cut-after", "`cut-after` needs a value"),
            ("reset,silence", "more than one behaviour: `reset` and `silence`"),
            ("status=500,status=503", "`status` is given more than once"),
            ("retry-after=2", "`retry-after` only applies to error behaviours"),
            ("cut-after=3,code=x", "`code` only applies to error behaviours"),
            ("silence,ratelimit-reset=2s", "`ratelimit-reset` only applies"),
            ("status=429,ratelimit-reset=2x", "ratelimit-reset=2x"),
            ("status=429,ratelimit-reset=s", "ratelimit-reset=s"),
            ("times=0", "times=0"),
            ("delay=soon", "delay=soon"),
            ("status=429,,times=1", "empty element"),
            ("=3", "no key"),
        ]
    )
    func invalid(_ text: String, _ expectedFragment: String) {
        #expect {
            try FaultSpec(parsing: text)
        } throws: { error in
            guard let error = error as? FaultSpecParseError else { return false }
            return error.spec == text && error.description.contains(expectedFragment)
        }
    }

    @Test("Codable uses the textual form")
    func codable() throws {
        let specs = ["gpt-4o": try FaultSpec(parsing: "status=429,retry-after=2,times=1")]
        let data = try JSONEncoder().encode(specs)
        #expect(String(decoding: data, as: UTF8.self) == #"{"gpt-4o":"status=429,retry-after=2,times=1"}"#)
        #expect(try JSONDecoder().decode([String: FaultSpec].self, from: data) == specs)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([FaultSpec].self, from: Data(#"["status=1"]"#.utf8))
        }
    }

    @Test("answer text is deterministic and tokenised on word boundaries")
    func answerText() {
        #expect(
            FakeProvider.answerText(model: "any", tokens: 12)
                == "Kubernetes is an open-source system for automating deployment, scaling, and management of"
        )
        #expect(FakeProvider.answerText(model: "any", tokens: 0) == "")
        #expect(FakeProvider.answerText(model: "a", tokens: 40) == FakeProvider.answerText(model: "b", tokens: 40))
        let tokens = AnswerText.tokens(count: 40)
        #expect(tokens.count == 40)
        #expect(tokens.joined() == FakeProvider.answerText(model: "x", tokens: 40))
        #expect(tokens[0] == "Kubernetes" && tokens[1] == " is")
    }

    @Test("prefill remainder splits at the prefill boundary")
    func remainder() {
        let tokens = AnswerText.tokens(count: 5)  // Kubernetes| is| an| open-source| system
        #expect(AnswerText.remainder(of: tokens, after: "") == tokens)
        #expect(AnswerText.remainder(of: tokens, after: "Kubernetes is") == [" an", " open-source", " system"])
        #expect(AnswerText.remainder(of: tokens, after: "Kubernetes is an ") == ["open-source", " system"])
        #expect(AnswerText.remainder(of: tokens, after: "Kuber") == ["netes", " is", " an", " open-source", " system"])
        #expect(AnswerText.remainder(of: tokens, after: tokens.joined()) == [])
        #expect(AnswerText.remainder(of: tokens, after: "Docker is") == nil)
        #expect(AnswerText.remainder(of: tokens, after: tokens.joined() + " more") == nil)
    }

    @Test("recorded requests keep only the most recent entries")
    func ringBuffer() {
        var ring = RingBuffer<Int>(capacity: 3)
        for i in 1...5 { ring.append(i) }
        #expect(ring.elements == [3, 4, 5])
        ring.removeAll()
        #expect(ring.elements == [])
        ring.append(9)
        #expect(ring.elements == [9])
    }
}
