import AIGatewayAPI

/// The provider key of a Backend entry → its adapter. A provider is served when it has one here;
/// the others are parsed and validated only (their entries report "not served yet").
public enum ProviderAdapters {
    public static func adapter(for provider: LLMProvider) -> (any ProviderAdapter)? {
        switch provider {
        case .openai: OpenAIAdapter(.openai)
        case .azureopenai: OpenAIAdapter(.azureopenai)
        case .anthropic: AnthropicAdapter()
        case .gemini: GeminiAdapter(.gemini)
        case .vertexai: GeminiAdapter(.vertexai)
        case .bedrock(let p): BedrockAdapter(region: p.region, guardrail: p.guardrail)
        }
    }

    /// The keys of the served providers.
    public static let servedKeys: Set<String> = ["openai", "azureopenai", "anthropic", "gemini", "vertexai", "bedrock"]
}
