import Foundation

/// The result of decoding one API object.
public enum DecodeOutcome: Sendable, Hashable {
    /// A kind the gateway understands, valid.
    case resource(Resource)
    /// A kind the gateway does not use (a Deployment in the same file, say).
    case ignored(apiVersion: String, kind: String)
    /// A kind the gateway understands, with errors naming each field to fix.
    case invalid(kind: String, name: NamespacedName, errors: [FieldError])
}

/// Decodes API objects (from YAML manifests or the Kubernetes API) into typed resources,
/// with strict schema checks and field-path errors.
public enum ResourceDecoder {
    public static let backendGroup = "gateway.kgateway.dev"
    public static let gatewayGroup = "gateway.networking.k8s.io"

    /// The apiVersions accepted for each kind.
    public static let supportedVersions: [String: [String]] = [
        "Backend": ["gateway.kgateway.dev/v1alpha1"],
        "HTTPRoute": ["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"],
        "Gateway": ["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"],
        "GatewayClass": ["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"],
        "ReferenceGrant": ["gateway.networking.k8s.io/v1beta1", "gateway.networking.k8s.io/v1alpha2"],
        "Secret": ["v1"],
    ]

    public static func decode(_ value: JSONValue, defaultNamespace: String = "default") -> DecodeOutcome {
        let d = Diagnostics()
        guard let top = ObjectReader(value, path: "", diagnostics: d) else {
            return .invalid(kind: "", name: NamespacedName(namespace: "", name: ""), errors: d.errors)
        }
        let apiVersion = top.string("apiVersion", required: true) ?? ""
        let kind = top.string("kind", required: true) ?? ""
        guard let versions = supportedVersions[kind] else {
            if d.errors.isEmpty { return .ignored(apiVersion: apiVersion, kind: kind) }
            return .invalid(kind: kind, name: NamespacedName(namespace: "", name: ""), errors: d.errors)
        }
        let clusterScoped = kind == "GatewayClass"
        let meta = decodeMetadata(top, defaultNamespace: defaultNamespace, clusterScoped: clusterScoped)
        if !versions.contains(apiVersion) {
            // A same-named kind of another group (a Knative Gateway, say) is not ours.
            let group = apiVersion.split(separator: "/").dropLast().joined(separator: "/")
            let ourGroup = versions[0].split(separator: "/").dropLast().joined(separator: "/")
            if group != ourGroup { return .ignored(apiVersion: apiVersion, kind: kind) }
            d.add("apiVersion", "unsupported version \"\(apiVersion)\" for \(kind): supported: \(versions.joined(separator: ", "))")
        }
        top.ignore("status")
        var resource: Resource?
        switch kind {
        case "Backend":
            if let spec = top.object("spec", required: true), let meta {
                resource = decodeBackendSpec(spec).map { .backend(Backend(metadata: meta, spec: $0)) }
            }
        case "HTTPRoute":
            if let spec = top.object("spec", required: true), let meta {
                resource = decodeHTTPRoute(spec, meta: meta).map { .httpRoute($0) }
            }
        case "Gateway":
            if let spec = top.object("spec", required: true), let meta {
                resource = decodeGateway(spec, meta: meta).map { .gateway($0) }
            }
        case "GatewayClass":
            if let spec = top.object("spec", required: true), let meta {
                let controller = spec.string("controllerName", required: true)
                spec.ignore("description", "parametersRef")
                spec.rejectUnknownFields()
                if let controller { resource = .gatewayClass(GatewayClass(metadata: meta, controllerName: controller)) }
            }
        case "ReferenceGrant":
            if let spec = top.object("spec", required: true), let meta {
                resource = decodeReferenceGrant(spec, meta: meta).map { .referenceGrant($0) }
            }
        case "Secret":
            if let meta { resource = decodeSecret(top, meta: meta).map { .secret($0) } }
        default:
            break
        }
        top.rejectUnknownFields()
        let name = meta?.namespacedName ?? NamespacedName(namespace: defaultNamespace, name: "")
        if !d.errors.isEmpty || resource == nil {
            return .invalid(kind: kind, name: name, errors: d.errors)
        }
        return .resource(resource!)
    }

