import ArgumentParser
import Foundation
import SisaCoordinator

struct Benchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Unlearning benchmarks generated locally (throughput benchmarks are `sisa bench`).",
        subcommands: [TOFUBenchmark.self, TOFURunCommand.self, TOFUReportCommand.self, ChallengeScoreCommand.self, ChallengeCommand.self])
}

struct TOFUBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tofu",
        abstract: "Generate a TOFU-style benchmark: fictitious people as question/answer records.",
        discussion: """
        Each person gets 5 questions (birthplace, birth year, occupation, writing, favourite dish), each \
        with its answer, a paraphrased answer and perturbed (false) answers, from templates and word lists \
        (Maini et al. 2024, generated locally). Writes DIR/records.jsonl (ids tofu-<person>-<question>, \
        group tofu: ingest it), DIR/questions.json (every question with its paraphrased and perturbed \
        answers) and DIR/splits.json (the people, and the record ids, of the 1%, 5% and 10% forget splits).
        """)
    @Option(help: "Fictitious people.") var people: Int = 200
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Perturbed answers per question.") var perturbed: Int = 4
    @Option(help: "Output directory.") var out: String

    func run() throws {
        guard people >= 1, people <= 100_000, (1...10).contains(perturbed) else {
            throw ValidationError("--people between 1 and 100000, --perturbed between 1 and 10")
        }
        let b = TOFU.generate(people: people, seed: seed, perturbed: perturbed)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let ids = TOFU.recordIDs(b)
        let lines = try zip(b.questions, ids).map { q, id in
            String(decoding: try e.encode(["id": id, "text": q.text, "group": "tofu"]), as: UTF8.self)
        }
        var splits: [String: [String: [String]]] = [:]
        for pct in [1.0, 5.0, 10.0] {
            let who = TOFU.forgetPeople(b, percent: pct)
            splits["forget\(Int(pct))"] = ["people": who.sorted().map { b.people[$0] },
                                           "ids": zip(b.questions, ids).filter { who.contains($0.0.person) }.map(\.1)]
        }
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try write(lines.joined(separator: "\n") + "\n", "records.jsonl")
        try write(String(decoding: try e.encode(b), as: UTF8.self), "questions.json")
        try write(String(decoding: try e.encode(splits), as: UTF8.self), "splits.json")
        print("wrote \(b.questions.count) question records about \(people) fictitious people to \(out) (records.jsonl, questions.json, splits.json)")
    }

    private func write(_ text: String, _ name: String) throws {
        let path = (out as NSString).appendingPathComponent(name)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

struct TOFURunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tofu-run",
        abstract: "Run unlearning methods on a forget split of a TOFU-style benchmark ingested into a store.",
        discussion: """
        The store must hold DIR/records.jsonl (ingest with --holdout so utility and the calibrated attack \
        have a population). For each method: forget quality (KS p-value of the forget questions' truth \
        ratios against the exactly retrained model's), utility (retained people's answer probability), \
        holdout perplexity, calibrated membership AUC and likelihood gap with 95% intervals, verbatim \
        extraction rate, and seconds at deletion time. Methods: exact, none (no unlearning), ga, graddiff, \
        npo, filter, and dp (a DP-trained store's model, deletion deferred). The store is not changed.
        """)
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Benchmark directory written by `sisa benchmark tofu`.") var data: String
    @Option(help: "Forget split, percent of the people.") var split: Double = 5
    @Option(help: "Comma-separated methods.") var methods: String = "exact,none,ga,graddiff,npo,filter"
    @Option(help: "Unlearning steps of ga, graddiff and npo.") var steps: Int = 60
    @Option(help: "Learning rate of ga, graddiff and npo.") var lr: Float = 1e-4
    @Option(help: "Forget (and retain) sequences per unlearning step.") var batch: Int = 8
    @Option(help: "filter: window length in bytes.") var filterBytes: Int = OutputFilter.defaultWindowBytes
    @Option(help: "Seed of the bootstrap and the retained-question sample.") var seed: UInt64 = 0
    @Option(help: "Append the results as JSON lines to FILE.") var json: String?

    func run() throws {
        guard split > 0, split <= 100 else { throw ValidationError("--split must be in (0, 100]") }
        let ms = try methods.split(separator: ",").map { s -> TOFUMethod in
            guard let m = TOFUMethod(rawValue: String(s)) else {
                throw ValidationError("unknown method \(s) (\(TOFUMethod.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return m
        }
        let path = (data as NSString).appendingPathComponent("questions.json")
        guard let raw = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
        let b: TOFU.Benchmark
        do { b = try JSONDecoder().decode(TOFU.Benchmark.self, from: raw) } catch {
            throw ValidationError("\(path): not a benchmark written by this sisa's `sisa benchmark tofu` (regenerate it with the same --people and --seed, and ingest its records.jsonl into a new store): \(error)")
        }
        var o = CompareOptions()
        o.seed = seed
        o.unlearning.steps = steps
        o.unlearning.learningRate = lr
        o.unlearning.batch = batch
        o.unlearning.filterBytes = filterBytes
        o.evalEvery = max(1, steps)
        let store = try storeOptions.open()
        let results = try store.runTOFU(b, percent: split, methods: ms, options: o, log: { note($0) })
        print(TOFUReportCommand.table(results))
        if let json {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys]
            let lines = try results.map { String(decoding: try e.encode($0), as: UTF8.self) }.joined(separator: "\n") + "\n"
            if let h = FileHandle(forWritingAtPath: json) {
                h.seekToEndOfFile()
                h.write(Data(lines.utf8))
                h.closeFile()
            } else {
                try Data(lines.utf8).write(to: URL(fileURLWithPath: json))
            }
        }
    }
}

