import AIGatewayAPI
import AIGatewayProviders
import Testing

/// `ChatConversation(reading:)` (one pass over the bytes) against `ChatConversation(parsing:)`
/// (the parsed value), which words every error: wherever the reader reads, the two must agree,
/// and wherever parsing refuses, the reader must leave the request to it.
@Suite("The OpenAI request read from its bytes")
struct ChatConversationReaderTests {
    /// What parsing makes of `bytes` (nil: not JSON).
    static func parsed(_ bytes: [UInt8]) -> Result<ChatConversation, ChatConversation.Invalid>? {
        guard let value = try? JSONParser.parse(bytes) else { return nil }
        do {
            return .success(try ChatConversation(parsing: value))
        } catch {
            return .failure(error)
        }
    }

    /// Checks one body; returns whether the reader read it.
    @discardableResult
    static func check(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        let reference = parsed(bytes)
        let read = ChatConversation(reading: bytes)
        if let read {
            #expect(reference == .success(read), "\(text)", sourceLocation: sourceLocation)
        }
        // What the adapters see: the same value, or the same error.
        if let request = try? ChatRequest(bytes: bytes) {
            #expect(request.conversation() == reference, "\(text)", sourceLocation: sourceLocation)
        }
        return read != nil
    }

    /// Requests the reader must read (and agree on), with every kind of part, call, tool and parameter.
    static let valid: [String] = [
        #"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
        #"{"messages":[]}"#,
        #" { "messages" : [ { "role" : "user" , "content" : "x" } ] , "model" : null } "#,
        #"{"messages":[{"role":"system","content":"s"},{"role":"developer","content":"d","name":"n"},{"role":"user","content":null},{"role":"assistant"}]}"#,
        #"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAA","detail":"high"}},{"type":"image_url","image_url":"https://x/y.png"},{"type":"refusal","refusal":"no"},{"type":"refusal"},{"type":"input_audio","input_audio":{"data":"AAA","format":"wav"}},{"type":"file","file":{"file_id":"f"},"x":[1,2.5,null,true]}]}]}"#,
        #"{"messages":[{"role":"user","content":[{"image_url":{"detail":"low","url":"u","extra":1},"type":"image_url"},{"text":"t","type":"text","extra":{}}]}]}"#,
        #"{"messages":[{"role":"user","content":[]}]}"#,
        #"{"messages":[{"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}},{"id":"c2","function":{"name":"g"}}],"role":"assistant","content":null}]}"#,
        #"{"messages":[{"role":"assistant","tool_calls":null,"content":"a"},{"role":"assistant","tool_calls":[]},{"role":"user","tool_calls":[{"id":"x","function":{"name":"f"}}],"content":"u"}]}"#,
        #"{"messages":[{"role":"tool","tool_call_id":"c1","content":"r"},{"content":"r","tool_call_id":"c2","role":"tool"},{"role":"user","tool_call_id":"ignored","content":"u"}]}"#,
        #"{"messages":[{"role":"user","content":"x","name":7}]}"#,
        #"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object","properties":{"a":{"type":"integer"}}},"strict":true}},{"function":{"name":"g","parameters":null,"strict":"yes","description":5}},{"type":7,"function":{"name":"h"}}]}"#,
        #"{"messages":[],"tools":null,"tool_choice":null,"stop":null,"response_format":null,"parallel_tool_calls":null,"max_tokens":null,"temperature":null,"n":null,"logprobs":null,"top_logprobs":null,"user":null}"#,
        #"{"messages":[],"tools":[]}"#,
        #"{"messages":[],"tool_choice":"none"}"#, #"{"messages":[],"tool_choice":"auto"}"#, #"{"messages":[],"tool_choice":"required"}"#,
        #"{"messages":[],"tool_choice":{"type":"function","function":{"name":"f"}}}"#,
        #"{"messages":[],"tool_choice":{"function":{"name":"f","x":1},"type":"anything"}}"#,
        #"{"messages":[],"stop":"x"}"#, #"{"messages":[],"stop":[]}"#, #"{"messages":[],"stop":["a","b\n","\u00e9"]}"#,
        #"{"messages":[],"response_format":{"type":"text"}}"#, #"{"messages":[],"response_format":{"type":"json_object"}}"#,
        #"{"messages":[],"response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"type":"object","required":["a"]},"strict":true}}}"#,
        #"{"messages":[],"response_format":{"type":"json_schema","json_schema":{"name":"s"}}}"#,
        #"{"messages":[],"response_format":{"type":"json_schema","json_schema":{"name":"s","schema":null,"strict":1}}}"#,
        #"{"messages":[],"response_format":{"json_schema":{"name":"s","schema":[1,"x"]},"type":"json_schema"}}"#,
        #"{"messages":[],"response_format":{"type":"text","json_schema":7}}"#,
        #"{"messages":[],"parallel_tool_calls":true,"logprobs":true,"top_logprobs":3,"n":2,"user":"u","reasoning_effort":"high"}"#,
        #"{"messages":[],"user":5,"reasoning_effort":[]}"#,
        // Numbers: integers, integral doubles, fractions, exponents, negative zero, beyond `Int`.
        #"{"messages":[],"max_tokens":100,"temperature":0,"top_p":1}"#,
        #"{"messages":[],"max_tokens":100.0,"temperature":0.7,"top_p":1e-1}"#,
        #"{"messages":[],"max_tokens":1e2,"temperature":-0,"top_p":-0.0}"#,
        #"{"messages":[],"max_completion_tokens":5,"max_tokens":9}"#,
        #"{"messages":[],"max_completion_tokens":null,"max_tokens":9}"#,
        #"{"messages":[],"max_tokens":9007199254740993,"temperature":9007199254740993}"#,
        #"{"messages":[],"max_tokens":8999999999999999.0,"temperature":1e308,"top_p":2.5E+2}"#,
        #"{"messages":[],"temperature":9223372036854775808,"top_p":-9223372036854775809}"#,
        #"{"messages":[],"temperature":0.1000000000000000055511151231257827021181583404541015625,"n":3.0,"top_logprobs":0}"#,
        // Strings: escapes, surrogate pairs, non-ASCII; escaped member names.
        #"{"messages":[{"role":"user","content":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00 日本 é"}]}"#,
        #"{"m\u0065ssages":[{"r\u006fle":"\u0075ser","c\u006Fntent":[{"typ\u0065":"t\u0065xt","text":"\uD83D\uDE00"}]}],"s\u0065ed":1}"#,
        #"{"messages":[{"role":"user","content":"x"}],"seed":1,"presence_penalty":0.5,"frequency_penalty":null,"logit_bias":{},"top_k":1,"service_tier":"auto","store":false,"metadata":{"a":"b"},"prediction":{},"modalities":["text"],"audio":{},"web_search_options":{},"verbosity":"low","unknown":[1]}"#,
        #"{"verbosity":1,"seed":null,"messages":[],"top_k":0,"stream":true,"stream_options":{"include_usage":true}}"#,
        // A member sent twice counts the last time.
        #"{"messages":[{"role":"user","content":"a"}],"messages":[{"role":"user","content":"b"}]}"#,
        #"{"messages":[{"role":"user","role":"assistant","content":"a","content":"b","name":"x","name":null}]}"#,
        #"{"messages":[],"seed":1,"seed":null,"top_k":null,"top_k":2,"stop":"a","stop":["b"],"max_tokens":1,"max_tokens":2}"#,
        #"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"a","url":"b","detail":"low"},"image_url":{"url":"c"}}]}]}"#,
        #"{"messages":[{"role":"assistant","tool_calls":[{"id":"a","id":"b","function":{"name":"f","arguments":"x"},"function":{"name":"g"}}]}]}"#,
        #"{"messages":[],"tool_choice":{"function":{"name":"f"},"function":{"name":"g"}}}"#,
        #"{"messages":[],"tools":[{"type":"x","type":"function","function":{"name":"f"},"function":{"name":"g","name":"h"}}]}"#,
    ]

