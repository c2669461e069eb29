import AIGatewayAPI

/// Rewrites a JSON Schema (a tool's `parameters`, a `response_format` schema) into the OpenAPI
/// subset Gemini's `Schema` takes (the keywords common to the Gemini API's v1beta `Schema` and
/// Vertex AI's): local `$ref`s inlined, `type` lists and `null` alternatives folded into
/// `nullable`, and every keyword outside the subset dropped.
///
/// Kept: `type` (upper-cased), `format` (only the formats Gemini documents for the type),
/// `title`, `description`, `nullable`, `enum` (as strings), `items`, `minItems`, `maxItems`,
/// `properties`, `required` (only names that are properties), `minProperties`, `maxProperties`,
/// `minLength`, `maxLength`, `pattern`, `minimum`, `maximum`, `anyOf`, `propertyOrdering`.
/// Rewritten: `oneOf` → `anyOf`; `const` → a one-value `enum`; `allOf` → its members merged;
/// `type: [t, "null"]` → `t` + `nullable`; `type: [a, b]` → `anyOf`; a schema with no type gets
/// one from what it holds (`properties` → OBJECT, `items` → ARRAY, otherwise STRING).
/// Dropped (listed in `dropped`): everything else, e.g. `additionalProperties`, `$schema`, `$id`,
/// `default`, `examples`, `patternProperties`, `exclusiveMinimum`, `multipleOf`, `not`.
/// Refused (the candidate cannot serve the request): a `$ref` back into a schema being expanded
/// (recursion) and, below the top level, an object without properties (an open-ended map):
/// Gemini rejects both.
public struct GeminiSchema {
    public struct Invalid: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// The keywords copied as they are.
    static let copied: Set<String> = [
        "title", "description", "nullable", "minItems", "maxItems", "minProperties", "maxProperties",
        "minLength", "maxLength", "pattern", "minimum", "maximum", "propertyOrdering",
    ]
    /// Keywords read by the rewriting itself.
    static let handled: Set<String> = [
        "type", "format", "enum", "const", "items", "properties", "required", "anyOf", "oneOf", "allOf",
        "$ref", "$defs", "definitions",
    ]
    /// Formats Gemini documents per type (others are dropped).
    static let formats: [String: Set<String>] = [
        "STRING": ["enum", "date-time"],
        "NUMBER": ["float", "double"],
        "INTEGER": ["int32", "int64"],
    ]
    static let types: [String: String] = [
        "string": "STRING", "number": "NUMBER", "integer": "INTEGER", "boolean": "BOOLEAN",
        "array": "ARRAY", "object": "OBJECT",
    ]

    /// Most schema nodes written for one schema, so a DAG of `$ref`s cannot blow up.
    public static let maximumNodes = 5_000
    /// Deepest nesting written.
    public static let maximumDepth = 48

    /// The normalised schema.
    public private(set) var schema: JSONValue = .object([:])
    /// Keywords dropped (sorted, each once), for the debug log.
    public private(set) var dropped: [String] = []

    private let root: JSONValue
    private var droppedSet: Set<String> = []
    private var nodes = 0
    private var expanding: [String] = []

    /// Normalises `schema`; `what` names it in errors (e.g. "tool 'lookup' parameters").
    public init(_ schema: JSONValue, what: String) throws(Invalid) {
        self.root = schema
        guard case .object = schema else {
            throw Invalid(description: "\(what) must be a JSON Schema object, found \(schema.typeName)")
        }
        let result = try convert(schema, depth: 0, root: true, what: what)
        self.schema = result
        self.dropped = droppedSet.sorted()
    }

    private mutating func drop(_ key: String) { droppedSet.insert(key) }