    // MARK: metadata

    static func decodeMetadata(_ top: ObjectReader, defaultNamespace: String, clusterScoped: Bool) -> ObjectMeta? {
        guard let m = top.object("metadata", required: true) else { return nil }
        let name = m.string("name", required: true)
        if let name, !isDNSSubdomain(name) {
            m.diagnostics.add(m.childPath("name"), "invalid name \"\(name)\": must be a lowercase RFC 1123 subdomain")
        }
        var namespace = m.string("namespace") ?? defaultNamespace
        if clusterScoped { namespace = "" }
        let labels = m.stringMap("labels")
        let annotations = m.stringMap("annotations")
        let generation = m.int("generation") ?? 1
        let rv = m.string("resourceVersion")
        let uid = m.string("uid")
        let created = m.string("creationTimestamp")
        // Other metadata (managedFields, finalizers, ownerReferences...) is not ours to judge.
        guard let name else { return nil }
        return ObjectMeta(
            name: name, namespace: namespace, labels: labels, annotations: annotations, generation: generation,
            resourceVersion: rv, uid: uid, creationTimestamp: created)
    }

    /// Lowercase letters, digits, `-` and `.`, at most 253, starting and ending with a letter or
    /// digit (on bytes: every allowed character is ASCII).
    static func isDNSSubdomain(_ s: String) -> Bool {
        let bytes = s.utf8
        guard let first = bytes.first, let last = bytes.last, bytes.count <= 253 else { return false }
        func alphanumeric(_ c: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
        }
        guard bytes.allSatisfy({ alphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }) else { return false }
        return alphanumeric(first) && alphanumeric(last)
    }

    // MARK: Backend

    static func decodeBackendSpec(_ spec: ObjectReader) -> BackendSpec? {
        let typeString = spec.enumeration("type", BackendType.allCases.map(\.rawValue), required: true)
        let type = typeString.flatMap(BackendType.init(rawValue:))
        var ai: AIBackend?
        let hasAI = spec.has("ai")
        if let aiReader = spec.object("ai") {
            ai = decodeAIBackend(aiReader)
        }
        spec.ignore("aws", "static")
        if type == .ai && !hasAI {
            spec.diagnostics.add(spec.childPath("ai"), "required when type is AI")
        }
        if let type, type != .ai, hasAI {
            spec.diagnostics.add(spec.childPath("ai"), "must not be set when type is \(type.rawValue)")
        }
        if type == .aws && !spec.has("aws") {
            spec.diagnostics.add(spec.childPath("aws"), "required when type is AWS")
        }
        if type == .static && !spec.has("static") {
            spec.diagnostics.add(spec.childPath("static"), "required when type is Static")
        }
        spec.rejectUnknownFields()
        guard let type else { return nil }
        return BackendSpec(type: type, ai: ai)
    }