    /// Requests parsing refuses: the reader must leave every one of them (one per error message at least).
    static let invalid: [String] = [
        #"{}"#, #"{"messages":null}"#, #"{"messages":{}}"#, #"{"messages":"x"}"#, #"[]"#, #""x""#, #"7"#,
        #"{"messages":[1]}"#, #"{"messages":[null]}"#, #"{"messages":[[]]}"#, #"{"messages":[{}]}"#,
        #"{"messages":[{"role":"robot","content":"x"}]}"#, #"{"messages":[{"role":7,"content":"x"}]}"#, #"{"messages":[{"role":"User"}]}"#,
        #"{"messages":[{"role":"user","content":7}]}"#, #"{"messages":[{"role":"user","content":{}}]}"#, #"{"messages":[{"role":"user","content":true}]}"#,
        #"{"messages":[{"role":"user","content":[7]}]}"#, #"{"messages":[{"role":"user","content":[{}]}]}"#, #"{"messages":[{"role":"user","content":[{"type":1}]}]}"#,
        #"{"messages":[{"role":"user","content":[{"type":"text"}]}]}"#, #"{"messages":[{"role":"user","content":[{"type":"text","text":1}]}]}"#,
        #"{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#, #"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"detail":"low"}}]}]}"#,
        #"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":5}}]}]}"#, #"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":[]}]}]}"#,
        #"{"messages":[{"role":"tool","content":"x"}]}"#, #"{"messages":[{"role":"tool","tool_call_id":5,"content":"x"}]}"#,
        #"{"messages":[{"role":"assistant","tool_calls":{}}]}"#, #"{"messages":[{"role":"assistant","tool_calls":"x"}]}"#, #"{"messages":[{"role":"assistant","tool_calls":[7]}]}"#,
        #"{"messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}]}"#,
        #"{"messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"arguments":"{}"}}]}]}"#,
        #"{"messages":[{"role":"assistant","tool_calls":[{"id":"c","function":"f"}]}]}"#,
        #"{"messages":[],"tools":{}}"#, #"{"messages":[],"tools":[7]}"#, #"{"messages":[],"tools":[{"type":"retrieval","function":{"name":"f"}}]}"#,
        #"{"messages":[],"tools":[{"type":"function"}]}"#, #"{"messages":[],"tools":[{"type":"function","function":"f"}]}"#,
        #"{"messages":[],"tools":[{"type":"function","function":{}}]}"#, #"{"messages":[],"tools":[{"type":"function","function":{"name":""}}]}"#,
        #"{"messages":[],"tools":[{"type":"function","function":{"name":"f","parameters":[]}}]}"#,
        #"{"messages":[],"tools":[{"type":"function","function":{"name":"f","parameters":"{}"}}]}"#,
        #"{"messages":[],"tool_choice":"sometimes"}"#, #"{"messages":[],"tool_choice":{"type":"function"}}"#, #"{"messages":[],"tool_choice":{"function":{"name":1}}}"#,
        #"{"messages":[],"tool_choice":7}"#, #"{"messages":[],"tool_choice":["auto"]}"#, #"{"messages":[],"tool_choice":true}"#,
        #"{"messages":[],"parallel_tool_calls":"yes"}"#, #"{"messages":[],"parallel_tool_calls":1}"#, #"{"messages":[],"logprobs":0}"#,
        #"{"messages":[],"max_tokens":"many"}"#, #"{"messages":[],"max_tokens":0}"#, #"{"messages":[],"max_tokens":-1}"#, #"{"messages":[],"max_tokens":1.5}"#,
        #"{"messages":[],"max_tokens":1e20}"#, #"{"messages":[],"max_tokens":9223372036854775808}"#, #"{"messages":[],"max_completion_tokens":0,"max_tokens":5}"#,
        #"{"messages":[],"max_completion_tokens":[]}"#, #"{"messages":[],"n":"2"}"#, #"{"messages":[],"top_logprobs":true}"#,
        #"{"messages":[],"temperature":"hot"}"#, #"{"messages":[],"top_p":[]}"#, #"{"messages":[],"temperature":true}"#,
        #"{"messages":[],"stop":[1]}"#, #"{"messages":[],"stop":["a",null]}"#, #"{"messages":[],"stop":7}"#, #"{"messages":[],"stop":{}}"#,
        #"{"messages":[],"response_format":{"type":"yaml"}}"#, #"{"messages":[],"response_format":{}}"#, #"{"messages":[],"response_format":"json_object"}"#,
        #"{"messages":[],"response_format":{"type":"json_schema"}}"#, #"{"messages":[],"response_format":{"type":"json_schema","json_schema":{"schema":{}}}}"#,
        #"{"messages":[],"response_format":{"type":"json_schema","json_schema":"s"}}"#, #"{"messages":[],"response_format":{"type":1}}"#,
        // A member sent twice counts the last time: an invalid last one is refused.
        #"{"messages":[{"role":"user","content":"a"}],"messages":7}"#, #"{"messages":[{"role":"user","role":"robot"}]}"#,
        #"{"messages":[],"max_tokens":2,"max_tokens":0}"#, #"{"messages":[],"stop":"a","stop":7}"#,
        #"{"messages":[{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f"},"function":{}}]}]}"#,
        // Not JSON at all (the reader is public: it must refuse, not trust, its input).
        #"{"messages":[]"#, #"{"messages":[],}"#, #"{"messages":[{"role":"user","content":"\ud800"}]}"#, #"{"messages":[],"max_tokens":1e400}"#,
        #"{"messages":[]} x"#, #"{"messages":[{"role":"user","content":"a"#, "",
    ]

