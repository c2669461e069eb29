import AIGatewayRouting

/// A client's header fields as the matcher reads them (`RequestFacts`): the parsed head itself,
/// searched in place when a rule matches on a header, never copied into pairs of strings.
struct RequestHeaderFieldsOfHead: RequestHeaderFields {
    let head: RequestHead

    func firstValue(where isName: (String) -> Bool) -> String? {
        for f in head.fields where isName(head.string(f.name)) { return head.string(f.value) }
        return nil
    }
}
