import AIGatewayAPI
import Foundation

/// A JSON value: how this module hands Kubernetes objects around. It is the API module's
/// `JSONValue` (one strict parser for manifests, request bodies and API objects); this module
/// adds `Codable`, literals and object-metadata accessors.
///
/// The client works on raw JSON rather than generated types: the controller reads only a
/// few resource kinds and decodes them itself, and `[String: Any]` is not `Sendable`.
public typealias JSONValue = AIGatewayAPI.JSONValue

extension JSONValue {
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
}

// MARK: - Object metadata

extension JSONValue {
    /// `metadata.name`, if present.
    public var name: String? { self["metadata"]?["name"]?.stringValue }
    /// `metadata.namespace`, if present.
    public var namespace: String? { self["metadata"]?["namespace"]?.stringValue }
    /// `metadata.resourceVersion`, if present.
    public var resourceVersion: String? { self["metadata"]?["resourceVersion"]?.stringValue }

    /// A copy with `value` stored at `key` (the value must be an object; otherwise unchanged).
    public func setting(_ key: String, to value: JSONValue) -> JSONValue {
        guard case .object(var o) = self else { return self }
        o[key] = value
        return .object(o)
    }
}

// MARK: - Codable

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? container.decode(Int.self) {
            self = .int(i)
        } else if let d = try? container.decode(Double.self) {
            self = .double(d)
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let a = try? container.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let b): try container.encode(b)
        case .int(let i): try container.encode(i)
        case .double(let d): try container.encode(d)
        case .string(let s): try container.encode(s)
        case .array(let a): try container.encode(a)
        case .object(let o): try container.encode(o)
        }
    }
}

extension JSONValue {
    /// Parses JSON text.
    public init(jsonData: Data) throws {
        self = try JSONValue.parse(json: jsonData)
    }

    /// Serialises to compact JSON with sorted keys (stable output).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Decodes a `Decodable` type from this value (round trip through JSON).
    public func decode<T: Decodable>(as type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: jsonData())
    }

    /// Encodes an `Encodable` value into a `JSONValue` (round trip through JSON).
    public init<T: Encodable>(encoding value: T) throws {
        self = try JSONValue(jsonData: JSONEncoder().encode(value))
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(nilLiteral: ()) { self = .null }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}
