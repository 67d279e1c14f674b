import ArgumentParser
import Foundation
import SisaEngine

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the engine: training throughput and the sgemm ceiling.",
        subcommands: [BenchTrain.self, BenchGemm.self, BenchParityExport.self]
    )
}

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train on synthetic (or given) bytes and report tokens/s, GFLOP/s and parameter count.",
        discussion: """
        FLOPs per token use the usual estimate 6 x parameters + 12 x layers x context x dim, \
        the same formula as the PyTorch reference (shared/tools/torch_ref_gpt.py), so the \
        two can be compared side by side with the same --layers/--heads/--dim/--ctx/--batch/--threads.
        """
    )

    @OptionGroup var model: ModelOptions
    @Option(help: "Sequences per batch.") var batch: Int = 16
    @Option(help: "Timed optimizer steps (after 3 warm-up steps).") var steps: Int = 30
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Option(help: "Train on random windows of this file's bytes instead of random bytes.") var data: String?
    @Option(help: "Seed for initialisation and batches.") var seed: UInt64 = 0
    @Flag(help: "Print where the time goes, by kernel.") var profile = false
    @Flag(help: "Print one JSON object (tokensPerSecond, gflops, parameters, ...).") var json = false

    func run() throws {
        let config = try model.resolve()
        guard batch >= 1, steps >= 1 else { throw ValidationError("--batch and --steps must be >= 1") }
        let pool = WorkerPool(threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
        var opt = OptimizerConfig()
        opt.learningRate = 3e-4
        opt.warmupSteps = 0
        opt.weightDecay = 0
        let trainer = try Trainer(model: config, optimizer: opt, seed: seed, pool: pool)
        let T = config.context
        var raw: [UInt8]
        if let data {
            guard let d = FileManager.default.contents(atPath: data) else { throw ValidationError("cannot read \(data)") }
            raw = [UInt8](d)
            guard raw.count > T + 1 else { throw ValidationError("\(data) holds fewer than context+1 bytes") }
        } else {
            raw = (0..<1_000_000).map { _ in UInt8(truncatingIfNeeded: trainer.rng.next()) }
        }
        var rng = Xoshiro256(seed: seed &+ 1)
        func nextBatch() -> Batch {
            var rows: [[Int32]] = []
            for _ in 0..<batch {
                let s = rng.nextInt(below: raw.count - T - 1)
                rows.append(raw[s..<(s + T + 1)].map { Int32($0) })
            }
            return Batch(rows: rows, T: T)
        }
        for _ in 0..<3 { trainer.step(nextBatch()) }
        let profiler = Profiler()
        if profile { trainer.model.profiler = profiler }
        var loss = 0.0
        let t0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<steps { loss = trainer.step(nextBatch()).loss }
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        let tokens = Double(steps * batch * T)
        let tps = tokens / dt
        let gflops = config.trainingFLOPsPerToken * tps / 1e9
        if json {
            var obj: [String: Any] = [
                "tokensPerSecond": tps, "gflops": gflops, "parameters": config.parameterCount,
                "layers": config.layers, "heads": config.heads, "dim": config.dim, "ctx": config.context,
                "batch": batch, "steps": steps, "threads": pool.threads, "seconds": dt, "loss": loss,
            ]
            if profile { obj["profile"] = Dictionary(uniqueKeysWithValues: profiler.report.map { ($0.name, $0.seconds / Double(steps)) }) }
            let d = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            print(String(decoding: d, as: UTF8.self))
        } else {
            print("model \(config) batch \(batch) threads \(pool.threads): params=\(config.parameterCount) loss=\(String(format: "%.3f", loss)) tokens/s=\(Int(tps)) gflops=\(String(format: "%.1f", gflops))")
            if profile {
                let total = profiler.report.reduce(0) { $0 + $1.seconds }
                print("per step, by kernel (ms):")
                for (name, s) in profiler.report {
                    print(String(format: "  %-18@ %8.2f  %5.1f%%", name as NSString, s * 1000 / Double(steps), 100 * s / total))
                }
                print(String(format: "  %-18@ %8.2f  (wall %.2f)", "sum" as NSString, total * 1000 / Double(steps), dt * 1000 / Double(steps)))
            }
        }
    }
}

struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "The OpenBLAS sgemm ceiling on this machine (square products, GFLOP/s).")

    @Option(help: "Matrix size n for n x n x n products.") var size: Int = 1024
    @Option(help: "Repetitions.") var reps: Int = 10
    @Option(help: "Threads: the engine's way (fixed row blocks over a worker pool).") var threads: Int?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let n = size
        let pool = WorkerPool(threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
        let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
        var rng = Xoshiro256(seed: 1)
        for i in 0..<(n * n) { a[i] = Float(rng.nextDouble()); b[i] = Float(rng.nextDouble()) }
        let parts = max(1, n / 128)
        func once() {
            pool.run(parts: parts) { part, _ in
                let r = partRange(part, of: parts, total: n)
                BLAS.gemm(m: r.count, n: n, k: n, a: a.pointer + r.lowerBound * n, lda: n, b: b.pointer, ldb: n,
                          c: c.pointer + r.lowerBound * n, ldc: n)
            }
        }
        once()
        let t0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<reps { once() }
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        let gflops = 2 * Double(n) * Double(n) * Double(n) * Double(reps) / dt / 1e9
        if json {
            print("{\"size\":\(n),\"threads\":\(pool.threads),\"gflops\":\(gflops)}")
        } else {
            print("sgemm \(n)^3 on \(pool.threads) thread(s) [\(BLAS.coreName)]: \(String(format: "%.1f", gflops)) GFLOP/s")
        }
    }
}

struct BenchParityExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parity-export",
        abstract: "Train a model briefly, export it as a Hugging Face GPT-2 folder, and write the engine's logits for a probe text (probe.json) so scripts/hf-parity can compare them with transformers.")

    @OptionGroup var model: ModelOptions
    @Option(help: "Training steps before export.") var steps: Int = 50
    @Option(help: "Text to train on (default: random bytes).") var data: String?
    @Option(help: "Probe text whose logits are written.") var probe: String = "Exactly forgotten, cheaply: SISA."
    @Argument(help: "Output folder.") var dir: String

    func run() throws {
        let config = try model.resolve(defaultPreset: "nano")
        let trainer = try Trainer(model: config, optimizer: OptimizerConfig(), seed: 1)
        let raw: [UInt8] = try data.map { path in
            guard let d = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
            return [UInt8](d)
        } ?? (0..<100_000).map { _ in UInt8(truncatingIfNeeded: trainer.rng.next()) }
        var rng = Xoshiro256(seed: 2)
        let T = config.context
        for _ in 0..<steps {
            let rows: [[Int32]] = (0..<8).map { _ in
                let s = rng.nextInt(below: raw.count - T - 1)
                return raw[s..<(s + T + 1)].map { Int32($0) }
            }
            trainer.step(Batch(rows: rows, T: T))
        }
        let url = URL(fileURLWithPath: dir)
        try HuggingFace.export(trainer.model, to: url)
        let toks = Array(recordTokens(Array(probe.utf8)).prefix(T))
        trainer.model.forward(Batch(B: 1, T: toks.count, tokens: toks, targets: [Int32](repeating: -1, count: toks.count)))
        let logits = trainer.model.withLastLogits { Array($0) }
        let obj: [String: Any] = ["tokens": toks.map(Int.init), "logits": logits.map(Double.init), "vocab": config.vocab,
                                  "digest": trainer.model.digest]
        try JSONSerialization.data(withJSONObject: obj).write(to: url.appendingPathComponent("probe.json"))
        print("exported \(config) (digest \(trainer.model.digest.prefix(16))...) to \(dir)")
    }
}
