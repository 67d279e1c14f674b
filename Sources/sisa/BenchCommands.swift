import ArgumentParser
import Foundation
import SisaEngine

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the engine: training throughput and the matrix kernel's GFLOP/s.",
        subcommands: [BenchTrain.self, BenchPrivate.self, BenchGemm.self, BenchParityExport.self]
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
        let kernels = try Kernels.processDefault()
        let trainer = try Trainer(model: config, optimizer: opt, seed: seed, pool: pool, kernels: kernels)
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
                "kernels": kernels.path.rawValue, "digest": trainer.model.digest,
            ]
            if profile { obj["profile"] = Dictionary(uniqueKeysWithValues: profiler.report.map { ($0.name, $0.seconds / Double(steps)) }) }
            let d = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            print(String(decoding: d, as: UTF8.self))
        } else {
            print("model \(config) batch \(batch) threads \(pool.threads) kernels \(kernels): params=\(config.parameterCount) loss=\(String(format: "%.3f", loss)) tokens/s=\(Int(tps)) gflops=\(String(format: "%.1f", gflops))")
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
        abstract: "GFLOP/s of the engine's matrix kernel at the shapes of a training step.",
        discussion: """
        Times every distinct matrix product of one training step of the model (forward, input \
        gradients, weight gradients, attention), split over threads the way the engine splits it. \
        scripts/bench-gemm runs this for each kernel path and numpy (OpenBLAS, its fastest kernel) \
        on the same shapes. SISA_KERNELS chooses the path.
        """)

    @OptionGroup var model: ModelOptions
    @Option(help: "Sequences per batch (the products have batch x context rows).") var batch: Int = 16
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Option(help: "Seconds per timing (best of three is reported).") var seconds: Double = 0.2
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard batch >= 1, seconds > 0 else { throw ValidationError("--batch must be >= 1 and --seconds > 0") }
    }

    func run() throws {
        let config = try model.resolve()
        let kernels = try Kernels.processDefault()
        let pool = WorkerPool(threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
        let products = KernelBenchmark.trainingProducts(config: config, batch: batch)
        var rows: [GemmRow] = []
        for p in products {
            let g = KernelBenchmark.measure(p, kernels: kernels, pool: pool, minSeconds: seconds)
            rows.append(GemmRow(name: p.name, op: p.op, m: p.m, n: p.n, k: p.k, count: p.count, gflops: g))
            if !json {
                print(String(format: "%-18@ %@ m %5d n %5d k %5d x%-4d %7.1f GFLOP/s", p.name as NSString, p.op, p.m, p.n, p.k,
                             p.count, g))
            }
        }
        let totalFlops = products.reduce(0) { $0 + $1.flops }
        let totalTime = zip(products, rows).reduce(0) { $0 + $1.0.flops / ($1.1.gflops * 1e9) }
        let overall = totalFlops / totalTime / 1e9
        if json {
            try printJSON(GemmReport(kernels: kernels.path.rawValue, threads: pool.threads, model: config.description,
                                     batch: batch, products: rows, overallGflops: overall))
        } else {
            print(String(format: "all products of a step (%@, batch %d, %@ kernels, %d threads): %.1f GFLOP/s",
                         config.description, batch, kernels.path.rawValue, pool.threads, overall))
        }
    }

    struct GemmRow: Codable { let name: String; let op: String; let m, n, k, count: Int; let gflops: Double }
    struct GemmReport: Codable {
        let kernels: String
        let threads: Int
        let model: String
        let batch: Int
        let products: [GemmRow]
        /// Total FLOPs over total time: the step's matrix work at these rates.
        let overallGflops: Double
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
