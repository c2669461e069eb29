import AIGatewayAPI

/// Where Gemini API and Vertex AI requests go.
///
/// - Gemini API: `generativelanguage.googleapis.com`, `/{apiVersion}/models/{model}:generateContent`
///   (streamed: `:streamGenerateContent?alt=sse`), key in `x-goog-api-key`.
/// - Vertex AI: host from `location` (`global` → `aiplatform.googleapis.com`; the `us` and `eu`
///   multi-regions → `aiplatform.{us|eu}.rep.googleapis.com`; any other region →
///   `{location}-aiplatform.googleapis.com`), path
///   `/{apiVersion}/projects/{projectId}/locations/{location}/publishers/{publisher}/models/{model}:{method}`
///   where the method is `modelPath` (default `generateContent`; streamed, `generateContent`
///   becomes `streamGenerateContent`, and `?alt=sse` is added), bearer token in `Authorization`.
public enum GeminiEndpoint {
    public static let geminiHost = "generativelanguage.googleapis.com"

    public static func vertexHost(location: String) -> String {
        switch location.lowercased() {
        case "global": "aiplatform.googleapis.com"
        case "us", "eu": "aiplatform.\(location.lowercased()).rep.googleapis.com"
        default: "\(location)-aiplatform.googleapis.com"
        }
    }

    public static func geminiPath(apiVersion: String, model: String, stream: Bool) -> String {
        "/\(apiVersion)/models/\(bareModel(model))" + (stream ? ":streamGenerateContent?alt=sse" : ":generateContent")
    }

    public static func vertexPath(_ p: VertexAIProvider, stream: Bool) -> String {
        var method = Substring(p.modelPath ?? "generateContent")
        while let first = method.first, first == ":" || first == "/" { method = method.dropFirst() }
        if method.isEmpty { method = "generateContent" }
        var m = String(method)
        if stream {
            if m == "generateContent" { m = "streamGenerateContent" }
            m += m.contains("?") ? "&alt=sse" : "?alt=sse"
        }
        let publisher = (p.publisher ?? "GOOGLE").lowercased()
        return "/\(p.apiVersion)/projects/\(p.projectId)/locations/\(p.location)/publishers/\(publisher)/models/\(bareModel(p.model)):\(m)"
    }

    /// `models/gemini-2.5-flash` and `gemini-2.5-flash` name the same model.
    static func bareModel(_ model: String) -> String {
        model.hasPrefix("models/") ? String(model.dropFirst(7)) : model
    }
}