    static func decodeAIBackend(_ ai: ObjectReader) -> AIBackend? {
        let shapes = ["llm", "multipool", "priorityGroups"].filter { ai.has($0) }
        if shapes.count != 1 {
            ai.diagnostics.add(
                ai.path,
                shapes.isEmpty
                    ? "exactly one of llm, multipool or priorityGroups must be set"
                    : "exactly one of llm, multipool or priorityGroups must be set, found \(shapes.joined(separator: " and "))")
        }
        var result: AIBackend?
        if let llm = ai.object("llm") {
            if let e = decodeEntry(llm, named: false) { result = AIBackend(shape: .llm, priorities: [[e]]) }
        }
        if let mp = ai.object("multipool") {
            var levels: [[LLMProviderEntry]] = []
            for level in mp.objects("priorities", required: true, minItems: 1, maxItems: 20) {
                let entries = level.objects("pool", required: true, minItems: 1, maxItems: 20).compactMap {
                    decodeEntry($0, named: false)
                }
                level.rejectUnknownFields()
                levels.append(entries)
            }
            mp.rejectUnknownFields()
            if result == nil { result = AIBackend(shape: .multipool, priorities: levels) }
        }
        if let groups = ai.array("priorityGroups", minItems: 1, maxItems: 32) {
            var levels: [[LLMProviderEntry]] = []
            for item in groups {
                guard let group = ObjectReader(item) else { continue }
                var seen: Set<String> = []
                var entries: [LLMProviderEntry] = []
                for (i, p) in group.objects("providers", required: true, minItems: 1, maxItems: 32).enumerated() {
                    guard let e = decodeEntry(p, named: true) else { continue }
                    if let name = e.name {
                        if !seen.insert(name).inserted {
                            ai.diagnostics.add("\(group.childPath("providers"))[\(i)].name", "duplicate name \"\(name)\" within the group")
                        }
                    }
                    entries.append(e)
                }
                group.rejectUnknownFields()
                levels.append(entries)
            }
            if result == nil { result = AIBackend(shape: .priorityGroups, priorities: levels) }
        }
        ai.rejectUnknownFields()
        return result
    }

    /// One provider entry, in the older shape (`provider: {...}`, `hostOverride`) or the later
    /// one (provider key on the entry, `host`/`port`, `path`, `authHeader`).
    static func decodeEntry(_ e: ObjectReader, named: Bool) -> LLMProviderEntry? {
        let d = e.diagnostics
        let name = e.string("name", required: named)
        if let name, !HTTPText.isFieldValue(name) {
            d.add(e.childPath("name"), "must not hold control characters (CR, LF, NUL, ...)")
        }
        var provider: LLMProvider?
        let direct = LLMProvider.keys.filter { e.has($0) }
        if e.has("provider") {
            if !direct.isEmpty {
                d.add(e.path, "set either provider or \(direct.joined(separator: ", ")) directly, not both")
            }
            if let p = e.object("provider") {
                provider = decodeProvider(p, container: p)
                p.rejectUnknownFields()
            }
        } else {
            provider = decodeProvider(e, container: e)
        }
        var host: String?
        var port: Int?
        if let ho = e.object("hostOverride") {
            host = ho.host("host", required: true)
            port = ho.int("port", required: true, range: 1...65535)
            // Provider TLS is always verified; skipping it is not offered (a private CA goes in
            // --provider-ca-file). `false` says what happens anyway.
            if ho.bool("insecureSkipVerify") == true {
                d.add(ho.childPath("insecureSkipVerify"), "not supported: provider TLS is always verified (trust a private CA with --provider-ca-file)")
            }
            ho.rejectUnknownFields()
        }
        if e.has("host") || e.has("port") {
            if e.has("hostOverride") { d.add(e.path, "set either hostOverride or host/port, not both") }
            host = e.host("host")
            port = e.int("port", range: 1...65535)
            if e.has("host") != e.has("port") {
                d.add(e.childPath(e.has("host") ? "port" : "host"), "host and port must be set together")
            }
        }
        var path: String?
        for (key, member) in [("path", "full"), ("pathOverride", "fullPath")] {
            guard let p = e.object(key) else { continue }
            if let full = p.string(member, required: true) {
                if !full.hasPrefix("/") {
                    d.add(p.childPath(member), "must start with /")
                } else if let why = WireSyntax.pathProblem(full) {
                    d.add(p.childPath(member), "must be a URL path: \(why), found \(ObjectReader.echo(full))")
                } else {
                    path = full
                }
            }
            p.rejectUnknownFields()
        }
        var authHeader: AuthHeaderOverride?
        for key in ["authHeader", "authHeaderOverride"] {
            if let a = e.object(key) {
                let o = AuthHeaderOverride(prefix: a.headerValue("prefix"), headerName: a.headerName("headerName"))
                if o.prefix == nil && o.headerName == nil {
                    d.add(a.path, "at least one of prefix or headerName must be set")
                }
                a.rejectUnknownFields()
                authHeader = o
            }
        }
        e.rejectUnknownFields()
        guard let provider else { return nil }
        return LLMProviderEntry(name: name, provider: provider, host: host, port: port, pathOverride: path, authHeader: authHeader)
    }

