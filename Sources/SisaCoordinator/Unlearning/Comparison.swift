import Foundation
import SisaEngine

public struct CompareOptions: Sendable {
    public var forgetIDs: [String] = []
    public var forgetGroup: String?
    public var count: Int = 8
    public var seed: UInt64 = 0
    public var unlearning = UnlearningOptions()
    public var evalEvery: Int = 10
    /// Retained training records sampled for utility (and graddiff's descent).
    public var retainSample: Int = 64

    public init() {}
}

/// Ensemble-level measures of one model state (original, exact, or an
/// approximate one after some steps).
public struct ModelMetrics: Codable, Sendable {
    public var step: Int?
    /// Token-weighted mean NLL of the forget records under the ensemble (nats/token).
    public var forgetNLL: Double
    /// Holdout perplexity of the ensemble over every group's holdout records, and per group.
    public var holdoutPPL: Double
    public var holdoutPPLByGroup: [String: Double]
    /// Mean NLL on a sample of retained training records.
    public var retainNLL: Double
    /// LOSS membership-inference AUC, forget records vs holdout records of the same group.
    public var forgetMIAAUC: Double
    /// (AUC - AUC_exact) / AUC_exact.
    public var privacyLeak: Double?
    public var meanExposure: Double
    /// Mean over forget records of NLL_exact - NLL (0 = as if never seen).
    public var meanLikelihoodGap: Double?
    /// Training seconds and FLOPs spent to reach this state (evaluation excluded).
    public var seconds: Double
    public var flops: Double
}

public struct ForgetRecordReport: Codable, Sendable {
    public let id: String
    public let group: String
    public let shard: Int
    public let tokens: Int
    public var nllOriginal: Double
    public var nllExact: Double
    public var nllApproximate: Double
    public var exposureOriginal: Double
    public var exposureExact: Double
    public var exposureApproximate: Double
}

public struct ApproximateReport: Codable, Sendable {
    public let method: UnlearningMethod
    public let learningRate: Float
    public let steps: Int
    public let evalEvery: Int
    /// First evaluated step at which the forget NLL reaches the exact model's (nil if never).
    public var stepsToReference: Int?
    public var curve: [ModelMetrics]
}

public struct ComparisonReport: Codable, Sendable {
    public let forgetIDs: [String]
    public let groups: [String]
    public let affectedShards: [Int]
    /// Parameter digests of the exactly retrained shards: equal to those a
    /// store that never ingested the forget set would train.
    public let exactDigests: [String: String]
    public let original: ModelMetrics
    public let exact: ModelMetrics
    public let approximate: ApproximateReport
    public let records: [ForgetRecordReport]
}

extension Store {
    /// Picks the forget set: explicit ids, or `count` training records of a
    /// group drawn by a seeded hash order.
    public func forgetSet(_ o: CompareOptions) throws -> [RecordInfo] {
        if !o.forgetIDs.isEmpty {
            var out: [RecordInfo] = []
            var unknown: [String] = []
            for id in o.forgetIDs {
                guard let r = try catalog.record(id: id), r.status == "live" else { unknown.append(id); continue }
                guard !r.holdout else {
                    throw CoordinatorError.invalidInput("record \(id) is a holdout record: it was never trained on, so there is nothing to forget")
                }
                out.append(r)
            }
            guard unknown.isEmpty else { throw CoordinatorError.unknownIDs(unknown) }
            return out
        }
        guard let g = o.forgetGroup else { throw CoordinatorError.invalidInput("give --forget ID... or --forget-group G --count N") }
        let pool = try catalog.records(group: g).filter { !$0.holdout }
        guard !pool.isEmpty else { throw CoordinatorError.invalidInput("group \(g) has no training records") }
        guard o.count >= 1, o.count <= pool.count else {
            throw CoordinatorError.invalidInput("--count must be between 1 and \(pool.count) (training records in group \(g))")
        }
        return Array(pool.sorted { Placement.hash64(o.seed, $0.id, "forget") < Placement.hash64(o.seed, $1.id, "forget") }
            .prefix(o.count))
    }

