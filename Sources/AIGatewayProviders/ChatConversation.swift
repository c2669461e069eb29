import AIGatewayAPI

/// The client's OpenAI Chat Completions request as values: what translating adapters build
/// their provider's request from. Built once per request, only when a translating adapter asks
/// (`ChatRequest.conversation()`); the OpenAI path never builds it. `init(reading:)` builds it
/// straight from the bytes; `init(parsing:)`, from the parsed value, words the errors.
public struct ChatConversation: Sendable, Hashable {
    public var messages: [ChatMessage]
    public var tools: [ChatTool]
    public var toolChoice: ToolChoice?
    public var parallelToolCalls: Bool?
    /// `max_completion_tokens`, else `max_tokens`.
    public var maxTokens: Int?
    public var temperature: Double?
    public var topP: Double?
    public var stop: [String]
    /// `n` (nil when absent).
    public var n: Int?
    public var logprobs: Bool
    public var topLogprobs: Int?
    public var responseFormat: ResponseFormat?
    public var user: String?
    public var reasoningEffort: String?
    /// The tuning-only parameters the client set, in `tuningNames` order (dropped for targets
    /// that cannot take them).
    public var tuningParameters: [String]

    public struct Invalid: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
        public init(_ d: String) { description = d }
    }
}

public struct ChatMessage: Sendable, Hashable {
    public enum Role: String, Sendable, Hashable {
        case system, developer, user, assistant, tool
    }

    public var role: Role
    /// The content parts; a string content is one text part. Empty for `null` content.
    public var content: [ContentPart]
    /// An assistant's tool calls.
    public var toolCalls: [ToolCall]
    /// A tool message's `tool_call_id`.
    public var toolCallID: String?
    public var name: String?

    public init(role: Role, content: [ContentPart], toolCalls: [ToolCall] = [], toolCallID: String? = nil, name: String? = nil) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
        self.name = name
    }

    /// The text parts joined (images and other parts left out).
    public var text: String {
        var s = ""
        for case .text(let t) in content { s += t }
        return s
    }
}

public enum ContentPart: Sendable, Hashable {
    case text(String)
    /// `image_url`: a `data:` URL or an http(s) URL.
    case image(url: String, detail: String?)
    /// Anything else (`input_audio`, `file`, ...), as sent: adapters refuse what they cannot carry.
    case other(type: String, value: JSONValue)

    /// A `data:<media type>;base64,<data>` URL split, if it is one.
    public static func dataURL(_ url: String) -> (mediaType: String, base64: String)? {
        guard url.hasPrefix("data:"), let comma = url.firstIndex(of: ",") else { return nil }
        let meta = url[url.index(url.startIndex, offsetBy: 5)..<comma]
        guard meta.hasSuffix(";base64") else { return nil }
        return (String(meta.dropLast(7)), String(url[url.index(after: comma)...]))
    }
}

public struct ToolCall: Sendable, Hashable {
    public var id: String
    public var name: String
    /// The arguments as the JSON text the model produced.
    public var arguments: String

    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }

    /// The arguments as a JSON object (`""` is `{}`); nil when they are not an object.
    public var argumentsObject: JSONValue? {
        if arguments.allSatisfy(\.isWhitespace) { return .object([:]) }
        guard let v = try? JSONParser.parse(Array(arguments.utf8)), case .object = v else { return nil }
        return v
    }
}

public struct ChatTool: Sendable, Hashable {
    public var name: String
    public var description: String?
    /// The JSON Schema of the arguments (nil: none given).
    public var parameters: JSONValue?
    public var strict: Bool?
}

public enum ToolChoice: Sendable, Hashable {
    case none, auto, required
    case function(String)
}

public enum ResponseFormat: Sendable, Hashable {
    case text
    case jsonObject
    case jsonSchema(name: String, schema: JSONValue, strict: Bool?)

    /// The `type` as OpenAI names it.
    public var type: String {
        switch self {
        case .text: "text"
        case .jsonObject: "json_object"
        case .jsonSchema: "json_schema"
        }
    }
}

