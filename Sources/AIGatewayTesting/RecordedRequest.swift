/// One request as the fake provider received it (control requests under `/_fake/` are not recorded).
public struct RecordedRequest: Sendable, Codable, Hashable {
    public var method: String
    /// The request target as received, including the query string.
    public var path: String
    /// `[name, value]` pairs in the order received; names lower-cased.
    public var headers: [[String]]
    /// The JSON body's `model`, or the deployment name of an Azure-style path.
    public var model: String?
    /// The JSON body's `stream` (false when absent or unparsable).
    public var stream: Bool
    /// The raw body as UTF-8 text.
    public var body: String

    public init(method: String, path: String, headers: [[String]], model: String?, stream: Bool, body: String) {
        self.method = method
        self.path = path
        self.headers = headers
        self.model = model
        self.stream = stream
        self.body = body
    }

    /// The first value of the header `name` (case-insensitive), if any.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        for pair in headers where pair.count >= 2 && pair[0].lowercased() == wanted {
            return pair[1]
        }
        return nil
    }
}

/// A fixed-capacity FIFO that keeps the most recent elements.
struct RingBuffer<Element> {
    private var storage: [Element] = []
    private var start = 0
    let capacity: Int

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    mutating func append(_ element: Element) {
        if storage.count < capacity {
            storage.append(element)
        } else {
            storage[start] = element
            start = (start + 1) % capacity
        }
    }

    mutating func removeAll() {
        storage.removeAll()
        start = 0
    }

    var elements: [Element] {
        start == 0 ? storage : Array(storage[start...] + storage[..<start])
    }
}
