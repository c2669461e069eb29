import AIGatewayAPI
import Foundation

/// Fuzz target: the gateway's JSON parser against Foundation's `JSONSerialization`.
///
/// Both must accept and reject the same documents (within the gateway's nesting limit, which
/// Foundation does not have) and, where both accept, produce the same value. `scanTopLevel`, the
/// validate-only pass the proxy uses on answers, must accept exactly what `parse` accepts.
public enum JSONTarget {
    public static func run(_ data: [UInt8]) -> FuzzVerdict {
        let ours: JSONValue?
        var rejection: JSONSyntaxError?
        do {
            ours = try JSONParser.parse(data)
        } catch {
            ours = nil
            rejection = error
        }
        let scanned: Bool
        do {
            _ = try JSONParser.scanTopLevel(data)
            scanned = true
        } catch {
            scanned = false
        }
        if scanned != (ours != nil) {
            return .mismatch("scanTopLevel accepts=\(scanned) but parse accepts=\(ours != nil)")
        }
        if let rejection, rejection.reason == "nesting too deep" || foundationIsLenient(data, at: rejection.offset) { return .ok }
        let theirs: JSONValue?
        if let any = try? JSONSerialization.jsonObject(with: Data(data), options: [.fragmentsAllowed]) {
            theirs = foundationValue(any)
        } else {
            theirs = nil
        }
        switch (ours, theirs) {
        case (nil, nil):
            return .ok
        case (let o?, nil):
            return .mismatch("the gateway accepts what Foundation rejects: \(o)")
        case (nil, _?):
            return .mismatch("the gateway rejects what Foundation accepts")
        case (let o?, let t?):
            return same(o, t) ? .ok : .mismatch("values differ: gateway \(o), Foundation \(t)")
        }
    }

    /// Where Foundation accepts what RFC 8259 does not, and the gateway keeps to the RFC: a trailing
    /// comma before `]` or `}`, a byte-order mark before the document, and UTF-16 or UTF-32 text
    /// (Foundation guesses the encoding from NUL bytes or a BOM at the start; JSON exchanged between
    /// systems is UTF-8).
    static func foundationIsLenient(_ data: [UInt8], at offset: Int) -> Bool {
        if data.starts(with: [0xEF, 0xBB, 0xBF]) || data.starts(with: [0xFE, 0xFF]) || data.starts(with: [0xFF, 0xFE]) { return true }
        if data.prefix(4).contains(0) { return true }
        guard offset < data.count, data[offset] == UInt8(ascii: "]") || data[offset] == UInt8(ascii: "}") else { return false }
        var k = offset - 1
        while k >= 0, [0x20, 0x09, 0x0A, 0x0D].contains(data[k]) { k -= 1 }
        return k >= 0 && data[k] == UInt8(ascii: ",")
    }

    /// Equal as JSON: numbers compare by value (Foundation reads `1.0` as an integer and large
    /// integers as doubles), everything else structurally.
    static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.int, _), (.double, _):
            guard let x = number(a), let y = number(b) else { return false }
            return x == y || (x.isNaN && y.isNaN) || abs(x - y) <= abs(x) * 1e-15
        case (.array(let x), .array(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        case (.object(let x), .object(let y)):
            return x.count == y.count && x.allSatisfy { k, v in y[k].map { same(v, $0) } ?? false }
        default: return false
        }
    }

    /// Foundation's tree as a value. Its booleans are `NSNumber`s too, told apart by their
    /// Objective-C type code `c` (`JSONValue(any:)` would read 1 and 0 as booleans).
    static func foundationValue(_ any: Any) -> JSONValue {
        switch any {
        case is NSNull: return .null
        case let s as String: return .string(s)
        case let n as NSNumber:
            let type = String(cString: n.objCType)
            if type == "c" { return .bool(n.boolValue) }
            if type == "d" || type == "f" { return .double(n.doubleValue) }
            if type == "Q" { return n.uint64Value > UInt64(Int.max) ? .double(n.doubleValue) : .int(Int(n.uint64Value)) }
            return .int(n.intValue)
        case let a as [Any]: return .array(a.map(foundationValue))
        case let o as [String: Any]: return .object(o.mapValues(foundationValue))
        default: return .string("\(any)")
        }
    }

    static func number(_ v: JSONValue) -> Double? {
        switch v {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }
}

/// What one fuzz input showed.
public enum FuzzVerdict: Sendable, Equatable {
    case ok
    /// A property the target checks does not hold: a bug (the fuzzer stops and keeps the input).
    case mismatch(String)
}
