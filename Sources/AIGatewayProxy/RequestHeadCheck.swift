import NIOHTTP1

/// The last look at a request head before it is written to a provider. Whatever the source of a
/// value (a manifest, a flag, a client header, a Secret), nothing in the head may end its line
/// early: no CR, LF or other control character in the method, the request target or a header,
/// and no space in the request target. Manifests are checked when they decode and client headers
/// by the HTTP parser; this is defence in depth, and what it refuses fails the attempt as a
/// misconfiguration instead of reaching the wire.
///
/// It runs for every attempt, so it is one table lookup per byte (about 0.6 µs for a typical
/// head on the benchmark VM, against 55-60 µs of CPU per proxied request).
enum RequestHeadCheck {
    /// Why `head` must not be written, or nil. Names at most a header's name (checked first),
    /// never a value: one of them holds the key.
    static func problem(_ head: HTTPRequestHead) -> String? {
        if case .RAW(let method) = head.method, method.isEmpty || !all(method, ByteClass.token) {
            return "the method is not an HTTP token"
        }
        if head.uri.isEmpty || !all(head.uri, ByteClass.target) {
            return "the request target is empty or holds a space, a control character or a non-ASCII byte"
        }
        for (name, value) in head.headers {
            if let problem = fieldProblem(name: name, value: value) { return problem }
        }
        return nil
    }

    /// The same for a request line given as strings (a known method is a token too).
    static func lineProblem(method: String, uri: String) -> String? {
        if method.isEmpty || !all(method, ByteClass.token) { return "the method is not an HTTP token" }
        if uri.isEmpty || !all(uri, ByteClass.target) {
            return "the request target is empty or holds a space, a control character or a non-ASCII byte"
        }
        return nil
    }

    /// The same for one field.
    static func fieldProblem(name: String, value: String) -> String? {
        guard !name.isEmpty, all(name, ByteClass.token) else { return "a header name is not an HTTP token" }
        guard all(value, ByteClass.fieldValue) else { return "the value of header \(name) holds a control character" }
        return nil
    }

    /// Whether every byte of `s` has `flag`. A native or small string lends its bytes as they are
    /// (no copy of the string, so no retain); others (bridged) are made contiguous first.
    @inline(__always)
    static func all(_ s: String, _ flag: UInt8) -> Bool {
        if let result = s.utf8.withContiguousStorageIfAvailable({ all($0, flag) }) { return result }
        var s = s
        return s.withUTF8 { all($0, flag) }
    }

    private static func all(_ bytes: UnsafeBufferPointer<UInt8>, _ flag: UInt8) -> Bool {
        ByteClass.table.withUnsafeBufferPointer { t in
            for c in bytes where t[Int(c)] & flag == 0 { return false }
            return true
        }
    }
}