extension ChatConversation {
    /// Reads the request; an error names the field the client has to fix.
    public init(parsing value: JSONValue) throws(Invalid) {
        guard case .object(let o) = value else { throw Invalid("request body must be a JSON object") }
        tuningParameters = Self.tuningNames.map { "\($0)" }.filter { o[$0] != nil && o[$0] != .null }
        guard case .array(let rawMessages)? = o["messages"] else { throw Invalid("'messages' must be an array") }
        var messages: [ChatMessage] = []
        messages.reserveCapacity(rawMessages.count)
        for (i, m) in rawMessages.enumerated() {
            messages.append(try Self.message(m, at: "messages[\(i)]"))
        }
        self.messages = messages

        var tools: [ChatTool] = []
        if let t = o["tools"], t != .null {
            guard case .array(let list) = t else { throw Invalid("'tools' must be an array") }
            for (i, tool) in list.enumerated() {
                let at = "tools[\(i)]"
                guard tool["type"]?.stringValue ?? "function" == "function" else {
                    throw Invalid("\(at).type must be \"function\"")
                }
                guard let f = tool["function"], case .object = f else { throw Invalid("\(at).function must be an object") }
                guard let name = f["name"]?.stringValue, !name.isEmpty else { throw Invalid("\(at).function.name must be a non-empty string") }
                let params = f["parameters"].flatMap { $0 == .null ? nil : $0 }
                if let params, params.objectValue == nil { throw Invalid("\(at).function.parameters must be an object") }
                tools.append(ChatTool(name: name, description: f["description"]?.stringValue, parameters: params, strict: f["strict"]?.boolValue))
            }
        }
        self.tools = tools

        switch o["tool_choice"] {
        case nil, .null?: toolChoice = nil
        case .string("none")?: toolChoice = ToolChoice.none
        case .string("auto")?: toolChoice = .auto
        case .string("required")?: toolChoice = .required
        case let c?:
            guard let name = c["function"]?["name"]?.stringValue else {
                throw Invalid("'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":...}}")
            }
            toolChoice = .function(name)
        }
        parallelToolCalls = try Self.bool(o, "parallel_tool_calls")
        let maxCompletion = try Self.int(o, "max_completion_tokens")
        let legacyMax = try Self.int(o, "max_tokens")
        maxTokens = maxCompletion ?? legacyMax
        if let m = maxTokens, m < 1 { throw Invalid("'max_tokens' must be at least 1") }
        temperature = try Self.number(o, "temperature")
        topP = try Self.number(o, "top_p")
        switch o["stop"] {
        case nil, .null?: stop = []
        case .string(let s)?: stop = [s]
        case .array(let a)?:
            stop = []
            for v in a {
                guard let s = v.stringValue else { throw Invalid("'stop' must be a string or an array of strings") }
                stop.append(s)
            }
        default: throw Invalid("'stop' must be a string or an array of strings")
        }
        n = try Self.int(o, "n")
        logprobs = try Self.bool(o, "logprobs") ?? false
        topLogprobs = try Self.int(o, "top_logprobs")
        switch o["response_format"] {
        case nil, .null?: responseFormat = nil
        case let f?:
            switch f["type"]?.stringValue {
            case "text": responseFormat = .text
            case "json_object": responseFormat = .jsonObject
            case "json_schema":
                guard let s = f["json_schema"], let name = s["name"]?.stringValue else {
                    throw Invalid("'response_format.json_schema.name' must be a string")
                }
                responseFormat = .jsonSchema(name: name, schema: s["schema"] ?? .object([:]), strict: s["strict"]?.boolValue)
            default: throw Invalid("'response_format.type' must be \"text\", \"json_object\" or \"json_schema\"")
            }
        }
        user = o["user"]?.stringValue
        reasoningEffort = o["reasoning_effort"]?.stringValue
    }

    /// `at` names the message in an error (built only for one).
    static func message(_ m: JSONValue, at: @autoclosure () -> String) throws(Invalid) -> ChatMessage {
        guard case .object = m else { throw Invalid("\(at()) must be an object") }
        guard let r = m["role"]?.stringValue, let role = ChatMessage.Role(rawValue: r) else {
            throw Invalid("\(at()).role must be one of system, developer, user, assistant, tool")
        }
        var content: [ContentPart] = []
        switch m["content"] {
        case nil, .null?: break
        case .string(let s)?: content = [.text(s)]
        case .array(let parts)?:
            for (k, p) in parts.enumerated() {
                func pat() -> String { "\(at()).content[\(k)]" }
                guard let type = p["type"]?.stringValue else { throw Invalid("\(pat()).type must be a string") }
                switch type {
                case "text":
                    guard let t = p["text"]?.stringValue else { throw Invalid("\(pat()).text must be a string") }
                    content.append(.text(t))
                case "image_url":
                    guard let url = p["image_url"]?["url"]?.stringValue ?? p["image_url"]?.stringValue else {
                        throw Invalid("\(pat()).image_url.url must be a string")
                    }
                    content.append(.image(url: url, detail: p["image_url"]?["detail"]?.stringValue))
                case "refusal":
                    content.append(.text(p["refusal"]?.stringValue ?? ""))
                default:
                    content.append(.other(type: type, value: p))
                }
            }
        default:
            throw Invalid("\(at()).content must be a string, an array of parts or null")
        }
        var calls: [ToolCall] = []
        if role == .assistant, let tc = m["tool_calls"], tc != .null {
            guard case .array(let list) = tc else { throw Invalid("\(at()).tool_calls must be an array") }
            for (k, c) in list.enumerated() {
                func cat() -> String { "\(at()).tool_calls[\(k)]" }
                guard let id = c["id"]?.stringValue else { throw Invalid("\(cat()).id must be a string") }
                guard let name = c["function"]?["name"]?.stringValue else { throw Invalid("\(cat()).function.name must be a string") }
                let args = c["function"]?["arguments"]?.stringValue ?? ""
                calls.append(ToolCall(id: id, name: name, arguments: args))
            }
        }
        var toolCallID: String?
        if role == .tool {
            guard let id = m["tool_call_id"]?.stringValue else { throw Invalid("\(at()).tool_call_id must be a string") }
            toolCallID = id
        }
        return ChatMessage(role: role, content: content, toolCalls: calls, toolCallID: toolCallID, name: m["name"]?.stringValue)
    }

    static func bool(_ o: [String: JSONValue], _ key: String) throws(Invalid) -> Bool? {
        switch o[key] {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        default: throw Invalid("'\(key)' must be a boolean")
        }
    }

    static func int(_ o: [String: JSONValue], _ key: String) throws(Invalid) -> Int? {
        switch o[key] {
        case nil, .null?: return nil
        case let v?:
            guard let i = v.intValue else { throw Invalid("'\(key)' must be an integer") }
            return i
        }
    }

    static func number(_ o: [String: JSONValue], _ key: String) throws(Invalid) -> Double? {
        switch o[key] {
        case nil, .null?: return nil
        case .int(let i)?: return Double(i)
        case .double(let d)?: return d
        default: throw Invalid("'\(key)' must be a number")
        }
    }

    /// The tool names the request declares, then those its history calls, in order.
    public var toolNames: [String] {
        tools.map(\.name) + messages.flatMap { $0.toolCalls.map(\.name) }
    }

    /// The parameters that only tune the answer: a target that cannot take them drops them.
    static let tuningNames: [StaticString] = [
        "seed", "presence_penalty", "frequency_penalty", "logit_bias", "top_k", "service_tier", "store", "metadata", "prediction", "modalities", "audio",
        "web_search_options", "verbosity",
    ]
}

extension JSONValue {
    /// The element at `index` of an array, nil otherwise.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let a) = self, a.indices.contains(index) else { return nil }
        return a[index]
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var doubleValue: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }
}
