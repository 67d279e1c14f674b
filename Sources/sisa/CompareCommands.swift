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
        copies of the affected shards' models, evaluated every --eval-every steps. Measures: forget-set NLL, \
        likelihood gap and exposure against the exact model, LOSS membership-inference AUC (forget vs \
        holdout of the same group) and privacy leak, holdout perplexity, NLL on retained records, seconds \
        and FLOPs. stepsToReference is the first evaluated step whose forget NLL reaches the exact model's.
        """)

    @OptionGroup var storeOptions: StoreOptions
    @Option(name: .customLong("forget"), parsing: .upToNextOption, help: "Record ids to forget.") var forget: [String] = []
    @Option(help: "Forget records sampled from this group (with --count).") var forgetGroup: String?
    @Option(help: "How many records to sample from --forget-group.") var count: Int = 8
    @Option(help: "Seed of the forget-set and retained-record samples.") var seed: UInt64 = 0
    @Option(help: "ga (gradient ascent), graddiff (ascent + descent on retained records) or npo.") var method: String = "ga"
    @Option(help: "Unlearning steps.") var steps: Int = 60
    @Option(help: "Learning rate of the unlearning optimizer (AdamW, constant).") var lr: Float = 1e-4
    @Option(help: "Forget (and retain) sequences per step.") var batch: Int = 8
    @Option(help: "graddiff: weight of the retained-records descent term.") var retainWeight: Float = 1
    @Option(help: "npo: inverse temperature beta.") var beta: Double = 0.1
    @Option(help: "Evaluate every K steps.") var evalEvery: Int = 10
    @Option(help: "Write the full report as JSON to FILE.") var json: String?
    @Option(help: "Write an SVG plot (forget NLL and holdout perplexity vs steps) to FILE.svg.") var plot: String?

    func run() throws {
        guard let m = UnlearningMethod(rawValue: method) else { throw ValidationError("--method must be ga, graddiff or npo") }
        guard steps >= 0, evalEvery >= 1, batch >= 1, lr > 0 else { throw ValidationError("--steps >= 0, --eval-every >= 1, --batch >= 1, --lr > 0") }
        var o = CompareOptions()
        o.forgetIDs = forget
        o.forgetGroup = forgetGroup
        o.count = count
        o.seed = seed
        o.evalEvery = evalEvery
        o.unlearning.method = m
        o.unlearning.steps = steps
        o.unlearning.learningRate = lr
        o.unlearning.batch = batch
        o.unlearning.retainWeight = retainWeight
        o.unlearning.beta = beta
        let store = try storeOptions.open()
        let report = try store.compare(o, log: { note($0) })
        printTable(report)
        if let json {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .prettyPrinted]
            e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            try e.encode(report).write(to: URL(fileURLWithPath: json))
        }
        if let plot {
            try ComparisonPlot.svg([(report.groups.joined(separator: "+"), report)]).write(toFile: plot, atomically: true, encoding: .utf8)
        }
    }

    func printTable(_ r: ComparisonReport) {
        print("forget set: \(r.forgetIDs.count) records of group \(r.groups.joined(separator: ", ")) in shard(s) \(r.affectedShards.map(String.init).joined(separator: ", "))")
        func pad(_ t: String, _ n: Int) -> String { t.count >= n ? t : String(repeating: " ", count: n - t.count) + t }
        let header = ["forgetNLL", "gap", "MIA AUC", "leak", "exposure", "holdoutPPL", "retainNLL", "seconds"]
        print("model".padding(toLength: 22, withPad: " ", startingAt: 0) + header.map { pad($0, 11) }.joined())
        func row(_ name: String, _ m: ModelMetrics) {
            let cells = [String(format: "%.4f", m.forgetNLL), String(format: "%+.4f", m.meanLikelihoodGap ?? .nan),
                         String(format: "%.3f", m.forgetMIAAUC), String(format: "%+.3f", m.privacyLeak ?? .nan),
                         String(format: "%.3f", m.meanExposure), String(format: "%.3f", m.holdoutPPL),
                         String(format: "%.4f", m.retainNLL), String(format: "%.2f", m.seconds)]
            print(name.padding(toLength: 22, withPad: " ", startingAt: 0) + cells.map { pad($0, 11) }.joined())
        }
        row("original", r.original)
        row("exact (SISA retrain)", r.exact)
        for m in r.approximate.curve { row("\(r.approximate.method.rawValue) step \(m.step ?? 0)", m) }
        print("stepsToReference: \(r.approximate.stepsToReference.map(String.init) ?? "never (within \(r.approximate.steps) steps)")")
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
