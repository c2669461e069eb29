import Foundation
import Logging

/// One page (or all pages) of a list call.
public struct ObjectList: Sendable, Hashable {
    public var items: [JSONValue]
    /// The list's `metadata.resourceVersion`: watch from here to see every later change.
    public var resourceVersion: String
    /// `metadata.continue`: pass it to the next `list` call; nil on the last page.
    public var continueToken: String?

    public init(items: [JSONValue], resourceVersion: String, continueToken: String? = nil) {
        self.items = items
        self.resourceVersion = resourceVersion
        self.continueToken = continueToken
    }
}

/// A client of the Kubernetes REST API on raw JSON (`JSONValue`), over libcurl.
///
/// All transfers of the process run on one dedicated thread with libcurl's multi interface
/// (see `CurlLoop`): the async methods suspend until their transfer completes and never
/// block the cooperative pool. Cancelling the calling task aborts the transfer.
///
/// Errors are `KubernetesError` (or `CancellationError`). Non-watch calls have a total time
/// limit (`Options.requestTimeout`); watches instead abort when nothing at all arrives for
/// `Options.watchIdleTimeout` (bookmarks arrive regularly), so a silently dead connection is
/// noticed.
public final class KubernetesClient: Sendable {
    public struct Options: Sendable {
        /// Time limit for establishing the TCP and TLS connection.
        public var connectTimeout: Duration
        /// Total time limit of a non-watch request.
        public var requestTimeout: Duration
        /// A watch is aborted when less than one byte per second arrived over this window.
        public var watchIdleTimeout: Duration
        /// Largest buffered response body (a list page, an object).
        public var maxResponseBodyBytes: Int
        /// Largest single watch event line.
        public var maxWatchEventBytes: Int
        /// Page size of `listAll`. Large: each page costs the API server a pass over the
        /// resource (and a client a round trip), and a list of thousands of objects is a few
        /// megabytes (client-go's informers list from the watch cache, unpaged).
        public var listPageSize: Int
        /// Offer HTTP/2 (ALPN) on TLS connections, multiplexing all requests and watches on
        /// one connection per server. Off by default: plain HTTP/1.1 with a connection per
        /// concurrent watch is what the tests exercise (the fake API server is HTTP/1.1 only).
        public var http2: Bool
        public var userAgent: String

        public init(
            connectTimeout: Duration = .seconds(10),
            requestTimeout: Duration = .seconds(60),
            watchIdleTimeout: Duration = .seconds(120),
            maxResponseBodyBytes: Int = 256 << 20,
            maxWatchEventBytes: Int = 16 << 20,
            listPageSize: Int = 5000,
            http2: Bool = false,
            userAgent: String = "ai-gateway"
        ) {
            self.connectTimeout = connectTimeout
            self.requestTimeout = requestTimeout
            self.watchIdleTimeout = watchIdleTimeout
            self.maxResponseBodyBytes = maxResponseBodyBytes
            self.maxWatchEventBytes = maxWatchEventBytes
            self.listPageSize = listPageSize
            self.http2 = http2
            self.userAgent = userAgent
        }
    }

    public let config: KubeConfig
    public let options: Options
    private let logger: Logger
    private let loop: CurlLoop

    public init(config: KubeConfig, options: Options = Options(), logger: Logger = Logger(label: "ai-gateway.kubernetes")) {
        self.config = config
        self.options = options
        self.logger = logger
        self.loop = CurlLoop.shared
    }

    // MARK: - Reads

    /// GET one object. For a namespaced type, `namespace == nil` means the config's namespace.
    public func get(_ resource: ResourceType, namespace: String?, name: String) async throws -> JSONValue {
        try await request("GET", resource.path(namespace: objectNamespace(resource, namespace), name: name))
    }

