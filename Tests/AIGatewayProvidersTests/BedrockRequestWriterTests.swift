import AIGatewayAPI
@testable import AIGatewayProviders
import Testing

/// The Converse request written turn by turn as the messages are read must be, byte for byte,
/// the request the reference built from collected turns (`ConverseRequestReference`), with the
/// same tool-name hints and the same refusals (parameter and reason).
@Suite("Bedrock Converse request: written as read, the reference's bytes and refusals")
struct BedrockRequestWriterTests {
    static func render(_ r: Result<(body: [UInt8], hints: [String: String]), AttemptRefusal>) -> String {
        switch r {
        case .success(let (body, hints)): "body \(String(decoding: body, as: UTF8.self)) hints \(hints.sorted { $0.key < $1.key })"
        case .failure(let refusal): "refused \(String(describing: refusal.parameter)) \(refusal.reason)"
        }
    }

    @discardableResult
    static func compare(
        _ json: String, guardrail: BedrockProvider.Guardrail? = nil, prefill: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) -> Bool? {
        // nil: the request is refused before translation (as ChatRequest would).
        guard let c = try? conversation(json) else { return nil }
        let new = BedrockConverse.request(c, guardrail: guardrail, prefill: prefill).map { (body: $0.body, hints: $0.names.hints) }
        let old = ConverseRequestReference.request(c, guardrail: guardrail, prefill: prefill)
        #expect(render(new) == render(old), "\(json)", sourceLocation: sourceLocation)
        // The public body alike.
        let body = BedrockConverse.requestBody(c, guardrail: guardrail, prefill: prefill).map { String(decoding: $0, as: UTF8.self) }
        let oldBody = ConverseRequestReference.requestBody(c, guardrail: guardrail, prefill: prefill).map { String(decoding: $0, as: UTF8.self) }
        #expect(String(describing: body) == String(describing: oldBody), sourceLocation: sourceLocation)
        return (try? new.get()) != nil
    }

    static let png = "data:image/png;base64,iVBORw0KGgo="

    /// Messages of every role and shape, valid and refused.
    static let messages: [String] = [
        #"{"role":"system","content":"Be brief."}"#,
        #"{"role":"developer","content":[{"type":"text","text":"Speak French."}]}"#,
        #"{"role":"system","content":""}"#,
        #"{"role":"user","content":"Hi"}"#,
        #"{"role":"user","content":"H\u00e9 \"q\" \n ✓"}"#,
        #"{"role":"user","content":[{"type":"text","text":"there"},{"type":"text","text":""}]}"#,
        #"{"role":"user","content":[{"type":"text","text":""}]}"#,
        #"{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"\#(png)"}}]}"#,
        #"{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/JPEG;base64,/9j/"}}]}"#,
        #"{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}"#,
        #"{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,Qk0="}}]}"#,
        #"{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}"#,
        #"{"role":"assistant","content":"Bonjour"}"#,
        #"{"role":"assistant","content":""}"#,
        #"{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get.weather","arguments":"{\"city\":\"Paris\",\"a\":[1,2.5]}"}}]}"#,
        #"{"role":"assistant","content":"Checking","tool_calls":[{"id":"call_2","type":"function","function":{"name":"a b","arguments":"{}"}},{"id":"call_3","type":"function","function":{"name":"a?b","arguments":"{\"x\":null}"}}]}"#,
        #"{"role":"assistant","content":null,"tool_calls":[{"id":"call_4","type":"function","function":{"name":"f","arguments":"[1]"}}]}"#,
        #"{"role":"tool","tool_call_id":"call_1","content":"18C"}"#,
        #"{"role":"tool","tool_call_id":"call_2","content":""}"#,
        #"{"role":"tool","content":[{"type":"text","text":"parts"}]}"#,
    ]

    /// Request members around the messages.
    static let extras: [String] = [
        "",
        #","max_tokens":10,"temperature":0.5,"top_p":1,"stop":"END""#,
        #","max_completion_tokens":20,"temperature":1.25e0,"top_p":0.9,"stop":["a","b\"c"]"#,
        #","tools":[{"type":"function","function":{"name":"get.weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},{"type":"function","function":{"name":"get_weather","description":""}}],"tool_choice":"auto""#,
        #","tools":[{"type":"function","function":{"name":"x"}}],"tool_choice":"required""#,
        #","tools":[{"type":"function","function":{"name":"x"}}],"tool_choice":"none""#,
        #","tools":[{"type":"function","function":{"name":"x.y"}}],"tool_choice":{"type":"function","function":{"name":"x.y"}}"#,
        #","tools":[{"type":"function","function":{"name":"x"}}],"tool_choice":{"type":"function","function":{"name":"un.declared"}}"#,
        #","n":2"#,
        #","n":1,"logprobs":true"#,
        #","top_logprobs":2"#,
        #","response_format":{"type":"json_object"}"#,
        #","response_format":{"type":"text"}"#,
    ]

    static func request(_ messages: [String], _ extra: String = "") -> String {
        #"{"model":"m","messages":[\#(messages.joined(separator: ","))]\#(extra)}"#
    }

    @Test("every message alone and every pair, with and without a guardrail and a prefill")
    func pairs() {
        var sent = 0
        let guardrail = BedrockProvider.Guardrail(identifier: "gr-\"1\"", version: "DRAFT")
        for a in Self.messages {
            if Self.compare(Self.request([a])) == true { sent += 1 }
            Self.compare(Self.request([a]), guardrail: guardrail, prefill: "Sure,")
            for b in Self.messages {
                Self.compare(Self.request([a, b]))
                Self.compare(Self.request([a, b]), prefill: "")
                Self.compare(Self.request([a, b]), prefill: "continued")
            }
        }
        #expect(sent > 0 && sent < Self.messages.count)
    }

    @Test("request members: sampling, stop sequences, tools, tool choices, refused parameters")
    func extras() {
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33) % Self.messages.count
        }
        for extra in Self.extras {
            var translated = 0
            for _ in 0..<60 {
                let messages = (0..<(1 + next() % 4)).map { _ in Self.messages[next()] }
                if Self.compare(Self.request(messages, extra)) != nil { translated += 1 }
            }
            Self.compare(Self.request([Self.messages[3], Self.messages[14], Self.messages[17]], extra))
            #expect(translated > 0, "\(extra)")
        }
    }
}
