import AIGatewayFailover

/// The attempt trail the client sees in `x-aigw-attempts` (`provider/model=outcome`, one per
/// attempt, comma-separated, each name as `TrailToken` makes it), kept as the failover machine's
/// records and candidates: written straight into a head's bytes (`count`, then `write`) with no
/// string made, or made a string (`text`) for the paths that build `HTTPHeaders`.
///
/// A trail may also be given as text (tests, callers that have one): it is then written as it is.
struct AttemptTrail: Sendable {
    private enum Storage: Sendable {
        case text(String)
        case records([FailoverMachine.Record], candidates: [FailoverCandidate])
    }

    private let storage: Storage
    /// Bytes of the trail (of `text`), counted once.
    let count: Int

    init(_ text: String) {
        storage = .text(text)
        count = text.utf8.count
    }

    /// The trail of `records`, whose indices are into `candidates`.
    init(records: [FailoverMachine.Record], candidates: [FailoverCandidate]) {
        storage = .records(records, candidates: candidates)
        var n = max(records.count - 1, 0)
        for rec in records {
            let c = candidates[rec.index]
            if !c.provider.isEmpty { n += TrailToken.count(c.provider) + 1 }
            n += TrailToken.count(c.model) + 1 + rec.outcome.label.utf8.count
        }
        count = n
    }

    var isEmpty: Bool {
        switch storage {
        case .text(let s): s.isEmpty
        case .records(let records, _): records.isEmpty
        }
    }

    /// The trail as a string.
    var text: String {
        switch storage {
        case .text(let s):
            return s
        case .records(let records, let candidates):
            var header = ""
            // One allocation for the usual trail (`provider/model=outcome`, once or twice).
            header.reserveCapacity(64)
            for (k, rec) in records.enumerated() {
                if k > 0 { header += "," }
                let c = candidates[rec.index]
                if !c.provider.isEmpty {
                    header += TrailToken.make(c.provider)
                    header += "/"
                }
                header += TrailToken.make(c.model)
                header += "="
                header += rec.outcome.label
            }
            return header
        }
    }

    /// Writes the trail (`count` bytes: those of `text`).
    func write(into w: inout HeadBytes) {
        switch storage {
        case .text(let s):
            w.put(s)
        case .records(let records, let candidates):
            for (k, rec) in records.enumerated() {
                if k > 0 { w.put(",") }
                let c = candidates[rec.index]
                if !c.provider.isEmpty {
                    TrailToken.write(c.provider, into: &w)
                    w.put("/")
                }
                TrailToken.write(c.model, into: &w)
                w.put("=")
                w.put(rec.outcome.label)
            }
        }
    }
}

extension TrailToken {
    /// Bytes of `make(s)`.
    static func count(_ s: String) -> Int {
        // A native string's bytes at once (the usual case: every byte allowed).
        if let n = s.utf8.withContiguousStorageIfAvailable({ bytes in bytes.allSatisfy(allowed) ? bytes.count : nil }), let n { return n }
        var n = 0
        for c in s.utf8 where allowed(c) { n += 1 }
        return n
    }

    /// Writes `make(s)`: the whole string when every byte is allowed (the usual name), else its
    /// allowed bytes one by one.
    static func write(_ s: String, into w: inout HeadBytes) {
        var s = s
        s.withUTF8 { bytes in
            let raw = UnsafeRawBufferPointer(bytes)
            if raw.allSatisfy(allowed) { return w.put(raw) }
            for i in raw.indices where allowed(raw[i]) { w.put(UnsafeRawBufferPointer(rebasing: raw[i..<(i + 1)])) }
        }
    }
}