    /// Reads the single provider key out of `container`.
    static func decodeProvider(_ r: ObjectReader, container: ObjectReader) -> LLMProvider? {
        let present = LLMProvider.keys.filter { r.has($0) }
        guard present.count == 1 else {
            r.diagnostics.add(
                r.path,
                present.isEmpty
                    ? "exactly one provider must be set (one of \(LLMProvider.keys.joined(separator: ", ")))"
                    : "exactly one provider must be set, found \(present.joined(separator: " and "))")
            for k in present { r.ignore(k) }
            return nil
        }
        let key = present[0]
        guard let p = r.object(key) else { return nil }
        defer { p.rejectUnknownFields() }
        switch key {
        case "openai":
            let token = decodeAuthToken(p)
            let model = p.wireString("model", "a model name", WireSyntax.modelNameProblem)
            return token.map { .openai(OpenAIProvider(authToken: $0, model: model)) }
        case "azureopenai":
            let token = decodeAuthToken(p)
            let endpoint = p.wireString("endpoint", required: true, "a host name such as my-resource.openai.azure.com", WireSyntax.azureEndpointProblem)
            let deployment = p.wireString("deploymentName", required: true, "one URL path segment", segment)
            let version = p.wireString("apiVersion", required: true, "a version token", WireSyntax.tokenProblem)
            guard let token, let endpoint, let deployment, let version else { return nil }
            return .azureopenai(AzureOpenAIProvider(authToken: token, endpoint: endpoint, deploymentName: deployment, apiVersion: version))
        case "anthropic":
            let token = decodeAuthToken(p)
            let model = p.wireString("model", "a model name", WireSyntax.modelNameProblem)
            let version = p.wireString("apiVersion", "a version token", WireSyntax.tokenProblem)
            return token.map { .anthropic(AnthropicProvider(authToken: $0, model: model, apiVersion: version)) }
        case "gemini":
            let token = decodeAuthToken(p)
            let model = p.wireString("model", required: true, "one URL path segment", segment)
            let version = p.wireString("apiVersion", required: true, "a version token", WireSyntax.tokenProblem)
            guard let token, let model, let version else { return nil }
            return .gemini(GeminiProvider(authToken: token, model: model, apiVersion: version))
        case "vertexai":
            let token = decodeAuthToken(p)
            let model = p.wireString("model", required: true, "one URL path segment", segment)
            let version = p.wireString("apiVersion", required: true, "a version token", WireSyntax.tokenProblem)
            let project = p.wireString("projectId", required: true, "one URL path segment", segment)
            let location = p.wireString("location", required: true, "a region name", WireSyntax.labelProblem)
            let modelPath = p.wireString("modelPath", "a URL path") { WireSyntax.pathProblem($0, leadingSlash: false) }
            let publisher = p.enumeration("publisher", ["GOOGLE"])
            guard let token, let model, let version, let project, let location else { return nil }
            return .vertexai(VertexAIProvider(
                authToken: token, model: model, apiVersion: version, projectId: project, location: location,
                modelPath: modelPath, publisher: publisher))
        case "bedrock":
            var auth: BedrockAuth?
            var authValid = true
            if let a = p.raw("auth") {
                authValid = false
                if a.objectValue == nil {
                    p.diagnostics.add(p.childPath("auth"), "must be an object, found \(a.typeName)")
                } else if let r = p.object("auth") {
                    let type = r.enumeration("type", ["Secret"], required: true)
                    let name = r.object("secretRef", required: true).flatMap { ref -> String? in
                        defer { ref.rejectUnknownFields() }
                        return ref.string("name", required: true)
                    }
                    r.rejectUnknownFields()
                    if type != nil, let name {
                        auth = .secret(name: name)
                        authValid = true
                    }
                }
            }
            let model = p.wireString("model", required: true, "one URL path segment (or an ARN)", segmentOrARN)
            let region = p.wireString("region", "a region name", WireSyntax.labelProblem) ?? "us-east-1"
            var guardrail: BedrockProvider.Guardrail?
            if let g = p.object("guardrail") {
                let id = g.wireString("identifier", required: true, "one URL path segment (or an ARN)", segmentOrARN)
                let version = g.wireString("version", required: true, "a version token", WireSyntax.tokenProblem)
                g.rejectUnknownFields()
                if let id, let version { guardrail = .init(identifier: id, version: version) }
            }
            guard authValid, let model else { return nil }
            return .bedrock(BedrockProvider(auth: auth, model: model, region: region, guardrail: guardrail))
        default:
            return nil
        }
    }

