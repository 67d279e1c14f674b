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
    /// Disjoint forget sets drawn from the seed (with --forget-group), one comparison each.
    public var trials: Int = 1
    /// Random secrets each canary is ranked against (exposure).
    public var canaryCandidates: Int = 1000
    public var extraction = Extraction.Options()

    public init() {}
}

public struct ForgetRecordReport: Codable, Sendable {
    public let id: String
    public let group: String
    public let shard: Int
    public let tokens: Int
    public var nllOriginal: Double
    public var nllExact: Double
    public var nllApproximate: Double
    public var exposureOriginal: Double?
    public var exposureExact: Double?
    public var exposureApproximate: Double?
}

public struct ApproximateReport: Codable, Sendable {
    public let method: UnlearningMethod
    public let learningRate: Float
    public let steps: Int
    public let evalEvery: Int
    /// First evaluated step at which the forget NLL reaches the exact model's:
    /// nil if never, or if the verdict is "not-measurable" (then there is no
    /// memorisation to remove and the number would mean nothing).
    public var stepsToReference: Int?
    /// Holdout perplexity at `stepsToReference` minus the exact model's: the utility cost of getting there.
    public var utilityCostAtReference: Double?
    public var curve: [ModelMetrics]

    enum CodingKeys: String, CodingKey {
        case method, learningRate, steps, evalEvery, stepsToReference, utilityCostAtReference, curve
    }

    /// stepsToReference is written as null, not left out, when there is none.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(method, forKey: .method)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(steps, forKey: .steps)
        try c.encode(evalEvery, forKey: .evalEvery)
        try c.encode(stepsToReference, forKey: .stepsToReference)
        try c.encode(utilityCostAtReference, forKey: .utilityCostAtReference)
        try c.encode(curve, forKey: .curve)
    }
}

/// Mean canary exposure (bits) over the forget set's canaries.
public struct CanaryExposureReport: Codable, Sendable {
    public var canaries: Int
    /// log2 of the secret space (10^digits).
    public var secretSpaceBits: Double
    public var candidates: Int
    public var original: Double
    public var exact: Double
    /// At the last curve point.
    public var approximate: Double
    /// The owning shard's model alone (the shard of the canary's first forget record), before unlearning.
    public var originalOwnShard: Double
}

public struct ComparisonReport: Codable, Sendable {
    public let forgetIDs: [String]
    public let groups: [String]
    public let affectedShards: [Int]
    /// Parameter digests of the exactly retrained shards: equal to those a
    /// store that never ingested the forget set would train.
    public let exactDigests: [String: String]
    /// "measurable" or "not-measurable": whether the original ensemble's
    /// forget records are distinguishable at all (see `Verdict`).
    public var verdict: String
    public var verdictReason: String
    public var original: ModelMetrics
    public var exact: ModelMetrics
    public var approximate: ApproximateReport
    public var canaryExposure: CanaryExposureReport?
    public var records: [ForgetRecordReport]
    /// With --trials N: every trial's report (this report's own figures are the first trial's).
    public var trials: [ComparisonReport]?
    /// Over the trials where it is meaningful and reached: mean, and a bootstrap interval over trials.
    public var stepsToReferenceMean: Double?
    public var stepsToReferenceCI: Interval?
    public var utilityCostAtReferenceMean: Double?
    public var utilityCostAtReferenceCI: Interval?
    public var trialsMeasurable: Int?

    enum CodingKeys: String, CodingKey {
        case forgetIDs, groups, affectedShards, exactDigests, verdict, verdictReason, original, exact, approximate,
             canaryExposure, records, trials, stepsToReferenceMean, stepsToReferenceCI, utilityCostAtReferenceMean,
             utilityCostAtReferenceCI, trialsMeasurable
    }

