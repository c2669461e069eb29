import Foundation
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One connection of the fake provider. Lives on its channel's event loop; all state is loop-confined.
/// Sits behind `HTTPServerPipelineHandler`, so at most one request is being answered at a time.
final class FakeProviderHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// How a streamed answer misbehaves.
    private enum StreamFault {
        case none
        case cut(after: Int)
        case stall(after: Int)
        case malformed(after: Int)
        case error(after: Int)
        case noDone
    }

    /// How a non-streamed answer misbehaves.
    private enum BodyFault {
        case none
        case cutHalf
        case stallHalf
        case malformed
    }

    private struct Answer {
        var format: any FakeAnswerFormat
        var content: FakeAnswerContent
        var stream: Bool
        var firstTokenDelayMilliseconds: Int
        var streamFault: StreamFault
        var bodyFault: BodyFault
    }

    private enum Action {
        case error(ProviderError)
        case reset
        case silence
        case answer(Answer)
    }

    private struct StreamProgress {
        var format: any FakeAnswerFormat
        var content: FakeAnswerContent
        var fault: StreamFault
        var keepAlive: Bool
        var sent = 0
        var tokenDue: Bool
        var malformedEmitted = false
        var waitingForWritability = false
    }

    private let provider: FakeProvider
    private var context: ChannelHandlerContext?
    private var requestHead: HTTPRequestHead?
    private var requestBody: ByteBuffer?
    private var stream: StreamProgress?
    /// Events not yet written: zero-interval tokens are coalesced into one chunk per flush.
    private var pendingOutput: ByteBuffer?
    private var timer: Scheduled<Void>?
    /// Set once the connection must not answer anything more (silence, stall, cut, close).
    private var abandoned = false

    /// Output is flushed once this many bytes are pending, so back-pressure is seen early.
    private static let flushThreshold = 16 * 1024

    init(provider: FakeProvider) {
        self.provider = provider
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.tearDown()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.tearDown()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, self.stream?.waitingForWritability == true {
            self.stream?.waitingForWritability = false
            self.pump()
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.tearDown()
        context.close(promise: nil)
    }

    private func tearDown() {
        self.abandoned = true
        self.timer?.cancel()
        self.timer = nil
        self.stream = nil
        self.pendingOutput = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            guard !self.abandoned else { return }
            self.requestHead = head
            self.requestBody = nil
            if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                context.writeAndFlush(
                    self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))),
                    promise: nil
                )
            }
        case .body(var chunk):
            guard !self.abandoned, self.requestHead != nil else { return }
            if self.requestBody == nil {
                self.requestBody = chunk
            } else {
                self.requestBody!.writeBuffer(&chunk)
            }
        case .end:
            guard !self.abandoned, let head = self.requestHead else { return }
            let body = self.requestBody
            self.requestHead = nil
            self.requestBody = nil
            self.handle(head: head, body: body, context: context)
        }
    }

    // MARK: Requests

    /// The native APIs the fake speaks, first match wins. A new provider's API goes in its own
    /// file and gets one line here.
    static let nativeAPIs: [any FakeNativeAPI] = [
        OpenAIFakeAPI(),
        AnthropicFakeAPI(),
        FakeGoogleWire.API(),
        BedrockFakeAPI(),
    ]

    private func handle(head: HTTPRequestHead, body: ByteBuffer?, context: ChannelHandlerContext) {
        let uri = head.uri
        let path = uri.firstIndex(of: "?").map { String(uri[..<$0]) } ?? uri
        let query = uri.firstIndex(of: "?").map { String(uri[uri.index(after: $0)...]) } ?? ""
        if path == "/_fake" || path.hasPrefix("/_fake/") {
            self.handleControl(head: head, path: path, body: body, context: context)
            return
        }
        let keepAlive = head.isKeepAlive
        let api = Self.nativeAPIs.first { $0.matches(method: head.method, path: path) }
        let read = api?.read(FakeHTTPRequest(head: head, path: path, query: query, body: body), provider: self.provider)

        if self.provider.configuration.recordRequests {
            var headers: [[String]] = []
            headers.reserveCapacity(head.headers.count)
            for (name, value) in head.headers {
                headers.append([name.lowercased(), value])
            }
            self.provider.record(
                RecordedRequest(
                    method: head.method.rawValue,
                    path: uri,
                    headers: headers,
                    model: read?.model,
                    stream: read?.stream ?? false,
                    body: body.map { String(buffer: $0) } ?? ""
                )
            )
        }

        if read == nil, let sts = FakeSTS.answer(method: head.method, path: path, body: body, provider: self.provider) {
            self.sendFull(status: HTTPResponseStatus(statusCode: sts.status), contentType: "text/xml", body: sts.body, keepAlive: keepAlive, context: context)
            return
        }
        guard let read else {
            self.send(error: .notFound(method: head.method.rawValue, path: path), keepAlive: keepAlive, context: context)
            return
        }
        let request: FakeNativeRequest
        switch read.outcome {
        case .reject(let error):
            self.send(error: error, keepAlive: keepAlive, context: context)
            return
        case .answer(let r):
            request = r
        }
        guard let model = read.model else {
            self.send(error: .missingModel(), keepAlive: keepAlive, context: context)
            return
        }

        let fault = self.provider.takeFault(forModel: model)
        if let fault {
            self.provider.logger.debug(
                "applying fault",
                metadata: ["model": "\(model)", "fault": "\(fault)"]
            )
        }
        let action = self.action(for: request, model: model, stream: read.stream, fault: fault)
        self.after(milliseconds: fault?.delayMilliseconds ?? 0) { [self] in
            self.perform(action, keepAlive: keepAlive)
        }
    }

    private func action(for request: FakeNativeRequest, model: String, stream: Bool, fault: FaultSpec?) -> Action {
        var tokens = self.provider.answerTokens
        if let prefill = request.prefill, let remainder = AnswerText.remainder(of: tokens, after: prefill) {
            tokens = remainder
        }
        var answer = Answer(
            format: request.format,
            content: FakeAnswerContent(kind: .text, tokens: tokens, promptTokens: request.promptTokens),
            stream: stream,
            firstTokenDelayMilliseconds: 0,
            streamFault: .none,
            bodyFault: .none
        )
        guard let fault else { return .answer(answer) }
        switch fault.behavior {
        case .ok:
            break
        case .status, .contextLength, .contentFilter, .unauthorized, .modelNotFound, .badRequest:
            return .error(request.errorForFault(fault, model, request.promptTokens))
        case .reset:
            return .reset
        case .silence:
            return .silence
        case .slowFirstToken(let milliseconds):
            answer.firstTokenDelayMilliseconds = milliseconds
        case .cutAfter(let n):
            answer.streamFault = .cut(after: n)
            answer.bodyFault = .cutHalf
        case .stallAfter(let n):
            answer.streamFault = .stall(after: n)
            answer.bodyFault = .stallHalf
        case .malformedEvent(let n):
            answer.streamFault = .malformed(after: n)
            answer.bodyFault = .malformed
        case .streamError(let n):
            // Without a stream, the same trouble is the API's overloaded error.
            guard stream else { return .error(request.errorForFault(fault, model, request.promptTokens)) }
            answer.streamFault = .error(after: n)
        case .noDone:
            answer.streamFault = .noDone
        case .noPrefill:
            if request.prefill != nil { return .error(request.errorForFault(fault, model, request.promptTokens)) }
        case .toolCall:
            let name = request.toolNames.first ?? "get_weather"
            answer.content.kind = .toolCall(id: "call_fake_\(self.provider.nextResponseID())", name: name, fragments: FakeToolCall.argumentFragments)
            answer.content.tokens = []
        case .blocked:
            answer.content.kind = .blocked
            answer.content.tokens = []
        }
        return .answer(answer)
    }

    private func perform(_ action: Action, keepAlive: Bool) {
        guard let context = self.context, !self.abandoned else { return }
        switch action {
        case .error(let error):
            self.send(error: error, keepAlive: keepAlive, context: context)
        case .reset:
            self.resetConnection(context: context)
        case .silence:
            self.abandoned = true
        case .answer(let answer) where answer.stream:
            self.startStream(answer, keepAlive: keepAlive, context: context)
        case .answer(let answer):
            self.after(milliseconds: answer.firstTokenDelayMilliseconds) { [self] in
                guard let context = self.context, !self.abandoned else { return }
                self.sendCompletion(answer, keepAlive: keepAlive, context: context)
            }
        }
    }

    /// Runs `body` now, or after `milliseconds` on the event loop (cancelled if the connection goes away).
    private func after(milliseconds: Int, _ body: @escaping () -> Void) {
        guard milliseconds > 0, let context = self.context else {
            body()
            return
        }
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(milliseconds))) {
            [self] in
            self.timer = nil
            body()
        }
    }

    // MARK: Plain responses

    private func send(error: ProviderError, keepAlive: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        for (name, value) in error.extraHeaders {
            headers.add(name: name, value: value)
        }
        self.sendFull(
            status: HTTPResponseStatus(statusCode: error.status),
            contentType: "application/json",
            extraHeaders: headers,
            body: error.body,
            keepAlive: keepAlive,
            context: context
        )
    }

    private func sendFull(
        status: HTTPResponseStatus,
        contentType: String,
        extraHeaders: HTTPHeaders = [:],
        body: String,
        keepAlive: Bool,
        context: ChannelHandlerContext
    ) {
        let buffer = context.channel.allocator.buffer(string: body)
        var headers = extraHeaders
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(buffer.readableBytes))
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        self.finishResponse(keepAlive: keepAlive, context: context)
    }

    /// Writes the end of the response; the pipelining handler may deliver the next request from inside this call.
    private func finishResponse(keepAlive: Bool, context: ChannelHandlerContext) {
        if keepAlive {
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            self.abandoned = true
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }

    private func sendCompletion(_ answer: Answer, keepAlive: Bool, context: ChannelHandlerContext) {
        switch answer.bodyFault {
        case .none:
            var headers = HTTPHeaders()
            for (name, value) in answer.format.responseHeaders { headers.add(name: name, value: value) }
            self.sendFull(
                status: .ok,
                contentType: "application/json",
                extraHeaders: headers,
                body: String(decoding: answer.format.completion(answer.content), as: UTF8.self),
                keepAlive: keepAlive,
                context: context
            )
        case .malformed:
            self.sendFull(status: .ok, contentType: "application/json", body: "{\"choices\": [", keepAlive: keepAlive, context: context)
        case .cutHalf, .stallHalf:
            var buffer = context.channel.allocator.buffer(bytes: answer.format.completion(answer.content))
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(buffer.readableBytes))
            let half = buffer.readSlice(length: buffer.readableBytes / 2)!
            context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            let written = context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(half))))
            self.abandoned = true
            if case .cutHalf = answer.bodyFault {
                let channel = context.channel
                written.whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }

    // MARK: Streaming

    private func startStream(_ answer: Answer, keepAlive: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: answer.format.streamContentType)
        for (name, value) in answer.format.responseHeaders { headers.add(name: name, value: value) }
        headers.add(name: "cache-control", value: "no-cache")
        headers.add(name: "transfer-encoding", value: "chunked")
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        self.emit(answer.format.streamStart(answer.content), context: context)
        self.flushOutput(context: context)

        let firstTokenDelay = answer.firstTokenDelayMilliseconds
        self.stream = StreamProgress(
            format: answer.format,
            content: answer.content,
            fault: answer.streamFault,
            keepAlive: keepAlive,
            tokenDue: firstTokenDelay == 0
        )
        if firstTokenDelay > 0 {
            self.after(milliseconds: firstTokenDelay) { [self] in
                self.stream?.tokenDue = true
                self.pump()
            }
        } else {
            self.pump()
        }
    }

    /// Sends what the stream can send now; returns when it must wait (timer, writability) or is over.
    private func pump() {
        guard let context = self.context, !self.abandoned, var progress = self.stream else { return }
        while true {
            let available = progress.content.tokens.count
            switch progress.fault {
            case .cut(let n) where progress.sent >= min(n, available):
                self.stream = nil
                self.abandoned = true
                let channel = context.channel
                self.flushOutput(context: context).whenComplete { _ in channel.close(promise: nil) }
                return
            case .stall(let n) where progress.sent >= min(n, available):
                self.stream = nil
                self.abandoned = true
                self.flushOutput(context: context)
                return
            case .malformed(let n) where !progress.malformedEmitted && progress.sent >= min(n, available):
                progress.malformedEmitted = true
                self.emit(progress.format.malformedEvent, context: context)
            case .error(let n) where progress.sent >= min(n, available):
                // The API's error event, then the end of the response (as the real APIs do).
                self.stream = nil
                self.emit(progress.format.streamErrorEvent(), context: context)
                if let output = self.pendingOutput.take() {
                    context.write(self.wrapOutboundOut(.body(.byteBuffer(output))), promise: nil)
                }
                self.finishResponse(keepAlive: progress.keepAlive, context: context)
                return
            default:
                break
            }

            if progress.sent >= available {
                self.stream = nil
                if case .toolCall(let id, let name, let fragments) = progress.content.kind {
                    self.emit(progress.format.toolCallEvents(id: id, name: name, fragments: fragments), context: context)
                }
                var done = true
                if case .noDone = progress.fault { done = false }
                self.emit(progress.format.streamEnd(progress.content, sentTokens: progress.sent, done: done), context: context)
                if let output = self.pendingOutput.take() {
                    context.write(self.wrapOutboundOut(.body(.byteBuffer(output))), promise: nil)
                }
                self.finishResponse(keepAlive: progress.keepAlive, context: context)
                return
            }

            if (self.pendingOutput?.readableBytes ?? 0) >= Self.flushThreshold {
                self.flushOutput(context: context)
            }
            if !context.channel.isWritable {
                progress.waitingForWritability = true
                self.stream = progress
                self.flushOutput(context: context)
                return
            }
            if !progress.tokenDue {
                self.stream = progress
                self.flushOutput(context: context)
                self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: self.provider.tokenInterval) { [self] in
                    self.timer = nil
                    self.stream?.tokenDue = true
                    self.pump()
                }
                return
            }
            self.emit(progress.format.textEvent(progress.content.tokens[progress.sent], index: progress.sent), context: context)
            progress.sent += 1
            progress.tokenDue = self.provider.tokenInterval <= .zero
        }
    }

    private func emit(_ event: [UInt8], context: ChannelHandlerContext) {
        if self.pendingOutput == nil {
            self.pendingOutput = context.channel.allocator.buffer(capacity: max(512, event.count))
        }
        self.pendingOutput!.writeBytes(event)
    }

    /// Writes the pending events as one chunk and flushes.
    @discardableResult
    private func flushOutput(context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        guard let output = self.pendingOutput.take() else {
            context.flush()
            return context.eventLoop.makeSucceededVoidFuture()
        }
        return context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(output))))
    }

    // MARK: Reset

    /// Closes with SO_LINGER {on, 0}, which makes the kernel send RST instead of FIN.
    private func resetConnection(context: ChannelHandlerContext) {
        self.abandoned = true
        let channel = context.channel
        guard let options = channel as? any SocketOptionProvider else {
            channel.close(promise: nil)
            return
        }
        options.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    // MARK: Control endpoints

    private func handleControl(head: HTTPRequestHead, path: String, body: ByteBuffer?, context: ChannelHandlerContext) {
        let keepAlive = head.isKeepAlive
        func reply(_ status: HTTPResponseStatus, _ json: String) {
            self.sendFull(status: status, contentType: "application/json", body: json, keepAlive: keepAlive, context: context)
        }
        let faultsPrefix = "/_fake/faults/"
        switch (head.method, path) {
        case (.GET, "/_fake/health"):
            reply(.ok, "{\"status\":\"ok\"}")
        case (.GET, "/_fake/requests"):
            do {
                let data = try JSONEncoder().encode(self.provider.recordedRequests())
                reply(.ok, String(decoding: data, as: UTF8.self))
            } catch {
                self.send(error: ProviderError(status: 500, message: "\(error)", type: "server_error", code: nil), keepAlive: keepAlive, context: context)
            }
        case (.DELETE, "/_fake/requests"):
            self.provider.clearRecordedRequests()
            reply(.ok, "{\"cleared\":true}")
        case (.GET, "/_fake/faults"):
            let faults = self.provider.currentFaults().sorted { $0.key < $1.key }
            reply(.ok, "{" + faults.map { "\(JSONText.quoted($0.key)):\(JSONText.quoted($0.value.description))" }.joined(separator: ",") + "}")
        case (.DELETE, "/_fake/faults"):
            self.provider.resetFaults()
            reply(.ok, "{\"cleared\":true}")
        case (.PUT, _) where path.hasPrefix(faultsPrefix) && path.count > faultsPrefix.count,
            (.POST, _) where path.hasPrefix(faultsPrefix) && path.count > faultsPrefix.count:
            let rawModel = String(path.dropFirst(faultsPrefix.count))
            let model = rawModel.removingPercentEncoding ?? rawModel
            let text = body.map { String(buffer: $0) } ?? ""
            do {
                let spec = try FaultSpec(parsing: text)
                self.provider.setFault(spec, forModel: model)
                reply(.ok, "{\"model\":\(JSONText.quoted(model)),\"fault\":\(JSONText.quoted(spec.description))}")
            } catch {
                self.send(
                    error: ProviderError(status: 400, message: "\(error)", type: "invalid_request_error", code: "invalid_fault_spec"),
                    keepAlive: keepAlive,
                    context: context
                )
            }
        default:
            self.send(error: .notFound(method: head.method.rawValue, path: path), keepAlive: keepAlive, context: context)
        }
    }

    // MARK: Helpers

    /// The deployment of `/openai/deployments/<name>/chat/completions`, percent-decoded.
    static func azureDeployment(path: String) -> String? {
        let prefix = "/openai/deployments/"
        let suffix = "/chat/completions"
        guard path.hasPrefix(prefix), path.hasSuffix(suffix), path.count > prefix.count + suffix.count else {
            return nil
        }
        let raw = path.dropFirst(prefix.count).dropLast(suffix.count)
        guard !raw.contains("/") else { return nil }
        let name = String(raw)
        return name.removingPercentEncoding ?? name
    }

    static func describe(decodingError error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        switch error {
        case .dataCorrupted(let context), .typeMismatch(_, let context), .valueNotFound(_, let context),
            .keyNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