    @Test("reads every valid request as parsing does")
    func validRequests() {
        for body in Self.valid {
            #expect(Self.check(Array(body.utf8)), "the reader left it: \(body)")
        }
    }

    @Test("leaves every refused request to parsing, which words the same error")
    func invalidRequests() {
        for body in Self.invalid {
            #expect(!Self.check(Array(body.utf8)), "the reader read it: \(body)")
        }
        // Invalid UTF-8 in a string.
        #expect(ChatConversation(reading: Array(#"{"messages":[{"role":"user","content":""#.utf8) + [0xFF] + Array(#""}]}"#.utf8)) == nil)
    }

    @Test("a request's first-sent duplicate that parsing ignores: the reader may leave it, and then the result is parsing's")
    func earlierInvalidDuplicates() {
        for body in [
            #"{"messages":7,"messages":[{"role":"user","content":"a"}]}"#,
            #"{"messages":[{"role":"robot","role":"user","content":"a"}]}"#,
            #"{"messages":[],"max_tokens":"x","max_tokens":3}"#,
            #"{"messages":[{"role":"user","tool_calls":7,"content":"a"}]}"#,
            #"{"messages":[{"role":"user","tool_call_id":7,"content":"a"}]}"#,
        ] {
            Self.check(Array(body.utf8))
        }
    }

