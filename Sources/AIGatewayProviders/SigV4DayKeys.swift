import AIGatewayAPI
import Crypto
import Synchronization

/// The signing keys of one region and service, by day and secret, each derived once: the
/// derivation is four HMACs (plus the key's HMAC setup) and the same for every request of a day.
/// With them, the last second's `x-amz-date` (formatting it, and allocating its 16 bytes, cost
/// more than the lookup that now finds it).
///
/// Looked up per request with cheap checks, the second and day as `Int`s and the secret's bytes
/// (a few dozen, compared in place), under a lock held for a scan of at most `capacity` entries.
/// A rotated secret or a new day derives a new key; the oldest entry makes room. Holds secrets:
/// nothing of an entry shows in descriptions or dumps.
public final class SigV4DayKeys: Sendable, Hashable, CustomStringConvertible, CustomReflectable {
    public let region: String
    public let service: String
    public let capacity: Int
    private let state = Mutex(State())

    private struct State {
        var keys: [Key] = []
        /// The last second stamped (seconds since 1970), and its `x-amz-date`.
        var second = Int.min
        var amzDate = ""
    }

    /// One day's key for one secret.
    public final class Key: Sendable, CustomStringConvertible, CustomReflectable {
        /// Days since 1970-01-01.
        public let day: Int
        let secret: SecretString
        /// `YYYYMMDD` of `day`.
        public let date: String
        /// `YYYYMMDD/region/service/aws4_request`, as the string to sign and `Credential` hold it.
        public let scope: [UInt8]
        /// The derived key (`SigV4.signingKey`).
        public let signingKey: SymmetricKey
        /// Its HMAC, the key blocks already hashed.
        public let signer: HMACSHA256Key

        init(day: Int, secret: SecretString, date: String, region: String, service: String) {
            self.day = day
            self.secret = secret
            self.date = date
            scope = Array("\(date)/\(region)/\(service)/aws4_request".utf8)
            signingKey = SigV4.signingKey(secret: secret.value, date: date, region: region, service: service)
            signer = HMACSHA256Key(key: signingKey)
        }

        public var description: String { "SigV4DayKeys.Key(\(date), <redacted>)" }
        public var customMirror: Mirror { Mirror(self, children: []) }
    }

    public init(region: String, service: String, capacity: Int = 4) {
        precondition(capacity > 0, "SigV4DayKeys needs room for one key")
        self.region = region
        self.service = service
        self.capacity = capacity
    }

    /// The key of `day` (days since 1970) under `secret`, or nil when the day's date is not the
    /// 8 digits `YYYYMMDD` (a year before 1000 or after 9999: `SigV4.amzDate` writes those with
    /// other widths, and the general `SigV4.sign` handles them).
    public func key(day: Int, secret: SecretString) -> Key? {
        let found = state.withLock { state in
            state.keys.first { $0.day == day && Self.sameBytes($0.secret.value, secret.value) }
        }
        if let found { return found }
        return derive(day: day, secret: secret)
    }

    /// What a request signed at `seconds` (since 1970) under `secret` needs that is not the
    /// request's: the day's key and the `x-amz-date` (`SigV4.amzDate`). Nil as for `key`.
    public func stamp(seconds: Int, secret: SecretString) -> (key: Key, amzDate: String)? {
        let day = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let (found, amzDate) = state.withLock { state in
            (state.keys.first { $0.day == day && Self.sameBytes($0.secret.value, secret.value) }, state.second == seconds ? state.amzDate : nil)
        }
        guard let key = found ?? derive(day: day, secret: secret) else { return nil }
        if let amzDate { return (key, amzDate) }
        let formatted = Self.amzDate(date: key.date, secondOfDay: seconds - day * 86400)
        state.withLock { state in
            state.second = seconds
            state.amzDate = formatted
        }
        return (key, formatted)
    }

    private func derive(day: Int, secret: SecretString) -> Key? {
        let (y, m, d) = SigV4.civil(days: day)
        guard (1000...9999).contains(y) else { return nil }
        // Derived outside the lock: another thread may derive the same key meanwhile, which only
        // costs the work (both are equal).
        let key = Key(day: day, secret: secret, date: Self.date(year: y, month: m, day: d), region: region, service: service)
        state.withLock { state in
            if state.keys.count >= capacity { state.keys.removeFirst(state.keys.count - capacity + 1) }
            state.keys.append(key)
        }
        return key
    }

    /// Byte equality: a string's `==` is Unicode's canonical equivalence, and two secrets that
    /// differ only in normalisation sign differently.
    /// Compared in place eight bytes a step (a generic byte walk was most of a lookup).
    static func sameBytes(_ a: String, _ b: String) -> Bool {
        let count = a.utf8.count
        guard count == b.utf8.count else { return false }
        let inPlace = a.utf8.withContiguousStorageIfAvailable { x in
            b.utf8.withContiguousStorageIfAvailable { y in
                let (x, y) = (UnsafeRawBufferPointer(x), UnsafeRawBufferPointer(y))
                var i = 0
                while i + 8 <= count {
                    if x.loadUnaligned(fromByteOffset: i, as: UInt64.self) != y.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
                    i += 8
                }
                while i < count {
                    if x[i] != y[i] { return false }
                    i += 1
                }
                return true
            }
        }
        return (inPlace ?? nil) ?? a.utf8.elementsEqual(b.utf8)
    }

    /// How many keys are held (for tests).
    public var count: Int { state.withLock { $0.keys.count } }

    /// `YYYYMMDDTHHMMSSZ` from the day's `YYYYMMDD` (8 digits, as `Key.date` is) and the second of
    /// the day, written in place (no interim array).
    static func amzDate(date: String, secondOfDay: Int) -> String {
        String(unsafeUninitializedCapacity: 16) { out in
            var i = 0
            func put(_ b: UInt8) {
                out[i] = b
                i += 1
            }
            func twoDigits(_ n: Int) {
                put(UInt8(ascii: "0") + UInt8(n / 10))
                put(UInt8(ascii: "0") + UInt8(n % 10))
            }
            for b in date.utf8.prefix(8) { put(b) }
            put(UInt8(ascii: "T"))
            twoDigits(secondOfDay / 3600)
            twoDigits(secondOfDay / 60 % 60)
            twoDigits(secondOfDay % 60)
            put(UInt8(ascii: "Z"))
            return i
        }
    }

    /// `YYYYMMDD` for a year of four digits.
    private static func date(year: Int, month: Int, day: Int) -> String {
        let n = year * 10_000 + month * 100 + day
        return String(n)
    }

    /// Two caches of the same region and service are interchangeable (the keys are a function of
    /// day and secret): an adapter holding one stays equal to one built from the same settings.
    public static func == (a: SigV4DayKeys, b: SigV4DayKeys) -> Bool {
        a.region == b.region && a.service == b.service && a.capacity == b.capacity
    }

    public func hash(into h: inout Hasher) {
        h.combine(region)
        h.combine(service)
    }

    public var description: String { "SigV4DayKeys(\(region), \(service))" }
    public var customMirror: Mirror { Mirror(self, children: ["region": region, "service": service]) }
}
