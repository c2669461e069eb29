@testable import AIGatewayProxy
import AIGatewayAPI
import AIGatewayProviders
import AIGatewayRouting
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// One streamed attempt driven by hand on an embedded channel, as the upstream client would.
struct StreamedAttempt {
    let channel = EmbeddedChannel()
    let sink: StreamSink
    let attempt: UpstreamAttempt
    /// What the attempt delivered, if anything yet.
    let result = ResultBox()

    final class ResultBox: @unchecked Sendable {
        // Touched only on the embedded loop (the test's thread).
        var value: AttemptResult?
    }

    init(continuationTextLimit: Int = 0, settings: BackendSettings = BackendSettings(), headArrived: Bool = true) {
        sink = StreamSink(writer: ResponseWriter(channel: channel, closeAfter: false, state: .init())) { $0 }
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions")
        head.headers.add(name: "host", value: "provider.test")
        let request = AttemptRequest(
            origin: UpstreamOrigin(tls: false, host: "provider.test", port: 80), head: head, body: ByteBuffer(), stream: true, stripUsageChunk: false,
            adapter: OpenAIAdapter(.openai), translation: TranslationContext(model: "gpt-4o", clientWantsUsage: false, continuation: false, created: 0, fallbackID: ""),
            settings: settings, attemptDeadline: .now + .seconds(60), maxResponseBytes: 1 << 20, continuationTextLimit: continuationTextLimit)
        let result = self.result
        attempt = UpstreamAttempt(request: request, loop: channel.eventLoop, sink: sink, logger: Logger(label: "test"), onFirstByte: { _ in }) { result.value = $0 }
        // The provider has answered with a stream's head (else the attempt still waits for one).
        guard headArrived else { return }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/event-stream")
        attempt.upstreamHead(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))
    }

    /// The provider sends one content chunk per token.
    func send(_ tokens: [String]) {
        var events = ""
        for t in tokens { events += #"data: {"choices":[{"index":0,"delta":{"content":"\#(t)"}}]}"# + "\n\n" }
        _ = attempt.upstreamBody(ByteBuffer(string: events))
    }

    var state: StreamProgress.State { sink.progress.state.withLock { $0 } }

    /// What reached the client so far.
    func relayed() throws -> String {
        var text = ""
        while let part = try channel.readOutbound(as: HTTPServerResponsePart.self) {
            if case .body(.byteBuffer(let b)) = part { text += String(buffer: b) }
        }
        return text
    }
}

@Suite("A stream's text is kept only for a continuation, and only up to a limit")
struct StreamTextTests {
    @Test("continuation off: the tokens are relayed and counted, and none of the text is kept")
    func notKeptWithoutContinuation() throws {
        let s = StreamedAttempt(continuationTextLimit: 0)
        s.send(["Hello", " there", " world"])
        #expect(s.state.tokens == 3)
        #expect(s.state.text.isEmpty)
        #expect(!s.state.textOverflowed)
        let relayed = try s.relayed()
        #expect(relayed.contains("Hello") && relayed.contains(" world"), "the client got the answer")
    }

    @Test("continuation on: the text is kept, for the prefill")
    func keptForContinuation() {
        let s = StreamedAttempt(continuationTextLimit: 1024)
        s.send(["Hello", " there", " world"])
        #expect(s.state.text == "Hello there world")
        #expect(!s.state.textOverflowed)
    }

    @Test("past the limit the text is let go and the answer is marked as not continuable; relaying goes on")
    func droppedPastTheLimit() throws {
        let s = StreamedAttempt(continuationTextLimit: 11)
        s.send(["Hello", " there"])
        #expect(s.state.text == "Hello there", "exactly at the limit is kept")
        s.send(["!"])
        #expect(s.state.text.isEmpty)
        #expect(s.state.textOverflowed)
        s.send([" more"])
        #expect(s.state.text.isEmpty, "nothing is kept once the limit was passed")
        #expect(s.state.tokens == 4)
        #expect(try s.relayed().contains(" more"))
    }

    @Test("the limit counts bytes, not characters")
    func bytesNotCharacters() {
        var state = StreamProgress.State()
        state.appendText("ééé", limit: 5)  // 6 bytes in UTF-8
        #expect(state.textOverflowed)
    }

    @Test("what each attempt keeps follows the Backend: nothing without continuation, the configured limit with it")
    func limitFollowsTheBackend() async throws {
        for continuation in [false, true] {
            let annotations = continuation ? ["ai-gateway.kgateway.dev/stream-continuation": "true"] : [:]
            var proxy = ProxyConfiguration()
            proxy.maxContinuationTextBytes = 4096
            try await withGateway(backendAnnotations: annotations, proxy: proxy) { h in
                let gateway = GatewayHandler(store: h.store, client: h.upstreamClient, health: h.health, metrics: h.metrics, configuration: proxy, logger: Logger(label: "test"))
                let table = h.store.current
                let rule = try #require(table.match(RequestFacts(method: "POST", uri: "/model", headers: [("host", "127.0.0.1")]))?.rule)
                let backend = try #require(table.backends.values.first)
                let entry = try #require(backend.priorities.first?.first)
                let chat = try ChatRequest(bytes: Array(Harness.question(stream: true).utf8))
                let job = GatewayHandler.FailoverJob(chat: chat, backend: backend, rule: rule, clientHeaders: HTTPHeaders(), requestID: "r")
                guard case .success(let request) = gateway.buildRequest(job: job, entry: entry, deadline: .now + .seconds(10), prefill: nil) else {
                    Issue.record("the request was not built")
                    return
                }
                #expect(request.continuationTextLimit == (continuation ? 4096 : 0))
            }
        }
    }

    @Test("continuation on, but the answer outgrew the text kept for it: the broken stream ends with the error event, no continuation is tried")
    func tooLongToContinue() async throws {
        let annotations = ["ai-gateway.kgateway.dev/stream-continuation": "true"]
        var proxy = ProxyConfiguration()
        proxy.maxContinuationTextBytes = 8  // fewer bytes than the 4 tokens sent before the cut
        try await withGateway(faults: ["gpt-4o": "cut-after=4"], backendAnnotations: annotations, proxy: proxy) { h in
            let r = try await h.send(body: Harness.question(stream: true))
            #expect(r.status == 200)
            let s = StreamResult(r.body)
            #expect(!s.done)
            #expect(s.error?["type"]?.stringValue == "upstream_stream_interrupted")
            #expect(h.providerModels == ["gpt-4o"], "no continuation request without the whole prefill")
        }
    }
}
