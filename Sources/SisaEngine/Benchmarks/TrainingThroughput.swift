import Foundation

/// Training and scoring throughput of a model on random token batches (what
/// `sisa bench train --base` reports, and what shared/tools/torch_ref_llama.py
/// measures for PyTorch): warm-up steps, then timed optimizer steps, then
/// timed forward passes without gradients.
public enum TrainingThroughput {
    public struct Report: Codable, Sendable {
        public let tokensPerSecond: Double
        public let forwardTokensPerSecond: Double
        public let stepSeconds: Double
        public let forwardSeconds: Double
        public let loss: Double
        public let trainableParameters: Int
        public let parameters: Int
        /// Seconds per training step by kernel (when profiled).
        public let profile: [String: Double]?
        /// Seconds per forward pass (logits, no loss) by kernel (when profiled).
        public let forwardProfile: [String: Double]?
    }

    /// Random ids in 0..<vocab, seeded: B rows of T+1 tokens.
    public static func randomBatch(B: Int, T: Int, vocab: Int, rng: inout Xoshiro256) -> Batch {
        let rows = (0..<B).map { _ in (0...T).map { _ in Int32(rng.nextInt(below: vocab)) } }
        return Batch(rows: rows, T: T, pad: 0)
    }

    /// Trains `model` (its adapter, or its weights) with `optimizer` from `rng`.
    public static func measure(model: some LanguageModel, optimizer: OptimizerConfig, rng: Xoshiro256, batch B: Int, context T: Int,
                               steps: Int, profile: Bool = false, seed: UInt64 = 0) -> Report {
        measure(Trainer(model: model, optimizer: optimizer, rng: rng), batch: B, context: T, steps: steps, profile: profile, seed: seed)
    }

    public static func measure<M: LanguageModel>(_ trainer: Trainer<M>, batch B: Int, context T: Int, steps: Int,
                                                 warmup: Int = 2, forwardPasses: Int = 8, profile: Bool = false,
                                                 seed: UInt64 = 0) -> Report {
        let model = trainer.model
        var rng = Xoshiro256(seed: seed &+ 1)
        let V = model.vocabularySize
        for _ in 0..<warmup { trainer.step(randomBatch(B: B, T: T, vocab: V, rng: &rng)) }
        let profiler = Profiler()
        if profile { model.profiler = profiler }
        var loss = 0.0
        let batches = (0..<steps).map { _ in randomBatch(B: B, T: T, vocab: V, rng: &rng) }
        let t0 = DispatchTime.now().uptimeNanoseconds
        for b in batches { loss = trainer.step(b).loss }
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        model.profiler = nil
        // Logits only, no loss: what PyTorch's `model(ids)` computes in the reference.
        var probe = randomBatch(B: B, T: T, vocab: V, rng: &rng)
        probe.targets = [Int32](repeating: -1, count: B * T)
        model.forward(probe)
        var passes: [Double] = []
        for _ in 0..<forwardPasses {
            let f0 = DispatchTime.now().uptimeNanoseconds
            model.forward(probe)
            passes.append(Double(DispatchTime.now().uptimeNanoseconds - f0) * 1e-9)
        }
        let ft = passes.reduce(0, +) / Double(forwardPasses)
        var forwardProfile: [String: Double]?
        if profile {
            let p = Profiler()
            model.profiler = p
            for _ in 0..<2 { model.forward(probe) }
            model.profiler = nil
            forwardProfile = Dictionary(uniqueKeysWithValues: p.report.map { ($0.name, $0.seconds / 2) })
        }
        let tokens = Double(B * T)
        return Report(tokensPerSecond: tokens * Double(steps) / dt, forwardTokensPerSecond: tokens / ft,
                      stepSeconds: dt / Double(steps), forwardSeconds: ft, loss: loss,
                      trainableParameters: model.trainable.count, parameters: model.weights.count,
                      profile: profile ? Dictionary(uniqueKeysWithValues: profiler.report.map { ($0.name, $0.seconds / Double(steps)) }) : nil,
                      forwardProfile: forwardProfile)
    }

    /// Peak resident memory of this process so far, in bytes (getrusage).
    public static var peakResidentBytes: Int {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Int(u.ru_maxrss) * 1024
    }
}
