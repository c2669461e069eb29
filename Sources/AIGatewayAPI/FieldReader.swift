/// One problem in a manifest, located by the path of the field that has to change.
public struct FieldError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The field path, e.g. `spec.ai.multipool.priorities[1].pool[0].provider`.
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// Collects every error found while decoding one object, so a user sees all of them at once.
final class Diagnostics {
    var errors: [FieldError] = []

    func add(_ path: String, _ message: String) {
        errors.append(FieldError(path: path, message: message))
    }
}

/// Reads the members of one JSON object, recording errors against field paths and
/// reporting members that the schema does not know (strict decoding, like a CRD's
/// structural schema with `fieldValidation=Strict`).
///
/// Decoding thousands of API objects at a controller's start goes through here, so the
/// bookkeeping is kept cheap: a reader's field path is built only when an error needs it, and
/// the members read are tracked in a short list (no hashing) that settles "no unknown field"
/// by a count.
final class ObjectReader {
    /// Where the object sits, from which `path` is built on demand.
    private enum Origin {
        case path(String)
        case member(ObjectReader, String)
        case element(ObjectReader, String, Int)
    }

    /// One element of an array member; its path is built on demand.
    struct Element {
        let value: JSONValue
        fileprivate let owner: ObjectReader
        fileprivate let key: String
        let offset: Int
        var path: String { "\(owner.childPath(key))[\(offset)]" }
    }

    private let origin: Origin
    let fields: [String: JSONValue]
    let diagnostics: Diagnostics
    /// The members of `fields` read or ignored so far, each once.
    private var consumed: [String] = []
    /// Every member counts as read (a map of free-form keys).
    private var consumedAll = false

    init?(_ value: JSONValue, path: String, diagnostics: Diagnostics) {
        self.origin = .path(path)
        guard case .object(let o) = value else {
            diagnostics.add(path, "must be an object, found \(value.typeName)")
            return nil
        }
        self.fields = o
        self.diagnostics = diagnostics
    }

    /// The reader of an array element that must be an object.
    convenience init?(_ element: Element) {
        self.init(element.value, origin: .element(element.owner, element.key, element.offset), diagnostics: element.owner.diagnostics)
    }

    private init?(_ value: JSONValue, origin: Origin, diagnostics: Diagnostics) {
        self.origin = origin
        guard case .object(let o) = value else {
            self.fields = [:]
            self.diagnostics = diagnostics
            diagnostics.add(path, "must be an object, found \(value.typeName)")
            return nil
        }
        self.fields = o
        self.diagnostics = diagnostics
    }

    /// The field path of this object, e.g. `spec.rules[0]`.
    var path: String {
        switch origin {
        case .path(let path): path
        case .member(let parent, let key): parent.childPath(key)
        case .element(let parent, let key, let offset): "\(parent.childPath(key))[\(offset)]"
        }
    }

    func childPath(_ key: String) -> String {
        let path = self.path
        return path.isEmpty ? key : "\(path).\(key)"
    }

    func has(_ key: String) -> Bool {
        if let v = fields[key], v != .null { return true }
        return false
    }

    /// Notes a member of `fields` as read.
    private func consume(_ key: String) {
        if !consumed.contains(key) { consumed.append(key) }
    }

    /// Marks a member as known without reading it.
    func ignore(_ keys: String...) {
        for k in keys where fields[k] != nil { consume(k) }
    }

    func raw(_ key: String, required: Bool = false) -> JSONValue? {
        guard let v = fields[key] else {
            if required { diagnostics.add(childPath(key), "required field is missing") }
            return nil
        }
        consume(key)
        guard v != .null else {
            if required { diagnostics.add(childPath(key), "required field is missing") }
            return nil
        }
        return v
    }

    func string(_ key: String, required: Bool = false, nonEmpty: Bool = true) -> String? {
        guard let v = raw(key, required: required) else { return nil }
        guard case .string(let s) = v else {
            diagnostics.add(childPath(key), "must be a string, found \(v.typeName)")
            return nil
        }
        if nonEmpty && s.isEmpty && required {
            diagnostics.add(childPath(key), "must not be empty")
            return nil
        }
        return s
    }

    func enumeration(_ key: String, _ allowed: [String], required: Bool = false) -> String? {
        guard let s = string(key, required: required) else { return nil }
        guard allowed.contains(s) else {
            let list = allowed.map { "\"\($0)\"" }.joined(separator: ", ")
            diagnostics.add(childPath(key), "unsupported value \"\(s)\": supported values: \(list)")
            return nil
        }
        return s
    }

    func int(_ key: String, required: Bool = false, range: ClosedRange<Int>? = nil) -> Int? {
        guard let v = raw(key, required: required) else { return nil }
        guard let i = v.intValue else {
            diagnostics.add(childPath(key), "must be an integer, found \(v.typeName)")
            return nil
        }
        if let range, !range.contains(i) {
            diagnostics.add(childPath(key), "must be between \(range.lowerBound) and \(range.upperBound), found \(i)")
            return nil
        }
        return i
    }

    func bool(_ key: String) -> Bool? {
        guard let v = raw(key) else { return nil }
        guard case .bool(let b) = v else {
            diagnostics.add(childPath(key), "must be a boolean, found \(v.typeName)")
            return nil
        }
        return b
    }

    func object(_ key: String, required: Bool = false) -> ObjectReader? {
        guard let v = raw(key, required: required) else { return nil }
        return ObjectReader(v, origin: .member(self, key), diagnostics: diagnostics)
    }

