import ArgumentParser
import Foundation
import SisaCoordinator
import SisaEngine

/// `sisa bench dp`: what per-record clipping and noise cost per step.
struct BenchPrivate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dp",
        abstract: "Time DP-SGD steps against ordinary steps on the same sampled records.",
        discussion: """
        Each step samples records by Poisson sampling at rate batch/records, as a DP store does. Three \
        loops over the same sequence of samples: ordinary steps on the records' rows (no clipping, no \
        noise), DP-SGD steps (activations-only pass with per-record norms, weighted backward, noise), \
        and, for scale, the ordinary store step on --batch random windows of full context. Reports steps/s \
        and the DP cost ratio.
        """)

    @OptionGroup var model: ModelOptions
    @Option(help: "Mean records per step.") var batch: Int = 16
    @Option(help: "Timed steps per loop (after 3 warm-up steps).") var steps: Int = 30
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Option(help: "Records file (any `sisa ingest` format; default: the fortunes corpus if installed, else random records of 40-300 bytes).") var data: String?
    @Option(help: "Clipping norm.") var clip: Double = 1
    @Option(help: "Noise multiplier.") var noise: Double = 1
    @Option(help: "Repeat the three loops this many times (interleaved rounds).") var rounds: Int = 1
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Flag(help: "Print one JSON object per round.") var json = false

    func run() throws {
        let config = try model.resolve()
        guard batch >= 1, steps >= 1, rounds >= 1 else { throw ValidationError("--batch, --steps and --rounds must be >= 1") }
        let pool = WorkerPool(threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
        var rng = Xoshiro256(seed: seed)
        var texts: [[UInt8]]
        let fortunes = "/usr/share/games/fortunes/fortunes"
        if let path = data ?? (FileManager.default.fileExists(atPath: fortunes) ? fortunes : nil) {
            texts = try RecordParser.parse(path: path, format: path == fortunes ? .fortune : .auto).map(\.text)
        } else {
            texts = (0..<2000).map { _ in (0..<(40 + rng.nextInt(below: 261))).map { _ in UInt8(rng.nextInt(below: 256)) } }
        }
        guard texts.count >= batch else { throw ValidationError("need at least --batch records, got \(texts.count)") }
        let records = texts.map { [ByteTokenizer.endOfText] + $0.map(Int32.init) + [ByteTokenizer.endOfText] }
        let q = Double(batch) / Double(records.count)
        let samples: [[[Int32]]] = (0..<(steps + 3)).map { _ in records.filter { _ in rng.nextDouble() < q } }
        var opt = OptimizerConfig()
        opt.learningRate = 3e-4
        opt.warmupSteps = 0
        let T = config.context
        func timed(_ body: (ByteTrainer, Int) -> Void) throws -> Double {
            let t = try Trainer(model: config, optimizer: opt, seed: seed, pool: pool)
            for s in 0..<3 { body(t, s) }
            let t0 = DispatchTime.now().uptimeNanoseconds
            for s in 3..<(steps + 3) { body(t, s) }
            return Double(steps) / (Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        let meanRows = samples.dropFirst(3).map { RecordBatch(records: $0, T: T).batch.B }.reduce(0, +) / steps
        let meanTokens = samples.dropFirst(3).map { $0.reduce(0) { $0 + $1.count - 1 } }.reduce(0, +) / steps
        let corpus = records.flatMap { $0.dropLast() }
        guard corpus.count > T + 1 else { throw ValidationError("the records hold fewer than context+1 tokens in all") }
        for round in 1...rounds {
            let plain = try timed { t, s in
                var b = RecordBatch(records: samples[s], T: T).batch
                b.weights = nil
                if b.B > 0 { t.step(b) }
            }
            let dp = try timed { t, s in
                t.privateStep(records: samples[s], clip: clip, noise: noise, expectedRecords: Double(batch), noiseSeed: UInt64(s))
            }
            var wr = Xoshiro256(seed: seed &+ 1)
            let windows = try timed { t, _ in
                let rows = (0..<batch).map { _ -> [Int32] in
                    let o = wr.nextInt(below: corpus.count - T - 1)
                    return Array(corpus[o..<(o + T + 1)])
                }
                t.step(Batch(rows: rows, T: T))
            }
            if json {
                let obj: [String: Any] = ["round": round, "dpStepsPerSecond": dp, "plainStepsPerSecond": plain,
                                          "windowStepsPerSecond": windows, "ratio": plain / dp, "ratioToWindows": windows / dp,
                                          "meanRows": meanRows, "meanTokens": meanTokens, "batch": batch,
                                          "threads": pool.threads, "model": config.description]
                print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print(String(format: "round %d  model %@  records/step %d (mean %d rows, %d tokens)  threads %d", round,
                             config.description, batch, meanRows, meanTokens, pool.threads))
                print(String(format: "  ordinary step on the same records: %7.2f steps/s", plain))
                print(String(format: "  DP-SGD step (clip + noise):        %7.2f steps/s   cost ratio %.2fx", dp, plain / dp))
                print(String(format: "  ordinary store step (%d windows):  %7.2f steps/s   ratio %.2fx", batch, windows, windows / dp))
            }
        }
    }
}
