import ArgumentParser
import Foundation
import SisaCoordinator
import SisaEngine

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure exact (SISA) vs approximate unlearning of a forget set, as a what-if.",
        discussion: """
        The store is not changed. Exact: the affected shards are retrained without the forget set in \
        memory, reusing the stored checkpoints before the affected stages. Approximate: the method runs on \
        copies of the affected shards' models, evaluated every --eval-every steps.

        Measures, for the original ensemble, the exact one and each evaluated step: forget-set NLL; its gap \
        to the exact model; exposure against holdout records of the same group; the LOSS membership attack \
        (ensemble NLL) and a reference-calibrated one (NLL under the record's own shard minus the mean NLL \
        under models that never saw it: the other shards, and the exactly retrained shards), each as AUC \
        (forget vs holdout of the same group) and TPR at a low FPR (1%, or 1/n for n < 100 holdout records); \
        holdout perplexity; NLL on retained records; seconds and FLOPs. Original, exact and the last step \
        also get verbatim extraction (greedy continuation of each record's first --prompt-bytes: exact-match \
        rate and LCS ratio), and canary exposure when the forget set holds canaries (sisa canaries).

        Intervals: every headline figure has a 95% percentile bootstrap interval over records (1,000 \
        resamples; forget and holdout records resampled separately for the attacks; paired over the same \
        forget records for the gap to the exact model).

        Verdict: "not-measurable" for a single forget record, or when the original's calibrated AUC \
        interval does not lie above 0.5 or its gap interval does not lie above 0 (a group without \
        holdout is judged on the gap; with --trials, every trial must be measurable). Then \
        stepsToReference, the first evaluated step whose forget NLL reaches the exact model's, is not \
        reported. --trials N repeats everything on N disjoint forget sets and reports the mean and \
        interval (over trials) of stepsToReference and of the holdout-perplexity cost at that step.
        """)

    @OptionGroup var storeOptions: StoreOptions
    @Option(name: .customLong("forget"), parsing: .upToNextOption, help: "Record ids to forget.") var forget: [String] = []
    @Option(help: "Forget records sampled from this group (with --count).") var forgetGroup: String?
    @Option(help: "How many records to sample from --forget-group.") var count: Int = 8
    @Option(help: "Seed of the forget-set and retained-record samples, and of the bootstrap.") var seed: UInt64 = 0
    @Option(help: "Repeat on this many disjoint forget sets drawn from --forget-group.") var trials: Int = 1
    @Option(help: "ga (gradient ascent), graddiff (ascent + descent on retained records), npo, or filter (model unchanged; an output filter blocks verbatim continuations of the forget records; --steps is ignored).") var method: String = "ga"
    @Option(help: "Unlearning steps.") var steps: Int = 60
    @Option(help: "Learning rate of the unlearning optimizer (AdamW, constant).") var lr: Float = 1e-4
    @Option(help: "Forget (and retain) sequences per step.") var batch: Int = 8
    @Option(help: "graddiff: weight of the retained-records descent term.") var retainWeight: Float = 1
    @Option(help: "npo: inverse temperature beta.") var beta: Double = 0.1
    @Option(help: "filter: window length in bytes: a continuation may not reproduce this many bytes of a forget record.") var filterBytes: Int = OutputFilter.defaultWindowBytes
    @Option(help: "Evaluate every K steps.") var evalEvery: Int = 10
    @Option(help: "Extraction: prompt with this many bytes of each forget record (at most half the record).") var promptBytes: Int = 32
    @Option(help: "Extraction: bytes generated and compared.") var extractBytes: Int = 32
    @Option(help: "Canary exposure: random secrets each canary is ranked against.") var canaryCandidates: Int = 1000
    @Option(help: "Write the full report as JSON to FILE.") var json: String?
    @Option(help: "Write an SVG plot (forget NLL and holdout perplexity vs steps, with 95% bands) to FILE.svg.") var plot: String?

    func run() throws {
        guard let m = UnlearningMethod(rawValue: method) else { throw ValidationError("--method must be ga, graddiff, npo or filter") }
        guard filterBytes >= OutputFilter.minimumWindowBytes else {
            throw ValidationError("--filter-bytes must be at least \(OutputFilter.minimumWindowBytes)")
        }
        guard steps >= 0, evalEvery >= 1, batch >= 1, lr > 0 else { throw ValidationError("--steps >= 0, --eval-every >= 1, --batch >= 1, --lr > 0") }
        guard trials >= 1, promptBytes >= 1, extractBytes >= 1, canaryCandidates >= 10 else {
            throw ValidationError("--trials >= 1, --prompt-bytes >= 1, --extract-bytes >= 1, --canary-candidates >= 10")
        }
        var o = CompareOptions()
        o.forgetIDs = forget
        o.forgetGroup = forgetGroup
        o.count = count
        o.seed = seed
        o.trials = trials
        o.evalEvery = evalEvery
        o.canaryCandidates = canaryCandidates
        o.extraction.promptBytes = promptBytes
        o.extraction.continuationBytes = extractBytes
        o.unlearning.method = m
        o.unlearning.steps = m == .filter ? 0 : steps
        o.unlearning.filterBytes = filterBytes
        o.unlearning.learningRate = lr
        o.unlearning.batch = batch
        o.unlearning.retainWeight = retainWeight
        o.unlearning.beta = beta
        let store = try storeOptions.open()
        let report = try store.compare(o, log: { note($0) })
        printReport(report)
        if let json { try writeJSON(report, to: json) }
        if let plot {
            try ComparisonPlot.svg([(report.groups.joined(separator: "+"), report)]).write(toFile: plot, atomically: true, encoding: .utf8)
        }
    }

    func printReport(_ r: ComparisonReport) {
        print("verdict: \(r.verdict): \(r.verdictReason)")
        if let trials = r.trials {
            print("trials: \(trials.count), measurable: \(r.trialsMeasurable ?? 0)")
            for (i, t) in trials.enumerated() {
                print("  trial \(i + 1): \(t.verdict), stepsToReference \(t.approximate.stepsToReference.map(String.init) ?? "-")"
                      + (t.approximate.utilityCostAtReference.map { String(format: ", holdout PPL cost %+.3f", $0) } ?? ""))
            }
            if let mean = r.stepsToReferenceMean {
                print(String(format: "stepsToReference over trials: mean %.1f, 95%% interval %@", mean, r.stepsToReferenceCI?.description ?? "-"))
            }
            if let mean = r.utilityCostAtReferenceMean {
                print(String(format: "holdout PPL cost at that step: mean %+.3f, 95%% interval %@", mean, r.utilityCostAtReferenceCI?.description ?? "-"))
            }
            print("first trial:")
        }
        print("forget set: \(r.forgetIDs.count) records of group \(r.groups.joined(separator: ", ")) in shard(s) \(r.affectedShards.map(String.init).joined(separator: ", "))")
        func pad(_ t: String, _ n: Int) -> String { t.count >= n ? t : String(repeating: " ", count: n - t.count) + t }
        func f(_ v: Double?, _ fmt: String) -> String { v.map { String(format: fmt, $0) } ?? "-" }
        func ci(_ i: Interval?, _ fmt: String) -> String { i.map { "[" + String(format: fmt, $0.low) + "," + String(format: fmt, $0.high) + "]" } ?? "" }
        let header = ["forgetNLL", "gap", "MIA AUC", "calib AUC", "calib TPR", "exposure", "holdoutPPL", "retainNLL", "seconds"]
        print("model".padding(toLength: 22, withPad: " ", startingAt: 0) + header.map { pad($0, 14) }.joined())
        func row(_ name: String, _ m: ModelMetrics) {
            let cells = [f(m.forgetNLL, "%.4f"), f(m.meanLikelihoodGap, "%+.4f"), f(m.forgetMIAAUC, "%.3f"),
                         f(m.forgetCalibratedAUC, "%.3f"), f(m.forgetCalibratedTPR, "%.3f"), f(m.meanExposure, "%.3f"),
                         f(m.holdoutPPL, "%.3f"), f(m.retainNLL, "%.4f"), f(m.seconds, "%.2f")]
            print(name.padding(toLength: 22, withPad: " ", startingAt: 0) + cells.map { pad($0, 14) }.joined())
            let cis = [ci(m.forgetNLLCI, "%.3f"), ci(m.meanLikelihoodGapCI, "%.3f"), ci(m.forgetMIAAUCCI, "%.2f"),
                       ci(m.forgetCalibratedAUCCI, "%.2f"), ci(m.forgetCalibratedTPRCI, "%.2f"), ci(m.meanExposureCI, "%.2f"),
                       ci(m.holdoutPPLCI, "%.2f"), ci(m.retainNLLCI, "%.3f"), ""]
            print("  95% interval".padding(toLength: 22, withPad: " ", startingAt: 0) + cis.map { pad($0, 14) }.joined())
        }
        row("original", r.original)
        row("exact (SISA retrain)", r.exact)
        for m in r.approximate.curve { row("\(r.approximate.method.rawValue) step \(m.step ?? 0)", m) }
        if let fpr = r.original.lowFPR { print(String(format: "TPR at FPR %.3g; calibrated attack references: other shards + exact retrain", fpr)) }
        func extraction(_ name: String, _ e: Extraction.Result?) {
            guard let e else { return }
            print(String(format: "extraction %@: exact match %.3f %@, LCS ratio %.3f %@", name as NSString, e.exactMatchRate,
                         ci(e.exactMatchRateCI, "%.2f") as NSString, e.lcsRatio, ci(e.lcsRatioCI, "%.2f") as NSString))
        }
        extraction("original", r.original.extraction)
        extraction("exact", r.exact.extraction)
        extraction(r.approximate.method.rawValue, r.approximate.curve.last?.extraction)
        if let c = r.canaryExposure {
            print(String(format: "canary exposure (bits, of %.1f; %d canaries vs %d random secrets): original %.2f (own shard alone %.2f), exact %.2f, %@ %.2f",
                         c.secretSpaceBits, c.canaries, c.candidates, c.original, c.originalOwnShard, c.exact,
                         r.approximate.method.rawValue as NSString, c.approximate))
        }
        // With trials, the table above is the first trial's, and so is its verdict.
        if (r.trials?.first ?? r).verdict == "measurable" {
            print("stepsToReference: \(r.approximate.stepsToReference.map(String.init) ?? "never (within \(r.approximate.steps) steps)")"
                  + (r.approximate.utilityCostAtReference.map { String(format: " (holdout PPL %+.3f vs exact there)", $0) } ?? ""))
        } else {
            print("stepsToReference: not meaningful (verdict: not-measurable)")
        }
        print(String(format: "cost: exact %.2f s, %.3g FLOPs; %@ %.2f s, %.3g FLOPs", r.exact.seconds, r.exact.flops,
                     r.approximate.method.rawValue as NSString, r.approximate.curve.last?.seconds ?? 0, r.approximate.curve.last?.flops ?? 0))
    }
}

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Overlay several `sisa compare --json` reports in one SVG.")
    @Argument(help: "LABEL=FILE.json pairs.") var runs: [String]
    @Option(help: "Output SVG.") var out: String
    @Option(help: "Title.") var title: String?

    func run() throws {
        let reports = try runs.map { spec -> (String, ComparisonReport) in
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("expected LABEL=FILE.json, got \(spec)") }
            let d = try Data(contentsOf: URL(fileURLWithPath: parts[1]))
            let dec = JSONDecoder()
            dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            return (parts[0], try dec.decode(ComparisonReport.self, from: d))
        }
        try ComparisonPlot.svg(reports, title: title).write(toFile: out, atomically: true, encoding: .utf8)
        print("wrote \(out)")
    }
}
