import Foundation

/// One method on one forget split of the TOFU-style benchmark.
public struct TOFUResult: Codable, Sendable {
    public let method: String
    /// Forget split in percent of the people.
    public let split: Double
    public let forgetPeople: Int
    /// Forget questions that were trained on (holdout ones are left out).
    public let forgetRecords: Int
    /// TOFU's forget quality: KS p-value between the truth ratios of this
    /// method's model and of the model retrained without the forget set.
    public let forgetQuality: Double
    public let ksStatistic: Double
    public let meanTruthRatio: Double
    /// The same with truth ratios in the trained wording (not TOFU's
    /// definition; see `TOFU.Wording`): at this scale it carries the signal.
    public let forgetQualityTrained: Double
    public let ksStatisticTrained: Double
    public let meanTruthRatioTrained: Double
    /// Model utility on retained people: mean per-byte probability of the
    /// true answer, P(a|q)^(1/|a|) (per byte, or per token of a base's
    /// tokenizer), over a sample of their questions.
    public let utility: Double
    public let holdoutPPL: Double
    public let calibratedAUC: Double?
    public let calibratedAUCCI: Interval?
    public let likelihoodGap: Double?
    public let likelihoodGapCI: Interval?
    /// Share of forget records whose greedy continuation is verbatim.
    public let extractionRate: Double?
    public let extractionRateCI: Interval?
    /// Seconds spent when the deletion request arrives (dp: 0, the exact
    /// retraining is deferred and the DP bound covers the wait).
    public let seconds: Double
}

/// What `runTOFU` evaluates. `none` is the model before any unlearning;
/// `dp` is the same on a DP-trained store (deletion deferred).
public enum TOFUMethod: String, CaseIterable, Codable, Sendable {
    case exact, none, ga, graddiff, npo, filter, dp
}

