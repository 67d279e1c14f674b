import Foundation
import SisaEngine

/// Ensemble-level measures of one model state (original, exact, or an
/// approximate one after some steps). Every headline figure F has an
/// interval `FCI`: a 95% percentile bootstrap over records (1,000 resamples;
/// members and non-members resampled separately for the attacks; paired over
/// the same records for the gap to the exact model).
public struct ModelMetrics: Codable, Sendable {
    public var step: Int?
    /// Token-weighted mean NLL of the forget records under the ensemble (nats/token).
    public var forgetNLL: Double
    public var forgetNLLCI: Interval?
    /// Holdout perplexity of the ensemble over every group's holdout records, and per group.
    public var holdoutPPL: Double
    public var holdoutPPLCI: Interval?
    public var holdoutPPLByGroup: [String: Double]
    /// Token-weighted mean NLL on a sample of retained training records.
    public var retainNLL: Double
    public var retainNLLCI: Interval?
    /// LOSS membership inference under the ensemble: AUC of forget records vs
    /// holdout records of the same group (nil when the group has no holdout).
    public var forgetMIAAUC: Double?
    public var forgetMIAAUCCI: Interval?
    /// True-positive rate of that attack at false-positive rate `lowFPR`.
    public var forgetMIATPR: Double?
    public var forgetMIATPRCI: Interval?
    /// Reference-calibrated attack: a record's NLL under its own shard's model
    /// minus its mean NLL under models that never saw it (the other shards'
    /// original models, and the exactly retrained models of the affected
    /// shards). Forget vs holdout records of the same group.
    public var forgetCalibratedAUC: Double?
    public var forgetCalibratedAUCCI: Interval?
    public var forgetCalibratedTPR: Double?
    public var forgetCalibratedTPRCI: Interval?
    /// The false-positive rate of the TPR figures: 1%, or 1/n for n < 100 holdout records.
    public var lowFPR: Double?
    /// (AUC - AUC_exact) / AUC_exact.
    public var privacyLeak: Double?
    /// Mean exposure of forget records against the holdout records of their group.
    public var meanExposure: Double?
    public var meanExposureCI: Interval?
    /// Mean over forget records of NLL_exact - NLL (0 = as if never seen).
    public var meanLikelihoodGap: Double?
    public var meanLikelihoodGapCI: Interval?
    /// Verbatim extraction of the forget records (original, exact and the last approximate point).
    public var extraction: Extraction.Result?
    /// Training seconds and FLOPs spent to reach this state (evaluation excluded).
    public var seconds: Double
    public var flops: Double

    enum CodingKeys: String, CodingKey {
        case step, forgetNLL, forgetNLLCI, holdoutPPL, holdoutPPLCI, holdoutPPLByGroup, retainNLL, retainNLLCI,
             forgetMIAAUC, forgetMIAAUCCI, forgetMIATPR, forgetMIATPRCI, forgetCalibratedAUC, forgetCalibratedAUCCI,
             forgetCalibratedTPR, forgetCalibratedTPRCI, lowFPR, privacyLeak, meanExposure, meanExposureCI,
             meanLikelihoodGap, meanLikelihoodGapCI, extraction, seconds, flops
    }

    /// Every figure is written, as null when it cannot be computed (for
    /// example the attacks for a group without holdout records), so readers
    /// find the same keys in every report.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(step, forKey: .step)
        try c.encode(forgetNLL, forKey: .forgetNLL)
        try c.encode(forgetNLLCI, forKey: .forgetNLLCI)
        try c.encode(holdoutPPL, forKey: .holdoutPPL)
        try c.encode(holdoutPPLCI, forKey: .holdoutPPLCI)
        try c.encode(holdoutPPLByGroup, forKey: .holdoutPPLByGroup)
        try c.encode(retainNLL, forKey: .retainNLL)
        try c.encode(retainNLLCI, forKey: .retainNLLCI)
        try c.encode(forgetMIAAUC, forKey: .forgetMIAAUC)
        try c.encode(forgetMIAAUCCI, forKey: .forgetMIAAUCCI)
        try c.encode(forgetMIATPR, forKey: .forgetMIATPR)
        try c.encode(forgetMIATPRCI, forKey: .forgetMIATPRCI)
        try c.encode(forgetCalibratedAUC, forKey: .forgetCalibratedAUC)
        try c.encode(forgetCalibratedAUCCI, forKey: .forgetCalibratedAUCCI)
        try c.encode(forgetCalibratedTPR, forKey: .forgetCalibratedTPR)
        try c.encode(forgetCalibratedTPRCI, forKey: .forgetCalibratedTPRCI)
        try c.encode(lowFPR, forKey: .lowFPR)
        try c.encode(privacyLeak, forKey: .privacyLeak)
        try c.encode(meanExposure, forKey: .meanExposure)
        try c.encode(meanExposureCI, forKey: .meanExposureCI)
        try c.encode(meanLikelihoodGap, forKey: .meanLikelihoodGap)
        try c.encode(meanLikelihoodGapCI, forKey: .meanLikelihoodGapCI)
        try c.encodeIfPresent(extraction, forKey: .extraction)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(flops, forKey: .flops)
    }
}

/// The records a comparison scores, and what it knows about each.
struct EvaluationSet {
    /// forget + holdout + retained sample.
    let texts: [[UInt8]]
    let forget: Range<Int>
    let holdout: Range<Int>
    let retain: Range<Int>
    /// Per text: its group ("" for the retained sample) and the shard its placement names.
    let groups: [String]
    let shards: [Int]
}

/// Per-shard scores of every evaluation text under one model state.
typealias ShardScores = [Int: [RecordScore]]

