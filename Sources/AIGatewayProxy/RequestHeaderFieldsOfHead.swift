import AIGatewayRouting
import NIOHTTP1

/// A client's header fields as the matcher reads them (`RequestFacts`): the parsed head itself,
/// searched in place when a rule matches on a header, never copied into pairs of strings.
struct RequestHeaderFieldsOfHead: RequestHeaderFields {
    let headers: HTTPHeaders

    func firstValue(where isName: (String) -> Bool) -> String? {
        headers.first(where: { isName($0.name) })?.value
    }
}
