import Foundation

/// The forgetting score of the NeurIPS 2023 Machine Unlearning Challenge
/// (Triantafillou et al. 2024, arXiv 2406.09073; the evaluation code is
/// google-deepmind/unlearning_evaluation, `metric.py`). Written here from
/// that description and checked against values its code computed.
///
/// For each forget example it asks how well any decision rule tells the
/// unlearned models from the retrained ones by the example's confidence, and
/// turns the best rule's false positive and false negative rates into an
/// (ε, δ) bound. Examples whose ε is small earn points; F is the mean.
///
/// The arithmetic follows the reference where its results depend on it:
/// the single-threshold grid is computed in single precision (torch's
/// `linspace` default), the double-threshold grids in double (numpy's), the
/// rates are single-precision means over the models, and ε is computed in
/// single precision, as numpy does with those rates.
public enum ChallengeScore {
    public static let defaultDelta = 1e-5
    public static let epsilonCap = 50.0
    /// Grid density of both rule families.
    static let thresholdsPerUnit = 100.0
    /// The double-threshold family's margin around the narrower population.
    static let buffer = 2.0

    public struct Result: Codable, Sendable, Equatable {
        /// ε per forget example, in [0, 50].
        public let epsilons: [Double]
        /// F: the mean of the examples' bucket points, in [0, 1].
        public let forgetScore: Double
        public let models: Int
        public let examples: Int
        /// ceil(ln(N − 1)): no example with ε at or past it earns a point.
        public let maxEpsilon: Double
    }

    /// F for confidences `[model][example]` of N unlearned and N retrained models.
    public static func score(unlearned: [[Double]], retrained: [[Double]], delta: Double = defaultDelta) throws -> Result {
        try validate(unlearned, name: "unlearned")
        try validate(retrained, name: "retrained")
        guard unlearned.count == retrained.count else {
            throw CoordinatorError.invalidInput("unlearned has \(unlearned.count) models and retrained \(retrained.count): the score compares populations of the same size")
        }
        guard unlearned[0].count == retrained[0].count else {
            throw CoordinatorError.invalidInput("unlearned has \(unlearned[0].count) examples per model and retrained \(retrained[0].count)")
        }
        guard delta > 0, delta < 1 else { throw CoordinatorError.invalidInput("delta must be in (0, 1), got \(delta)") }
        let n = unlearned.count, examples = unlearned[0].count
        var epsilons: [Double] = []
        epsilons.reserveCapacity(examples)
        for e in 0..<examples {
            let u = unlearned.map { $0[e] }, r = retrained.map { $0[e] }
            // The positive population is the one with the larger median.
            let (pos, neg) = median(r) > median(u) ? (r, u) : (u, r)
            epsilons.append(epsilon(positive: pos, negative: neg, delta: delta))
        }
        let buckets = bucketStarts(models: n)
        var total = 0.0
        for eps in epsilons {
            for (k, start) in buckets.enumerated() where eps < start + 0.5 {
                total += Foundation.pow(0.5, Double(k))
                break
            }
        }
        return Result(epsilons: epsilons, forgetScore: total / Double(examples), models: n, examples: examples,
                      maxEpsilon: maxEpsilon(models: n))
    }

    /// The challenge's final score: F times the unlearned-to-retrained ratios
    /// of retain accuracy and of test accuracy (means over the populations).
    public static func finalScore(forgetScore: Double, retainAccuracy: (unlearned: Double, retrained: Double),
                                  testAccuracy: (unlearned: Double, retrained: Double)) -> Double {
        forgetScore * (retainAccuracy.unlearned / retainAccuracy.retrained) * (testAccuracy.unlearned / testAccuracy.retrained)
    }

    /// ceil(ln(N − 1)): with N models per population, the largest ε the
    /// rates can resolve, about.
    public static func maxEpsilon(models n: Int) -> Double { (Foundation.log(Double(n - 1))).rounded(.up) }

    /// Lower ends of the scoring buckets [s, s + 0.5); bucket k is worth 2^-k.
    public static func bucketStarts(models n: Int) -> [Double] {
        let top = maxEpsilon(models: n)
        var starts: [Double] = []
        var s = 0.0
        while s + 0.5 <= top {
            starts.append(s)
            s += 0.5
        }
        return starts
    }

    private static func validate(_ m: [[Double]], name: String) throws {
        guard m.count >= 2 else { throw CoordinatorError.invalidInput("\(name): at least 2 models are needed, got \(m.count)") }
        guard !m[0].isEmpty else { throw CoordinatorError.invalidInput("\(name): model 0 has no examples") }
        for (i, row) in m.enumerated() {
            guard row.count == m[0].count else {
                throw CoordinatorError.invalidInput("\(name): model \(i) has \(row.count) examples, model 0 has \(m[0].count)")
            }
            if let j = row.firstIndex(where: { !$0.isFinite }) {
                throw CoordinatorError.invalidInput("\(name): model \(i), example \(j) is not a finite number")
            }
        }
    }