extension Store {
    /// Runs `methods` on the forget split of `percent`% of the benchmark's
    /// people, which must have been ingested (`sisa benchmark tofu`). Every
    /// figure comes from `compare` (calibrated attack, extraction, holdout
    /// perplexity) plus the truth ratios of TOFU, computed on the same
    /// models. The store is left as it was.
    public func runTOFU(_ b: TOFU.Benchmark, percent: Double, methods: [TOFUMethod], options base: CompareOptions,
                        retainQuestions: Int = 100, log: ((String) -> Void)? = nil) throws -> [TOFUResult] {
        if methods.contains(.dp) && config.dp == nil {
            throw CoordinatorError.invalidInput("method dp needs a store trained with DP-SGD (sisa init --dp-noise/--dp-epsilon)")
        }
        let people = TOFU.forgetPeople(b, percent: percent)
        let ids = TOFU.recordIDs(b)
        let live = Dictionary(uniqueKeysWithValues: try catalog.records().map { ($0.id, $0) })
        var forgetQ: [TOFU.Question] = [], forgetIDs: [String] = [], retainQ: [TOFU.Question] = []
        for (q, id) in zip(b.questions, ids) {
            guard let r = live[id] else { continue }
            if people.contains(q.person) {
                if !r.holdout { forgetQ.append(q); forgetIDs.append(id) }
            } else if !r.holdout {
                retainQ.append(q)
            }
        }
        guard !forgetIDs.isEmpty else {
            throw CoordinatorError.invalidInput("no trained record of the \(percent)% split is in this store: ingest DIR/records.jsonl of the same benchmark")
        }
        retainQ = Array(retainQ.sorted { Placement.hash64(b.seed, $0.text, "tofu-retain") < Placement.hash64(b.seed, $1.text, "tofu-retain") }
            .prefix(retainQuestions))

        /// Truth ratios of the forget questions in both wordings.
        func truthRatios(_ e: Ensemble) -> Ratios {
            Ratios(paraphrased: TOFU.truthRatios(forgetQ, wording: .paraphrased, encode: e.codec.encode, score: e.score),
                   trained: TOFU.truthRatios(forgetQ, wording: .trained, encode: e.codec.encode, score: e.score))
        }
        func utility(_ e: Ensemble) -> Double {
            let p = TOFU.answerProbabilities(retainQ, encode: e.codec.encode, score: e.score)
            return p.reduce(0, +) / Double(max(1, p.count))
        }
        var results: [TOFUResult] = []
        func record(_ m: String, _ ratios: Ratios, reference: Ratios, utility: Double, _ metrics: ModelMetrics, seconds: Double) {
            let ks = KolmogorovSmirnov.test(ratios.paraphrased, reference.paraphrased)
            let ksT = KolmogorovSmirnov.test(ratios.trained, reference.trained)
            func mean(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(xs.count) }
            results.append(TOFUResult(
                method: m, split: percent, forgetPeople: people.count, forgetRecords: forgetIDs.count,
                forgetQuality: ks.pValue, ksStatistic: ks.statistic, meanTruthRatio: mean(ratios.paraphrased),
                forgetQualityTrained: ksT.pValue, ksStatisticTrained: ksT.statistic, meanTruthRatioTrained: mean(ratios.trained),
                utility: utility, holdoutPPL: metrics.holdoutPPL, calibratedAUC: metrics.forgetCalibratedAUC,
                calibratedAUCCI: metrics.forgetCalibratedAUCCI, likelihoodGap: metrics.meanLikelihoodGap,
                likelihoodGapCI: metrics.meanLikelihoodGapCI, extractionRate: metrics.extraction?.exactMatchRate,
                extractionRateCI: metrics.extraction?.exactMatchRateCI, seconds: seconds))
        }

        // One comparison: the original and exact models are built once (the
        // exact retrain is the expensive part), then each method runs from the
        // same original. The filter's run also yields the original and exact
        // rows. Each method's models are measured as they come and let go, so
        // only one method's trainable copies are alive at a time.
        var o = base
        o.forgetIDs = forgetIDs
        o.forgetGroup = nil
        o.trials = 1
        let simple = methods.filter { [.exact, .none, .filter, .dp].contains($0) }
        // The filter's window matters only when its row is asked for.
        if !methods.contains(.filter) { o.unlearning.filterBytes = OutputFilter.defaultWindowBytes }
        let gradient = methods.compactMap { m in UnlearningMethod(rawValue: m.rawValue).flatMap { $0 == .filter ? nil : $0 } }
        let runs = (simple.isEmpty ? [] : [UnlearningMethod.filter]) + gradient
        log?("\(percent)% split: original and exact, then \(runs.map(\.rawValue).joined(separator: ", ")) (\(forgetIDs.count) forget records)")
        /// What a method's models measure to, beyond its `compare` report.
        struct Measured { let method: UnlearningMethod; let ratios: Ratios; let utility: Double; let seconds: Double }
        var exact: (ratios: Ratios, utility: Double, seconds: Double)?
        var original: (ratios: Ratios, utility: Double)?
        var measured: [Measured] = []
        let reports = try compare(o, methods: runs, log: log) { method, m in
            if exact == nil { exact = (truthRatios(m.exact), utility(m.exact), m.exactSeconds) }
            if method == .filter {
                // none, filter and dp are the original model (the filter acts on generation only).
                original = (truthRatios(m.original), utility(m.original))
                measured.append(Measured(method: method, ratios: original!.ratios, utility: original!.utility, seconds: 0))
            } else {
                measured.append(Measured(method: method, ratios: truthRatios(m.approximate), utility: utility(m.approximate),
                                         seconds: m.approximateSeconds))
            }
        }
        guard let exact else { return results }
        for (x, r) in zip(measured, reports) {
            if x.method == .filter, let original {
                for s in simple {
                    switch s {
                    case .exact: record("exact", exact.ratios, reference: exact.ratios, utility: exact.utility, r.exact, seconds: exact.seconds)
                    case .none: record("none", original.ratios, reference: exact.ratios, utility: original.utility, r.original, seconds: 0)
                    case .dp: record("dp", original.ratios, reference: exact.ratios, utility: original.utility, r.original, seconds: 0)
                    case .filter: record("filter", original.ratios, reference: exact.ratios, utility: original.utility,
                                         r.approximate.curve.last!, seconds: 0)
                    default: break
                    }
                }
            } else {
                record(x.method.rawValue, x.ratios, reference: exact.ratios, utility: x.utility, r.approximate.curve.last!,
                       seconds: x.seconds)
            }
        }
        return results
    }
}

private struct Ratios {
    let paraphrased: [Double]
    let trained: [Double]
}

extension TOFU {
    /// Record ids as `sisa benchmark tofu` writes them: tofu-<person>-<k>, k counting that person's questions.
    public static func recordIDs(_ b: Benchmark) -> [String] {
        var perPerson: [Int: Int] = [:]
        return b.questions.map { q in
            let k = perPerson[q.person, default: 0]
            perPerson[q.person] = k + 1
            return "tofu-\(q.person)-\(k)"
        }
    }
}
