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
        abstract: "Train on synthetic (or given) bytes, or a pretrained base on random tokens, and report tokens/s.",
        discussion: """
        Byte models: FLOPs per token use the usual estimate 6 x parameters + 12 x layers x context x dim, \
        the same formula as the PyTorch reference (shared/tools/torch_ref_gpt.py), so the \
        two can be compared side by side with the same --layers/--heads/--dim/--ctx/--batch/--threads.

        With --base PATH (a GGUF file or a Hugging Face folder): LoRA on a frozen base (the default) or \
        full fine-tuning, on batches of random token ids, as shared/tools/torch_ref_llama.py times \
        PyTorch with the same --batch/--ctx/--threads and adapter options. JSON: tokensPerSecond \
        (training), forwardTokensPerSecond (scoring, no gradients), kernels, peakMemoryBytes (peak RSS \
        of the process), trainable and total parameters, and with --profile seconds per step by kernel.
        """
    )

    @OptionGroup var model: ModelOptions
    @Option(help: "A pretrained base to train (a GGUF file or a Hugging Face folder) instead of a byte model.") var base: String?
    @OptionGroup var adapterOptions: AdapterOptions
    @Option(name: .customLong("batch"), help: "Sequences per batch (default 16; 8 with --base).") var batchOption: Int?
    @Option(name: .customLong("steps"), help: "Timed optimizer steps (default 30 after 3 warm-up steps; with --base 6 after 2).") var stepsOption: Int?
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Option(help: "Train on random windows of this file's bytes instead of random bytes.") var data: String?
    @Option(help: "Seed for initialisation and batches.") var seed: UInt64 = 0
    @Flag(help: "Print where the time goes, by kernel.") var profile = false
    @Flag(help: "Print one JSON object (tokensPerSecond, gflops, parameters, ...).") var json = false

    var batch: Int { batchOption ?? (base == nil ? 16 : 8) }
    var steps: Int { stepsOption ?? (base == nil ? 30 : 6) }

    func run() throws {
        guard batch >= 1, steps >= 1 else { throw ValidationError("--batch and --steps must be >= 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be >= 1") }
        if let base { return try runBase(base) }
        let config = try model.resolve()
        try checkFits(positions: config.context, vocab: config.vocab)
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

extension BenchTrain {
    /// Refuses a batch whose logits and their gradients alone (2 x rows x vocab
    /// floats) would not fit in this machine's memory, before anything is allocated.
    func checkFits(positions: Int, vocab: Int) throws {
        let (rows, o1) = batch.multipliedReportingOverflow(by: positions)
        let (bytes, o2) = rows.multipliedReportingOverflow(by: 8 * vocab)
        let memory = ProcessInfo.processInfo.physicalMemory
        guard o1 || o2 || UInt64(bytes) > memory else { return }
        throw ValidationError(String(format: "--batch %d x %d positions needs more than %.1f GB for the logits and their gradients alone (%d ids); this machine has %.1f GB",
                                     batch, positions, o1 || o2 ? .infinity : Double(bytes) / 1e9, vocab, Double(memory) / 1e9))
    }

    func runBase(_ path: String) throws {
        guard model.preset == nil, model.layers == nil, model.heads == nil, model.dim == nil else {
            throw ValidationError("--preset, --layers, --heads and --dim describe byte models; a base brings its own shape")
        }
        guard data == nil else { throw ValidationError("--data applies to byte models; a base trains on random token ids") }
        let config: BaseModel.Configuration
        do { config = try BaseModel.configuration(at: URL(fileURLWithPath: path)) } catch let e as EngineError { throw ValidationError("\(e)") }
        let ctx = model.ctx ?? min(config.context, 128)
        guard ctx >= 2, ctx <= config.context else { throw ValidationError("--ctx must be between 2 and the model's \(config.context)") }
        let lora = try adapterOptions.lora(for: config)
        try checkFits(positions: ctx, vocab: config.vocab)
        let pool = WorkerPool(threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
        let b = try loadBase(path, context: ctx, trainable: lora == nil, pool: pool)
        var rng = Xoshiro256(seed: seed)
        if let lora {
            let adapter = LoRAAdapter(config: lora, targets: config.loraTargets, layers: config.layers, gradients: true)
            adapter.initialize(rng: &rng)
            switch b.model {
            case let m as LlamaModel: m.attach(adapter)
            case let m as GPT2Model: m.attach(adapter)
            default: fatalError("unreachable")
            }
        }
        var opt = OptimizerConfig()
        opt.learningRate = 1e-4
        opt.warmupSteps = 0
        let report = TrainingThroughput.measure(model: b.model, optimizer: opt, rng: rng, batch: batch, context: ctx,
                                                steps: steps, profile: profile, seed: seed)
        let kernels = b.model.kernels.path.rawValue
        let what = lora.map { "\($0)" } ?? "full fine-tuning"
        if json {
            try printJSON(BaseBenchReport(base: path, architecture: config.architecture.rawValue, adapter: lora == nil ? "full" : "lora",
                                          lora: lora, batch: batch, ctx: ctx, steps: steps, threads: pool.threads, kernels: kernels,
                                          peakMemoryBytes: TrainingThroughput.peakResidentBytes, report: report))
        } else {
            print(String(format: "%@, %@: batch %d ctx %d threads %d kernels %@: train %.0f tokens/s (%.2f s/step), forward %.0f tokens/s, loss %.3f, peak RSS %.0f MB",
                         (path as NSString).lastPathComponent, what, batch, ctx, pool.threads, kernels, report.tokensPerSecond,
                         report.stepSeconds, report.forwardTokensPerSecond, report.loss, Double(TrainingThroughput.peakResidentBytes) / 1e6))
            for (title, profile) in [("per training step", report.profile), ("per forward pass", report.forwardProfile)] {
                guard let p = profile else { continue }
                let total = p.values.reduce(0, +)
                print("\(title), by kernel (ms):")
                for (name, s) in p.sorted(by: { $0.value > $1.value }) {
                    print(String(format: "  %-18@ %8.2f  %5.1f%%", name as NSString, s * 1000, 100 * s / total))
                }
            }
        }
    }

    struct BaseBenchReport: Encodable {
        let base: String
        let architecture: String
        let adapter: String
        let lora: LoRAConfiguration?
        let batch, ctx, steps, threads: Int
        let kernels: String
        let peakMemoryBytes: Int
        let report: TrainingThroughput.Report

        enum CodingKeys: String, CodingKey {
            case base, architecture, adapter, lora, batch, ctx, steps, threads, kernels, peakMemoryBytes
        }

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(base, forKey: .base)
            try c.encode(architecture, forKey: .architecture)
            try c.encode(adapter, forKey: .adapter)
            try c.encodeIfPresent(lora, forKey: .lora)
            try c.encode(batch, forKey: .batch)
            try c.encode(ctx, forKey: .ctx)
            try c.encode(steps, forKey: .steps)
            try c.encode(threads, forKey: .threads)
            try c.encode(kernels, forKey: .kernels)
            try c.encode(peakMemoryBytes, forKey: .peakMemoryBytes)
            try report.encode(to: encoder)
        }
    }
}

struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "GFLOP/s of the engine's matrix kernel at the shapes of a training step, against the machine's peak.",
        discussion: """
        Times every distinct matrix product of one training step of the model (forward, input \
        gradients, weight gradients, attention), split over threads the way the engine splits it, \
        and the machine's fused multiply-add peak (12 independent vector FMA chains per thread, on \
        every thread). Each product shows its share of that peak and, with the products tuned per \
        shape (the default; SISA_KERNELS forces one path), the path and blocking chosen for it. \
        With --base PATH the shapes are the base's (LoRA's forward and input gradients, full \
        fine-tuning's weight gradients; op NTp is a forward product over a frozen weight packed \
        once, as a base under LoRA runs it, NT the same product packing per call). Attention's six products run as the layer runs \
        them: m x n x k is one (batch, head) pair's whole product, computed in 32-row blocks over the lower triangle against \
        operands packed once per head (or per group), and GFLOP/s count the FLOPs computed (JSON: flops). scripts/bench-gemm \
        runs this for each kernel path and numpy (OpenBLAS, its fastest kernel) on the same shapes.
        """)

    @OptionGroup var model: ModelOptions
    @Option(help: "Take the shapes of this pretrained llama base (a GGUF file or a Hugging Face folder).") var base: String?
    @Option(help: "Sequences per batch (the products have batch x context rows; default 16, 8 with --base).") var batch: Int?
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Option(help: "Seconds per timing (best of three is reported).") var seconds: Double = 0.2
    @Flag(help: "Also time every candidate path, register tile and blocking the planner chooses from (k-block, column block, and how far apart the rows of a transposed A may be to be read in place), at every shape.") var candidates = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard (batch ?? 1) >= 1, seconds > 0 else { throw ValidationError("--batch must be >= 1 and --seconds > 0") }
        if let threads, threads < 1 { throw ValidationError("--threads must be >= 1") }
    }

    func run() throws {
        let kernels = try Kernels.processDefault()
        let pool = WorkerPool(threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
        let products: [KernelBenchmark.Product], label: String, B: Int
        if let base {
            guard case .llama(let c) = try BaseModel.configuration(at: URL(fileURLWithPath: base)) else {
                throw ValidationError("--base: only llama shapes are listed")
            }
            B = batch ?? 8
            let T = model.ctx ?? min(c.context, 128)
            products = KernelBenchmark.trainingProducts(llama: c, batch: B, context: T)
            label = "\((base as NSString).lastPathComponent) ctx \(T)"
        } else {
            let config = try model.resolve()
            B = batch ?? 16
            products = KernelBenchmark.trainingProducts(config: config, batch: B)
            label = config.description
        }
        let peak = KernelBenchmark.peakGFLOPS(pool: pool)
        var rows: [GemmRow] = []
        for p in products {
            let g = KernelBenchmark.measure(p, kernels: kernels, pool: pool, minSeconds: seconds)
            let choice = KernelBenchmark.plan(of: p, kernels: kernels)?.description
            var alternatives: [String: Double]?
            if candidates, let planner = kernels.planner {
                alternatives = [:]
                for c in planner.candidates {
                    alternatives![c.description] = KernelBenchmark.measure(p, kernels: kernels.forcing(c), pool: pool, minSeconds: seconds)
                }
            }
            rows.append(GemmRow(name: p.name, op: p.op, m: p.m, n: p.n, k: p.k, count: p.count, flops: p.flops, gflops: g,
                                shareOfPeak: g / peak.gflops, choice: choice, candidates: alternatives))
            if !json {
                print(String(format: "%-18@ %@ m %5d n %5d k %5d x%-4d %7.1f GFLOP/s %5.1f%% of peak  %@", p.name as NSString, p.op, p.m, p.n, p.k,
                             p.count, g, 100 * g / peak.gflops, (choice ?? "") as NSString))
                if let alternatives {
                    print("    " + alternatives.sorted { $0.value > $1.value }.map { String(format: "%@ %.1f", $0.key as NSString, $0.value) }
                        .joined(separator: ", "))
                }
            }
        }
        let totalFlops = products.reduce(0) { $0 + $1.flops }
        let totalTime = zip(products, rows).reduce(0) { $0 + $1.0.flops / ($1.1.gflops * 1e9) }
        let overall = totalFlops / totalTime / 1e9
        if json {
            try printJSON(GemmReport(kernels: kernels.description, threads: pool.threads, model: label, batch: B, peakGflops: peak.gflops,
                                     peakPath: peak.path.rawValue, products: rows, overallGflops: overall))
        } else {
            print(String(format: "machine peak: %.1f GFLOP/s (12 %@ FMA chains per thread, %d threads)", peak.gflops,
                         peak.path.rawValue as NSString, pool.threads))
            print(String(format: "all products of a step (%@, batch %d, %@ kernels, %d threads): %.1f GFLOP/s, %.1f%% of peak",
                         label, B, kernels.description, pool.threads, overall, 100 * overall / peak.gflops))
        }
    }

    struct GemmRow: Codable {
        let name: String; let op: String; let m, n, k, count: Int
        /// FLOPs computed per step (attention: its row blocks over the lower triangle only).
        let flops: Double
        let gflops: Double
        let shareOfPeak: Double
        /// Path and blocking the planner chooses for this shape (absent when a path is forced).
        let choice: String?
        /// GFLOP/s of every candidate (with --candidates).
        let candidates: [String: Double]?
    }
    struct GemmReport: Codable {
        let kernels: String
        let threads: Int
        let model: String
        let batch: Int
        let peakGflops: Double
        let peakPath: String
        let products: [GemmRow]
        /// Total FLOPs over total time: the step's matrix work at these rates.
        let overallGflops: Double
    }
}