    static func segment(_ s: String) -> String? { WireSyntax.segmentProblem(s) }

    /// A Bedrock model or guardrail: one segment, or an ARN (`arn:aws:bedrock:...:inference-profile/...`),
    /// whose `/` the path builder escapes.
    static func segmentOrARN(_ s: String) -> String? { WireSyntax.segmentProblem(s, allowSlash: s.hasPrefix("arn:")) }

    static func decodeAuthToken(_ p: ObjectReader) -> AuthToken? {
        guard let a = p.object("authToken", required: true) else { return nil }
        defer { a.rejectUnknownFields() }
        let kind = a.enumeration("kind", ["Inline", "SecretRef", "Passthrough"], required: true)
        let inline = a.string("inline", nonEmpty: false)
        var secretName: String?
        if let ref = a.object("secretRef") {
            secretName = ref.string("name", required: true)
            ref.ignore("namespace")
            ref.rejectUnknownFields()
        }
        switch kind {
        case "Inline":
            if a.has("secretRef") { a.diagnostics.add(a.childPath("secretRef"), "must not be set when kind is Inline") }
            guard let inline, !inline.isEmpty else {
                a.diagnostics.add(a.childPath("inline"), "required when kind is Inline")
                return nil
            }
            return .inline(SecretString(inline))
        case "SecretRef":
            if a.has("inline") { a.diagnostics.add(a.childPath("inline"), "must not be set when kind is SecretRef") }
            guard let secretName else {
                if !a.has("secretRef") { a.diagnostics.add(a.childPath("secretRef"), "required when kind is SecretRef") }
                return nil
            }
            return .secretRef(name: secretName)
        case "Passthrough":
            if a.has("inline") || a.has("secretRef") {
                a.diagnostics.add(a.path, "inline and secretRef must not be set when kind is Passthrough")
            }
            return .passthrough
        default:
            return nil
        }
    }

    // MARK: HTTPRoute

    static func decodeHTTPRoute(_ spec: ObjectReader, meta: ObjectMeta) -> HTTPRoute? {
        let d = spec.diagnostics
        var parents: [ParentReference] = []
        for p in spec.objects("parentRefs", maxItems: 32) {
            let name = p.string("name", required: true)
            let group = p.string("group", nonEmpty: false) ?? ResourceDecoder.gatewayGroup
            let kind = p.string("kind") ?? "Gateway"
            let ns = p.string("namespace")
            let section = p.string("sectionName")
            let port = p.int("port", range: 1...65535)
            p.rejectUnknownFields()
            if let name {
                parents.append(ParentReference(group: group, kind: kind, namespace: ns, name: name, sectionName: section, port: port))
            }
        }
        let hostnames = spec.strings("hostnames", maxItems: 16)
        for (i, h) in hostnames.enumerated() where !isValidHostname(h) {
            d.add("\(spec.childPath("hostnames"))[\(i)]", "invalid hostname \"\(h)\"")
        }
        var rules: [HTTPRouteRule] = []
        let ruleReaders = spec.objects("rules", maxItems: 16)
        for r in ruleReaders {
            rules.append(decodeRule(r))
        }
        if !spec.has("rules") {
            // Gateway API default: one rule matching PathPrefix / with no backends.
            rules = [HTTPRouteRule(name: nil, matches: [.default], filters: [], backendRefs: [], timeouts: nil, retry: nil)]
        }
        spec.rejectUnknownFields()
        return HTTPRoute(metadata: meta, parentRefs: parents, hostnames: hostnames, rules: rules)
    }