    /// numpy's median: the middle value, or the mean of the two middle values.
    public static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted(), n = s.count
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
    }

    /// ε of one example: the largest over both rule families, capped at 50.
    static func epsilon(positive pos: [Double], negative neg: [Double], delta: Double) -> Double {
        let posDiff = pos.max()! - pos.min()!, negDiff = neg.max()! - neg.min()!
        let largest = posDiff > negDiff ? posDiff : negDiff
        let smallest = posDiff > negDiff ? negDiff : posDiff
        if largest == 0 {
            // Both populations constant (the reference divides 0 by 0 here and
            // then finds no rule): identical values cannot be told apart,
            // different ones are told apart by every model.
            return pos[0] == neg[0] ? 0 : epsilonCap
        }
        // One population far peakier than the other: taken as distinguishable.
        if smallest / largest < 0.01 { return epsilonCap }

        let n = pos.count
        // Which (true positives, false positives) count pairs some rule reaches.
        var reached = [Bool](repeating: false, count: (n + 1) * (n + 1))
        doubleThresholdCounts(pos, neg, posDiff: posDiff, negDiff: negDiff) { reached[$0 * (n + 1) + $1] = true }
        singleThresholdCounts(pos, neg) { reached[$0 * (n + 1) + $1] = true }

        let keep = Float(1 - delta)
        var best: Float = -1
        for tp in 0...n {
            for fp in 0...n where reached[tp * (n + 1) + fp] {
                let tpr = Float(tp) / Float(n), fnr = Float(n - tp) / Float(n)
                let fpr = Float(fp) / Float(n), tnr = Float(n - fp) / Float(n)
                let e: Float
                if fpr + fnr == 0 && tpr + tnr == 2 {
                    e = .infinity                      // perfect separation
                } else if fpr * fnr == 0 {
                    continue                           // one error rate 0: too few samples to say
                } else {
                    let a = Foundation.log(keep - fpr) - Foundation.log(fnr)
                    let b = Foundation.log(keep - fnr) - Foundation.log(fpr)
                    // numpy's nanmax of the two, then clipped at 0.
                    let m: Float = a.isNaN ? b : (b.isNaN ? a : Swift.max(a, b))
                    guard !m.isNaN else { continue }
                    e = Swift.max(m, 0)
                }
                best = Swift.max(best, e)
            }
        }
        // No rule survived: nothing tells the populations apart.
        guard best >= 0 else { return 0 }
        return Swift.min(Double(best), epsilonCap)
    }

    /// Number of values of a sorted array that are < x, and that are <= x.
    private static func countBelow(_ s: [Double], _ x: Double, orEqual: Bool) -> Int {
        var lo = 0, hi = s.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if orEqual ? s[mid] <= x : s[mid] < x { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The single-threshold family: predict positive at or above t, for t on a
    /// grid over the pooled range.
    static func singleThresholdCounts(_ pos: [Double], _ neg: [Double], _ visit: (Int, Int) -> Void) {
        let p = pos.sorted(), q = neg.sorted()
        let lo = Swift.min(p[0], q[0]), hi = Swift.max(p.last!, q.last!)
        let count = Int(((hi - lo) * thresholdsPerUnit).rounded(.up))
        for t in linspaceSingle(lo, hi, count) {
            let x = Double(t)
            visit(p.count - countBelow(p, x, orEqual: false), q.count - countBelow(q, x, orEqual: false))
        }
    }

    /// The double-threshold family: predict the peakier population inside
    /// [l, r], with r on a grid around it and, for each r, l on a grid of
    /// width 2 × buffer around r − (the peakier population's range).
    static func doubleThresholdCounts(_ pos: [Double], _ neg: [Double], posDiff: Double, negDiff: Double,
                                      _ visit: (Int, Int) -> Void) {
        let smallest = posDiff > negDiff ? negDiff : posDiff
        // This family's "positive" is the narrower population, and its rates
        // are reported that way round (as the reference does): the counts are
        // (inside among the narrower, inside among the other).
        let swapped = posDiff >= negDiff
        let a = (swapped ? neg : pos).sorted(), b = (swapped ? pos : neg).sorted()
        let width = smallest
        let lo = a[0] + width - buffer, hi = a.last! + buffer
        let rights = linspaceDouble(lo, hi, Int(((hi - lo) * thresholdsPerUnit).rounded(.up)))
        let leftCount = Int((2 * buffer * thresholdsPerUnit).rounded(.up))
        for r in rights {
            let aUpTo = countBelow(a, r, orEqual: true), bUpTo = countBelow(b, r, orEqual: true)
            for l in linspaceDouble(r - width - buffer, r - width + buffer, leftCount) {
                let inA = Swift.max(0, aUpTo - countBelow(a, l, orEqual: false))
                let inB = Swift.max(0, bUpTo - countBelow(b, l, orEqual: false))
                visit(inA, inB)
            }
        }
    }

    /// numpy.linspace in double precision: start + i × step, the last point exactly `end`.
    static func linspaceDouble(_ start: Double, _ end: Double, _ count: Int) -> [Double] {
        guard count > 0 else { return [] }
        guard count > 1 else { return [start] }
        let step = (end - start) / Double(count - 1)
        var out = (0..<count).map { i -> Double in
            let scaled = Double(i) * step
            return scaled + start
        }
        out[count - 1] = end
        return out
    }

    /// torch.linspace in single precision (its default dtype): from the start
    /// for the first half, back from the end for the rest.
    static func linspaceSingle(_ start: Double, _ end: Double, _ count: Int) -> [Float] {
        guard count > 0 else { return [] }
        let s = Float(start), e = Float(end)
        guard count > 1 else { return [s] }
        let step = (e - s) / Float(count - 1)
        let half = count / 2
        return (0..<count).map { i -> Float in
            if i < half {
                let scaled = step * Float(i)
                return s + scaled
            }
            let scaled = step * Float(count - i - 1)
            return e - scaled
        }
    }
}
