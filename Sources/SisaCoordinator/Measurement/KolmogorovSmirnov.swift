import Foundation

/// Two-sample Kolmogorov-Smirnov test, as TOFU's forget quality uses it
/// (Maini et al. 2024: the p-value between the truth-ratio distributions of
/// the unlearned model and of the model retrained without the forget set).
public enum KolmogorovSmirnov {
    public struct Result: Codable, Sendable {
        /// sup |F_a - F_b| of the two empirical distribution functions.
        public let statistic: Double
        /// P(D >= statistic) when both samples come from one continuous distribution.
        public let pValue: Double
    }

    /// The statistic, exactly, as the integer c = max |i m - j n| over the
    /// merged order (D = c / (n m)), with i of n and j of m values passed.
    static func statisticNumerator(_ a: [Double], _ b: [Double]) -> Int {
        let x = a.sorted(), y = b.sorted()
        let n = x.count, m = y.count
        var i = 0, j = 0, c = 0
        while i < n || j < m {
            // Advance past every value equal to the next one, in both samples.
            let v = min(i < n ? x[i] : .infinity, j < m ? y[j] : .infinity)
            while i < n && x[i] == v { i += 1 }
            while j < m && y[j] == v { j += 1 }
            c = max(c, abs(i * m - j * n))
        }
        return c
    }

    /// Exact p-value: the probability that a uniformly random interleaving of
    /// n and m values leaves the band |i m - j n| < c somewhere (Hodges 1958),
    /// by dynamic programming over the lattice of (i, j).
    public static func test(_ a: [Double], _ b: [Double]) -> Result {
        precondition(!a.isEmpty && !b.isEmpty, "the KS test needs two non-empty samples")
        let n = a.count, m = b.count
        let c = statisticNumerator(a, b)
        // inside[j] after row i: probability of reaching (i, j) without leaving the band.
        var row = [Double](repeating: 0, count: m + 1)
        for i in 0...n {
            var next = [Double](repeating: 0, count: m + 1)
            for j in 0...m {
                let p: Double
                if i == 0 && j == 0 {
                    p = 1
                } else {
                    // Arrive from (i-1, j) or (i, j-1), each step taken with its hypergeometric probability.
                    var s = 0.0
                    if i > 0 { s += row[j] * Double(n - i + 1) / Double(n - i + 1 + m - j) }
                    if j > 0 { s += next[j - 1] * Double(m - j + 1) / Double(n - i + m - j + 1) }
                    p = s
                }
                next[j] = abs(i * m - j * n) < c ? p : 0
            }
            row = next
        }
        // (n, m) itself is always inside when c > 0, since i m - j n = 0 there.
        let stayedInside = c == 0 ? 0 : row[m]
        return Result(statistic: Double(c) / Double(n * m), pValue: min(1, max(0, 1 - stayedInside)))
    }
}
