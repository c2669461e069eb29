#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a Backend field that reaches the provider's request line, `Host` header or other headers
/// may hold, checked where the manifest is decoded: nothing a Backend says can add a line, a
/// header or a host of its own to what the gateway sends next to its key.
///
/// Each check returns nil for an acceptable value, or the reason it is not (never the value).
public enum WireSyntax {
    /// Longest path or path-with-query accepted.
    public static let maxPathBytes = 2048

    /// RFC 3986 `pchar` minus `%`: unreserved, sub-delims, `:` and `@`. What a path segment may
    /// hold as is; anything else is written as a `%XX` escape.
    @inline(__always)
    static func isSegmentByte(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "-._~!$&'()*+,;=:@".utf8.contains(c)
        }
    }

    @inline(__always)
    static func isHex(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"): true
        default: false
        }
    }

    /// Why byte `c` is not allowed where `extra` bytes (beyond a segment's) are.
    static func reason(_ c: UInt8) -> String {
        switch c {
        case 0..<0x20, 0x7F: "control characters (CR, LF, NUL, ...) are not allowed"
        case UInt8(ascii: " "): "spaces are not allowed (write %20)"
        case 0x80...: "non-ASCII characters must be percent-encoded"
        case UInt8(ascii: "#"): "# (a fragment) is not allowed"
        case UInt8(ascii: "%"): "% must start a %XX escape"
        case UInt8(ascii: "/"): "/ is not allowed in a single path segment"
        case UInt8(ascii: "?"): "? is not allowed in a single path segment"
        default: "\"\(Character(Unicode.Scalar(c)))\" is not allowed (percent-encode it)"
        }
    }

    /// Checks segment bytes, `%XX` escapes and the `extra` bytes allowed besides.
    static func scan(_ s: String, extra: String) -> String? {
        let bytes = Array(s.utf8)
        var i = 0
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "%") {
                guard i + 2 < bytes.count, isHex(bytes[i + 1]), isHex(bytes[i + 2]) else { return reason(c) }
                i += 3
                continue
            }
            guard isSegmentByte(c) || extra.utf8.contains(c) else { return reason(c) }
            i += 1
        }
        return nil
    }

    /// An origin-form request target: `/`, then path segments and an optional query, in the bytes
    /// RFC 3986 allows there (letters, digits, `-._~!$&'()*+,;=:@/?`) and `%XX` escapes. No
    /// spaces, control characters, `#` or raw non-ASCII. (`leadingSlash: false` for a path
    /// suffix.)
    public static func pathProblem(_ s: String, leadingSlash: Bool = true) -> String? {
        if leadingSlash && !s.hasPrefix("/") { return "must start with /" }
        if s.utf8.count > maxPathBytes { return "longer than \(maxPathBytes) bytes" }
        return scan(s, extra: "/?")
    }

    /// One path segment (a deployment, model or project name): the bytes of `pathProblem` without
    /// `/` or `?`, and not `.` or `..` (which a server resolves away). `allowSlash` lets an ARN
    /// through, whose `/` the path builder escapes.
    public static func segmentProblem(_ s: String, allowSlash: Bool = false) -> String? {
        if s.isEmpty { return "must not be empty" }
        if s == "." || s == ".." { return "must not be . or .." }
        if s.utf8.count > 256 { return "longer than 256 bytes" }
        return scan(s, extra: allowSlash ? "/" : "")
    }

    /// A version token (`2024-02-15-preview`, `v1beta`, `2023-06-01`): letters, digits and `-._~`,
    /// safe as a path segment, a query value and a header value alike.
    public static func tokenProblem(_ s: String) -> String? {
        if s.isEmpty { return "must not be empty" }
        if s == "." || s == ".." { return "must not be . or .." }
        if s.utf8.count > 64 { return "longer than 64 bytes" }
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                continue
            default:
                return (0x21...0x7E).contains(c) ? "only letters, digits and -._~ are allowed" : reason(c)
            }
        }
        return nil
    }

    /// A DNS label that becomes part of a host name (a region, a location): letters, digits and
    /// `-`, at most 63, not starting or ending with `-`.
    public static func labelProblem(_ s: String) -> String? {
        if s.isEmpty { return "must not be empty" }
        if s.utf8.count > 63 { return "longer than 63 bytes" }
        guard s.utf8.allSatisfy(isLabelByte), s.utf8.first != UInt8(ascii: "-"), s.utf8.last != UInt8(ascii: "-") else {
            return "only letters, digits and - (not first or last) are allowed"
        }
        return nil
    }

    @inline(__always)
    static func isLabelByte(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"): true
        default: false
        }
    }

    /// A host: a DNS name (labels of letters, digits, `-` and `_`, 1-63 bytes each, at most 253
    /// in all), an IPv4 address, or an IPv6 address (bare: `::1`). No scheme, port, path,
    /// user info or zone.
    public static func hostProblem(_ s: String) -> String? {
        if s.isEmpty { return "must not be empty" }
        if let why = visibleASCIIProblem(s) { return why }
        if s.contains(":") {
            if s.contains("://") { return "a scheme is not allowed: give the host only" }
            if isIPv6(s) { return nil }
            return s.contains(".") || s.utf8.filter({ $0 == UInt8(ascii: ":") }).count == 1
                ? "a port is not allowed here: give the host only" : "not a valid IPv6 address"
        }
        if s.contains("/") { return "a path is not allowed: give the host only" }
        if s.contains("@") { return "user information is not allowed: give the host only" }
        if s.utf8.count > 253 { return "longer than 253 bytes" }
        let labels = s.split(separator: ".", omittingEmptySubsequences: false)
        if labels.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } }) {
            return isIPv4(s) ? nil : "not a valid IPv4 address"
        }
        for label in labels {
            if label.isEmpty { return "empty label (a leading, trailing or doubled dot)" }
            if label.utf8.count > 63 { return "a label is longer than 63 bytes" }
            for c in label.utf8 where !(isLabelByte(c) || c == UInt8(ascii: "_")) {
                return (0x21...0x7E).contains(c) ? "only letters, digits, - and _ are allowed in a host name" : reason(c)
            }
            if label.hasPrefix("-") || label.hasSuffix("-") { return "a label must not start or end with -" }
        }
        return nil
    }

    /// Azure's `endpoint`: a host name, as the Azure portal shows it or bare: an `https://` (or
    /// `http://`) scheme, a `:443` port and a `/` or `/openai` path are allowed and dropped (Azure
    /// OpenAI is reached over TLS on 443, at the deployment's path). Another port or path is an
    /// error: `hostOverride` and `pathOverride` say those.
    public static func azureEndpointProblem(_ s: String) -> String? {
        if let why = visibleASCIIProblem(s) { return why }
        var rest = Substring(s)
        for scheme in ["https://", "http://"] where rest.lowercased().hasPrefix(scheme) {
            rest = rest.dropFirst(scheme.count)
            break
        }
        if rest.contains("://") { return "only an https:// scheme is allowed" }
        if let slash = rest.firstIndex(of: "/") {
            guard ["/", "/openai", "/openai/"].contains(rest[slash...]) else {
                return "a path other than /openai is not allowed (set pathOverride for another path)"
            }
            rest = rest[..<slash]
        }
        if let colon = rest.lastIndex(of: ":") {
            guard rest[rest.index(after: colon)...] == "443" else {
                return "a port other than 443 is not allowed (set hostOverride for another port)"
            }
            rest = rest[..<colon]
        }
        return hostProblem(String(rest))
    }

    /// Control characters, spaces and non-ASCII bytes first: whatever else is wrong, a line break
    /// is what a reader must see.
    static func visibleASCIIProblem(_ s: String) -> String? {
        for c in s.utf8 where c <= 0x20 || c >= 0x7F { return reason(c) }
        return nil
    }

    /// A model name that only goes into the request body (JSON-escaped there) and the gateway's own
    /// headers and labels: printable, no spaces or control characters, at most 256 bytes.
    public static func modelNameProblem(_ s: String) -> String? {
        if s.utf8.count > 256 { return "longer than 256 bytes" }
        for c in s.utf8 where c <= 0x20 || c == 0x7F {
            return reason(c)
        }
        return nil
    }

    static func isIPv4(_ s: String) -> Bool {
        var a = in_addr()
        return inet_pton(AF_INET, s, &a) == 1
    }

    static func isIPv6(_ s: String) -> Bool {
        var a = in6_addr()
        return inet_pton(AF_INET6, s, &a) == 1
    }

    /// Whether a host is this machine: `localhost` (and names under `.localhost`), 127.0.0.0/8,
    /// `::1` and IPv4-mapped loopback.
    public static func isLoopback(_ host: String) -> Bool {
        var h = host.lowercased()
        if h.hasPrefix("[") && h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        if h.hasSuffix(".") { h = String(h.dropLast()) }
        if h == "localhost" || h.hasSuffix(".localhost") { return true }
        if h.hasPrefix("::ffff:") { h = String(h.dropFirst(7)) }
        if isIPv4(h) { return h.hasPrefix("127.") }
        var a = in6_addr()
        guard inet_pton(AF_INET6, h, &a) == 1 else { return false }
        return withUnsafeBytes(of: &a) { raw in raw.prefix(15).allSatisfy { $0 == 0 } && raw[15] == 1 }
    }
}

