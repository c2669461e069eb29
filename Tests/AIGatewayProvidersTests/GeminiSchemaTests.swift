import AIGatewayAPI
import AIGatewayProviders
import Testing

/// Parses JSON text written in a test.
func parsedJSON(_ text: String) -> JSONValue {
    do {
        return try JSONParser.parse(Array(text.utf8))
    } catch {
        Issue.record("bad test JSON: \(error)")
        return .null
    }
}

private func normalise(_ text: String) throws -> GeminiSchema {
    try GeminiSchema(parsedJSON(text), what: "schema")
}

@Suite("Gemini schema normalisation")
struct GeminiSchemaTests {
    @Test("types upper-cased, unsupported keywords dropped and listed")
    func dropsUnsupported() throws {
        let s = try normalise(
            """
            {"$schema": "http://json-schema.org/draft-07/schema#", "$id": "x", "type": "object", "additionalProperties": false,
             "properties": {"city": {"type": "string", "description": "City", "default": "Paris", "examples": ["Rome"], "minLength": 1},
                            "days": {"type": "integer", "minimum": 1, "maximum": 7, "exclusiveMaximum": 8, "format": "int32"},
                            "tags": {"type": "array", "items": {"type": "string", "format": "uri"}, "uniqueItems": true, "maxItems": 3}},
             "patternProperties": {"^x": {}}, "required": ["city", "ghost"]}
            """)
        #expect(
            s.schema
                == parsedJSON(
                    """
                    {"type": "OBJECT", "required": ["city"],
                     "properties": {"city": {"type": "STRING", "description": "City", "minLength": 1},
                                    "days": {"type": "INTEGER", "minimum": 1, "maximum": 7, "format": "int32"},
                                    "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "maxItems": 3}}}
                    """))
        #expect(
            s.dropped == [
                "$id", "$schema", "additionalProperties", "default", "examples", "exclusiveMaximum", "format: uri", "patternProperties",
                "uniqueItems",
            ])
    }

    @Test("$ref into $defs and definitions inlined, sibling description kept")
    func refs() throws {
        let s = try normalise(
            """
            {"type": "object", "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}},
             "definitions": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}}},
             "properties": {"unit": {"$ref": "#/$defs/Unit", "description": "Unit"},
                            "at": {"allOf": [{"$ref": "#/definitions/Point"}], "description": "Where"}}}
            """)
        #expect(
            s.schema
                == parsedJSON(
                    """
                    {"type": "OBJECT", "properties": {
                      "unit": {"type": "STRING", "enum": ["c", "f"], "description": "Unit"},
                      "at": {"type": "OBJECT", "properties": {"x": {"type": "NUMBER"}}, "description": "Where"}}}
                    """))
        #expect(s.dropped.isEmpty)
    }

    @Test("nullable from a type list, an anyOf null branch and an enum null")
    func nullable() throws {
        let s = try normalise(
            """
            {"type": "object", "properties": {
              "a": {"type": ["string", "null"]},
              "b": {"anyOf": [{"type": "integer"}, {"type": "null"}], "description": "B"},
              "c": {"enum": ["x", null, 3]},
              "d": {"type": ["string", "number"]},
              "e": {"oneOf": [{"type": "string"}, {"type": "boolean"}]},
              "f": {"const": "fixed"}}}
            """)
        #expect(
            s.schema
                == parsedJSON(
                    """
                    {"type": "OBJECT", "properties": {
                      "a": {"type": "STRING", "nullable": true},
                      "b": {"type": "INTEGER", "nullable": true, "description": "B"},
                      "c": {"type": "STRING", "enum": ["x", "3"], "nullable": true},
                      "d": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]},
                      "e": {"anyOf": [{"type": "STRING"}, {"type": "BOOLEAN"}]},
                      "f": {"type": "STRING", "enum": ["fixed"]}}}
                    """))
    }

    @Test("a recursive $ref and a nested object without properties are refused (Gemini rejects both); a top-level one is allowed")
    func unexpressible() throws {
        #expect(
            throws: GeminiSchema.Invalid(
                description: "schema property 'children': the recursive $ref '#/$defs/Node' cannot be expressed in Gemini's schema")
        ) {
            try normalise(
                """
                {"$defs": {"Node": {"type": "object", "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
                 "$ref": "#/$defs/Node"}
                """)
        }
        #expect(
            throws: GeminiSchema.Invalid(
                description: "schema property 'params': Gemini cannot declare an object without properties (an open-ended object such as a map)")
        ) {
            try normalise(#"{"type": "object", "properties": {"params": {"type": "object", "additionalProperties": {"type": "string"}}}}"#)
        }
        #expect(try normalise(#"{"type": "object", "additionalProperties": false}"#).schema == parsedJSON(#"{"type": "OBJECT"}"#))
    }

    @Test("a $ref to nothing, a remote $ref and an exponential $ref graph are refused with a clear error")
    func refusals() throws {
        #expect(throws: GeminiSchema.Invalid(description: "schema property 'a': $ref '#/$defs/Missing' points to nothing")) {
            try normalise(##"{"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}"##)
        }
        #expect(throws: GeminiSchema.Invalid(description: "schema: only local $refs (#/...) can be inlined, found 'https://x/y.json'")) {
            try normalise(#"{"$ref": "https://x/y.json"}"#)
        }
        // Each level uses the next twice: 2^20 nodes once inlined.
        var defs: [String] = []
        for i in 0..<20 {
            defs.append("\"L\(i)\": {\"type\": \"object\", \"properties\": {\"a\": {\"$ref\": \"#/$defs/L\(i + 1)\"}, \"b\": {\"$ref\": \"#/$defs/L\(i + 1)\"}}}")
        }
        defs.append("\"L20\": {\"type\": \"string\"}")
        let big = "{\"$defs\": {\(defs.joined(separator: ","))}, \"$ref\": \"#/$defs/L0\"}"
        #expect(throws: GeminiSchema.Invalid.self) { try normalise(big) }
        #expect(throws: GeminiSchema.Invalid(description: "schema: unknown type 'text'")) {
            try normalise(#"{"type": "text"}"#)
        }
    }

    @Test("a schema with no type gets one from its members")
    func inferredType() throws {
        let s = try normalise(#"{"properties": {"list": {"items": {}}, "any": {}}}"#)
        #expect(
            s.schema
                == parsedJSON(
                    """
                    {"type": "OBJECT", "properties": {"list": {"type": "ARRAY", "items": {"type": "STRING"}},
                      "any": {"type": "STRING"}}}
                    """))
    }
}
