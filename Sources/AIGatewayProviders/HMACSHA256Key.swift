import Crypto

/// HMAC-SHA256 (RFC 2104) under one fixed key, with the key's two padded blocks already hashed:
/// the inner (`key ⊕ ipad`) and outer (`key ⊕ opad`) SHA-256 states are kept, so each code costs
/// the message's blocks and one more, not the key setup (`HMAC<SHA256>(key:)` pads, XORs and
/// hashes two blocks, and allocates, every time). Equal to `HMAC<SHA256>` for any key and message.
///
/// SigV4 signs every request with the same derived key for a day: the key is set up once.
/// The states stand for the key (they are all it takes to make codes): nothing of them shows in
/// descriptions or dumps.
public struct HMACSHA256Key: Sendable, CustomStringConvertible, CustomReflectable {
    private let inner: SHA256
    private let outer: SHA256

    public init(key: UnsafeRawBufferPointer) {
        var block = [UInt8](repeating: 0, count: SHA256.blockByteCount)
        if key.count > SHA256.blockByteCount {
            // Longer keys are hashed first (RFC 2104, section 2).
            var h = SHA256()
            h.update(bufferPointer: key)
            h.finalize().withUnsafeBytes { digest in
                for (i, b) in digest.enumerated() { block[i] = b }
            }
        } else {
            for (i, b) in key.enumerated() { block[i] = b }
        }
        var inner = SHA256()
        var outer = SHA256()
        for i in block.indices { block[i] ^= 0x36 }
        block.withUnsafeBytes { inner.update(bufferPointer: $0) }
        for i in block.indices { block[i] ^= 0x36 ^ 0x5c }
        block.withUnsafeBytes { outer.update(bufferPointer: $0) }
        for i in block.indices { block[i] = 0 }
        self.inner = inner
        self.outer = outer
    }

    public init(key: [UInt8]) {
        self = key.withUnsafeBytes { Self(key: $0) }
    }

    public init(key: SymmetricKey) {
        self = key.withUnsafeBytes { Self(key: $0) }
    }

    /// The authentication code of `message`.
    public func authenticationCode(for message: UnsafeRawBufferPointer) -> SHA256Digest {
        var inner = self.inner
        inner.update(bufferPointer: message)
        let innerDigest = inner.finalize()
        var outer = self.outer
        innerDigest.withUnsafeBytes { outer.update(bufferPointer: $0) }
        return outer.finalize()
    }

    public func authenticationCode(for message: [UInt8]) -> SHA256Digest {
        message.withUnsafeBytes { authenticationCode(for: $0) }
    }

    public var description: String { "HMACSHA256Key(<redacted>)" }
    public var customMirror: Mirror { Mirror(self, children: []) }
}