extension ObjectReader {
    /// A string member that reaches the wire, checked by `problem`. An unacceptable value is
    /// reported as `<path>: must be <what>: <reason>, found "<value>"` and read as absent.
    func wireString(_ key: String, required: Bool = false, _ what: String, _ problem: (String) -> String?) -> String? {
        guard let s = string(key, required: required) else { return nil }
        if let why = problem(s) {
            diagnostics.add(childPath(key), "must be \(what): \(why), found \(Self.echo(s))")
            return nil
        }
        return s
    }

    /// A host member; a bracketed IPv6 address (`[::1]`) is read without its brackets.
    func host(_ key: String, required: Bool = false) -> String? {
        wireString(key, required: required, "a host name or IP address") { s in
            WireSyntax.hostProblem(Self.unbracketed(s))
        }.map(Self.unbracketed)
    }

    static func unbracketed(_ s: String) -> String {
        s.hasPrefix("[") && s.hasSuffix("]") && s.count > 2 ? String(s.dropFirst().dropLast()) : s
    }

    /// A value as an error message shows it: JSON-quoted (a line break shows as `\r\n`), long ones cut.
    static func echo(_ s: String) -> String {
        s.count > 100 ? JSONValue.quoted(String(s.prefix(100))) + "..." : JSONValue.quoted(s)
    }
}
