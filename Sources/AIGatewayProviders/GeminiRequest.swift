import AIGatewayAPI

/// An OpenAI chat request rewritten as a Gemini `generateContent` body (the Gemini API and Vertex
/// AI take the same body).
///
/// - `system`/`developer` messages: their text joined with `\n` into `systemInstruction`.
/// - `user` → role `user`, `assistant` → role `model`; adjacent turns of one role merged so roles
///   alternate; empty text parts dropped; a turn left with no part gets a `" "` text part, and a
///   request with no turn at all gets one such user turn.
/// - Images: `data:` URLs → `inlineData`, `gs://` URIs → `fileData`; http(s) URLs are refused
///   (Gemini does not fetch them). `input_audio` → `inlineData`.
/// - Assistant `tool_calls` → `functionCall{name, args}` (the arguments parsed; `""` is `{}`), with
///   the `thoughtSignature` a Gemini answer carried restored from the tool call id
///   (`<id>__thought__<signature>`, see `GeminiResponse`).
/// - `tool` messages → `functionResponse{name, response: {content}}`, the name looked up from the
///   call id, ordered as the calls were, alone in one user turn right after the calls.
/// - `tools` → one `functionDeclarations` list (schemas through `GeminiSchema`; a function without
///   properties is declared without `parameters`); `tool_choice` → `functionCallingConfig`.
/// - `generationConfig`: `max_completion_tokens`/`max_tokens` → `maxOutputTokens`, `temperature`,
///   `top_p` → `topP`, `stop` → `stopSequences`, `n` → `candidateCount`, `seed`,
///   `presence_penalty`/`frequency_penalty`, `response_format` → `responseMimeType` (+
///   `responseSchema`).
/// - Refused (a client error naming the parameter): `n > 1` with `stream`, `logprobs`,
///   `audio`/`modalities` asking for audio, tools other than functions.
/// - Dropped (listed in `dropped`): `parallel_tool_calls`, `user`, `metadata`, `store`,
///   `service_tier`, `reasoning_effort`, `logit_bias`, `prediction`, `stream_options` (the gateway
///   decides on the usage chunk), schema keywords outside Gemini's subset.
public struct GeminiRequest: Sendable {
    /// Why a request cannot be sent to Gemini; `param` names the offending member.
    public struct Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        public var param: String?
        public var description: String { message }
        public init(_ message: String, param: String? = nil) {
            self.message = message
            self.param = param
        }
    }

    /// The `generateContent` body.
    public var body: JSONValue
    /// Whether the client asked for a stream (`:streamGenerateContent?alt=sse`).
    public var stream: Bool
    /// Request members and schema keywords that were not sent (sorted), for the debug log.
    public var dropped: [String]

    /// Members translated or checked; any other member is dropped (and listed).
    static let readMembers: Set<String> = [
        "model", "messages", "stream", "tools", "tool_choice", "functions", "function_call", "max_tokens",
        "max_completion_tokens", "temperature", "top_p", "stop", "n", "seed", "presence_penalty", "frequency_penalty",
        "response_format", "logprobs", "modalities", "audio",
    ]

    /// Separates a Gemini thought signature from the call id the client saw.
    public static let thoughtSeparator = "__thought__"

    public init(_ request: JSONValue) throws(Refusal) {
        guard case .object(let r) = request else { throw Refusal("request body must be a JSON object") }
        var dropped: Set<String> = []
        for key in r.keys where !Self.readMembers.contains(key) && r[key] != .null {
            dropped.insert(key)
        }
        stream = r["stream"] == .bool(true)

        var body: [String: JSONValue] = [:]
        let (contents, system) = try Self.contents(r["messages"])
        body["contents"] = .array(contents)
        if let system { body["systemInstruction"] = .object(["parts": .array([.object(["text": .string(system)])])]) }

        let config = try Self.toolConfig(r)
        if let tools = try Self.tools(r, dropped: &dropped) {
            body["tools"] = tools
            if let config { body["toolConfig"] = config }
        } else if config != nil {
            dropped.insert("tool_choice (no tools)")
        }
        let generation = try Self.generationConfig(r, stream: stream, dropped: &dropped)
        if !generation.isEmpty { body["generationConfig"] = .object(generation) }

        self.body = .object(body)
        self.dropped = dropped.sorted()
    }

    // MARK: Messages

    private struct Turn {
        var role: String
        var parts: [JSONValue]
        /// Function responses stay alone in their turn.
        var responses: Bool = false
    }

    /// The turns and the system text.
    static func contents(_ messages: JSONValue?) throws(Refusal) -> ([JSONValue], String?) {
        guard let messages else { throw Refusal("'messages' is required", param: "messages") }
        guard case .array(let list) = messages else { throw Refusal("'messages' must be an array", param: "messages") }
        var system: [String] = []
        var turns: [Turn] = []
        // Calls of the latest assistant turn, by id: (name, order).
        var calls: [String: (name: String, order: Int)] = [:]
        var pendingResponses: [(order: Int, part: JSONValue)] = []
        var answered: Set<String> = []

        func flushResponses() throws(Refusal) {
            guard !pendingResponses.isEmpty else { return }
            let parts = pendingResponses.sorted { $0.order < $1.order }.map(\.part)
            turns.append(Turn(role: "user", parts: parts, responses: true))
            pendingResponses = []
        }
        func append(_ role: String, _ parts: [JSONValue]) {
            if let last = turns.last, last.role == role, !last.responses {
                turns[turns.count - 1].parts += parts
            } else {
                turns.append(Turn(role: role, parts: parts))
            }
        }

        for (i, message) in list.enumerated() {
            let at = "messages[\(i)]"
            guard case .object(let m) = message else { throw Refusal("\(at) must be an object", param: at) }
            guard let role = m["role"]?.stringValue else { throw Refusal("\(at).role must be a string", param: "\(at).role") }
            if role != "tool" { try flushResponses() }
            switch role {
            case "system", "developer":
                let text = try Self.text(of: m["content"], at: at)
                if !text.isEmpty { system.append(text) }
            case "user":
                append("user", try Self.userParts(m["content"], at: at))
            case "assistant":
                var parts: [JSONValue] = []
                let text = try Self.text(of: m["content"], at: at, allowRefusal: true)
                if !text.isEmpty { parts.append(.object(["text": .string(text)])) }
                calls = [:]
                answered = []
                if let toolCalls = m["tool_calls"], toolCalls != .null {
                    guard case .array(let tcs) = toolCalls else { throw Refusal("\(at).tool_calls must be an array", param: "\(at).tool_calls") }
                    for (k, tc) in tcs.enumerated() {
                        let tat = "\(at).tool_calls[\(k)]"
                        guard let id = tc["id"]?.stringValue, let name = tc["function"]?["name"]?.stringValue else {
                            throw Refusal("\(tat) needs an id and function.name", param: tat)
                        }
                        let argText = tc["function"]?["arguments"]?.stringValue ?? ""
                        var args: JSONValue = .object([:])
                        if !argText.allSatisfy(\.isWhitespace) {
                            guard let parsed = try? JSONParser.parse(Array(argText.utf8)), case .object = parsed else {
                                throw Refusal("\(tat).function.arguments must be a JSON object", param: "\(tat).function.arguments")
                            }
                            args = parsed
                        }
                        var part: [String: JSONValue] = ["functionCall": .object(["name": .string(name), "args": args])]
                        if let r = id.firstRange(of: Self.thoughtSeparator) {
                            part["thoughtSignature"] = .string(String(id[r.upperBound...]))
                        }
                        parts.append(.object(part))
                        calls[id] = (name, k)
                    }
                }
                if !parts.isEmpty { append("model", parts) }
            case "tool":
                guard let id = m["tool_call_id"]?.stringValue else {
                    throw Refusal("\(at).tool_call_id must be a string", param: "\(at).tool_call_id")
                }
                guard let call = calls[id] else {
                    throw Refusal("\(at).tool_call_id '\(id)' answers no tool call of the assistant message before it", param: "\(at).tool_call_id")
                }
                guard answered.insert(id).inserted else {
                    throw Refusal("\(at): tool call '\(id)' is answered twice", param: "\(at).tool_call_id")
                }
                let text = try Self.text(of: m["content"], at: at)
                let response: JSONValue = .object([
                    "name": .string(call.name), "response": .object(["content": .string(text)]),
                ])
                pendingResponses.append((call.order, .object(["functionResponse": response])))
            default:
                throw Refusal("\(at).role '\(role)' is not one of system, developer, user, assistant, tool", param: "\(at).role")
            }
        }
        try flushResponses()

        // Each turn with calls must be answered in full by the next turn.
        for (k, turn) in turns.enumerated() where turn.role == "model" {
            let n = turn.parts.filter { $0["functionCall"] != nil }.count
            guard n > 0, k + 1 < turns.count else { continue }
            let next = turns[k + 1]
            let answers = next.responses ? next.parts.count : 0
            if answers != n {
                throw Refusal("an assistant message with \(n) tool call(s) must be followed by a tool message for each of them", param: "messages")
            }
        }

        var out: [JSONValue] = []
        for turn in turns {
            let parts = turn.parts.isEmpty ? [.object(["text": .string(" ")])] : turn.parts
            out.append(.object(["role": .string(turn.role), "parts": .array(parts)]))
        }
        if out.isEmpty { out = [.object(["role": .string("user"), "parts": .array([.object(["text": .string(" ")])])])] }
        return (out, system.isEmpty ? nil : system.joined(separator: "\n"))
    }

    /// The text of a string content or of an array of text parts.
    static func text(of content: JSONValue?, at: String, allowRefusal: Bool = false) throws(Refusal) -> String {
        switch content {
        case nil, .null?: return ""
        case .string(let s)?: return s
        case .array(let parts)?:
            var text = ""
            for (k, part) in parts.enumerated() {
                let type = part["type"]?.stringValue
                if type == "text", let t = part["text"]?.stringValue {
                    text += t
                } else if allowRefusal && type == "refusal" {
                    continue
                } else {
                    throw Refusal("\(at).content[\(k)]: only text parts are accepted here", param: "\(at).content")
                }
            }
            return text
        case let other?:
            throw Refusal("\(at).content must be a string or an array, found \(other.typeName)", param: "\(at).content")
        }
    }

    static func userParts(_ content: JSONValue?, at: String) throws(Refusal) -> [JSONValue] {
        switch content {
        case nil, .null?: return []
        case .string(let s)?: return s.isEmpty ? [] : [.object(["text": .string(s)])]
        case .array(let parts)?:
            var out: [JSONValue] = []
            for (k, part) in parts.enumerated() {
                let pat = "\(at).content[\(k)]"
                switch part["type"]?.stringValue {
                case "text":
                    guard let t = part["text"]?.stringValue else { throw Refusal("\(pat).text must be a string", param: pat) }
                    if !t.isEmpty { out.append(.object(["text": .string(t)])) }
                case "image_url":
                    guard let url = part["image_url"]?["url"]?.stringValue ?? part["image_url"]?.stringValue else {
                        throw Refusal("\(pat).image_url.url must be a string", param: pat)
                    }
                    out.append(try Self.media(url: url, at: pat))
                case "input_audio":
                    guard let data = part["input_audio"]?["data"]?.stringValue, let format = part["input_audio"]?["format"]?.stringValue else {
                        throw Refusal("\(pat).input_audio needs data and format", param: pat)
                    }
                    out.append(.object(["inlineData": .object(["mimeType": .string("audio/\(format)"), "data": .string(data)])]))
                case "file":
                    guard let data = part["file"]?["file_data"]?.stringValue else {
                        throw Refusal("\(pat).file: only file_data (a data: URL) can be sent to Gemini, not file_id", param: pat)
                    }
                    out.append(try Self.media(url: data, at: pat))
                case let t:
                    throw Refusal("\(pat): content part type '\(t ?? "(none)")' is not supported by Gemini", param: pat)
                }
            }
            return out
        case let other?:
            throw Refusal("\(at).content must be a string or an array, found \(other.typeName)", param: "\(at).content")
        }
    }

    /// `data:<mime>;base64,<data>` → `inlineData`; `gs://…` → `fileData`; anything else is refused.
    static func media(url: String, at: String) throws(Refusal) -> JSONValue {
        if url.hasPrefix("data:") {
            guard let comma = url.firstIndex(of: ","), url[..<comma].hasSuffix(";base64") else {
                throw Refusal("\(at): a data URL must be base64 (data:<type>;base64,<data>)", param: at)
            }
            let mime = String(url[url.index(url.startIndex, offsetBy: 5)..<comma].dropLast(7))
            guard !mime.isEmpty else { throw Refusal("\(at): the data URL names no media type", param: at) }
            return .object(["inlineData": .object(["mimeType": .string(mime), "data": .string(String(url[url.index(after: comma)...]))])])
        }
        if url.hasPrefix("gs://") {
            let ext = url.split(separator: ".").last.map { $0.lowercased() } ?? ""
            let types = [
                "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
                "heic": "image/heic", "heif": "image/heif", "pdf": "application/pdf", "mp3": "audio/mp3", "wav": "audio/wav",
                "mp4": "video/mp4", "txt": "text/plain",
            ]
            guard let mime = types[ext] else {
                throw Refusal("\(at): cannot tell the media type of '\(url)' from its extension; send it as a data URL", param: at)
            }
            return .object(["fileData": .object(["mimeType": .string(mime), "fileUri": .string(url)])])
        }
        throw Refusal(
            "\(at): Gemini does not fetch images from http(s) URLs; send a data URL (data:image/png;base64,...) or a gs:// URI",
            param: at)
    }

    // MARK: Tools

    static func tools(_ r: [String: JSONValue], dropped: inout Set<String>) throws(Refusal) -> JSONValue? {
        guard let tools = r["tools"], tools != .null else { return nil }
        guard case .array(let list) = tools else { throw Refusal("'tools' must be an array", param: "tools") }
        guard !list.isEmpty else { return nil }
        var declarations: [JSONValue] = []
        for (k, tool) in list.enumerated() {
            guard tool["type"]?.stringValue == "function", case .object(let f)? = tool["function"] else {
                throw Refusal("tools[\(k)]: only function tools can be sent to Gemini", param: "tools[\(k)]")
            }
            guard let name = f["name"]?.stringValue, !name.isEmpty else {
                throw Refusal("tools[\(k)].function.name must be a non-empty string", param: "tools[\(k)].function.name")
            }
            var decl: [String: JSONValue] = ["name": .string(name)]
            if let d = f["description"]?.stringValue { decl["description"] = .string(d) }
            if let params = f["parameters"], params != .null {
                let schema: GeminiSchema
                do {
                    schema = try GeminiSchema(params, what: "tools[\(k)].function.parameters")
                } catch {
                    throw Refusal(error.description, param: "tools[\(k)].function.parameters")
                }
                for d in schema.dropped { dropped.insert("tools.parameters.\(d)") }
                // Gemini rejects an OBJECT without properties: a function without arguments has no parameters.
                if schema.schema["properties"] != nil || schema.schema["type"]?.stringValue != "OBJECT" {
                    decl["parameters"] = schema.schema
                }
            }
            if f["strict"] != nil { dropped.insert("tools.function.strict") }
            declarations.append(.object(decl))
        }
        return .array([.object(["functionDeclarations": .array(declarations)])])
    }

    static func toolConfig(_ r: [String: JSONValue]) throws(Refusal) -> JSONValue? {
        guard let choice = r["tool_choice"], choice != .null else { return nil }
        var config: [String: JSONValue]
        switch choice {
        case .string("auto"): config = ["mode": .string("AUTO")]
        case .string("none"): config = ["mode": .string("NONE")]
        case .string("required"): config = ["mode": .string("ANY")]
        case .object:
            guard choice["type"]?.stringValue == "function", let name = choice["function"]?["name"]?.stringValue else {
                throw Refusal("'tool_choice' must be auto, none, required or {type: function, function: {name}}", param: "tool_choice")
            }
            config = ["mode": .string("ANY"), "allowedFunctionNames": .array([.string(name)])]
        default:
            throw Refusal("'tool_choice' must be auto, none, required or {type: function, function: {name}}", param: "tool_choice")
        }
        return .object(["functionCallingConfig": .object(config)])
    }

    // MARK: Generation config

    static func generationConfig(_ r: [String: JSONValue], stream: Bool, dropped: inout Set<String>) throws(Refusal) -> [String: JSONValue] {
        var g: [String: JSONValue] = [:]
        func number(_ key: String) throws(Refusal) -> JSONValue? {
            switch r[key] {
            case nil, .null?: return nil
            case .int(let i)?: return .int(i)
            case .double(let d)?: return .double(d)
            default: throw Refusal("'\(key)' must be a number", param: key)
            }
        }
        func integer(_ key: String) throws(Refusal) -> Int? {
            switch r[key] {
            case nil, .null?: return nil
            case let v?:
                guard let i = v.intValue else { throw Refusal("'\(key)' must be an integer", param: key) }
                return i
            }
        }
        let maxTokens = try integer("max_tokens")
        if let max = try integer("max_completion_tokens") ?? maxTokens { g["maxOutputTokens"] = .int(max) }
        if let t = try number("temperature") { g["temperature"] = t }
        if let p = try number("top_p") { g["topP"] = p }
        if let p = try number("presence_penalty") { g["presencePenalty"] = p }
        if let p = try number("frequency_penalty") { g["frequencyPenalty"] = p }
        if let s = try integer("seed") { g["seed"] = .int(s) }
        switch r["stop"] {
        case nil, .null?: break
        case .string(let s)?: g["stopSequences"] = .array([.string(s)])
        case .array(let a)? where a.allSatisfy({ $0.stringValue != nil }):
            if !a.isEmpty { g["stopSequences"] = .array(a) }
        default: throw Refusal("'stop' must be a string or an array of strings", param: "stop")
        }
        if let n = try integer("n"), n != 1 {
            guard n > 1 else { throw Refusal("'n' must be at least 1", param: "n") }
            guard !stream else { throw Refusal("'n' greater than 1 cannot be streamed from Gemini", param: "n") }
            g["candidateCount"] = .int(n)
        }
        if r["logprobs"] == .bool(true) { throw Refusal("'logprobs' is not supported for Gemini", param: "logprobs") }
        if let modalities = r["modalities"]?.arrayValue, modalities.contains(.string("audio")) {
            throw Refusal("audio output ('modalities') is not supported for Gemini", param: "modalities")
        }
        if let audio = r["audio"], audio != .null { throw Refusal("'audio' is not supported for Gemini", param: "audio") }
        if let format = r["response_format"], format != .null {
            switch format["type"]?.stringValue {
            case "text": break
            case "json_object":
                g["responseMimeType"] = .string("application/json")
            case "json_schema":
                g["responseMimeType"] = .string("application/json")
                if let schema = format["json_schema"]?["schema"], schema != .null {
                    do {
                        let s = try GeminiSchema(schema, what: "response_format.json_schema.schema")
                        for d in s.dropped { dropped.insert("response_format.schema.\(d)") }
                        // An open object is what JSON mode gives anyway; Gemini rejects one without properties.
                        if s.schema["type"]?.stringValue != "OBJECT" || s.schema["properties"] != nil { g["responseSchema"] = s.schema }
                    } catch {
                        throw Refusal(error.description, param: "response_format")
                    }
                }
            default:
                throw Refusal("'response_format.type' must be text, json_object or json_schema", param: "response_format")
            }
        }
        return g
    }
}
