import AIGatewayAPI
import AIGatewayRouting

/// Fuzz target: manifest text (YAML or JSON, any number of documents) through the loader, the
/// decoder and the table compiler, as `ai-gateway validate` and a reload do.
///
/// Nothing may crash; a document reported invalid must say why, each reason naming a field path or
/// the document; whatever decodes must compile.
public enum ManifestTarget {
    public static func run(_ input: [UInt8]) -> FuzzVerdict {
        // Text the loader sees comes from files read as UTF-8.
        guard let text = String(validating: input, as: UTF8.self) else { return .ok }
        let documents: [ManifestDocument]
        do {
            documents = try ManifestLoader.parse(text, source: "fuzz.yaml", defaultNamespace: "default")
        } catch {
            return error.description.isEmpty ? .mismatch("a load error without a message") : .ok
        }
        for doc in documents {
            if case .invalid(let kind, _, let errors) = doc.outcome {
                if errors.isEmpty { return .mismatch("\(kind) reported invalid with no error") }
                if errors.contains(where: { $0.message.isEmpty }) { return .mismatch("\(kind): an error without a message") }
            }
        }
        let table = RouteCompiler.compile(ResourceSet(documents.resources), options: CompileOptions(implicitGateway: true))
        _ = table.status
        return .ok
    }
}
