/// A set of header names matched ASCII-case-insensitively without allocating: the proxy checks
/// every client and provider header against one, so `lowercased()` per header would cost a
/// string each.
struct HeaderNameSet: Sendable {
    /// Lowercased names, by their length in bytes.
    private let byLength: [[[UInt8]]]

    init(_ names: [String]) {
        var byLength: [[[UInt8]]] = []
        for name in names {
            let bytes = Array(name.lowercased().utf8)
            while byLength.count <= bytes.count { byLength.append([]) }
            byLength[bytes.count].append(bytes)
        }
        self.byLength = byLength
    }

    func contains(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { bytes in
            guard bytes.count < byLength.count else { return false }
            for candidate in byLength[bytes.count] where Self.equalIgnoringCase(bytes, candidate) {
                return true
            }
            return false
        }
    }

    /// The name in `bytes` (e.g. a field of a head read as bytes), without making a string of it.
    func contains(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count < byLength.count else { return false }
        let name = bytes.assumingMemoryBound(to: UInt8.self)
        for candidate in byLength[bytes.count] where Self.equalIgnoringCase(name, candidate) {
            return true
        }
        return false
    }

    /// `lowered` is already lowercase.
    static func equalIgnoringCase(_ bytes: UnsafeBufferPointer<UInt8>, _ lowered: [UInt8]) -> Bool {
        for i in 0..<bytes.count {
            var c = bytes[i]
            if c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") { c |= 0x20 }
            if c != lowered[i] { return false }
        }
        return true
    }
}