    /// One page of a list. `namespace == nil` lists all namespaces. Items get the `kind` and
    /// `apiVersion` of the list (`ConfigMapList` → `ConfigMap`) when they lack them.
    public func list(
        _ resource: ResourceType, namespace: String? = nil, labelSelector: String? = nil,
        fieldSelector: String? = nil, limit: Int? = nil, continue continueToken: String? = nil
    ) async throws -> ObjectList {
        let query = PercentEncoding.query([
            ("labelSelector", labelSelector), ("fieldSelector", fieldSelector),
            ("limit", limit.map(String.init)), ("continue", continueToken),
        ])
        let body = try await requestData("GET", resource.path(namespace: namespace) + query)
        // A page of thousands of objects is megabytes of JSON: parsed on a thread of its own,
        // not on the event loop that runs this task (the proxy's), and several at once in parallel.
        return try await Self.offLoop { try Self.objectList(body) }
    }

    /// Runs `work` on a global Dispatch queue and returns its result.
    private static func offLoop<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// A list response's items (with the list's kind and apiVersion filled in), resourceVersion
    /// and continue token.
    private static func objectList(_ body: Data) throws -> ObjectList {
        let value: JSONValue
        do {
            value = try JSONValue(jsonData: body)
        } catch {
            throw KubernetesError.invalidResponse("body is not JSON", httpStatus: 200)
        }
        guard var items = value["items"]?.arrayValue ?? (value["items"] == .null ? [] : nil) else {
            throw KubernetesError.invalidResponse("list has no items")
        }
        // Like client-go's unstructured lists: items of built-in lists carry no kind and
        // apiVersion; fill them in from the list so that they equal the watch's objects.
        if let listKind = value["kind"]?.stringValue, listKind.hasSuffix("List"), listKind.count > 4,
            let apiVersion = value["apiVersion"]?.stringValue
        {
            let kind = JSONValue.string(String(listKind.dropLast(4)))
            items = items.map { item in
                guard case .object(var fields) = item else { return item }
                if fields["kind"] == nil { fields["kind"] = kind }
                if fields["apiVersion"] == nil { fields["apiVersion"] = .string(apiVersion) }
                return .object(fields)
            }
        }
        let meta = value["metadata"]
        let cont = meta?["continue"]?.stringValue
        return ObjectList(
            items: items, resourceVersion: meta?["resourceVersion"]?.stringValue ?? "",
            continueToken: cont?.isEmpty == false ? cont : nil)
    }

    /// Every page of a list (pages of `Options.listPageSize`), following `continue` tokens.
    /// A continue token that expired mid-way throws `.gone`; start over then.
    public func listAll(
        _ resource: ResourceType, namespace: String? = nil, labelSelector: String? = nil,
        fieldSelector: String? = nil
    ) async throws -> ObjectList {
        var result = ObjectList(items: [], resourceVersion: "")
        var token: String? = nil
        repeat {
            let page = try await list(
                resource, namespace: namespace, labelSelector: labelSelector, fieldSelector: fieldSelector,
                limit: options.listPageSize, continue: token)
            result.items += page.items
            result.resourceVersion = page.resourceVersion
            token = page.continueToken
        } while token != nil
        return result
    }

