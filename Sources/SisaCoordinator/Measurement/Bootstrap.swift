import Foundation
import SisaEngine

/// A 95% interval, encoded in JSON as `[low, high]`.
public struct Interval: Codable, Equatable, Sendable, CustomStringConvertible {
    public var low: Double
    public var high: Double

    public init(_ low: Double, _ high: Double) {
        self.low = low
        self.high = high
    }

    public func contains(_ x: Double) -> Bool { low <= x && x <= high }
    public var description: String { String(format: "[%.3f, %.3f]", low, high) }

    public init(from decoder: Decoder) throws {
        var c = try decoder.unkeyedContainer()
        low = try c.decode(Double.self)
        high = try c.decode(Double.self)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(low)
        try c.encode(high)
    }
}

/// Percentile bootstrap (REFERENCE.md §7): resample the records with
/// replacement, recompute the statistic, take the 2.5th and 97.5th
/// percentiles. Seeded, so the same inputs give the same interval.
public enum Bootstrap {
    public static let defaultResamples = 1000

    /// One sample of `count` records; `statistic` gets the resampled indices.
    /// A paired bootstrap is this with a statistic over both models' values
    /// of the same records. Nil when there is nothing to resample.
    public static func interval(count: Int, seed: UInt64 = 0, resamples: Int = defaultResamples,
                                statistic: ([Int]) -> Double) -> Interval? {
        interval(counts: [count], seed: seed, resamples: resamples) { statistic($0[0]) }
    }

    /// Several independent samples (for example members and non-members),
    /// each resampled within itself.
    public static func interval(counts: [Int], seed: UInt64 = 0, resamples: Int = defaultResamples,
                                statistic: ([[Int]]) -> Double) -> Interval? {
        guard !counts.isEmpty, counts.allSatisfy({ $0 > 0 }), resamples > 0 else { return nil }
        var rng = Xoshiro256(seed: seed ^ 0x626F_6F74_7374_7261)
        var values: [Double] = []
        values.reserveCapacity(resamples)
        for _ in 0..<resamples {
            let draw = counts.map { n in (0..<n).map { _ in Int(rng.next() % UInt64(n)) } }
            let v = statistic(draw)
            if v.isFinite { values.append(v) }
        }
        // Statistics undefined on most resamples (for example an AUC when a
        // resample has no pairs) give no interval rather than a biased one.
        guard values.count * 2 >= resamples else { return nil }
        values.sort()
        return Interval(percentile(values, 0.025), percentile(values, 0.975))
    }

    /// Linear interpolation between order statistics of a sorted array.
    public static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        precondition(!sorted.isEmpty)
        let pos = q * Double(sorted.count - 1)
        let i = Int(pos.rounded(.down))
        let frac = pos - Double(i)
        return i + 1 < sorted.count ? sorted[i] + frac * (sorted[i + 1] - sorted[i]) : sorted[i]
    }

    /// Interval of a mean over records.
    public static func mean(_ xs: [Double], seed: UInt64 = 0) -> Interval? {
        interval(count: xs.count, seed: seed) { idx in idx.reduce(0.0) { $0 + xs[$1] } / Double(idx.count) }
    }

    /// Interval of a token-weighted mean (sum of value x weight / sum of weights) over records.
    public static func weightedMean(_ xs: [Double], weights: [Double], seed: UInt64 = 0) -> Interval? {
        precondition(xs.count == weights.count)
        return interval(count: xs.count, seed: seed) { idx in
            var s = 0.0, w = 0.0
            for i in idx { s += xs[i] * weights[i]; w += weights[i] }
            return s / w
        }
    }
}