/// Computes `ModelMetrics` for model states of one comparison.
struct ComparisonMeter {
    let set: EvaluationSet
    let answering: [Int]
    /// The original models' scores: the references of the calibrated attack.
    let original: ShardScores
    /// The exactly retrained affected shards' scores.
    let exact: ShardScores
    let seed: UInt64

    /// Per-record NLLs of the forget records under the ensemble of `state`.
    func forgetNLLs(_ state: ShardScores) -> [Double] {
        let mix = Ensemble.mixture(answering.map { state[$0]! })
        return set.forget.map { mix[$0].nll }
    }

    /// Calibrated score of text i under `state`; nil if its shard cannot
    /// answer or no reference model exists.
    ///
    /// The references are the same kind of models for every record, member or
    /// not: the original models of the other shards, and the exactly
    /// retrained model of every affected shard (none of them saw a forget
    /// record or a holdout record). Only the model being scored is left out,
    /// which in the exact state is the record's own retrained shard.
    func calibratedScore(_ i: Int, state: ShardScores, isExact: Bool) -> Double? {
        let s = set.shards[i]
        guard let own = state[s]?[i].nll else { return nil }
        var refs = answering.filter { $0 != s }.map { original[$0]![i].nll }
        for (k, e) in exact.sorted(by: { $0.key < $1.key }) where !(isExact && k == s) { refs.append(e[i].nll) }
        return MembershipInference.calibrated(own: own, references: refs)
    }

    /// Exposure of each forget record against the holdout records of its
    /// group under the ensemble of `state` (nil without such holdout).
    func exposures(_ state: ShardScores) -> [Double?] {
        exposures(mix: Ensemble.mixture(answering.map { state[$0]! }))
    }

    private func exposures(mix: [RecordScore]) -> [Double?] {
        set.forget.map { i in
            let pop = set.holdout.filter { set.groups[$0] == set.groups[i] }.map { mix[$0].nll }
            return pop.isEmpty ? nil : UnlearningMetrics.exposure(nll: mix[i].nll, population: pop)
        }
    }

    func metrics(_ state: ShardScores, isExact: Bool, exactForgetNLL: [Double]?,
                 seconds: Double, flops: Double, step: Int? = nil) -> ModelMetrics {
        let mix = Ensemble.mixture(answering.map { state[$0]! })
        func weighted(_ r: Range<Int>, _ salt: UInt64) -> (Double, Interval?) {
            let xs = r.map { mix[$0].nll }, ws = r.map { Double(mix[$0].tokens) }
            return (meanNLL(r.map { mix[$0] }), Bootstrap.weightedMean(xs, weights: ws, seed: seed &+ salt))
        }
        let (fNLL, fCI) = weighted(set.forget, 1)
        let (hNLL, hCI) = weighted(set.holdout, 2)
        let (rNLL, rCI) = weighted(set.retain, 3)
        var byGroup: [String: Double] = [:]
        for g in Set(set.holdout.map { set.groups[$0] }) {
            byGroup[g] = exp(meanNLL(set.holdout.filter { set.groups[$0] == g }.map { mix[$0] }))
        }
        var m = ModelMetrics(step: step, forgetNLL: fNLL, forgetNLLCI: fCI, holdoutPPL: exp(hNLL),
                             holdoutPPLCI: hCI.map { Interval(exp($0.low), exp($0.high)) }, holdoutPPLByGroup: byGroup,
                             retainNLL: rNLL, retainNLLCI: rCI, seconds: seconds, flops: flops)

        // Raw LOSS attack under the ensemble.
        let forgetGroups = Set(set.forget.map { set.groups[$0] })
        let population = set.holdout.filter { forgetGroups.contains(set.groups[$0]) }
        let raw = MembershipInference.attack(
            members: set.forget.map { .init(mix[$0].nll, group: set.groups[$0]) },
            nonMembers: population.map { .init(mix[$0].nll, group: set.groups[$0]) }, seed: seed &+ 4)
        m.forgetMIAAUC = raw.auc
        m.forgetMIAAUCCI = raw.aucCI
        m.forgetMIATPR = raw.tpr
        m.forgetMIATPRCI = raw.tprCI
        m.lowFPR = raw.fpr
        // Calibrated attack.
        let cal = MembershipInference.attack(
            members: set.forget.compactMap { i in calibratedScore(i, state: state, isExact: isExact).map { .init($0, group: set.groups[i]) } },
            nonMembers: population.compactMap { i in calibratedScore(i, state: state, isExact: isExact).map { .init($0, group: set.groups[i]) } },
            seed: seed &+ 5)
        m.forgetCalibratedAUC = cal.auc
        m.forgetCalibratedAUCCI = cal.aucCI
        m.forgetCalibratedTPR = cal.tpr
        m.forgetCalibratedTPRCI = cal.tprCI
        if m.lowFPR == nil { m.lowFPR = cal.fpr }
        let exposures = self.exposures(mix: mix).compactMap { $0 }
        if !exposures.isEmpty {
            m.meanExposure = exposures.reduce(0, +) / Double(exposures.count)
            m.meanExposureCI = Bootstrap.mean(exposures, seed: seed &+ 6)
        }
        // Gap to the exact model, paired over forget records.
        if let exactForgetNLL {
            let gaps = zip(set.forget.map { mix[$0].nll }, exactForgetNLL).map { UnlearningMetrics.likelihoodGap(nll: $0, exactNLL: $1) }
            m.meanLikelihoodGap = gaps.reduce(0, +) / Double(gaps.count)
            m.meanLikelihoodGapCI = Bootstrap.mean(gaps, seed: seed &+ 7)
        }
        return m
    }
}