struct BenchParityExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parity-export",
        abstract: "Train a model briefly, export it as a Hugging Face GPT-2 folder, and write the engine's logits for a probe text (probe.json) so scripts/hf-parity can compare them with transformers.",
        discussion: """
        With --base PATH nothing is trained or exported: the base's tokenizer cuts the probe text (at \
        most --ctx tokens) and DIR receives probe.json (the ids, the vocabulary size, the engine's NLL) \
        and logits.f32 (little-endian float32 [tokens, vocabulary]), for scripts/hf-parity --base.
        """)

    @OptionGroup var model: ModelOptions
    @Option(help: "A pretrained base (a GGUF file or a Hugging Face folder) whose logits to write.") var base: String?
    @Option(help: "Training steps before export.") var steps: Int = 50
    @Option(help: "Text to train on (default: random bytes).") var data: String?
    @Option(help: "Probe text whose logits are written.") var probe: String = "Exactly forgotten, cheaply: SISA."
    @Argument(help: "Output folder.") var dir: String

    func run() throws {
        if let base { return try exportBase(base) }
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

extension BenchParityExport {
    func exportBase(_ path: String) throws {
        let config = try BaseModel.configuration(at: URL(fileURLWithPath: path))
        let T = model.ctx ?? min(config.context, 128)
        let b = try loadBase(path, context: T)
        let ids = Array(b.tokenizer.encode(probe).prefix(T))
        guard ids.count >= 2 else { throw ValidationError("the probe text has fewer than two tokens") }
        let nll = b.model.forward(Batch(B: 1, T: ids.count, tokens: ids, targets: Array(ids.dropFirst()) + [-1]))
        let url = URL(fileURLWithPath: dir)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try b.model.withLastLogits { Data(buffer: $0) }.write(to: url.appendingPathComponent("logits.f32"))
        let obj: [String: Any] = ["tokens": ids.map(Int.init), "vocab": b.model.vocabularySize, "nll": nll, "base": path]
        try JSONSerialization.data(withJSONObject: obj).write(to: url.appendingPathComponent("probe.json"))
        print("wrote the logits of \(ids.count) tokens under \((path as NSString).lastPathComponent) to \(dir)")
    }
}
