/// The byte counts of a set of keys, as a bit set (bit n: some key has n bytes; every count of 63
/// or more shares bit 63). A request asks it before looking a key up in a dictionary: most
/// lookups would miss (a path's parent directories, a host no route names), and a miss costs a
/// hash of the key; the bit costs a shift.
struct LengthSet: Sendable, Hashable {
    private var bits: UInt64 = 0

    init() {}

    init(_ keys: some Sequence<String>) {
        for k in keys { insert(k.utf8.count) }
    }

    var isEmpty: Bool { bits == 0 }

    @inline(__always)
    private static func bit(_ count: Int) -> UInt64 { 1 << UInt64(min(count, 63)) }

    mutating func insert(_ count: Int) { bits |= Self.bit(count) }

    /// Whether some key may have `count` bytes (false: none has).
    @inline(__always)
    func mayContain(_ count: Int) -> Bool { bits & Self.bit(count) != 0 }
}