    /// Starts a watch and returns once the server accepted it (HTTP 200); a refused watch
    /// throws (e.g. `.gone` when `resourceVersion` is too old). `namespace == nil` watches
    /// all namespaces. The stream ends when the server ends the watch after `timeoutSeconds`.
    public func watch(
        _ resource: ResourceType, namespace: String? = nil, resourceVersion: String?,
        labelSelector: String? = nil, fieldSelector: String? = nil,
        allowBookmarks: Bool = true, timeoutSeconds: Int? = 300
    ) async throws -> WatchStream {
        let query = PercentEncoding.query([
            ("watch", "true"), ("resourceVersion", resourceVersion?.isEmpty == false ? resourceVersion : nil),
            ("allowWatchBookmarks", allowBookmarks ? "true" : nil),
            ("timeoutSeconds", timeoutSeconds.map(String.init)),
            ("labelSelector", labelSelector), ("fieldSelector", fieldSelector),
        ])
        let path = resource.path(namespace: namespace) + query
        for attempt in 0..<2 {
            let (stream, lines) = AsyncThrowingStream<Data, any Error>.makeStream()
            let handler = StreamingHandler(lines: lines, maxLineLength: options.maxWatchEventBytes)
            // Total limit only as a backstop beyond the server-side timeout.
            let total = timeoutSeconds.map { Duration.seconds($0) + .seconds(60) }
            let transfer = try CurlTransfer(
                makeRequest("GET", path, body: nil, contentType: nil, totalTimeout: total, lowSpeed: options.watchIdleTimeout),
                handler: handler)
            let loop = self.loop
            // The consumer stopped iterating (or was cancelled): abort the transfer.
            lines.onTermination = { termination in
                if case .cancelled = termination { loop.cancel(transfer) }
            }
            let head = try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    handler.setHeadContinuation(continuation)
                    loop.submit(transfer)
                }
            } onCancel: {
                loop.cancel(transfer)
            }
            if (200..<300).contains(head.status) {
                logger.debug("kubernetes watch started", metadata: ["resource": "\(resource)", "status": "\(head.status)"])
                return WatchStream(lines: stream)
            }
            if try retryAfterUnauthorized(head, attempt: attempt) { continue }
            throw error(from: head, method: "WATCH", resource: path)
        }
        throw KubernetesError.unauthorized
    }

    // MARK: - Writes

    /// POST a new object. For a namespaced type the namespace is `namespace`, else the
    /// object's `metadata.namespace`, else the config's namespace.
    @discardableResult
    public func create(_ resource: ResourceType, namespace: String? = nil, _ object: JSONValue) async throws -> JSONValue {
        let ns = objectNamespace(resource, namespace ?? object.namespace)
        return try await request("POST", resource.path(namespace: ns), body: object)
    }

    /// PUT the whole object (name and namespace from its metadata). Include
    /// `metadata.resourceVersion` for optimistic concurrency: a stale one throws `.conflict`.
    @discardableResult
    public func update(_ resource: ResourceType, _ object: JSONValue) async throws -> JSONValue {
        guard let name = object.name else { throw KubernetesError.invalid }
        return try await request(
            "PUT", resource.path(namespace: objectNamespace(resource, object.namespace), name: name), body: object)
    }

    /// PUT the object to its `/status` subresource.
    @discardableResult
    public func updateStatus(_ resource: ResourceType, _ object: JSONValue) async throws -> JSONValue {
        guard let name = object.name else { throw KubernetesError.invalid }
        return try await request(
            "PUT",
            resource.path(namespace: objectNamespace(resource, object.namespace), name: name, subresource: "status"),
            body: object)
    }

    /// PATCH with a JSON merge patch (RFC 7386).
    @discardableResult
    public func mergePatch(_ resource: ResourceType, namespace: String?, name: String, patch: JSONValue) async throws
        -> JSONValue
    {
        try await request(
            "PATCH", resource.path(namespace: objectNamespace(resource, namespace), name: name), body: patch,
            contentType: "application/merge-patch+json")
    }

    /// PATCH the `/status` subresource with a JSON merge patch.
    @discardableResult
    public func patchStatus(_ resource: ResourceType, namespace: String?, name: String, patch: JSONValue) async throws
        -> JSONValue
    {
        try await request(
            "PATCH", resource.path(namespace: objectNamespace(resource, namespace), name: name, subresource: "status"),
            body: patch, contentType: "application/merge-patch+json")
    }

    /// DELETE one object.
    public func delete(_ resource: ResourceType, namespace: String?, name: String) async throws {
        _ = try await request("DELETE", resource.path(namespace: objectNamespace(resource, namespace), name: name))
    }

    // MARK: - Plumbing

    /// A request to any path on the server; returns the status and body whatever the status.
    /// Used by tests (fault endpoints of the fake API server).
    func raw(_ method: String, _ pathAndQuery: String) async throws -> (status: Int, body: Data) {
        let handler = BufferedHandler(limit: options.maxResponseBodyBytes)
        let transfer = try CurlTransfer(
            makeRequest(
                method, pathAndQuery, body: method == "GET" ? nil : Data(), contentType: nil,
                totalTimeout: options.requestTimeout, lowSpeed: nil),
            handler: handler)
        let loop = self.loop
        let response = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                handler.setContinuation(continuation)
                loop.submit(transfer)
            }
        } onCancel: {
            loop.cancel(transfer)
        }
        return (response.status, response.body)
    }

    private func objectNamespace(_ resource: ResourceType, _ namespace: String?) -> String? {
        guard resource.namespaced else { return nil }
        if let namespace, !namespace.isEmpty { return namespace }
        return config.namespace
    }

    private func makeRequest(
        _ method: String, _ pathAndQuery: String, body: Data?, contentType: String?, totalTimeout: Duration?,
        lowSpeed: Duration?
    ) throws -> CurlTransfer.Request {
        var headers = ["Accept: application/json", "User-Agent: \(options.userAgent)"]
        if let contentType { headers.append("Content-Type: \(contentType)") }
        if let token = try config.bearerToken() { headers.append("Authorization: Bearer \(token)") }
        return CurlTransfer.Request(
            method: method, url: config.server + pathAndQuery, headers: headers, body: body, tls: config.tls,
            http2: options.http2, connectTimeout: options.connectTimeout, totalTimeout: totalTimeout, lowSpeedWindow: lowSpeed)
    }

    /// After a 401 with a token file, re-read the token once and retry.
    private func retryAfterUnauthorized(_ response: HTTPResponse, attempt: Int) throws -> Bool {
        guard response.status == 401, attempt == 0, case .tokenFile(let file) = config.credentials else { return false }
        file.invalidate()
        return true
    }

    private func error(from response: HTTPResponse, method: String, resource: String) -> KubernetesError {
        let error = KubernetesError.fromResponse(
            httpStatus: response.status, body: try? JSONValue(jsonData: response.body),
            retryAfterHeader: response.headers["retry-after"])
        logger.debug(
            "kubernetes request failed",
            metadata: ["method": "\(method)", "path": "\(resource)", "status": "\(response.status)", "error": "\(error)"])
        return error
    }

    private func request(
        _ method: String, _ pathAndQuery: String, body: JSONValue? = nil, contentType: String = "application/json"
    ) async throws -> JSONValue {
        let (status, data) = try await requestData(method, pathAndQuery, body: body, contentType: contentType)
        do {
            return try JSONValue(jsonData: data)
        } catch {
            throw KubernetesError.invalidResponse("body is not JSON", httpStatus: status)
        }
    }

    /// A request's 2xx response body, unparsed; other statuses throw.
    private func requestData(_ method: String, _ pathAndQuery: String) async throws -> Data {
        try await requestData(method, pathAndQuery, body: nil).body
    }

    private func requestData(
        _ method: String, _ pathAndQuery: String, body: JSONValue?, contentType: String = "application/json"
    ) async throws -> (status: Int, body: Data) {
        let bodyData: Data?
        do {
            bodyData = try body?.jsonData()
        } catch {
            throw KubernetesError.invalid
        }
        for attempt in 0..<2 {
            let handler = BufferedHandler(limit: options.maxResponseBodyBytes)
            let transfer = try CurlTransfer(
                makeRequest(
                    method, pathAndQuery, body: bodyData, contentType: bodyData == nil ? nil : contentType,
                    totalTimeout: options.requestTimeout, lowSpeed: nil),
                handler: handler)
            let loop = self.loop
            let response: HTTPResponse
            do {
                response = try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { continuation in
                        handler.setContinuation(continuation)
                        loop.submit(transfer)
                    }
                } onCancel: {
                    loop.cancel(transfer)
                }
            } catch let error as KubernetesError {
                logger.debug(
                    "kubernetes request failed", metadata: ["method": "\(method)", "path": "\(pathAndQuery)", "error": "\(error)"])
                throw error
            }
            if (200..<300).contains(response.status) {
                logger.trace("kubernetes request", metadata: ["method": "\(method)", "path": "\(pathAndQuery)", "status": "\(response.status)"])
                return (response.status, response.body)
            }
            if try retryAfterUnauthorized(response, attempt: attempt) { continue }
            throw error(from: response, method: method, resource: pathAndQuery)
        }
        throw KubernetesError.unauthorized
    }
}