    static func decodeRule(_ r: ObjectReader) -> HTTPRouteRule {
        let d = r.diagnostics
        let name = r.string("name")
        var matches: [HTTPRouteMatch] = []
        for m in r.objects("matches", maxItems: 64) {
            var match = HTTPRouteMatch.default
            if let p = m.object("path") {
                let type = p.enumeration("type", ["Exact", "PathPrefix", "RegularExpression"]) ?? "PathPrefix"
                let value = p.string("value") ?? "/"
                p.rejectUnknownFields()
                match.pathType = HTTPRouteMatch.PathType(rawValue: type) ?? .pathPrefix
                match.pathValue = value
                if match.pathType != .regularExpression && !value.hasPrefix("/") {
                    d.add(p.childPath("value"), "must be an absolute path starting with /")
                }
                if match.pathType == .regularExpression, (try? Regex(value)) == nil {
                    d.add(p.childPath("value"), "invalid regular expression")
                }
            }
            match.headers = decodeValueMatches(m, key: "headers")
            match.queryParams = decodeValueMatches(m, key: "queryParams")
            match.method = m.enumeration("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"])
            m.rejectUnknownFields()
            matches.append(match)
        }
        if matches.isEmpty { matches = [.default] }
        var filters: [HTTPRouteFilter] = []
        for f in r.objects("filters", maxItems: 16) {
            let type = f.enumeration("type", ["RequestHeaderModifier", "ResponseHeaderModifier", "URLRewrite"], required: true)
            switch type {
            case "RequestHeaderModifier":
                if let m = f.object("requestHeaderModifier", required: true) { filters.append(.requestHeaderModifier(decodeHeaderModifier(m))) }
            case "ResponseHeaderModifier":
                if let m = f.object("responseHeaderModifier", required: true) { filters.append(.responseHeaderModifier(decodeHeaderModifier(m))) }
            case "URLRewrite":
                if let u = f.object("urlRewrite", required: true) {
                    var rewrite = URLRewrite(hostname: u.string("hostname"), path: nil)
                    if let p = u.object("path") {
                        let ptype = p.enumeration("type", ["ReplaceFullPath", "ReplacePrefixMatch"], required: true)
                        if ptype == "ReplaceFullPath" {
                            if let v = p.string("replaceFullPath", required: true) { rewrite.path = .replaceFullPath(v) }
                        } else if ptype == "ReplacePrefixMatch" {
                            // The Gateway API allows an empty replacement (`/foo/bar` → `/bar`).
                            if let v = p.string("replacePrefixMatch", required: true, nonEmpty: false) { rewrite.path = .replacePrefixMatch(v) }
                            if matches.contains(where: { $0.pathType != .pathPrefix }) {
                                d.add(p.childPath("type"), "ReplacePrefixMatch is only valid with a PathPrefix match")
                            }
                        }
                        p.rejectUnknownFields()
                    }
                    u.rejectUnknownFields()
                    filters.append(.urlRewrite(rewrite))
                }
            default:
                f.ignore("requestRedirect", "requestMirror", "extensionRef", "cors", "externalAuth")
            }
            f.rejectUnknownFields()
        }
        var backendRefs: [HTTPBackendRef] = []
        for b in r.objects("backendRefs", maxItems: 16) {
            let name = b.string("name", required: true)
            let group = b.string("group", nonEmpty: false) ?? ""
            let kind = b.string("kind") ?? "Service"
            let ns = b.string("namespace")
            let port = b.int("port", range: 1...65535)
            let weight = b.int("weight", range: 0...1_000_000) ?? 1
            if b.has("filters") {
                d.add(b.childPath("filters"), "per-backend filters are not supported; set filters on the rule")
                b.ignore("filters")
            }
            b.rejectUnknownFields()
            if let name {
                backendRefs.append(HTTPBackendRef(group: group, kind: kind, name: name, namespace: ns, port: port, weight: weight))
            }
        }
        var timeouts: HTTPRouteRule.Timeouts?
        if let t = r.object("timeouts") {
            timeouts = .init(request: t.duration("request"), backendRequest: t.duration("backendRequest"))
            if let req = timeouts?.request, let be = timeouts?.backendRequest, req.milliseconds > 0, be.milliseconds > req.milliseconds {
                d.add(t.childPath("backendRequest"), "must not be greater than timeouts.request")
            }
            t.rejectUnknownFields()
        }
        var retry: HTTPRouteRule.Retry?
        if let rt = r.object("retry") {
            var codes: [Int] = []
            for item in rt.array("codes") ?? [] {
                if let c = item.value.intValue, (400...599).contains(c) { codes.append(c) } else {
                    d.add(item.path, "must be an HTTP status code between 400 and 599")
                }
            }
            retry = .init(codes: codes, attempts: rt.int("attempts", range: 0...10), backoff: rt.duration("backoff"))
            rt.rejectUnknownFields()
        }
        r.ignore("sessionPersistence")
        r.rejectUnknownFields()
        return HTTPRouteRule(name: name, matches: matches, filters: filters, backendRefs: backendRefs, timeouts: timeouts, retry: retry)
    }

    static func decodeValueMatches(_ m: ObjectReader, key: String) -> [HTTPRouteMatch.ValueMatch] {
        var out: [HTTPRouteMatch.ValueMatch] = []
        for h in m.objects(key, maxItems: 16) {
            let type = h.enumeration("type", ["Exact", "RegularExpression"]) ?? "Exact"
            let name = h.string("name", required: true)
            let value = h.string("value", required: true, nonEmpty: false)
            h.rejectUnknownFields()
            if type == "RegularExpression", let value, (try? Regex(value)) == nil {
                h.diagnostics.add(h.childPath("value"), "invalid regular expression")
            }
            if let name, let value {
                out.append(.init(type: HTTPRouteMatch.ValueType(rawValue: type) ?? .exact, name: name, value: value))
            }
        }
        return out
    }

    static func decodeHeaderModifier(_ m: ObjectReader) -> HeaderModifier {
        func pairs(_ key: String) -> [HeaderModifier.HeaderPair] {
            m.objects(key, maxItems: 16).compactMap { p in
                let name = p.headerName("name", required: true)
                let value = p.headerValue("value", required: true)
                p.rejectUnknownFields()
                guard let name, let value else { return nil }
                return .init(name: name, value: value)
            }
        }
        let (set, add) = (pairs("set"), pairs("add"))
        let remove = m.strings("remove", maxItems: 16)
        for (i, name) in remove.enumerated() where !HTTPText.isToken(name) {
            m.diagnostics.add("\(m.childPath("remove"))[\(i)]", "must be an HTTP header name, found \(JSONValue.quoted(name))")
        }
        let modifier = HeaderModifier(setPairs: set, addPairs: add, remove: remove.filter(HTTPText.isToken))
        m.rejectUnknownFields()
        return modifier
    }

    static func isValidHostname(_ h: String) -> Bool {
        var name = Substring(h)
        if name.hasPrefix("*.") { name = name.dropFirst(2) }
        guard !name.isEmpty, name.count <= 253 else { return false }
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-.")
        return name.allSatisfy { allowed.contains($0) } && !name.hasPrefix(".") && !name.hasSuffix(".")
    }

    // MARK: Gateway

    static func decodeGateway(_ spec: ObjectReader, meta: ObjectMeta) -> Gateway? {
        let className = spec.string("gatewayClassName", required: true)
        var listeners: [Gateway.Listener] = []
        for l in spec.objects("listeners", required: true, minItems: 1, maxItems: 64) {
            let name = l.string("name", required: true)
            let hostname = l.string("hostname")
            let port = l.int("port", required: true, range: 1...65535)
            let proto = l.string("protocol", required: true)
            var from = Gateway.AllowedRoutesFrom.same
            var selector: [String: String] = [:]
            if let ar = l.object("allowedRoutes") {
                if let ns = ar.object("namespaces") {
                    if let f = ns.enumeration("from", ["All", "Same", "Selector"]) { from = .init(rawValue: f) ?? .same }
                    if let sel = ns.object("selector") {
                        selector = sel.stringMap("matchLabels")
                        sel.ignore("matchExpressions")
                        sel.rejectUnknownFields()
                    }
                    ns.rejectUnknownFields()
                }
                ar.ignore("kinds")
                ar.rejectUnknownFields()
            }
            l.ignore("tls")
            l.rejectUnknownFields()
            if let name, let port, let proto {
                listeners.append(.init(name: name, hostname: hostname, port: port, protocol: proto, allowedRoutesFrom: from, allowedRoutesSelector: selector))
            }
        }
        spec.ignore("addresses", "infrastructure")
        spec.rejectUnknownFields()
        guard let className else { return nil }
        return Gateway(metadata: meta, gatewayClassName: className, listeners: listeners)
    }

    // MARK: ReferenceGrant

    static func decodeReferenceGrant(_ spec: ObjectReader, meta: ObjectMeta) -> ReferenceGrant? {
        var from: [ReferenceGrant.From] = []
        for f in spec.objects("from", required: true, minItems: 1, maxItems: 16) {
            let group = f.string("group", required: false, nonEmpty: false) ?? ""
            let kind = f.string("kind", required: true)
            let ns = f.string("namespace", required: true)
            f.rejectUnknownFields()
            if let kind, let ns { from.append(.init(group: group, kind: kind, namespace: ns)) }
        }
        var to: [ReferenceGrant.To] = []
        for t in spec.objects("to", required: true, minItems: 1, maxItems: 16) {
            let group = t.string("group", required: false, nonEmpty: false) ?? ""
            let kind = t.string("kind", required: true)
            let name = t.string("name")
            t.rejectUnknownFields()
            if let kind { to.append(.init(group: group, kind: kind, name: name)) }
        }
        spec.rejectUnknownFields()
        return ReferenceGrant(metadata: meta, from: from, to: to)
    }

    // MARK: Secret

    static func decodeSecret(_ top: ObjectReader, meta: ObjectMeta) -> Secret? {
        var values: [String: SecretString] = [:]
        if let data = top.object("data") {
            for (k, v) in data.fields.sorted(by: { $0.key < $1.key }) {
                data.ignore(k)
                guard case .string(let s) = v, let decoded = Data(base64Encoded: s.filter { !$0.isWhitespace }) else {
                    // Never echo the value: it is a secret.
                    data.diagnostics.add(data.childPath(k), "must be base64-encoded")
                    continue
                }
                values[k] = SecretString(String(decoding: decoded, as: UTF8.self))
            }
        }
        if let sd = top.object("stringData") {
            for (k, v) in sd.fields {
                sd.ignore(k)
                guard case .string(let s) = v else {
                    sd.diagnostics.add(sd.childPath(k), "must be a string")
                    continue
                }
                values[k] = SecretString(s)
            }
        }
        top.ignore("type", "immutable")
        return Secret(metadata: meta, data: values)
    }
}
