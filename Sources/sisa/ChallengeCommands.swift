import ArgumentParser
import Foundation
import SisaCoordinator

struct ChallengeScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "challenge-score",
        abstract: "The NeurIPS 2023 unlearning challenge's forgetting score F of two populations of models.",
        discussion: """
        U.json and R.json each hold a JSON array of arrays, [model][example]: the confidence of every forget \
        example under each of N unlearned and N retrained models (the same N, the same examples in the same \
        order). For each example, ε is the best (ε, δ) bound over the challenge's single- and double-threshold \
        decision rules (100 thresholds per unit) that tell the two populations apart; F is the mean of bucket \
        points, 1 for ε in [0, 0.5), halving every 0.5, none from ceil(ln(N − 1)) on (Triantafillou et al. \
        2024; google-deepmind/unlearning_evaluation). F near 1 means the unlearned models cannot be told from \
        retrained ones; at small N even two samples of one distribution score well under 1, see \
        `sisa benchmark challenge`, which reports that ceiling.
        JSON out: {"epsilons": [...], "forgetScore": F, "models": N, "examples": E, "maxEpsilon": ...}.
        """)
    @Option(help: "JSON [model][example] confidences of the unlearned models.") var unlearned: String
    @Option(help: "JSON [model][example] confidences of the retrained models.") var retrained: String
    @Option(help: "δ of the (ε, δ) bound.") var delta: Double = ChallengeScore.defaultDelta
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let r = try ChallengeScore.score(unlearned: try Self.load(unlearned), retrained: try Self.load(retrained), delta: delta)
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys]
            print(String(decoding: try e.encode(r), as: UTF8.self))
            return
        }
        let sorted = r.epsilons.sorted()
        print(String(format: "forget score F = %.4f over %d examples, %d models per population (no points from ε ≥ %.0f)",
                     r.forgetScore, r.examples, r.models, r.maxEpsilon))
        print(String(format: "ε: min %.3f, median %.3f, max %.3f", sorted.first!, ChallengeScore.median(sorted), sorted.last!))
    }

    /// A [model][example] array of numbers, with errors that name the file.
    static func load(_ path: String) throws -> [[Double]] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw CoordinatorError.io("\(path): cannot read (\(error.localizedDescription))")
        }
        do { return try JSONDecoder().decode([[Double]].self, from: data) } catch {
            throw CoordinatorError.invalidInput("\(path): expected a JSON array of arrays of numbers, [model][example] (\(jsonReason(error)))")
        }
    }

    private static func jsonReason(_ error: Error) -> String {
        switch error as? DecodingError {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c), .keyNotFound(_, let c):
            let at = c.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            return (at.isEmpty ? "" : "at [\(at.joined(separator: "]["))]: ") + c.debugDescription
        default:
            return "\(error)"
        }
    }
}

