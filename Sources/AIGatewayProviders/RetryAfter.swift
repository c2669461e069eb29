import AIGatewayAPI

/// Reads how long a provider asked us to wait.
public enum RetryAfter {
    /// `Retry-After` (seconds or an HTTP date), `retry-after-ms`, or the longest of
    /// `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens` (`1s`, `6m0s`, `20ms`).
    public static func parse(headers: [(name: String, value: String)], now: Double = Double(time(nil))) -> Duration? {
        var best: Duration?
        func consider(_ d: Duration?) {
            guard let d, d >= .zero else { return }
            if best == nil || d > best! { best = d }
        }
        for (name, value) in headers {
            switch name.lowercased() {
            case "retry-after-ms":
                if let ms = Double(value.trimmed) { consider(.milliseconds(Int64(ms.rounded(.up)))) }
            case "retry-after":
                let v = value.trimmed
                if let s = Double(v) {
                    consider(.milliseconds(Int64((s * 1000).rounded(.up))))
                } else if let date = httpDate(v) {
                    consider(.seconds(max(0, date - now)))
                }
            case "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens":
                consider(goDuration(value.trimmed))
            default:
                break
            }
        }
        return best
    }

    /// Parses durations like `1s`, `6m0s`, `1h2m3.5s`, `20ms`.
    static func goDuration(_ s: String) -> Duration? {
        var total = 0.0
        var number = ""
        var chars = Substring(s)
        var parts = 0
        while let c = chars.first {
            if c.isNumber || c == "." {
                number.append(c)
                chars = chars.dropFirst()
                continue
            }
            guard let n = Double(number) else { return nil }
            if chars.hasPrefix("ms") {
                total += n / 1000
                chars = chars.dropFirst(2)
            } else if chars.hasPrefix("h") {
                total += n * 3600
                chars = chars.dropFirst()
            } else if chars.hasPrefix("m") {
                total += n * 60
                chars = chars.dropFirst()
            } else if chars.hasPrefix("s") {
                total += n
                chars = chars.dropFirst()
            } else {
                return nil
            }
            number = ""
            parts += 1
        }
        if !number.isEmpty {
            guard parts == 0, let n = Double(number) else { return nil }
            total = n
        }
        return .milliseconds(Int64((total * 1000).rounded(.up)))
    }

    /// How long until the latest `anthropic-ratelimit-*-reset` time (RFC 3339), or nil.
    public static func anthropicReset(headers: [(name: String, value: String)], now: Double) -> Duration? {
        var best: Double?
        for (name, value) in headers {
            let n = name.lowercased()
            guard n.hasPrefix("anthropic-ratelimit-"), n.hasSuffix("-reset"), let t = rfc3339(value.trimmed) else { continue }
            if best == nil || t > best! { best = t }
        }
        guard let best else { return nil }
        return .milliseconds(Int64((max(0, best - now) * 1000).rounded(.up)))
    }

    /// `2026-12-07T09:50:42Z`, `2026-12-07T09:50:42.5+01:00`, as seconds since 1970.
    public static func rfc3339(_ s: String) -> Double? {
        let b = Array(s.utf8)
        guard b.count >= 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t") || b[10] == UInt8(ascii: " "),
            b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":")
        else { return nil }
        func num(_ r: Range<Int>) -> Int? {
            var v = 0
            for i in r {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                v = v * 10 + Int(b[i] - 0x30)
            }
            return v
        }
        guard let year = num(0..<4), let month = num(5..<7), let day = num(8..<10), let hour = num(11..<13), let minute = num(14..<16),
            let second = num(17..<19), (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var i = 19
        var fraction = 0.0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                fraction += Double(b[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
        }
        guard i < b.count else { return nil }
        var offset = 0
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            guard i + 1 == b.count else { return nil }
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            guard i + 6 == b.count, b[i + 3] == UInt8(ascii: ":"), let oh = num((i + 1)..<(i + 3)), let om = num((i + 4)..<(i + 6)) else { return nil }
            offset = (oh * 3600 + om * 60) * (b[i] == UInt8(ascii: "+") ? 1 : -1)
        } else {
            return nil
        }
        let m = month
        let y = m <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        return Double(days * 86400 + hour * 3600 + minute * 60 + second - offset) + fraction
    }

    /// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), as seconds since 1970.
    static func httpDate(_ s: String) -> Double? {
        let parts = s.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT" else { return nil }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard let day = Int(parts[1]), let monthIndex = months.firstIndex(of: String(parts[2])), let year = Int(parts[3]) else { return nil }
        let hms = parts[4].split(separator: ":").compactMap { Int($0) }
        guard hms.count == 3 else { return nil }
        // Days from civil (Howard Hinnant's algorithm).
        let m = monthIndex + 1
        let y = m <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        return Double(days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension String {
    fileprivate var trimmed: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
