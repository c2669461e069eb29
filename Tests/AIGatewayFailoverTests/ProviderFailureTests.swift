import AIGatewayFailover
import AIGatewayProviders
import Testing

@Suite("Provider failures and candidates that cannot serve a request")
struct ProviderFailureTests {
    @Test("a candidate that cannot honour a parameter is skipped for this request, and the next answers")
    func incompatibleMovesOn() {
        var h = Harness()
        _ = h.begin()
        let next = h.report(.incompatible(parameter: "n", reason: "one choice only"))
        #expect(h.model(next) == "gpt-4.0-turbo")
        #expect(!h.isRetry(next))
        #expect(h.report(.success) == .done)
        #expect(h.trail == ["gpt-4o=unsupported", "gpt-4.0-turbo=ok"])
    }

    @Test("when no candidate could be tried because of a parameter, the client gets a 400 naming it")
    func noneCan() {
        var h = Harness()
        _ = h.begin()
        _ = h.report(.incompatible(parameter: "logprobs", reason: "a"))
        _ = h.report(.incompatible(parameter: "logprobs", reason: "b"))
        guard case .fail(let f) = h.report(.incompatible(parameter: "n", reason: "c")) else {
            Issue.record("expected a failure")
            return
        }
        #expect(f.status == 400)
        #expect(f.code == "unsupported_parameter")
        #expect(f.message.contains("'logprobs', 'n'"))
    }

    @Test("a parameter refused by some and a failure of the others is the others' failure")
    func mixed() {
        var h = Harness()
        _ = h.begin()
        var action = h.report(.incompatible(parameter: "n", reason: "a"))
        for _ in 0..<10 {
            if case .fail = action { break }
            action = h.report(.serverError(503))
        }
        guard case .fail(let f) = action else {
            Issue.record("expected a failure")
            return
        }
        #expect(f.status == 502)
        #expect(h.trail.first == "gpt-4o=unsupported")
    }

    @Test(
        "provider failures map to the engine's outcomes",
        arguments: [
            (ProviderFailure.overloaded(status: 529), AttemptOutcome.serverError(529)),
            (.rateLimited(status: 429, retryAfter: .seconds(2)), .rateLimited(retryAfter: .seconds(2))),
            (.quotaExhausted(status: 429), .misconfigured(429)),
            (.contextLengthExceeded(status: 400), .contextLengthExceeded(400)),
            (.contentFiltered(status: 400), .contentFiltered(400)),
            (.misconfigured(status: 401), .misconfigured(401)),
            (.prefillRejected(status: 400), .clientError(400)),
            (.invalidRequest(status: 422), .clientError(422)),
            (.malformedResponse, .truncated),
        ])
    func mapping(failure: ProviderFailure, outcome: AttemptOutcome) {
        #expect(AttemptOutcome(failure) == outcome)
    }

    @Test("529 is not a retry code: the next candidate at once")
    func overloadedMovesOn() {
        var h = Harness()
        _ = h.begin()
        let next = h.report(AttemptOutcome(.overloaded(status: 529)))
        #expect(h.model(next) == "gpt-4.0-turbo")
    }

    @Test("OpenAI's insufficient_quota is not retried")
    func insufficientQuota() {
        let body = Array(#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#.utf8)
        #expect(AttemptOutcome.classify(status: 429, headers: [], body: body, now: .now) == .misconfigured(429))
    }
}
