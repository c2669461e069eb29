import CCurl
import Foundation
import Synchronization

/// Runs every libcurl transfer of the process on one dedicated thread with the multi interface.
///
/// Why: libcurl calls block, so they must stay off Swift's cooperative pool. A single thread
/// driving `curl_multi_poll` serves any number of concurrent requests and long watches (one
/// thread per watch would not scale with the number of informers), and the multi handle's
/// connection cache reuses TLS connections (and HTTP/2 multiplexing) across requests.
/// Callbacks run on that thread and only copy bytes and resume continuations, never block.
///
/// Cancellation: `cancel(_:)` flags the transfer and wakes the thread (`curl_multi_wakeup` is
/// thread-safe), which removes the handle from the multi handle at once — prompter than a
/// progress callback, which libcurl calls only about once a second on an idle connection.
final class CurlLoop: @unchecked Sendable {
    // Protection: `multi` is used only on the loop thread, except `curl_multi_wakeup`, which
    // libcurl documents as callable from any thread. `active` is touched only on the loop
    // thread. `inbox` is a Mutex.
    static let shared = CurlLoop()

    private let multi: UnsafeMutableRawPointer
    private var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]
    private let inbox = Mutex<Inbox>(Inbox())

    private struct Inbox {
        var added: [CurlTransfer] = []
        var cancelled: [CurlTransfer] = []
    }

    private init() {
        let rc = ccurl_global_init_once()
        precondition(rc == CURLE_OK, "curl_global_init failed")
        guard let multi = curl_multi_init() else { fatalError("curl_multi_init failed") }
        self.multi = multi
        let thread = Thread { [self] in self.run() }
        thread.name = "kubernetes-curl"
        thread.start()
    }

    /// Hands a configured transfer to the loop thread; its handler is called there.
    func submit(_ transfer: CurlTransfer) {
        inbox.withLock { $0.added.append(transfer) }
        curl_multi_wakeup(multi)
    }

    /// Aborts a transfer; its handler completes with `.cancelled` unless it already completed.
    func cancel(_ transfer: CurlTransfer) {
        transfer.markCancelled()
        inbox.withLock { $0.cancelled.append(transfer) }
        curl_multi_wakeup(multi)
    }

    private func run() {
        while true {
            let (added, cancelled) = inbox.withLock { inbox in
                defer {
                    inbox.added.removeAll()
                    inbox.cancelled.removeAll()
                }
                return (inbox.added, inbox.cancelled)
            }
            for transfer in added {
                if transfer.isCancelled {
                    transfer.finish(.cancelled)
                    continue
                }
                let rc = curl_multi_add_handle(multi, transfer.easy)
                if rc != CURLM_OK {
                    transfer.finish(.failed(CURLE_FAILED_INIT))
                    continue
                }
                active[transfer.easy] = transfer
            }
            for transfer in cancelled {
                // Identity check: a finished transfer's handle address may already belong to
                // a new transfer (libcurl reuses freed memory).
                if let current = active[transfer.easy], current === transfer {
                    active[transfer.easy] = nil
                    curl_multi_remove_handle(multi, transfer.easy)
                    transfer.finish(.cancelled)
                }
            }

            var running: Int32 = 0
            _ = curl_multi_perform(multi, &running)
            var remaining: Int32 = 0
            while let message = curl_multi_info_read(multi, &remaining) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                let result = ccurl_message_result(message)
                guard let transfer = active.removeValue(forKey: easy) else { continue }
                curl_multi_remove_handle(multi, easy)
                transfer.finish(result == CURLE_OK ? .ok : (transfer.isCancelled ? .cancelled : .failed(result)))
            }
            // Waits for socket activity, a wakeup, or libcurl's next internal timeout.
            _ = curl_multi_poll(multi, nil, 0, 1000, nil)
        }
    }
}

/// How a transfer ended.
enum TransferOutcome: Sendable {
    case ok
    case failed(CURLcode)
    case cancelled
}

