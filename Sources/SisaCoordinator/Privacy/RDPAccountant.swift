import Foundation

/// Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism
/// (Mironov, Talwar and Zhang 2019, "Rényi Differential Privacy of the
/// Sampled Gaussian Mechanism"), composed over steps and converted to
/// (epsilon, delta).
///
/// One step samples each record with probability q and adds Gaussian noise
/// of standard deviation sigma (relative to the clipping norm) to the sum of
/// clipped gradients. RDP composes by addition over steps, so steps with
/// different sampling rates (SISA stages) are accounted by summing.
public struct RDPAccountant: Sendable {
    /// The orders alpha at which RDP is tracked: 1.1 ... 10.9 by 0.1, then 12 ... 63.
    public static let defaultOrders: [Double] = (11...109).map { Double($0) / 10 } + (12...63).map(Double.init)

    public let orders: [Double]
    /// Accumulated RDP at each order.
    public private(set) var rdp: [Double]

    public init(orders: [Double] = RDPAccountant.defaultOrders) {
        precondition(orders.allSatisfy { $0 > 1 }, "RDP orders must exceed 1")
        self.orders = orders
        rdp = [Double](repeating: 0, count: orders.count)
    }

    /// Accounts `steps` steps at sampling rate q with noise multiplier sigma.
    public mutating func step(samplingRate q: Double, noise sigma: Double, steps: Int = 1) {
        precondition((0...1).contains(q) && sigma > 0 && steps >= 0)
        for (k, a) in orders.enumerated() {
            rdp[k] += Double(steps) * RDPAccountant.rdp(q: q, sigma: sigma, order: a)
        }
    }

    /// (epsilon, the order that gives it) for a target delta, with the
    /// conversion of Balle et al. 2020 (as Opacus uses):
    /// eps = rdp - (log delta + log alpha) / (alpha - 1) + log((alpha - 1) / alpha).
    public func epsilon(delta: Double) -> (epsilon: Double, order: Double) {
        precondition(delta > 0 && delta < 1)
        // Nothing was released: the conversion's slack (about 0.1 here) is not a loss.
        if rdp.allSatisfy({ $0 == 0 }) { return (0, orders[0]) }
        var best = (epsilon: Double.infinity, order: Double.nan)
        for (k, a) in orders.enumerated() {
            let eps = rdp[k] - (log(delta) + log(a)) / (a - 1) + log((a - 1) / a)
            if eps.isFinite && eps < best.epsilon { best = (max(0, eps), a) }
        }
        return best
    }

    /// RDP of one step of the sampled Gaussian mechanism at order alpha.
    public static func rdp(q: Double, sigma: Double, order alpha: Double) -> Double {
        if q == 0 { return 0 }
        if q == 1 { return alpha / (2 * sigma * sigma) }
        let logA = alpha == alpha.rounded() ? logAIntegerOrder(q: q, sigma: sigma, alpha: Int(alpha))
                                            : logAFractionalOrder(q: q, sigma: sigma, alpha: alpha)
        return logA / (alpha - 1)
    }

    /// log A_alpha for integer alpha: the binomial expansion of
    /// E[((1-q) + q exp((2x - 1) / (2 sigma^2)))^alpha] under N(0, sigma^2).
    static func logAIntegerOrder(q: Double, sigma: Double, alpha: Int) -> Double {
        var logA = -Double.infinity
        var logBinom = 0.0   // log C(alpha, i)
        for i in 0...alpha {
            if i > 0 { logBinom += log(Double(alpha - i + 1)) - log(Double(i)) }
            let di = Double(i)
            let s = logBinom + di * log(q) + Double(alpha - i) * log(1 - q) + (di * di - di) / (2 * sigma * sigma)
            logA = logAdd(logA, s)
        }
        return logA
    }

    /// log A_alpha for fractional alpha: the paper's two-sided series,
    /// summed until its terms fall below e^-30.
    static func logAFractionalOrder(q: Double, sigma: Double, alpha: Double) -> Double {
        var logA0 = -Double.infinity, logA1 = -Double.infinity
        let z0 = sigma * sigma * log(1 / q - 1) + 0.5
        var logCoef = 0.0      // log |C(alpha, i)|
        var positive = true    // sign of C(alpha, i)
        var i = 0
        while true {
            if i > 0 {
                let factor = (alpha - Double(i - 1)) / Double(i)
                if factor < 0 { positive.toggle() }
                logCoef += log(abs(factor))
            }
            let di = Double(i), j = alpha - di
            let logT0 = logCoef + di * log(q) + j * log(1 - q)
            let logT1 = logCoef + j * log(q) + di * log(1 - q)
            let logE0 = log(0.5) + logErfc((di - z0) / (2.0.squareRoot() * sigma))
            let logE1 = log(0.5) + logErfc((z0 - j) / (2.0.squareRoot() * sigma))
            let logS0 = logT0 + (di * di - di) / (2 * sigma * sigma) + logE0
            let logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1
            if positive {
                logA0 = logAdd(logA0, logS0)
                logA1 = logAdd(logA1, logS1)
            } else {
                logA0 = logSub(logA0, logS0)
                logA1 = logSub(logA1, logS1)
            }
            i += 1
            if max(logS0, logS1) < -30 || i > 10_000 { break }
        }
        return logAdd(logA0, logA1)
    }

    static func logAdd(_ a: Double, _ b: Double) -> Double {
        let (hi, lo) = a > b ? (a, b) : (b, a)
        if lo == -.infinity { return hi }
        return hi + log1p(exp(lo - hi))
    }

    /// log(e^a - e^b), a >= b; -inf when they are equal.
    static func logSub(_ a: Double, _ b: Double) -> Double {
        if b == -.infinity { return a }
        if a <= b { return -.infinity }
        return a + log(-expm1(b - a))
    }

    /// log erfc(x), accurate where erfc underflows (large x) by its asymptotic series.
    static func logErfc(_ x: Double) -> Double {
        if x < 20 { return log(erfc(x)) }
        let x2 = x * x
        let series = 1 - 1 / (2 * x2) + 3 / (4 * x2 * x2) - 15 / (8 * x2 * x2 * x2) + 105 / (16 * x2 * x2 * x2 * x2)
        return -x2 - log(x) - 0.5 * log(Double.pi) + log(series)
    }

    /// epsilon of a plain run: `steps` steps at rate q, noise sigma.
    public static func epsilon(samplingRate q: Double, noise sigma: Double, steps: Int, delta: Double,
                               orders: [Double] = defaultOrders) -> (epsilon: Double, order: Double) {
        var a = RDPAccountant(orders: orders)
        a.step(samplingRate: q, noise: sigma, steps: steps)
        return a.epsilon(delta: delta)
    }
}