    /// As synthesised, except that the across-trial figures are written as
    /// null rather than left out when a run with trials has none to give.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(forgetIDs, forKey: .forgetIDs)
        try c.encode(groups, forKey: .groups)
        try c.encode(affectedShards, forKey: .affectedShards)
        try c.encode(exactDigests, forKey: .exactDigests)
        try c.encode(verdict, forKey: .verdict)
        try c.encode(verdictReason, forKey: .verdictReason)
        try c.encode(original, forKey: .original)
        try c.encode(exact, forKey: .exact)
        try c.encode(approximate, forKey: .approximate)
        try c.encodeIfPresent(canaryExposure, forKey: .canaryExposure)
        try c.encode(records, forKey: .records)
        if let trials {
            try c.encode(trials, forKey: .trials)
            try c.encode(stepsToReferenceMean, forKey: .stepsToReferenceMean)
            try c.encode(stepsToReferenceCI, forKey: .stepsToReferenceCI)
            try c.encode(utilityCostAtReferenceMean, forKey: .utilityCostAtReferenceMean)
            try c.encode(utilityCostAtReferenceCI, forKey: .utilityCostAtReferenceCI)
            try c.encode(trialsMeasurable, forKey: .trialsMeasurable)
        }
    }
}

extension ComparisonReport {
    /// Reads reports of every version; those written before verdicts existed
    /// read as verdict "unknown".
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(forgetIDs: try c.decode([String].self, forKey: .forgetIDs), groups: try c.decode([String].self, forKey: .groups),
                  affectedShards: try c.decode([Int].self, forKey: .affectedShards),
                  exactDigests: try c.decode([String: String].self, forKey: .exactDigests),
                  verdict: try c.decodeIfPresent(String.self, forKey: .verdict) ?? "unknown",
                  verdictReason: try c.decodeIfPresent(String.self, forKey: .verdictReason) ?? "written before verdicts existed",
                  original: try c.decode(ModelMetrics.self, forKey: .original), exact: try c.decode(ModelMetrics.self, forKey: .exact),
                  approximate: try c.decode(ApproximateReport.self, forKey: .approximate),
                  canaryExposure: try c.decodeIfPresent(CanaryExposureReport.self, forKey: .canaryExposure),
                  records: try c.decode([ForgetRecordReport].self, forKey: .records),
                  trials: try c.decodeIfPresent([ComparisonReport].self, forKey: .trials),
                  stepsToReferenceMean: try c.decodeIfPresent(Double.self, forKey: .stepsToReferenceMean),
                  stepsToReferenceCI: try c.decodeIfPresent(Interval.self, forKey: .stepsToReferenceCI),
                  utilityCostAtReferenceMean: try c.decodeIfPresent(Double.self, forKey: .utilityCostAtReferenceMean),
                  utilityCostAtReferenceCI: try c.decodeIfPresent(Interval.self, forKey: .utilityCostAtReferenceCI),
                  trialsMeasurable: try c.decodeIfPresent(Int.self, forKey: .trialsMeasurable))
    }
}