/// What a transfer's response is delivered to. Called on the loop thread only.
protocol TransferHandler: AnyObject {
    /// The final response head (status line and headers). Return false to abort.
    func head(status: Int, headers: [String: String]) -> Bool
    /// A piece of the (decoded) body. Return false to abort.
    func body(_ bytes: UnsafeRawBufferPointer) -> Bool
    /// The end of the transfer; called exactly once.
    func complete(_ outcome: TransferOutcome)
}

/// One libcurl easy handle with its request data and response state.
final class CurlTransfer: @unchecked Sendable {
    // Protection: all mutable state except `cancelled` is set up by the submitting thread
    // before `CurlLoop.submit` and from then on touched only on the loop thread (libcurl
    // callbacks and `finish`). `cancelled` is an Atomic.
    let easy: UnsafeMutableRawPointer
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private let handler: any TransferHandler
    private let cancelled = Atomic<Bool>(false)
    private var status = 0
    private var headers: [String: String] = [:]
    private var headDelivered = false
    private var finished = false
    private var aborted = false

    struct Request {
        var method: String
        var url: String
        var headers: [String]
        var body: Data?
        var tls: KubeConfig.TLS
        var http2: Bool
        var connectTimeout: Duration
        /// Total time limit; nil for none.
        var totalTimeout: Duration?
        /// Abort when fewer than 1 byte/s arrived over this window; nil for none.
        var lowSpeedWindow: Duration?
    }

    init(_ request: Request, handler: any TransferHandler) throws {
        _ = ccurl_global_init_once()
        guard let easy = curl_easy_init() else { throw KubernetesError.transport("curl_easy_init failed") }
        self.easy = easy
        self.handler = handler
        // On failure `deinit` frees the handle.
        try configure(request)
    }

    deinit {
        // Only reached when the loop no longer holds the transfer: either never submitted,
        // or finished (which already freed everything).
        releaseHandle()
    }

    /// Frees the easy handle and header list, once.
    private func releaseHandle() {
        guard !finished else { return }
        finished = true
        curl_easy_cleanup(easy)
        if let headerList {
            curl_slist_free_all(headerList)
            self.headerList = nil
        }
    }

    var isCancelled: Bool { cancelled.load(ordering: .acquiring) }

    func markCancelled() { cancelled.store(true, ordering: .releasing) }

    private func check(_ rc: CURLcode) throws {
        guard rc == CURLE_OK else {
            throw KubernetesError.transport(String(cString: curl_easy_strerror(rc)))
        }
    }

