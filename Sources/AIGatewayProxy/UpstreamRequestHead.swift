import AIGatewayProviders
import NIOCore

/// One attempt's request head to a provider, written as bytes straight from its parts: no
/// `HTTPHeaders`, no string per client field (the client's fields are copied from the bytes the
/// client sent).
///
/// The request line is `method path HTTP/1.1`; the fields come in this order:
/// 1. `host`, the provider's;
/// 2. the client's fields that `policy` forwards, in the client's order, as they arrived; a
///    field named in a `Connection` field stays behind too;
/// 3. the adapter's fields (content type, the provider's key header, version...);
/// 4. `x-request-id`;
/// 5. `content-length`.
///
/// A field of 3 or 4 replaces every field of its name (ASCII case-insensitive) before it, which
/// is left out where it stood. This is, byte for byte, the head the gateway used to build in
/// `HTTPHeaders` (`add` for 1, 2 and 5, `replaceOrAdd` for 3 and 4) and encode: a test compares
/// the two over generated client heads and every adapter.
struct UpstreamRequestHead {
    var method: String
    /// Path and query.
    var path: String
    /// The value of `host`.
    var host: String
    var client: RequestHead
    var policy: ClientHeaderPolicy
    /// The adapter's fields.
    var provider: [UpstreamTarget.HeaderField]
    var requestID: String
    var contentLength: Int

    private static let requestIDName = "x-request-id"

    /// Why the head must not be written (`RequestHeadCheck`), or nil. The gateway's own parts are
    /// checked; the client's fields are not looked at again: the server's parser let through
    /// only names and values of the byte classes the check accepts.
    func problem() -> String? {
        isClean ? nil : wordedProblem()
    }

    /// Every part of the byte class it must be in, checked in one pass (`RequestHeadCheck.all`);
    /// `wordedProblem()` says which is not. (The names `host` and `x-request-id` are tokens.)
    private var isClean: Bool {
        typealias Check = RequestHeadCheck
        guard !method.isEmpty, Check.all(method, ByteClass.token), !path.isEmpty, Check.all(path, ByteClass.target),
            Check.all(host, ByteClass.fieldValue), Check.all(requestID, ByteClass.fieldValue)
        else { return false }
        return provider.allSatisfy { !$0.name.isEmpty && Check.all($0.name, ByteClass.token) && Check.all($0.value, ByteClass.fieldValue) }
    }

    /// `problem()` part by part, in its order: the message of the first part refused.
    private func wordedProblem() -> String? {
        if let p = RequestHeadCheck.lineProblem(method: method, uri: path) { return p }
        if let p = RequestHeadCheck.fieldProblem(name: "host", value: host) { return p }
        for f in provider {
            if let p = RequestHeadCheck.fieldProblem(name: f.name, value: f.value) { return p }
        }
        return RequestHeadCheck.fieldProblem(name: Self.requestIDName, value: requestID)
    }

    /// Writes the head at `buffer`'s writer index, with room for `extra` more bytes after it
    /// (the body, when it goes in the same buffer).
    func write(into buffer: inout ByteBuffer, extra: Int = 0) {
        let fieldCount = client.fields.count
        client.bytes.withUnsafeReadableBytes { p in
            withUnsafeTemporaryAllocation(of: Bool.self, capacity: fieldCount) { keep in
                let hostKept = !provider.contains { HeaderName.equal($0.name, "host") }
                var size = method.utf8.count + 1 + path.utf8.count + 11 + 2
                if hostKept { size += 4 + 2 + host.utf8.count + 2 }
                size += markForwarded(p, keep)
                for i in provider.indices where providerKept(i) {
                    size += provider[i].name.utf8.count + 2 + provider[i].value.utf8.count + 2
                }
                size += Self.requestIDName.utf8.count + 2 + requestID.utf8.count + 2
                size += 14 + 2 + HeadBytes.decimalCount(contentLength) + 2
                if buffer.capacity == 0 {
                    // A new buffer (the usual case) made at its size, not grown from nothing.
                    buffer = ByteBufferAllocator().buffer(capacity: size + extra)
                } else {
                    buffer.reserveCapacity(minimumWritableBytes: size + extra)
                }
                HeadBytes.write(into: &buffer, size: size) { w in
                    w.put(method)
                    w.put(" ")
                    w.put(path)
                    w.put(" HTTP/1.1\r\n")
                    if hostKept {
                        w.put("host: ")
                        w.put(host)
                        w.put("\r\n")
                    }
                    for i in 0..<fieldCount where keep[i] {
                        let f = client.fields[i]
                        w.put(RequestHead.slice(p, f.name))
                        w.put(": ")
                        w.put(RequestHead.slice(p, f.value))
                        w.put("\r\n")
                    }
                    for i in provider.indices where providerKept(i) {
                        w.put(provider[i].name)
                        w.put(": ")
                        w.put(provider[i].value)
                        w.put("\r\n")
                    }
                    w.put("x-request-id: ")
                    w.put(requestID)
                    w.put("\r\ncontent-length: ")
                    w.putDecimal(contentLength)
                    w.put("\r\n\r\n")
                }
            }
        }
    }

    /// Sets `keep[i]` for the client's fields that go to the provider; returns the bytes they take.
    private func markForwarded(_ p: UnsafeRawBufferPointer, _ keep: UnsafeMutableBufferPointer<Bool>) -> Int {
        var hasConnection = false
        for (i, f) in client.fields.enumerated() {
            let name = RequestHead.slice(p, f.name)
            if !hasConnection, HeadSyntax.equalsLowercase(name, "connection") { hasConnection = true }
            keep[i] =
                policy.forwards(name) && !HeaderName.equal(name, Self.requestIDName)
                && !provider.contains { HeaderName.equal(name, $0.name) }
        }
        if hasConnection {
            // The fields named in any `Connection` field belong to the client's connection. (As
            // many comparisons as a set of the named fields by length would make: none unless
            // the lengths match.)
            for f in client.fields where HeadSyntax.equalsLowercase(RequestHead.slice(p, f.name), "connection") {
                Self.forEachToken(RequestHead.slice(p, f.value)) { token in
                    for (i, g) in client.fields.enumerated() where keep[i] && g.name.count == token.count {
                        if HeaderName.equal(RequestHead.slice(p, g.name), token) { keep[i] = false }
                    }
                }
            }
        }
        var size = 0
        for (i, f) in client.fields.enumerated() where keep[i] { size += f.name.count + 2 + f.value.count + 2 }
        return size
    }

    /// The adapter's field `i` is not replaced by a later one (another adapter field or `x-request-id`).
    private func providerKept(_ i: Int) -> Bool {
        let name = provider[i].name
        if HeaderName.equal(name, Self.requestIDName) { return false }
        for j in (i + 1)..<provider.count where HeaderName.equal(name, provider[j].name) { return false }
        return true
    }

    /// The comma-separated tokens of a `Connection` value, without the whitespace around them
    /// (empty ones skipped: no field name is empty).
    private static func forEachToken(_ value: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        var start = 0
        while start <= value.count {
            var end = start
            while end < value.count, value[end] != UInt8(ascii: ",") { end += 1 }
            var a = start, b = end
            while a < b, value[a] == UInt8(ascii: " ") || value[a] == UInt8(ascii: "\t") { a += 1 }
            while b > a, value[b - 1] == UInt8(ascii: " ") || value[b - 1] == UInt8(ascii: "\t") { b -= 1 }
            if b > a { body(UnsafeRawBufferPointer(rebasing: value[a..<b])) }
            start = end + 1
        }
    }
}