extension Store {
    /// Picks the forget set: explicit ids, or `count` training records of a
    /// group drawn by a seeded hash order.
    public func forgetSet(_ o: CompareOptions, trial: Int = 0) throws -> [RecordInfo] {
        if !o.forgetIDs.isEmpty {
            var out: [RecordInfo] = []
            var unknown: [String] = []
            for id in o.forgetIDs {
                guard let r = try catalog.record(id: id), r.status == .live else { unknown.append(id); continue }
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
        guard o.count >= 1, o.count * max(1, o.trials) <= pool.count else {
            throw CoordinatorError.invalidInput(o.trials > 1
                ? "--count x --trials must be at most \(pool.count) (training records in group \(g)): the trials' forget sets are disjoint"
                : "--count must be between 1 and \(pool.count) (training records in group \(g))")
        }
        // Trial t takes the t-th block of count records in the seeded hash order: disjoint sets.
        return Array(pool.sorted { Placement.hash64(o.seed, $0.id, "forget") < Placement.hash64(o.seed, $1.id, "forget") }
            .dropFirst(trial * o.count).prefix(o.count))
    }

    /// The models of one comparison, for measurements built on top of it.
    public struct ComparisonModels {
        public let forget: [RecordInfo]
        /// The store's answering ensemble, unchanged.
        public let original: Ensemble
        /// The affected shards retrained without the forget records.
        public let exact: Ensemble
        /// The affected shards after the approximate method (unchanged for `filter`).
        public let approximate: Ensemble
        public let approximateSeconds: Double
        public let exactSeconds: Double
    }

    /// Exact vs approximate unlearning of a forget set, as a what-if: the
    /// store's records, checkpoints and models are left exactly as they were.
    /// With `trials > 1`, repeated on disjoint forget sets.
    /// `inspect` sees each trial's three ensembles (original, exact,
    /// approximate), for measurements built on top (the TOFU benchmark).
    public func compare(_ options: CompareOptions, pool: WorkerPool = .shared,
                        log: ((String) -> Void)? = nil,
                        inspect: ((ComparisonModels) throws -> Void)? = nil) throws -> ComparisonReport {
        var o = options
        // The filter changes no weight: its one measurement is the model as it is.
        if o.unlearning.method == .filter { o.unlearning.steps = 0 }
        try Store.checkComparison(o, methods: [o.unlearning.method])
        try requireCurrentNumerics(adopt: false)
        guard o.trials >= 1 else { throw CoordinatorError.invalidInput("--trials must be at least 1") }
        guard o.trials == 1 || o.forgetIDs.isEmpty else {
            throw CoordinatorError.invalidInput("--trials needs --forget-group (the trials draw disjoint forget sets from it)")
        }
        _ = try forgetSet(o)  // all argument errors before any work
        var reports: [ComparisonReport] = []
        for t in 0..<o.trials {
            if o.trials > 1 { log?("trial \(t + 1) of \(o.trials)") }
            reports.append(try compareOnce(o, forget: try forgetSet(o, trial: t), trial: t, pool: pool, log: log, inspect: inspect))
        }
        guard o.trials > 1 else { return reports[0] }
        return ComparisonTrials.summarise(reports, seed: o.seed)
    }

    func compareOnce(_ o: CompareOptions, forget: [RecordInfo], trial: Int, pool: WorkerPool,
                     log: ((String) -> Void)?, inspect: ((ComparisonModels) throws -> Void)? = nil) throws -> ComparisonReport {
        try approximate(o, from: try baseline(o, forget: forget, trial: trial, pool: pool, log: log), log: log, inspect: inspect)
    }

    /// Several approximate methods against one forget set (no trials): the
    /// original and exact models are built and measured once, and each method
    /// starts from the same original. Reports in the order of `methods`.
    func compare(_ options: CompareOptions, methods: [UnlearningMethod], pool: WorkerPool = .shared,
                 log: ((String) -> Void)? = nil,
                 inspect: ((UnlearningMethod, ComparisonModels) throws -> Void)? = nil) throws -> [ComparisonReport] {
        try requireCurrentNumerics(adopt: false)
        // Every argument error before the exact retrain.
        guard options.trials == 1 else { throw CoordinatorError.invalidInput("one forget set only (trials 1)") }
        try Store.checkComparison(options, methods: methods)
        let base = try baseline(options, forget: try forgetSet(options), trial: 0, pool: pool, log: log)
        return try methods.map { method in
            var o = options
            o.unlearning.method = method
            if method == .filter { o.unlearning.steps = 0 }
            log?("approximate: \(method.rawValue)")
            return try approximate(o, from: base, log: log, inspect: inspect.map { f in { try f(method, $0) } })
        }
    }

    /// The options' checks that do not need the store, shared by both entry points.
    static func checkComparison(_ o: CompareOptions, methods: [UnlearningMethod]) throws {
        guard !methods.contains(.filter) || o.unlearning.filterBytes >= OutputFilter.minimumWindowBytes else {
            throw CoordinatorError.invalidInput("--filter-bytes must be at least \(OutputFilter.minimumWindowBytes)")
        }
        guard o.canaryCandidates >= 10 else { throw CoordinatorError.invalidInput("--canary-candidates must be at least 10") }
    }

    /// What every method of one forget set is measured against: the original
    /// and the exact ensembles, scored and measured (extraction included).
    struct Baseline {
        let forget: [RecordInfo]
        let forgetTexts: [[UInt8]]
        let forgetGroups: Set<String>
        let ensemble: Ensemble
        let answering: [Int]
        let affected: [Int]
        let texts: [[UInt8]]
        let retainByShard: [Int: [[UInt8]]]
        let original: ShardScores
        let exactState: ShardScores
        let exactModels: [Int: ShardModel]
        let exactSeconds: Double
        let exactDigests: [String: String]
        let meter: ComparisonMeter
        let exactNLL: [Double]
        let originalMetrics: ModelMetrics
        let exactMetrics: ModelMetrics
        let verdict: Verdict
    }

    func baseline(_ o: CompareOptions, forget: [RecordInfo], trial: Int, pool: WorkerPool,
                  log: ((String) -> Void)?) throws -> Baseline {
        let forgetIDs = Set(forget.map(\.id))
        let ensemble = try Ensemble(store: self, pool: pool)
        let answering = ensemble.models.map(\.shard)
        let affected = Array(Set(forget.map(\.shard))).sorted()
        for s in affected where !answering.contains(s) {
            throw CoordinatorError.invalidInput("shard \(s) holds forget records but cannot answer (quarantined or untrained)")
        }
        let forgetTexts = try forget.map { r -> [UInt8] in
            guard let t = try catalog.text(id: r.id) else { throw CoordinatorError.corrupt("record \(r.id) has no text") }
            return t
        }
        // Evaluation population: forget records, every group's holdout
        // (utility per group; the forget groups' for the attacks and exposure),
        // and a sample of retained records.
        let holdout = try catalog.texts(holdout: true).filter { answering.contains($0.shard) }
        let forgetGroups = Set(forget.map(\.group))
        if !holdout.contains(where: { forgetGroups.contains($0.group) }) {
            log?("note: no holdout records in group(s) \(forgetGroups.sorted().joined(separator: ", ")): no membership attack or exposure against holdout; the verdict uses the gap to the exact model")
        }
        guard !holdout.isEmpty else {
            throw CoordinatorError.invalidInput("the store has no holdout records: ingest some with --holdout FRACTION (utility is measured on them)")
        }
        var retainByShard: [Int: [[UInt8]]] = [:]
        var retain: [(text: [UInt8], shard: Int)] = []
        for s in affected {
            let recs = try catalog.trainingRecords(shard: s).filter { !forgetIDs.contains($0.id) }
                .sorted { Placement.hash64(o.seed, $0.id, "retain") < Placement.hash64(o.seed, $1.id, "retain") }
                .prefix(o.retainSample)
            retainByShard[s] = recs.map(\.text)
            retain += recs.prefix(max(1, o.retainSample / affected.count)).map { ($0.text, s) }
        }
        let texts = forgetTexts + holdout.map(\.text) + retain.map(\.text)
        let nF = forget.count, nH = holdout.count
        let set = EvaluationSet(texts: texts, forget: 0..<nF, holdout: nF..<(nF + nH), retain: (nF + nH)..<texts.count,
                                groups: forget.map(\.group) + holdout.map(\.group) + retain.map { _ in "" },
                                shards: forget.map(\.shard) + holdout.map(\.shard) + retain.map(\.shard))

        log?("scoring \(texts.count) texts under \(answering.count) shards")
        var original: ShardScores = [:]
        for (s, m) in ensemble.models { original[s] = m.score(texts, perToken: true) }

        // Exact: retrain affected shards without the forget set, in memory only,
        // from the stored checkpoint before the earliest affected stage.
        var exact: ShardScores = [:]
        var exactModels: [Int: ShardModel] = [:]
        var exactSeconds = 0.0, exactFlops = 0.0
        var exactDigests: [String: String] = [:]
        for s in affected {
            log?("exact: retraining shard \(s) without the forget records")
            let (report, model) = try retrainedWithout(forgetIDs, shard: s, pool: pool)
            exactSeconds += report.seconds
            exactFlops += Double(report.steps * config.batch * config.context) * model.trainingFLOPsPerToken
            exact[s] = model.score(texts, perToken: true)
            exactModels[s] = model
            exactDigests[String(s)] = model.digest
        }
        let exactState = original.merging(exact) { _, e in e }
        let meter = ComparisonMeter(set: set, answering: answering, original: original, exact: exact,
                                    seed: o.seed &+ UInt64(trial) &* 1000)
        let exactNLL = meter.forgetNLLs(exactState)
        func ensembleOf(_ replaced: [Int: ShardModel]) -> Ensemble {
            Ensemble(models: ensemble.models.map { ($0.shard, replaced[$0.shard] ?? $0.model) }, pool: ensemble.pool)
        }
        log?("measuring the original and the exact ensembles (extraction: greedy continuations)")
        var originalMetrics = meter.metrics(original, isExact: false, exactForgetNLL: exactNLL, seconds: 0, flops: 0)
        var exactMetrics = meter.metrics(exactState, isExact: true, exactForgetNLL: exactNLL, seconds: exactSeconds, flops: exactFlops)
        originalMetrics.extraction = Extraction.measure(ensemble, records: forgetTexts, options: o.extraction, seed: o.seed)
        exactMetrics.extraction = Extraction.measure(ensembleOf(exactModels), records: forgetTexts, options: o.extraction, seed: o.seed)
        if let a = originalMetrics.forgetMIAAUC, let e = exactMetrics.forgetMIAAUC {
            originalMetrics.privacyLeak = UnlearningMetrics.privacyLeak(auc: a, exactAUC: e)
            exactMetrics.privacyLeak = 0
        }
        let verdict = Verdict.judge(original: originalMetrics, forgetRecords: forget.count)
        return Baseline(forget: forget, forgetTexts: forgetTexts, forgetGroups: forgetGroups, ensemble: ensemble,
                        answering: answering, affected: affected, texts: texts, retainByShard: retainByShard,
                        original: original, exactState: exactState, exactModels: exactModels, exactSeconds: exactSeconds,
                        exactDigests: exactDigests, meter: meter, exactNLL: exactNLL, originalMetrics: originalMetrics,
                        exactMetrics: exactMetrics, verdict: verdict)
    }

    /// One approximate method from the baseline's original, measured along its steps.
    func approximate(_ o: CompareOptions, from b: Baseline, log: ((String) -> Void)?,
                     inspect: ((ComparisonModels) throws -> Void)?) throws -> ComparisonReport {
        let (forget, forgetTexts, ensemble, affected, texts) = (b.forget, b.forgetTexts, b.ensemble, b.affected, b.texts)
        let (original, exactState, exactModels, meter, exactNLL) = (b.original, b.exactState, b.exactModels, b.meter, b.exactNLL)
        let (retainByShard, exactMetrics, verdict, answering) = (b.retainByShard, b.exactMetrics, b.verdict, b.answering)
        func ensembleOf(_ replaced: [Int: ShardModel]) -> Ensemble {
            Ensemble(models: ensemble.models.map { ($0.shard, replaced[$0.shard] ?? $0.model) }, pool: ensemble.pool)
        }

        // Approximate: the chosen method on copies of the affected shards.
        let unlearners = try affected.map { s in
            try ApproximateUnlearner(shard: s, original: ensemble.models.first { $0.shard == s }!.model,
                                     forget: zip(forget, forgetTexts).filter { $0.0.shard == s }.map(\.1),
                                     retain: retainByShard[s] ?? [], options: o.unlearning)
        }
        var approx = ApproximateReport(method: o.unlearning.method, learningRate: o.unlearning.learningRate,
                                       steps: o.unlearning.steps, evalEvery: max(1, o.evalEvery), stepsToReference: nil, curve: [])
        var seconds = 0.0
        var last = original
        for step in 0...o.unlearning.steps {
            if step % approx.evalEvery == 0 || step == o.unlearning.steps {
                var scores = original
                // At step 0 the copies are the original shards, bit for bit: their scores are the original's.
                if step > 0 { for u in unlearners { scores[u.shard] = u.model.score(texts, perToken: true) } }
                var m = meter.metrics(scores, isExact: false, exactForgetNLL: exactNLL, seconds: seconds,
                                      flops: unlearners.reduce(0) { $0 + $1.flops }, step: step)
                if let a = m.forgetMIAAUC, let e = exactMetrics.forgetMIAAUC { m.privacyLeak = UnlearningMetrics.privacyLeak(auc: a, exactAUC: e) }
                if step == o.unlearning.steps {
                    // The filter's fingerprints live in memory for this what-if only.
                    let filter = o.unlearning.method == .filter
                        ? OutputFilter(records: forgetTexts, windowBytes: o.unlearning.filterBytes, salt: OutputFilter.newSalt()) : nil
                    m.extraction = Extraction.measure(ensembleOf(Dictionary(uniqueKeysWithValues: unlearners.map { ($0.shard, $0.model) })),
                                                      records: forgetTexts, options: o.extraction, seed: o.seed, filter: filter)
                }
                approx.curve.append(m)
                last = scores
                if verdict.measurable && approx.stepsToReference == nil && m.forgetNLL >= exactMetrics.forgetNLL {
                    approx.stepsToReference = step
                    approx.utilityCostAtReference = m.holdoutPPL - exactMetrics.holdoutPPL
                }
                log?(String(format: "%@ step %d: forget NLL %.4f, holdout PPL %.3f, calibrated AUC %@", o.unlearning.method.rawValue,
                            step, m.forgetNLL, m.holdoutPPL, (m.forgetCalibratedAUC.map { String(format: "%.3f", $0) } ?? "-") as NSString))
            }
            if step == o.unlearning.steps { break }
            let t0 = Date()
            for u in unlearners { u.step(step) }
            seconds += Date().timeIntervalSince(t0)
        }

        try inspect?(ComparisonModels(
            forget: forget, original: ensemble, exact: ensembleOf(exactModels),
            approximate: ensembleOf(Dictionary(uniqueKeysWithValues: unlearners.map { ($0.shard, $0.model) })),
            approximateSeconds: seconds, exactSeconds: b.exactSeconds))

        // Canaries among the forget records: exposure against random secrets.
        let canaryExposure = try CanaryExposure.measure(
            forget: zip(forget, forgetTexts).map { ($0.0.shard, $0.1) }, answering: answering,
            original: Dictionary(uniqueKeysWithValues: ensemble.models.map { ($0.shard, $0.model) }),
            exact: exactModels, approximate: Dictionary(uniqueKeysWithValues: unlearners.map { ($0.shard, $0.model) }),
            candidates: o.canaryCandidates, seed: o.seed, log: log)

        let origNLL = meter.forgetNLLs(original), lastNLL = meter.forgetNLLs(last)
        let origExp = meter.exposures(original), exactExp = meter.exposures(exactState), lastExp = meter.exposures(last)
        let records = forget.enumerated().map { i, r in
            ForgetRecordReport(id: r.id, group: r.group, shard: r.shard, tokens: ensemble.models[0].model.tokenCount(forgetTexts[i]),
                               nllOriginal: origNLL[i], nllExact: exactNLL[i], nllApproximate: lastNLL[i],
                               exposureOriginal: origExp[i], exposureExact: exactExp[i], exposureApproximate: lastExp[i])
        }
        return ComparisonReport(forgetIDs: forget.map(\.id), groups: b.forgetGroups.sorted(), affectedShards: affected,
                                exactDigests: b.exactDigests, verdict: verdict.measurable ? "measurable" : "not-measurable",
                                verdictReason: verdict.reason, original: b.originalMetrics, exact: exactMetrics,
                                approximate: approx, canaryExposure: canaryExposure, records: records)
    }
}
