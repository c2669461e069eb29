/// A kind of resource as the REST API addresses it: `/api/v1/...` for the core group,
/// `/apis/{group}/{version}/...` otherwise, under `/namespaces/{ns}/` when namespaced.
public struct ResourceType: Sendable, Hashable, CustomStringConvertible {
    /// The API group; empty for the core group.
    public var group: String
    public var version: String
    /// The lower-case plural resource name, e.g. `configmaps`.
    public var plural: String
    public var namespaced: Bool

    public init(group: String, version: String, plural: String, namespaced: Bool) {
        self.group = group
        self.version = version
        self.plural = plural
        self.namespaced = namespaced
    }

    /// `v1` or `group/version`, as in `apiVersion`.
    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    public var description: String { group.isEmpty ? "\(plural).\(version)" : "\(plural).\(version).\(group)" }

    /// The request path for a collection (`name == nil`) or one object, optionally a subresource.
    /// A namespaced type without a namespace addresses all namespaces (list and watch only).
    public func path(namespace: String?, name: String? = nil, subresource: String? = nil) -> String {
        var path = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
        if namespaced, let namespace, !namespace.isEmpty {
            path += "/namespaces/\(PercentEncoding.pathSegment(namespace))"
        }
        path += "/\(plural)"
        if let name {
            path += "/\(PercentEncoding.pathSegment(name))"
            if let subresource { path += "/\(subresource)" }
        }
        return path
    }

    public static let configMaps = ResourceType(group: "", version: "v1", plural: "configmaps", namespaced: true)
    public static let secrets = ResourceType(group: "", version: "v1", plural: "secrets", namespaced: true)
    public static let services = ResourceType(group: "", version: "v1", plural: "services", namespaced: true)
    public static let namespaces = ResourceType(group: "", version: "v1", plural: "namespaces", namespaced: false)
    public static let leases = ResourceType(
        group: "coordination.k8s.io", version: "v1", plural: "leases", namespaced: true)
}

/// The key of an object in an informer cache: namespace (empty when cluster-scoped) and name.
public struct ObjectKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var namespace: String
    public var name: String

    public init(namespace: String?, name: String) {
        self.namespace = namespace ?? ""
        self.name = name
    }

    /// The key of an object from its `metadata`, or nil when it has no name.
    public init?(object: JSONValue) {
        guard let name = object.name else { return nil }
        self.init(namespace: object.namespace, name: name)
    }

    public static func < (lhs: ObjectKey, rhs: ObjectKey) -> Bool {
        (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
    }

    public var description: String { namespace.isEmpty ? name : "\(namespace)/\(name)" }
}

enum PercentEncoding {
    private static func encode(_ s: String, keep: (UInt8) -> Bool) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for byte in s.utf8 {
            if keep(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = Array("0123456789ABCDEF".utf8)
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0xF)]))
            }
        }
        return out
    }

    private static func unreserved(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39)
            || b == 0x2D || b == 0x2E || b == 0x5F || b == 0x7E
    }

    static func pathSegment(_ s: String) -> String { encode(s, keep: unreserved) }
    static func queryValue(_ s: String) -> String { encode(s, keep: unreserved) }

    static func query(_ items: [(String, String?)]) -> String {
        let parts = items.compactMap { key, value in value.map { "\(key)=\(queryValue($0))" } }
        return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
    }
}