    /// Exact vs approximate unlearning of a forget set, as a what-if: the
    /// store's records, checkpoints and models are left exactly as they were.
    public func compare(_ o: CompareOptions, pool: WorkerPool = .shared,
                        log: ((String) -> Void)? = nil) throws -> ComparisonReport {
        try requireCurrentNumerics(adopt: false)
        let forget = try forgetSet(o)
        let forgetIDs = Set(forget.map(\.id))
        let ensemble = try Ensemble(store: self, pool: pool)
        let answering = ensemble.models.map(\.shard)
        let affected = Array(Set(forget.map(\.shard))).sorted()
        for s in affected where !answering.contains(s) {
            throw CoordinatorError.invalidInput("shard \(s) holds forget records but cannot answer (quarantined or untrained)")
        }
        // Evaluation population: forget records, holdout records, a retained sample.
        let forgetTexts = try forget.map { r -> [UInt8] in
            guard let t = try catalog.text(id: r.id) else { throw CoordinatorError.corrupt("record \(r.id) has no text") }
            return t
        }
        // Every group's holdout: utility per group, and the forget groups' for MIA and exposure.
        let holdout = try catalog.texts(holdout: true)
        guard holdout.contains(where: { forget.map(\.group).contains($0.group) }) else {
            throw CoordinatorError.invalidInput("no holdout records in the forget records' group(s): ingest with --holdout FRACTION")
        }
        var retainByShard: [Int: [[UInt8]]] = [:]
        var retainEval: [[UInt8]] = []
        for s in affected {
            let recs = try catalog.trainingRecords(shard: s).filter { !forgetIDs.contains($0.id) }
                .sorted { Placement.hash64(o.seed, $0.id, "retain") < Placement.hash64(o.seed, $1.id, "retain") }
                .prefix(o.retainSample)
            retainByShard[s] = recs.map(\.text)
            retainEval += recs.prefix(max(1, o.retainSample / affected.count)).map(\.text)
        }
        let evalTexts = forgetTexts + holdout.map(\.text) + retainEval
        let F = 0..<forget.count
        let H = forget.count..<(forget.count + holdout.count)
        let R = H.upperBound..<evalTexts.count
        let holdoutGroups = holdout.map(\.group)

        func metrics(_ perShard: [Int: [RecordScore]], seconds: Double, flops: Double, step: Int? = nil,
                     exact: (ModelMetrics, [Double])? = nil) -> (ModelMetrics, [Double], [Double]) {
            let mix = Ensemble.mixture(answering.map { perShard[$0]! })
            let fNLL = F.map { mix[$0].nll }
            let hNLL = H.map { mix[$0].nll }
            var byGroup: [String: Double] = [:]
            for g in Set(holdoutGroups) {
                byGroup[g] = exp(meanNLL(H.filter { holdoutGroups[$0 - H.lowerBound] == g }.map { mix[$0] }))
            }
            // AUC over (forget, holdout) pairs of the same group, pooled.
            var wins = 0.0, pairs = 0.0
            var exposures: [Double] = []
            for (i, r) in forget.enumerated() {
                let pop = zip(hNLL, holdoutGroups).filter { $0.1 == r.group }.map(\.0)
                let auc = UnlearningMetrics.lossAUC(members: [fNLL[i]], nonMembers: pop)
                wins += auc * Double(pop.count)
                pairs += Double(pop.count)
                exposures.append(UnlearningMetrics.exposure(nll: fNLL[i], population: pop))
            }
            let auc = wins / pairs
            var m = ModelMetrics(step: step, forgetNLL: meanNLL(F.map { mix[$0] }), holdoutPPL: exp(meanNLL(H.map { mix[$0] })),
                                 holdoutPPLByGroup: byGroup, retainNLL: meanNLL(R.map { mix[$0] }), forgetMIAAUC: auc,
                                 privacyLeak: nil, meanExposure: exposures.reduce(0, +) / Double(exposures.count),
                                 meanLikelihoodGap: nil, seconds: seconds, flops: flops)
            if let (em, eNLL) = exact {
                m.privacyLeak = UnlearningMetrics.privacyLeak(auc: auc, exactAUC: em.forgetMIAAUC)
                m.meanLikelihoodGap = zip(fNLL, eNLL).map { UnlearningMetrics.likelihoodGap(nll: $0, exactNLL: $1) }
                    .reduce(0, +) / Double(fNLL.count)
            }
            return (m, fNLL, exposures)
        }

        // Original ensemble; unaffected shards' scores are reused throughout.
        log?("scoring \(evalTexts.count) texts under \(answering.count) shards")
        var original: [Int: [RecordScore]] = [:]
        for (s, m) in ensemble.models { original[s] = m.score(evalTexts, perToken: true) }
        let (origMetrics, origNLL, origExp) = metrics(original, seconds: 0, flops: 0)

        // Exact: retrain affected shards without the forget set, in memory only,
        // from the stored checkpoint before the earliest affected stage.
        var exactScores = original
        var exactSeconds = 0.0, exactFlops = 0.0
        var exactDigests: [String: String] = [:]
        let stageCount = try self.stageCount()
        for s in affected {
            log?("exact: retraining shard \(s) without the forget records")
            let records = try catalog.trainingRecords(shard: s).filter { !forgetIDs.contains($0.id) }
            let p = Schedule.plan(shard: s, config: config, stageCount: stageCount, records: records)
            let (report, trainer) = try trainShard(p, previousDigest: nil, pool: pool, persist: false, progress: nil)
            exactSeconds += report.seconds
            exactFlops += Double(report.steps * config.batch * config.model.context) * config.model.trainingFLOPsPerToken
            exactScores[s] = trainer.model.score(evalTexts, perToken: true)
            exactDigests[String(s)] = trainer.model.digest
        }
        var (exactMetrics, exactNLL, exactExp) = metrics(exactScores, seconds: exactSeconds, flops: exactFlops)
        exactMetrics.privacyLeak = 0
        exactMetrics.meanLikelihoodGap = 0
        var originalMetrics = origMetrics
        originalMetrics.privacyLeak = UnlearningMetrics.privacyLeak(auc: origMetrics.forgetMIAAUC, exactAUC: exactMetrics.forgetMIAAUC)
        originalMetrics.meanLikelihoodGap = zip(origNLL, exactNLL).map { $1 - $0 }.reduce(0, +) / Double(origNLL.count)

        // Approximate: the chosen method on copies of the affected shards.
        let unlearners = try affected.map { s in
            try ApproximateUnlearner(shard: s, original: ensemble.models.first { $0.shard == s }!.model,
                                     forget: zip(forget, forgetTexts).filter { $0.0.shard == s }.map(\.1),
                                     retain: retainByShard[s] ?? [], options: o.unlearning)
        }
        var approx = ApproximateReport(method: o.unlearning.method, learningRate: o.unlearning.learningRate,
                                       steps: o.unlearning.steps, evalEvery: max(1, o.evalEvery), stepsToReference: nil, curve: [])
        var seconds = 0.0
        var lastNLL = origNLL, lastExp = origExp
        for step in 0...o.unlearning.steps {
            if step % approx.evalEvery == 0 || step == o.unlearning.steps {
                var scores = original
                for u in unlearners { scores[u.shard] = u.model.score(evalTexts, perToken: true) }
                let (m, fNLL, ex) = metrics(scores, seconds: seconds, flops: unlearners.reduce(0) { $0 + $1.flops },
                                            step: step, exact: (exactMetrics, exactNLL))
                approx.curve.append(m)
                lastNLL = fNLL
                lastExp = ex
                if approx.stepsToReference == nil && m.forgetNLL >= exactMetrics.forgetNLL { approx.stepsToReference = step }
                log?(String(format: "%@ step %d: forget NLL %.4f, holdout PPL %.3f, MIA AUC %.3f", o.unlearning.method.rawValue,
                            step, m.forgetNLL, m.holdoutPPL, m.forgetMIAAUC))
            }
            if step == o.unlearning.steps { break }
            let t0 = Date()
            for u in unlearners { u.step(step) }
            seconds += Date().timeIntervalSince(t0)
        }
        let records = forget.enumerated().map { i, r in
            ForgetRecordReport(id: r.id, group: r.group, shard: r.shard, tokens: forgetTexts[i].count + 1,
                               nllOriginal: origNLL[i], nllExact: exactNLL[i], nllApproximate: lastNLL[i],
                               exposureOriginal: origExp[i], exposureExact: exactExp[i], exposureApproximate: lastExp[i])
        }
        return ComparisonReport(forgetIDs: forget.map(\.id), groups: Array(Set(forget.map(\.group))).sorted(),
                                affectedShards: affected, exactDigests: exactDigests, original: originalMetrics, exact: exactMetrics,
                                approximate: approx, records: records)
    }
}