    /// `root`: the schema itself (through any `$ref` to it), where an object without properties is
    /// allowed (the caller decides: a function without arguments has no `parameters`).
    private mutating func convert(_ value: JSONValue, depth: Int, root: Bool = false, what: String) throws(Invalid) -> JSONValue {
        nodes += 1
        guard nodes <= Self.maximumNodes else {
            throw Invalid(description: "\(what) is too large once its $refs are inlined (more than \(Self.maximumNodes) schemas)")
        }
        guard depth <= Self.maximumDepth else {
            throw Invalid(description: "\(what) nests deeper than \(Self.maximumDepth) levels")
        }
        // `true`/`{}`: anything. Gemini needs a type: a string is the loosest it has.
        guard case .object(var input) = value else {
            if value == .bool(true) { return .object(["type": .string("STRING")]) }
            throw Invalid(description: "\(what): a schema must be an object, found \(value.typeName)")
        }

        if let ref = input["$ref"] {
            guard let pointer = ref.stringValue else { throw Invalid(description: "\(what): $ref must be a string") }
            input["$ref"] = nil
            if expanding.contains(pointer) {
                // Gemini's subset has no references, and an object must list its properties.
                throw Invalid(description: "\(what): the recursive $ref '\(pointer)' cannot be expressed in Gemini's schema")
            }
            let target = try resolve(pointer, what: what)
            expanding.append(pointer)
            defer { expanding.removeLast() }
            // Members next to the $ref (a description, often) win over the target's.
            guard case .object(var merged) = target else {
                return try convert(target, depth: depth + 1, root: root, what: what)
            }
            for (k, v) in input where k != "$defs" && k != "definitions" { merged[k] = v }
            return try convert(.object(merged), depth: depth + 1, root: root, what: what)
        }

        // allOf: fold the members into this schema (properties and required united).
        if let all = input.removeValue(forKey: "allOf") {
            guard case .array(let members) = all else { throw Invalid(description: "\(what): allOf must be an array") }
            for member in members {
                var m = member
                if let ref = member["$ref"]?.stringValue { m = try resolve(ref, what: what) }
                guard case .object(let o) = m else { continue }
                for (k, v) in o {
                    switch k {
                    case "properties":
                        var props = input["properties"]?.objectValue ?? [:]
                        for (pk, pv) in v.objectValue ?? [:] where props[pk] == nil { props[pk] = pv }
                        input["properties"] = .object(props)
                    case "required":
                        let have = input["required"]?.arrayValue ?? []
                        input["required"] = .array(have + (v.arrayValue ?? []).filter { !have.contains($0) })
                    default:
                        if input[k] == nil { input[k] = v }
                    }
                }
            }
        }

        var out: [String: JSONValue] = [:]
        var nullable = input["nullable"] == .bool(true)

        // type: a string or a list.
        var typeName: String?
        var alternatives: [JSONValue] = []
        switch input["type"] {
        case .string(let t)?:
            if t == "null" {
                nullable = true
            } else if let mapped = Self.types[t.lowercased()] {
                typeName = mapped
            } else {
                throw Invalid(description: "\(what): unknown type '\(t)'")
            }
        case .array(let list)?:
            var names: [String] = []
            for item in list {
                guard let t = item.stringValue else { throw Invalid(description: "\(what): type list items must be strings") }
                if t == "null" {
                    nullable = true
                } else if let mapped = Self.types[t.lowercased()] {
                    if !names.contains(mapped) { names.append(mapped) }
                } else {
                    throw Invalid(description: "\(what): unknown type '\(t)'")
                }
            }
            if names.count == 1 {
                typeName = names[0]
            } else if names.count > 1 {
                alternatives = names.map { .object(["type": .string($0)]) }
            }
        case nil, .null?:
            break
        case let other?:
            throw Invalid(description: "\(what): type must be a string or an array, found \(other.typeName)")
        }

        // anyOf / oneOf: a `null` alternative becomes `nullable`; one alternative left is inlined.
        var anyOf: [JSONValue] = []
        for key in ["anyOf", "oneOf"] {
            guard let v = input[key] else { continue }
            guard case .array(let list) = v else { throw Invalid(description: "\(what): \(key) must be an array") }
            for item in list {
                if item["type"]?.stringValue == "null" && item.objectValue?.count == 1 {
                    nullable = true
                    continue
                }
                anyOf.append(try convert(item, depth: depth + 1, what: what))
            }
        }
        if !alternatives.isEmpty { anyOf = alternatives + anyOf }
        if typeName == nil && anyOf.count == 1, case .object(let only) = anyOf[0] {
            // `anyOf: [X, {type: null}]` (pydantic's Optional[X]) is X, nullable.
            for (k, v) in only where out[k] == nil { out[k] = v }
            anyOf = []
            typeName = only["type"]?.stringValue
        }
        if !anyOf.isEmpty { out["anyOf"] = .array(anyOf) }

        // enum / const: strings only (Gemini's enum is a string list); a null value is `nullable`.
        var enumValues: [JSONValue]?
        if let c = input["const"] { enumValues = [c] }
        if let e = input["enum"] {
            guard case .array(let list) = e else { throw Invalid(description: "\(what): enum must be an array") }
            enumValues = list
        }
        if let values = enumValues {
            var strings: [JSONValue] = []
            for v in values {
                switch v {
                case .null: nullable = true
                case .string: strings.append(v)
                case .int, .double, .bool: strings.append(.string(v.canonicalJSON()))
                default: throw Invalid(description: "\(what): enum values must be scalars")
                }
            }
            out["enum"] = .array(strings)
            if typeName == nil { typeName = "STRING" }
        }

        if let items = input["items"] {
            if case .array(let tuple) = items {
                // Tuple form: Gemini has one item schema; the first stands for all.
                drop("items (tuple form)")
                if let first = tuple.first { out["items"] = try convert(first, depth: depth + 1, what: what) }
            } else {
                out["items"] = try convert(items, depth: depth + 1, what: what)
            }
            if typeName == nil && anyOf.isEmpty { typeName = "ARRAY" }
        }

        if let props = input["properties"] {
            guard case .object(let p) = props else { throw Invalid(description: "\(what): properties must be an object") }
            var converted: [String: JSONValue] = [:]
            for (name, schema) in p {
                converted[name] = try convert(schema, depth: depth + 1, what: "\(what) property '\(name)'")
            }
            if !converted.isEmpty { out["properties"] = .object(converted) }
            if let req = input["required"]?.arrayValue {
                let names = req.filter { $0.stringValue.map { converted[$0] != nil } ?? false }
                if !names.isEmpty { out["required"] = .array(names) }
            }
            if typeName == nil && anyOf.isEmpty { typeName = "OBJECT" }
        } else if input["required"] != nil {
            drop("required")
        }

        if typeName == nil && out["anyOf"] == nil { typeName = input["additionalProperties"] != nil ? "OBJECT" : "STRING" }
        if let typeName {
            out["type"] = .string(typeName)
            if let f = input["format"]?.stringValue {
                if Self.formats[typeName]?.contains(f) == true || (f == "enum" && out["enum"] != nil) {
                    out["format"] = .string(f)
                } else {
                    drop("format: \(f)")
                }
            }
        }
        if nullable { out["nullable"] = .bool(true) }
        // Gemini rejects an OBJECT without properties ("should be non-empty for OBJECT type").
        if !root && typeName == "OBJECT" && out["properties"] == nil {
            throw Invalid(description: "\(what): Gemini cannot declare an object without properties (an open-ended object such as a map)")
        }

        for (k, v) in input {
            if Self.copied.contains(k) {
                if k != "nullable" { out[k] = v }
            } else if !Self.handled.contains(k) {
                drop(k)
            }
        }
        return .object(out)
    }

    /// Follows a local JSON pointer (`#/$defs/Name`, `#/definitions/Name`, `#/properties/a/items`).
    private func resolve(_ pointer: String, what: String) throws(Invalid) -> JSONValue {
        guard pointer == "#" || pointer.hasPrefix("#/") else {
            throw Invalid(description: "\(what): only local $refs (#/...) can be inlined, found '\(pointer)'")
        }
        var node = root
        for raw in pointer.dropFirst(2).split(separator: "/", omittingEmptySubsequences: false) where pointer != "#" {
            let key = String(raw).replacing("~1", with: "/").replacing("~0", with: "~")
            if case .array(let a) = node, let i = Int(key), a.indices.contains(i) {
                node = a[i]
            } else if let next = node[key] {
                node = next
            } else {
                throw Invalid(description: "\(what): $ref '\(pointer)' points to nothing")
            }
        }
        return node
    }
}
