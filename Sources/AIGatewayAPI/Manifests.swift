import Foundation
import Yams

/// One object read from a manifest file, with where it came from.
public struct ManifestDocument: Sendable, Hashable {
    /// `path` or `path#N` (1-based document index in a multi-document file).
    public var source: String
    public var outcome: DecodeOutcome
}

/// A manifest that could not be read at all (I/O or YAML syntax).
public struct ManifestError: Error, Sendable, Hashable, CustomStringConvertible {
    public var source: String
    public var message: String
    public var description: String { "\(source): \(message)" }
}

/// Reads Kubernetes-style manifests: multi-document YAML or JSON files, `kind: List`
/// wrappers, and directories of them (`.yaml`, `.yml`, `.json`, not recursive, like `kubectl -f DIR`).
public enum ManifestLoader {
    /// YAML as Kubernetes reads it, minus timestamp resolution: `apiVersion: 2024-02-01` stays a string.
    static let resolver = Resolver.default.removing(.timestamp)

    /// Lists the manifest files a path stands for, sorted.
    public static func files(at path: String) throws(ManifestError) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ManifestError(source: path, message: "no such file or directory")
        }
        guard isDirectory.boolValue else { return [path] }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw ManifestError(source: path, message: "cannot list directory")
        }
        return names.filter { n in
            !n.hasPrefix(".") && (n.hasSuffix(".yaml") || n.hasSuffix(".yml") || n.hasSuffix(".json"))
        }.sorted().map { (path as NSString).appendingPathComponent($0) }
    }

    /// Reads and decodes every document of every file under `paths`.
    public static func load(paths: [String], defaultNamespace: String = "default") throws(ManifestError) -> [ManifestDocument] {
        var out: [ManifestDocument] = []
        for path in paths {
            for file in try files(at: path) {
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw ManifestError(source: file, message: "cannot read file")
                }
                out += try parse(String(decoding: data, as: UTF8.self), source: file, defaultNamespace: defaultNamespace)
            }
        }
        return out
    }

    /// Decodes the documents of one YAML or JSON text.
    public static func parse(_ text: String, source: String, defaultNamespace: String = "default") throws(ManifestError) -> [ManifestDocument] {
        var values: [JSONValue] = []
        do {
            // `YamlSequence` stops at a syntax error and keeps it in `error` instead of throwing:
            // check it, or a broken document would silently vanish.
            var sequence = try Yams.compose_all(yaml: text, resolver)
            while let node = sequence.next() {
                // Yams builds a mapping's keys as strings and traps on any other key (`? [a]: b`),
                // so such a document is refused before it is built.
                if let problem = Self.unsupportedNode(node, depth: 0) {
                    throw ManifestError(source: source, message: "invalid YAML: \(problem)")
                }
                values.append(JSONValue(any: node.any))
            }
            if let error = sequence.error { throw error }
        } catch let error as YamlError {
            throw ManifestError(source: source, message: "invalid YAML: \(yamlMessage(error))")
        } catch let error as ManifestError {
            throw error
        } catch {
            throw ManifestError(source: source, message: "invalid YAML")
        }
        var out: [ManifestDocument] = []
        let multiple = values.count > 1
        for (i, value) in values.enumerated() {
            if value == .null { continue }  // an empty document between `---` separators
            let where_ = multiple ? "\(source)#\(i + 1)" : source
            if value["kind"]?.stringValue == "List", let items = value["items"]?.arrayValue {
                for (j, item) in items.enumerated() {
                    out.append(ManifestDocument(source: "\(where_) items[\(j)]", outcome: ResourceDecoder.decode(item, defaultNamespace: defaultNamespace)))
                }
                continue
            }
            out.append(ManifestDocument(source: where_, outcome: ResourceDecoder.decode(value, defaultNamespace: defaultNamespace)))
        }
        return out
    }

    /// Deepest nesting of mappings and sequences accepted in a manifest (Kubernetes objects need
    /// a few dozen levels at most).
    static let maximumDepth = 128

    /// A node the gateway cannot turn into JSON: a mapping key that is not a scalar, or nesting
    /// deeper than `maximumDepth`. Names the position, never the content.
    static func unsupportedNode(_ node: Node, depth: Int) -> String? {
        func at(_ n: Node) -> String { n.mark.map { " at line \($0.line), column \($0.column)" } ?? "" }
        if depth > maximumDepth { return "nested deeper than \(maximumDepth) levels\(at(node))" }
        if let mapping = node.mapping {
            for (key, value) in mapping {
                guard key.scalar != nil else { return "a mapping key must be a string, found a \(key.mapping != nil ? "mapping" : "sequence")\(at(key))" }
                if let problem = unsupportedNode(value, depth: depth + 1) { return problem }
            }
        } else if let sequence = node.sequence {
            for item in sequence {
                if let problem = unsupportedNode(item, depth: depth + 1) { return problem }
            }
        }
        return nil
    }

    static func yamlMessage(_ error: YamlError) -> String {
        // YamlError's description can quote the offending line, which may hold a secret value;
        // keep only the problem and its position.
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            let ctx = context.map { "\($0.text) " } ?? ""
            return "\(ctx)\(problem) at line \(mark.line), column \(mark.column)"
        case .composer(let context, let problem, let mark, _):
            let ctx = context.map { "\($0.text) " } ?? ""
            return "\(ctx)\(problem) at line \(mark.line), column \(mark.column)"
        case .duplicatedKeysInMapping(let duplicates, let context):
            // Keys, not values: safe to name.
            return "duplicate key \(duplicates.sorted().joined(separator: ", ")) in a mapping at line \(context.mark.line), column \(context.mark.column)"
        case .reader(let problem, let offset, _, _):
            return "\(problem)\(offset.map { " at byte \($0)" } ?? "")"
        default:
            return "syntax error"
        }
    }
}

extension Array where Element == ManifestDocument {
    /// The valid resources.
    public var resources: [Resource] {
        compactMap { if case .resource(let r) = $0.outcome { r } else { nil } }
    }

    /// Every problem, one line each: `file#2 Backend default/x: spec.type: required field is missing`.
    public var errorLines: [String] {
        var lines: [String] = []
        for doc in self {
            guard case .invalid(let kind, let name, let errors) = doc.outcome else { continue }
            let who = name.name.isEmpty ? kind : "\(kind) \(name)"
            for e in errors { lines.append("\(doc.source) \(who): \(e)") }
        }
        return lines
    }

    /// Reports two documents defining the same kind and namespace/name.
    public var duplicateLines: [String] {
        var seen: [String: String] = [:]
        var lines: [String] = []
        for doc in self {
            guard case .resource(let r) = doc.outcome else { continue }
            let key = "\(r.kind) \(r.metadata.namespacedName)"
            if let first = seen[key] {
                lines.append("\(doc.source) \(key): already defined in \(first)")
            } else {
                seen[key] = doc.source
            }
        }
        return lines
    }
}