    /// The elements of an array member (with their paths); checks the item count.
    func array(_ key: String, required: Bool = false, minItems: Int = 0, maxItems: Int = .max) -> [Element]? {
        guard let v = raw(key, required: required) else {
            if minItems > 0 && !required && fields[key] != nil {
                diagnostics.add(childPath(key), "must have at least \(minItems) item(s)")
            }
            return nil
        }
        guard case .array(let a) = v else {
            diagnostics.add(childPath(key), "must be an array, found \(v.typeName)")
            return nil
        }
        if a.count < minItems {
            diagnostics.add(childPath(key), "must have at least \(minItems) item(s), found \(a.count)")
        }
        if a.count > maxItems {
            diagnostics.add(childPath(key), "must have at most \(maxItems) item(s), found \(a.count)")
        }
        return a.enumerated().map { Element(value: $0.element, owner: self, key: key, offset: $0.offset) }
    }

    func objects(_ key: String, required: Bool = false, minItems: Int = 0, maxItems: Int = .max) -> [ObjectReader] {
        (array(key, required: required, minItems: minItems, maxItems: maxItems) ?? []).compactMap { ObjectReader($0) }
    }

    /// A string that must be an HTTP header name (an RFC 9110 token).
    func headerName(_ key: String, required: Bool = false) -> String? {
        guard let s = string(key, required: required) else { return nil }
        guard HTTPText.isToken(s), s.utf8.count <= 256 else {
            diagnostics.add(childPath(key), "must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~, at most 256), found \(JSONValue.quoted(s))")
            return nil
        }
        return s
    }

    /// A string that goes into a header value: no control characters (CR, LF, NUL, ...).
    func headerValue(_ key: String, required: Bool = false) -> String? {
        guard let s = string(key, required: required, nonEmpty: false) else { return nil }
        guard HTTPText.isFieldValue(s), s.utf8.count <= 4096 else {
            diagnostics.add(childPath(key), "must be a header value without control characters (CR, LF, NUL), at most 4096 bytes")
            return nil
        }
        return s
    }

    func strings(_ key: String, maxItems: Int = .max) -> [String] {
        (array(key, maxItems: maxItems) ?? []).compactMap { item in
            guard case .string(let s) = item.value else {
                diagnostics.add(item.path, "must be a string, found \(item.value.typeName)")
                return nil
            }
            return s
        }
    }

    func stringMap(_ key: String) -> [String: String] {
        guard let r = object(key) else { return [:] }
        var out: [String: String] = [:]
        r.consumedAll = true
        for (k, v) in r.fields {
            if case .string(let s) = v { out[k] = s } else if v != .null {
                diagnostics.add(r.childPath(k), "must be a string, found \(v.typeName)")
            }
        }
        return out
    }

    func duration(_ key: String) -> GatewayDuration? {
        guard let s = string(key) else { return nil }
        guard let d = GatewayDuration(parsing: s) else {
            diagnostics.add(childPath(key), "invalid duration \"\(s)\": expected a Gateway API duration such as 500ms, 10s, 1m or 1h30m")
            return nil
        }
        return d
    }

    /// Reports members that were never read: typos and fields this API does not have.
    func rejectUnknownFields() {
        // `consumed` holds distinct members of `fields`: as many means all of them.
        guard !consumedAll, consumed.count < fields.count else { return }
        let known = Set(consumed)
        for key in fields.keys.sorted() where !known.contains(key) {
            diagnostics.add(childPath(key), "unknown field")
        }
    }
}

/// A Gateway API duration (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`).
public struct GatewayDuration: Sendable, Hashable, CustomStringConvertible {
    public var milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    public init?(parsing text: String) {
        var total: Int64 = 0
        var digits = ""
        var parts = 0
        var chars = Array(text)[...]
        guard !chars.isEmpty else { return nil }
        while let c = chars.first {
            if c.isASCII, c.isNumber {
                digits.append(c)
                chars = chars.dropFirst()
                continue
            }
            guard !digits.isEmpty, digits.count <= 5, let n = Int64(digits) else { return nil }
            let unit: Int64
            if chars.starts(with: ["m", "s"]) {
                unit = 1
                chars = chars.dropFirst(2)
            } else {
                switch c {
                case "h": unit = 3_600_000
                case "m": unit = 60_000
                case "s": unit = 1000
                default: return nil
                }
                chars = chars.dropFirst()
            }
            total += n * unit
            digits = ""
            parts += 1
        }
        guard digits.isEmpty, parts >= 1, parts <= 4 else { return nil }
        self.milliseconds = total
    }

    public var duration: Duration { .milliseconds(milliseconds) }

    public var description: String {
        if milliseconds % 1000 != 0 { return "\(milliseconds)ms" }
        return "\(milliseconds / 1000)s"
    }
}

/// What HTTP allows in header names and values (RFC 9110), checked where configuration enters.
public enum HTTPText {
    /// A token: the characters of a header name.
    public static func isToken(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { c in
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            default:
                return "!#$%&'*+-.^_`|~".utf8.contains(c)
            }
        }
    }

    /// Visible characters, spaces and tabs, and bytes of UTF-8 text: nothing that could end a
    /// header line or smuggle a control character.
    public static func isFieldValue(_ s: String) -> Bool {
        s.utf8.allSatisfy { c in c == 0x09 || (c >= 0x20 && c != 0x7F) }
    }
}
