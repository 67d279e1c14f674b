import Foundation
import SisaEngine

/// Canary exposure (Carlini et al. 2019): exposure = log2 |R| - log2 rank,
/// where rank is the true secret's rank among all |R| secrets of its format
/// by the model's likelihood of the whole canary text (1 = most likely).
///
/// |R| = 10^digits is too big to enumerate, so the rank is estimated from
/// `candidates` random secrets: rank = 1 + (|R| - 1) * fraction of candidates
/// at least as likely as the true secret (ties count half). When no candidate
/// is, the fraction comes from a skew-normal fit to the candidates' NLLs
/// (the paper's extrapolation), evaluated at the true secret's NLL, and never
/// above 1/(candidates + 1), what the sample itself bounds it by.
public enum Exposure {
    public struct Estimate: Codable, Sendable {
        public var exposure: Double
        /// Estimated rank of the true secret among all |R| secrets.
        public var rank: Double
        /// "sampling" or "skew-normal fit".
        public var method: String
    }

    /// - nll: total NLL (nats) of the true canary text; candidateNLL: of each candidate text.
    public static func estimate(nll: Double, candidateNLL: [Double], spaceBits: Double) -> Estimate {
        precondition(!candidateNLL.isEmpty)
        let space = Foundation.pow(2, spaceBits)
        var atLeast = 0.0
        for c in candidateNLL { if c < nll { atLeast += 1 } else if c == nll { atLeast += 0.5 } }
        var fraction = atLeast / Double(candidateNLL.count)
        var method = "sampling"
        if atLeast == 0 {
            fraction = min(SkewNormal.fit(candidateNLL).cdf(nll), 1 / Double(candidateNLL.count + 1))
            method = "skew-normal fit"
        }
        let rank = 1 + (space - 1) * fraction
        return Estimate(exposure: spaceBits - log2(rank), rank: rank, method: method)
    }

    /// Exposure of ranks known exactly (a hand-built ranking): log2 |R| - log2 rank.
    public static func exact(rank: Int, space: Int) -> Double { log2(Double(space)) - log2(Double(rank)) }

    /// The candidate secrets for a canary: `count` random secrets of its
    /// format other than the true one, the same for every model scored.
    public static func candidates(for canary: Canary, count: Int, seed: UInt64) -> [String] {
        var rng = Xoshiro256(seed: Placement.hash64(seed, canary.text, "exposure"))
        var out: [String] = []
        out.reserveCapacity(count)
        while out.count < count {
            let s = Canary.randomSecret(digits: canary.secret.count, rng: &rng)
            if s != canary.secret { out.append(s) }
        }
        return out
    }
}

/// A skew-normal distribution fitted by the method of moments.
public struct SkewNormal: Sendable {
    public let location: Double
    public let scale: Double
    public let shape: Double

    public init(location: Double, scale: Double, shape: Double) {
        self.location = location
        self.scale = scale
        self.shape = shape
    }

    public static func fit(_ xs: [Double]) -> SkewNormal {
        let n = Double(xs.count)
        let mean = xs.reduce(0, +) / n
        let m2 = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
        let m3 = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) * ($1 - mean) } / n
        guard m2 > 0 else { return SkewNormal(location: mean, scale: 1e-12, shape: 0) }
        // Sample skewness, clipped to what a skew-normal can reach (|g| < 0.995).
        let g = max(-0.99, min(0.99, m3 / Foundation.pow(m2, 1.5)))
        let a = Foundation.pow(abs(g), 2.0 / 3)
        let b = Foundation.pow((4 - Double.pi) / 2, 2.0 / 3)
        let delta = (g < 0 ? -1 : 1) * (Double.pi / 2 * a / (a + b)).squareRoot()
        let shape = delta / (1 - delta * delta).squareRoot()
        let scale = (m2 / (1 - 2 * delta * delta / Double.pi)).squareRoot()
        let location = mean - scale * delta * (2 / Double.pi).squareRoot()
        return SkewNormal(location: location, scale: scale, shape: shape)
    }

    /// CDF = Φ(z) - 2 T(z, shape), with Owen's T function by Simpson's rule.
    public func cdf(_ x: Double) -> Double {
        let z = (x - location) / scale
        return max(0, min(1, SkewNormal.phi(z) - 2 * SkewNormal.owensT(z, shape)))
    }

    public static func phi(_ z: Double) -> Double { 0.5 * erfc(-z / 2.0.squareRoot()) }

    /// T(h, a) = 1/(2π) ∫_0^a exp(-h²(1+x²)/2) / (1+x²) dx.
    public static func owensT(_ h: Double, _ a: Double) -> Double {
        let n = 2000
        let step = a / Double(n)
        var sum = 0.0
        for i in 0...n {
            let x = Double(i) * step
            let f = Foundation.exp(-h * h * (1 + x * x) / 2) / (1 + x * x)
            sum += f * (i == 0 || i == n ? 1 : (i % 2 == 1 ? 4 : 2))
        }
        return sum * step / 3 / (2 * Double.pi)
    }
}
