import Synchronization

/// A place where the data plane keeps what it derives from a compiled value once (metric handles
/// for its labels), so that a request reads it instead of looking it up by the value's strings
/// in a table shared by all event loops. Set once, then read with one atomic load and no lock.
///
/// Not part of the value: every two slots are equal and hash alike, and a copy of the value
/// shares the slot. What is stored must therefore say what it was derived from, and its reader
/// must check that before using it (a copy whose fields changed keeps the slot).
///
/// `@unchecked Sendable`: the atomic holds an `AnyObject`, but only `Sendable` objects go in.
public final class DerivedSlot: @unchecked Sendable, Hashable {
    /// Holds one retain of the stored object from the store until `deinit`: a reader's object
    /// lives at least as long as the value it read it from.
    private let stored = Atomic<Unmanaged<AnyObject>?>(nil)

    public init() {}

    deinit {
        stored.load(ordering: .acquiring)?.release()
    }

    /// The object stored, if any.
    public func load() -> (any AnyObject & Sendable)? {
        // Only `storeIfEmpty` stores, and only what is `Sendable`.
        stored.load(ordering: .acquiring).map { unsafeBitCast($0.takeUnretainedValue(), to: (any AnyObject & Sendable).self) }
    }

    /// Stores `object` unless one is stored already; returns the one stored (the first wins).
    @discardableResult
    public func storeIfEmpty(_ object: some AnyObject & Sendable) -> any AnyObject & Sendable {
        let new = Unmanaged<AnyObject>.passRetained(object)
        let (exchanged, _) = stored.compareExchange(expected: nil, desired: new, ordering: .acquiringAndReleasing)
        if exchanged { return object }
        new.release()
        return load()!
    }

    public static func == (_: DerivedSlot, _: DerivedSlot) -> Bool { true }
    public func hash(into _: inout Hasher) {}
}
