import Dispatch
import Foundation
import Synchronization

extension Array where Element: Sendable {
    /// `map`, on every core when the array is large: the array is cut into one contiguous slice
    /// per core (at least `minimumPerSlice` elements each), and the results come back in order.
    /// For pure, independent work such as decoding or compiling thousands of objects at start.
    public func concurrentMap<T: Sendable>(minimumPerSlice: Int = 256, _ transform: @Sendable (Element) -> T) -> [T] {
        let slices = Swift.max(1, Swift.min(ProcessInfo.processInfo.activeProcessorCount, count / Swift.max(1, minimumPerSlice)))
        guard slices > 1 else { return map(transform) }
        let parts = Mutex<[[T]]>(Array<[T]>(repeating: [], count: slices))
        let count = self.count
        DispatchQueue.concurrentPerform(iterations: slices) { slice in
            let part = self[(count * slice / slices)..<(count * (slice + 1) / slices)].map(transform)
            parts.withLock { $0[slice] = part }
        }
        return parts.withLock { [T]($0.joined()) }
    }
}
