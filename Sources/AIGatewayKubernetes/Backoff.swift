/// Exponential backoff with jitter: `initial`, multiplied by `multiplier` after each failure
/// up to `maximum`; each delay is reduced by a random fraction up to `jitter` so that many
/// clients do not retry in step.
public struct Backoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double
    /// In 0...1: a delay `d` becomes a random value in `d * (1 - jitter) ... d`.
    public var jitter: Double

    private var current: Duration?

    public init(
        initial: Duration = .milliseconds(200), maximum: Duration = .seconds(30), multiplier: Double = 2,
        jitter: Double = 0.5
    ) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = min(max(jitter, 0), 1)
    }

    /// The delay before the next attempt; `random` returns a value in 0..<1.
    public mutating func next(random: () -> Double = { Double.random(in: 0..<1) }) -> Duration {
        let base = min(current ?? initial, maximum)
        current = min(base * multiplier, maximum)
        return base * (1 - jitter * random())
    }

    /// Back to `initial` after a success.
    public mutating func reset() {
        current = nil
    }
}
