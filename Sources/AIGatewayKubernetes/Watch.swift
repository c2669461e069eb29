import Foundation

/// One event of a watch stream.
public struct WatchEvent: Sendable, Hashable {
    public enum EventType: String, Sendable, Hashable {
        case added = "ADDED"
        case modified = "MODIFIED"
        case deleted = "DELETED"
        case bookmark = "BOOKMARK"
        case error = "ERROR"
    }

    public var type: EventType
    /// The object; for `.bookmark` only its `metadata.resourceVersion` is meaningful; for
    /// `.error` a Kubernetes `Status`.
    public var object: JSONValue

    public init(type: EventType, object: JSONValue) {
        self.type = type
        self.object = object
    }

    /// For an `.error` event, the `Status` as a typed error (410 Expired is `.gone`).
    public var error: KubernetesError? {
        type == .error ? KubernetesError.fromStatusObject(object) : nil
    }

    /// Parses one line of a watch body: `{"type": "...", "object": {...}}`.
    static func parse(line: Data) throws -> WatchEvent {
        let value: JSONValue
        do {
            value = try JSONValue(jsonData: line)
        } catch {
            throw KubernetesError.invalidResponse("watch event is not JSON")
        }
        guard let typeName = value["type"]?.stringValue, let type = EventType(rawValue: typeName) else {
            throw KubernetesError.invalidResponse("watch event has an unknown type")
        }
        return WatchEvent(type: type, object: value["object"] ?? .null)
    }
}

/// The events of one watch request, in order. Ends when the server ends the watch
/// (`timeoutSeconds`), throws on a transport error. Ending iteration (or cancelling the
/// iterating task) aborts the HTTP transfer at once. Single consumer.
public struct WatchStream: AsyncSequence, Sendable {
    public typealias Element = WatchEvent
    public typealias Failure = any Error

    let lines: AsyncThrowingStream<Data, any Error>

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: lines.makeAsyncIterator())
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        public typealias Element = WatchEvent
        public typealias Failure = any Error

        var base: AsyncThrowingStream<Data, any Error>.AsyncIterator

        public mutating func next() async throws -> WatchEvent? {
            guard let line = try await base.next() else { return nil }
            return try WatchEvent.parse(line: line)
        }
    }
}