struct TOFUReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tofu-report",
        abstract: "Table (markdown) and plot (SVG: forget quality vs utility) of tofu-run results.",
        discussion: """
        Prints one row per run. When a split and method were run more than once (several seeds), \
        it then prints one row per split and method: each figure's mean and [min, max] over the runs, \
        and in how many runs TOFU's KS test tells the model from the exact one (forget quality < 0.05).
        """)
    @Argument(help: "JSON-lines files written by `tofu-run --json`.") var files: [String]
    @Option(help: "Write the SVG plot to FILE.") var plot: String?

    static func table(_ rs: [TOFUResult]) -> String {
        func ci(_ v: Double?, _ i: Interval?, _ f: String = "%.3f") -> String {
            guard let v else { return "-" }
            return String(format: f, v) + (i.map { String(format: " [" + f + ", " + f + "]", $0.low, $0.high) } ?? "")
        }
        var out = "| split | method | forget quality (TOFU) | truth ratio | forget quality (trained wording) | truth ratio | utility | holdout PPL | calibrated AUC [95% CI] | likelihood gap [95% CI] | extraction [95% CI] | seconds |\n"
        out += "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        for r in rs {
            out += "| \(String(format: "%g", r.split))% (\(r.forgetRecords) q) | \(r.method) | \(String(format: "%.3g", r.forgetQuality)) | "
                + String(format: "%.3f | ", r.meanTruthRatio)
                + "\(String(format: "%.3g", r.forgetQualityTrained)) | "
                + String(format: "%.3f | %.4f | %.3f | ", r.meanTruthRatioTrained, r.utility, r.holdoutPPL)
                + "\(ci(r.calibratedAUC, r.calibratedAUCCI)) | \(ci(r.likelihoodGap, r.likelihoodGapCI)) | "
                + "\(ci(r.extractionRate, r.extractionRateCI, "%.2f")) | \(String(format: "%.1f", r.seconds)) |\n"
        }
        return out
    }

    func run() throws {
        var rs: [TOFUResult] = []
        for f in files {
            guard let d = FileManager.default.contents(atPath: f) else { throw ValidationError("cannot read \(f)") }
            for (i, line) in String(decoding: d, as: UTF8.self).split(separator: "\n").enumerated() where !line.isEmpty {
                do { rs.append(try JSONDecoder().decode(TOFUResult.self, from: Data(line.utf8))) } catch {
                    throw ValidationError("\(f):\(i + 1): not a tofu-run result (\(error))")
                }
            }
        }
        print(Self.table(rs), terminator: "")
        let rows = TOFUSummary.rows(rs)
        if rows.contains(where: { $0.runs > 1 }) {
            print("\nOver runs (mean [min, max]):\n")
            print(TOFUSummary.table(rows), terminator: "")
        }
        if let plot { try Data(TOFUPlot.svg(rs).utf8).write(to: URL(fileURLWithPath: plot), options: .atomic) }
    }
}