    private func configure(_ r: Request) throws {
        try check(ccurl_easy_setopt_string(easy, CURLOPT_URL, r.url))
        try check(ccurl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1))
        try check(ccurl_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https"))
        try check(ccurl_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0))
        try check(ccurl_easy_setopt_string(easy, CURLOPT_ACCEPT_ENCODING, ""))
        let version = r.http2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1
        try check(ccurl_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(version)))
        try check(ccurl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(r.connectTimeout)))
        if let total = r.totalTimeout {
            try check(ccurl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, Self.milliseconds(total)))
        }
        if let window = r.lowSpeedWindow {
            try check(ccurl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, 1))
            try check(ccurl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_TIME, max(1, Int(window.components.seconds))))
        }
        try check(ccurl_easy_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1))
        try check(ccurl_easy_setopt_long(easy, CURLOPT_TCP_KEEPIDLE, 30))
        try check(ccurl_easy_setopt_long(easy, CURLOPT_TCP_KEEPINTVL, 15))

        // TLS
        if r.tls.insecureSkipVerify {
            try check(ccurl_easy_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 0))
            try check(ccurl_easy_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 0))
        } else if let ca = r.tls.certificateAuthorityPEM {
            try setBlob(CURLOPT_CAINFO_BLOB, ca)
            // Trust only the configured CAs, not also the system directory.
            try check(ccurl_easy_setopt_string(easy, CURLOPT_CAPATH, nil))
        }
        if let cert = r.tls.clientCertificatePEM, let key = r.tls.clientKeyPEM {
            try setBlob(CURLOPT_SSLCERT_BLOB, cert)
            try check(ccurl_easy_setopt_string(easy, CURLOPT_SSLCERTTYPE, "PEM"))
            try setBlob(CURLOPT_SSLKEY_BLOB, key)
            try check(ccurl_easy_setopt_string(easy, CURLOPT_SSLKEYTYPE, "PEM"))
        }

        // Method and body
        if let body = r.body {
            try check(ccurl_easy_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)))
            if body.isEmpty {
                try check(ccurl_easy_setopt_string(easy, CURLOPT_COPYPOSTFIELDS, ""))
            } else {
                try body.withUnsafeBytes { raw in
                    try check(ccurl_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress)))
                }
            }
        }
        if r.method != "GET" || r.body != nil {
            try check(ccurl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, r.method))
        }

        // Headers. "Expect:" disables 100-continue for larger bodies.
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for header in r.headers + ["Expect:"] {
            guard let next = curl_slist_append(list, header) else {
                if let list { curl_slist_free_all(list) }
                throw KubernetesError.transport("out of memory")
            }
            list = next
        }
        headerList = list
        try check(ccurl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, list))

        // Callbacks; `self` outlives the handle's time in the multi handle (the loop holds it).
        let me = Unmanaged.passUnretained(self).toOpaque()
        try check(ccurl_easy_set_header_callback(easy, curlHeaderCallback, me))
        try check(ccurl_easy_set_write_callback(easy, curlWriteCallback, me))
    }

    private func setBlob(_ option: CURLoption, _ data: Data) throws {
        try data.withUnsafeBytes { raw in
            try check(ccurl_easy_setopt_blob(easy, option, raw.baseAddress, raw.count))
        }
    }

    private static func milliseconds(_ d: Duration) -> Int {
        let (s, atto) = d.components
        return max(1, Int(s) * 1000 + Int(atto / 1_000_000_000_000_000))
    }

    // MARK: Loop thread

    fileprivate func onHeaderLine(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let line = String(decoding: bytes, as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            // A new response head (after 1xx): start over.
            headers = [:]
            let parts = line.split(separator: " ", maxSplits: 2)
            status = parts.count >= 2 ? Int(parts[1]) ?? 0 : 0
            return true
        }
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty {
            if status >= 200 && !headDelivered {
                headDelivered = true
                return deliver { handler.head(status: status, headers: headers) }
            }
            return true
        }
        if let colon = trimmed.firstIndex(of: ":") {
            let name = trimmed[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers[name] = value
        }
        return true
    }

    fileprivate func onBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if !headDelivered {
            headDelivered = true
            guard deliver({ handler.head(status: status, headers: headers) }) else { return false }
        }
        return deliver { handler.body(bytes) }
    }

    private func deliver(_ call: () -> Bool) -> Bool {
        if aborted || isCancelled { return false }
        if !call() { aborted = true }
        return !aborted
    }

    /// Ends the transfer: reports the outcome and frees the easy handle. Loop thread only.
    fileprivate func finish(_ outcome: TransferOutcome) {
        guard !finished else { return }
        releaseHandle()
        handler.complete(outcome)
    }
}

private let curlHeaderCallback: ccurl_data_callback = { buffer, size, count, userdata in
    guard let buffer, let userdata else { return 0 }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
    let total = size * count
    return transfer.onHeaderLine(UnsafeRawBufferPointer(start: buffer, count: total)) ? total : 0
}

private let curlWriteCallback: ccurl_data_callback = { buffer, size, count, userdata in
    guard let buffer, let userdata else { return 0 }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
    let total = size * count
    return transfer.onBody(UnsafeRawBufferPointer(start: buffer, count: total)) ? total : 0
}

extension TransferOutcome {
    /// The transport error for a failed transfer: libcurl's fixed text for the code.
    var transportError: KubernetesError? {
        guard case .failed(let code) = self else { return nil }
        return .transport(String(cString: curl_easy_strerror(code)))
    }
}
