import Foundation
import SisaEngine

/// DP-SGD settings of a store (Abadi et al. 2016). The privacy unit is one
/// record: each step samples every record of the stage with probability
/// q = min(1, batch / records), clips each sampled record's whole gradient
/// (all its windows) to norm `clip`, and adds Gaussian noise of standard
/// deviation noise·clip to the sum.
public struct DPConfig: Codable, Equatable, Sendable {
    public var clip: Double
    /// A fixed noise multiplier sigma ...
    public var noise: Double?
    /// ... or the epsilon each shard must reach at the end of its schedule:
    /// the smallest sigma that does so is fitted to the shard's plan.
    public var targetEpsilon: Double?
    public var delta: Double

    public static let defaultDelta = 1e-5

    public init(clip: Double, noise: Double? = nil, targetEpsilon: Double? = nil, delta: Double = DPConfig.defaultDelta) {
        self.clip = clip
        self.noise = noise
        self.targetEpsilon = targetEpsilon
        self.delta = delta
    }

    /// Longest record a DP store takes: one pass of the clipping holds all of
    /// a record's rows, so this bounds a step's memory.
    public static func maxRecordBytes(context: Int) -> Int { RecordBatch.maxRowsPerPass * context - 1 }

    public func validate() throws {
        guard clip > 0, clip.isFinite else { throw CoordinatorError.invalidInput("--dp-clip must be > 0") }
        guard delta > 0, delta < 1 else { throw CoordinatorError.invalidInput("--dp-delta must be in (0, 1)") }
        switch (noise, targetEpsilon) {
        case let (s?, nil):
            guard s > 0, s <= PrivateSchedule.maxNoise else {
                throw CoordinatorError.invalidInput("--dp-noise must be in (0, \(Int(PrivateSchedule.maxNoise))]")
            }
        case let (nil, e?):
            guard e > 0, e.isFinite else { throw CoordinatorError.invalidInput("--dp-epsilon must be > 0") }
        default:
            throw CoordinatorError.invalidInput("DP training needs exactly one of --dp-noise and --dp-epsilon")
        }
    }
}

/// How DP changes the SISA schedule, and what it costs in epsilon.
///
/// Stage r of a shard holds n_r records; it samples at q_r = min(1, batch / n_r)
/// and takes ceil(a · n_r / batch) steps (a = the SISA multiplier), so each
/// record is expected in `epochs` steps over the schedule as without DP.
/// A record of slice s can be sampled in every stage r >= s, so the worst
/// case (a record of slice 0) composes every stage: that is the shard's epsilon.
public enum PrivateSchedule {
    public static let maxNoise = 1000.0

    public static func samplingRate(records n: Int, batch: Int) -> Double {
        n == 0 ? 0 : min(1, Double(batch) / Double(n))
    }

    /// Each record is expected in a of them: with fewer records than the
    /// batch every step holds them all (q = 1), so a steps.
    public static func steps(records n: Int, config: StoreConfig) -> Int {
        max(1, Int((config.stageTokenMultiplier * Double(n) / Double(max(1, min(config.batch, n)))).rounded(.up)))
    }

    /// The accountant after every stage that trains: (sampling rate, steps) each.
    static func accountant(stages: [(q: Double, steps: Int)], noise: Double) -> RDPAccountant {
        var acc = RDPAccountant()
        for s in stages where s.steps > 0 && s.q > 0 { acc.step(samplingRate: s.q, noise: noise, steps: s.steps) }
        return acc
    }

    public static func epsilon(stages: [(q: Double, steps: Int)], noise: Double, delta: Double) -> Double {
        accountant(stages: stages, noise: noise).epsilon(delta: delta).epsilon
    }

    /// The smallest noise multiplier, on a grid of 0.001, whose epsilon over
    /// `stages` is at most `target`. The grid keeps the answer the same on
    /// every machine even if libm's last bits differ. A target that even
    /// `maxNoise` misses gets `maxNoise` (and `status` shows the epsilon
    /// actually reached): a deletion that shrinks a shard must never fail.
    public static func fitNoise(stages: [(q: Double, steps: Int)], target: Double, delta: Double) -> Double {
        let eps = { (s: Double) in epsilon(stages: stages, noise: s, delta: delta) }
        guard stages.contains(where: { $0.steps > 0 && $0.q > 0 }) else { return 1 }
        var hi = 1.0
        while eps(hi) > target {
            if hi >= maxNoise { return maxNoise }
            hi = min(maxNoise, hi * 2)
        }
        var lo = hi == 1 ? 0.0 : hi / 2
        // Invariant: eps(hi) <= target < eps(lo) (eps(0) is infinite).
        while hi - lo > 0.0005 {
            let mid = (lo + hi) / 2
            if eps(mid) > target { lo = mid } else { hi = mid }
        }
        // To the grid, in whole thousandths: the smallest grid point that reaches the target.
        var milli = max(1, Int((hi * 1000).rounded(.up)))
        while milli > 1 && eps(Double(milli - 1) / 1000) <= target { milli -= 1 }
        while eps(Double(milli) / 1000) > target { milli += 1 }
        return Double(milli) / 1000
    }

    /// The records drawn for one step: each record of the stage with
    /// probability q, in training order, as its tokens <end> text <end>.
    static func sample(_ stage: StagePlan, rng: inout Xoshiro256) -> [[Int32]] {
        var out: [[Int32]] = []
        let starts = stage.recordStarts
        for (i, start) in starts.enumerated() where rng.nextDouble() < stage.samplingRate {
            let end = i + 1 < starts.count ? starts[i + 1] : stage.stream.count - 1
            out.append(Array(stage.stream[start...end]))
        }
        return out
    }
}

extension ShardPlan {
    /// (sampling rate, steps) of each stage, for the accountant.
    var privateStages: [(q: Double, steps: Int)] { stages.map { ($0.samplingRate, $0.steps) } }
}

extension Store {
    /// A shard's epsilon at the store's delta for its current plan (nil without DP).
    public func epsilon(shard: Int) throws -> Double? {
        guard let dp = config.dp else { return nil }
        let p = try plan(shard: shard)
        return PrivateSchedule.epsilon(stages: p.privateStages, noise: p.noise ?? 0, delta: dp.delta)
    }
}