struct ChallengeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "challenge",
        abstract: "Run the NeurIPS 2023 unlearning challenge's protocol on SISA stores and report its scores per method.",
        discussion: """
        The template store (--store; byte-level or on a base, with holdout records) gives the records and the \
        configuration. N stores are trained from its training records under seeds S+0 ... S+N-1 (S the \
        template's seed); a forget set of --forget-count training records is drawn once. For each seed, the \
        exact deletion (the affected shards retrained without the forget set, bit for bit the store that \
        never saw it) joins the retrain population R. Each approximate method runs in two protocols: \
        "challenge", N runs from the first seed's original that differ in the order of their data (the \
        challenge's own), and "per-seed", one run from each seed's original. --ceiling (default) trains N \
        more stores without the forget set and reports F between them and R: two samples of one \
        distribution, the most any method can expect at this N.

        Confidence of a record: the mean over its predicted tokens of log p - log(1 - p), p the ensemble's \
        probability of the true next token (LiRA's logit scaling, per token). Accuracy: next-token top-1 \
        accuracy of the ensemble, pooled over tokens, on --sample retained records (RA) and --sample holdout \
        records (TA). Final score = F x (RA_U / RA_R) x (TA_U / TA_R). Exact deletion under the challenge's \
        protocol gives N identical models, for which the challenge's rule sets every ε to 50 (F = 0); the \
        report says so. Cost: (2 with --ceiling) x N trainings plus (methods x 2N) unlearning runs.
        """)
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "N: stores trained, one per seed.") var seeds: Int = 32
    @Option(help: "Comma-separated: exact, ga, graddiff, npo, filter.") var methods: String = "exact,ga,graddiff,npo,filter"
    @Option(help: "Forget records drawn from the template's training records.") var forgetCount: Int = 32
    @Option(help: "Draw the forget records from this group only.") var forgetGroup: String?
    @Option(help: "Retained and holdout records on which accuracy is measured.") var sample: Int = 64
    @Option(help: "Seed of the forget draw, the samples and the challenge protocol's data orders.") var seed: UInt64 = 0
    @Option(help: "Unlearning steps per run.") var steps: Int = 30
    @Option(help: "Learning rate of the unlearning optimizer (AdamW, constant).") var lr: Float = 1e-4
    @Option(help: "Forget (and retain) sequences per unlearning step.") var batch: Int = 4
    @Option(help: "npo: inverse temperature beta.") var beta: Double = 0.1
    @Flag(inversion: .prefixedNo, help: "Train N more stores without the forget set and report the metric's ceiling.") var ceiling = true
    @Option(help: "Folder for the seed stores (default: a temporary folder).") var work: String?
    @Flag(help: "Keep the seed stores in --work.") var keepStores = false
    @Flag(help: "Print the report as JSON.") var json = false
    @Option(help: "Also write the JSON report to FILE.") var out: String?

    func run() throws {
        let parsed = try methods.split(separator: ",").map { name -> ChallengeMethod in
            guard let m = ChallengeMethod(rawValue: String(name).trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--methods: unknown method \(name) (exact, ga, graddiff, npo, filter)")
            }
            return m
        }
        guard lr > 0, batch >= 1, steps >= 0 else { throw ValidationError("--lr > 0, --batch >= 1, --steps >= 0") }
        var o = ChallengeOptions()
        o.seeds = seeds
        o.methods = parsed
        o.forgetCount = forgetCount
        o.forgetGroup = forgetGroup
        o.sample = sample
        o.seed = seed
        o.unlearning.steps = steps
        o.unlearning.learningRate = lr
        o.unlearning.batch = batch
        o.unlearning.beta = beta
        o.ceiling = ceiling
        o.keepStores = keepStores
        let template = try storeOptions.open()
        let dir = work.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("sisa-challenge-\(ProcessInfo.processInfo.processIdentifier)")
        defer { if work == nil { try? FileManager.default.removeItem(at: dir) } }
        let report = try Challenge.run(template: template, options: o, work: dir) { line in
            FileHandle.standardError.write(Data("\(line)\n".utf8))
        }
        let data = try reportEncoder().encode(report)
        if let out { try data.write(to: URL(fileURLWithPath: out), options: .atomic) }
        if json {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print(String(format: "%d seeds, %d forget records in %d shard(s); retrained: retain accuracy %.4f, test accuracy %.4f",
                     report.seeds, report.forgetRecords, report.affectedShards, report.retrainedRetainAccuracy, report.retrainedTestAccuracy))
        if let c = report.ceiling { print(String(format: "ceiling (exact retrains vs independent retrains): F = %.4f", c)) }
        func pad(_ s: String, _ n: Int) -> String { s.padding(toLength: max(n, s.count), withPad: " ", startingAt: 0) }
        print("method    protocol  F       final   median ε  RA      TA      s/run")
        for r in report.results {
            print(pad(r.method.rawValue, 10) + pad(r.protocol, 10)
                  + String(format: "%.4f  %.4f  %7.3f   %.4f  %.4f  %.2f", r.forgetScore, r.finalScore, r.epsilonMedian,
                           r.retainAccuracy, r.testAccuracy, r.seconds))
        }
        for r in report.results { if let n = r.note { print("note: \(r.method.rawValue) (\(r.protocol)): \(n)") } }
    }
}