    /// Values put in every place of a valid request: each type, and the words the reader acts on.
    static let replacements: [JSONValue] = [
        .null, .bool(true), .bool(false), .int(0), .int(-1), .int(2), .double(2.0), .double(1.5), .string(""), .string("x"),
        .string("function"), .string("none"), .string("auto"), .string("text"), .string("image_url"), .string("json_schema"), .string("tool"),
        .string("assistant"), .array([]), .array([.string("x")]), .object([:]), .object(["name": .string("f")]), .object(["url": .string("u")]),
    ]

    /// `value` changed in one place: each value replaced by each of `replacements`, each member
    /// and element dropped.
    static func mutations(_ value: JSONValue) -> [JSONValue] {
        var out = replacements
        switch value {
        case .object(let o):
            for (key, child) in o {
                var without = o
                without[key] = nil
                out.append(.object(without))
                for m in mutations(child) {
                    var copy = o
                    copy[key] = m
                    out.append(.object(copy))
                }
            }
        case .array(let a):
            for (i, child) in a.enumerated() {
                var without = a
                without.remove(at: i)
                out.append(.array(without))
                for m in mutations(child) {
                    var copy = a
                    copy[i] = m
                    out.append(.array(copy))
                }
            }
        default:
            break
        }
        return out
    }

    @Test("every valid request changed in one place: the two agree, or the reader leaves it to parsing")
    func mutated() throws {
        var total = 0
        var refused = 0
        var left = 0
        for body in Self.valid {
            for m in Self.mutations(try JSONParser.parse(Array(body.utf8))) {
                let bytes = Array(m.canonicalJSON().utf8)
                total += 1
                let read = Self.check(bytes)
                switch Self.parsed(bytes) {
                case .failure?: refused += 1
                case .success?: if !read { left += 1 }
                case nil: Issue.record("not JSON: \(m.canonicalJSON())")
                }
            }
        }
        // Both kinds are well represented, and the reader leaves few valid requests to parsing
        // (here: a user message's malformed `tool_calls`, which parsing ignores).
        #expect(total > 9_000 && refused > total / 4 && total - refused > total / 4, "\(total) \(refused)")
        #expect(left * 50 < total, "\(left) of \(total)")
    }
}
