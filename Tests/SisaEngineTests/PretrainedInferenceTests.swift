import Foundation
import SisaEngine
import XCTest

/// Decoding with a key/value cache, scoring and training of the pretrained
/// families: the same bits as the batch forward, on every kernel path and
/// thread count.
final class PretrainedInferenceTests: XCTestCase {
    /// Feeding tokens one by one gives, bit for bit, the batch forward's logits at each position.
    private func checkDecoder(_ model: any LanguageModel, vocab: Int, T: Int) {
        var rng = Xoshiro256(seed: 4)
        let ids = (0..<T).map { _ in Int32(rng.nextInt(below: vocab)) }
        model.forward(Batch(B: 1, T: T, tokens: ids, targets: [Int32](repeating: -1, count: T)))
        let batch = model.withLastLogits { Array($0) }
        let d = model.makeDecoder()
        for (t, id) in ids.enumerated() {
            let step = Array(d.feed(id))
            XCTAssertEqual(step, Array(batch[(t * vocab)..<((t + 1) * vocab)]), "position \(t)")
        }
    }

    /// A frozen base packs its weights once for the forward products
    /// (`FrozenPanels`); a trainable model packs per call. Both give the same
    /// logits bit for bit: llama (separate and tied head) and GPT-2, at one and
    /// two threads, for a short batch (column-split products) and a long one
    /// (row-split), through an inference copy, and after the weights are
    /// re-initialised (the packed copy is dropped, not reused stale).
    func testFrozenWeightsPackedOnceGiveTheLogitsOfPackingPerCall() throws {
        func logits(_ m: any LanguageModel, _ b: Batch) -> [UInt32] {
            m.forward(b)
            return m.withLastLogits { $0.map(\.bitPattern) }
        }
        for threads in [1, 2] {
            let pairs: [(String, any LanguageModel, any LanguageModel)] = [
                ("llama", try SmallModels.llamaModel(SmallModels.llama, trainable: false, threads: threads),
                 try SmallModels.llamaModel(SmallModels.llama, trainable: true, threads: threads)),
                ("tied llama", try SmallModels.llamaModel(SmallModels.llamaTied, trainable: false, threads: threads),
                 try SmallModels.llamaModel(SmallModels.llamaTied, trainable: true, threads: threads)),
                ("gpt2", try SmallModels.gpt2Model(trainable: false, threads: threads),
                 try SmallModels.gpt2Model(trainable: true, threads: threads)),
            ]
            for (name, frozen, perCall) in pairs {
                let V = frozen.vocabularySize
                let short = SmallModels.batch(B: 1, T: 5, vocab: V, seed: 1), long = SmallModels.batch(B: 24, T: 24, vocab: V, seed: 2)
                for (what, b) in [("short", short), ("long", long)] {
                    XCTAssertEqual(logits(frozen, b), logits(perCall, b), "\(name), \(threads) threads, \(what) batch")
                }
                let copy = frozen.sharingWeights(pool: WorkerPool(threads: threads))
                XCTAssertEqual(logits(copy, long), logits(perCall, long), "\(name), inference copy")
                var r1 = Xoshiro256(seed: 8), r2 = Xoshiro256(seed: 8)
                if let f = frozen as? LlamaModel, let p = perCall as? LlamaModel { f.initialize(rng: &r1); p.initialize(rng: &r2) }
                if let f = frozen as? GPT2Model, let p = perCall as? GPT2Model { f.initialize(rng: &r1); p.initialize(rng: &r2) }
                XCTAssertEqual(logits(frozen, long), logits(perCall, long), "\(name), after re-initialising the weights")
            }
        }
    }

    func testLlamaDecoderEqualsBatchForward() throws {
        for c in [SmallModels.llama, SmallModels.llamaTied] {
            let m = try SmallModels.llamaModel(c, trainable: false)
            checkDecoder(m, vocab: c.vocab, T: 20)
            m.attach(try SmallModels.adapter(targets: LlamaModel.loraTargets(c), layers: c.layers))
            checkDecoder(m, vocab: c.vocab, T: 20)
        }
    }

    func testGPT2DecoderWithAdapterEqualsBatchForward() throws {
        let m = try SmallModels.gpt2Model(trainable: false)
        checkDecoder(m, vocab: SmallModels.gpt2.vocab, T: 20)
        m.attach(try SmallModels.adapter(targets: GPT2Model.loraTargets(SmallModels.gpt2), layers: SmallModels.gpt2.layers))
        checkDecoder(m, vocab: SmallModels.gpt2.vocab, T: 20)
    }

    /// Decoding a frozen base reads its packed panels; a trainable model's
    /// decoder multiplies row by row of the weights. Both give the same logits
    /// bit for bit, on every kernel path and with the products planned per
    /// shape (this CPU's tiles), with and without an adapter.
    func testFrozenDecoderOverPanelsEqualsTheRowByRowDecoder() throws {
        func decode(_ m: any LanguageModel, _ ids: [Int32]) -> [UInt32] {
            let d = m.makeDecoder()
            return ids.flatMap { d.feed($0).map(\.bitPattern) }
        }
        let settings: [(String, Kernels)] = Kernels.availablePaths.map { ($0.rawValue, Kernels($0)!) } + [("planned", Kernels.best)]
        for (path, kernels) in settings {
            func llama(_ c: LlamaConfiguration, trainable: Bool) throws -> LlamaModel {
                let m = try LlamaModel(config: c, trainable: trainable, pool: WorkerPool(threads: 2), kernels: kernels)
                SmallModels.randomize(m.weights, seed: 3)
                return m
            }
            let pairs: [(String, any LanguageModel, any LanguageModel)] = [
                ("llama", try llama(SmallModels.llama, trainable: false), try llama(SmallModels.llama, trainable: true)),
                ("tied llama", try llama(SmallModels.llamaTied, trainable: false), try llama(SmallModels.llamaTied, trainable: true)),
                ("gpt2", try GPT2Model(config: SmallModels.gpt2, kernels: kernels, trainable: false),
                 try GPT2Model(config: SmallModels.gpt2, kernels: kernels, trainable: true)),
            ]
            for (name, frozen, rowByRow) in pairs {
                if let f = frozen as? GPT2Model, let r = rowByRow as? GPT2Model {
                    SmallModels.randomize(f.weights, seed: 3)
                    SmallModels.randomize(r.weights, seed: 3)
                }
                var rng = Xoshiro256(seed: 6)
                let ids = (0..<12).map { _ in Int32(rng.nextInt(below: frozen.vocabularySize)) }
                XCTAssertEqual(decode(frozen, ids), decode(rowByRow, ids), "\(name) on \(path)")
                let targets = frozen is GPT2Model ? GPT2Model.loraTargets(SmallModels.gpt2)
                    : LlamaModel.loraTargets(name == "llama" ? SmallModels.llama : SmallModels.llamaTied)
                let layers = name == "gpt2" ? SmallModels.gpt2.layers : SmallModels.llama.layers
                for m in [frozen, rowByRow] { m.attach(try SmallModels.adapter(targets: targets, layers: layers)) }
                XCTAssertEqual(decode(frozen, ids), decode(rowByRow, ids), "\(name) on \(path), with an adapter")
            }
        }
    }

    /// A decoder past its window keeps the last half of the history, as the byte models' does.
    func testLlamaDecoderSlidesPastTheContext() throws {
        let c = SmallModels.llama
        let m = try LlamaModel(config: c, context: 8, trainable: false, pool: WorkerPool(threads: 1))
        SmallModels.randomize(m.weights, seed: 1)
        let d = m.makeDecoder()
        for t in 0..<20 { d.feed(Int32(t % c.vocab)) }
        XCTAssertEqual(d.history.count, 20)
        // Window 8: a full cache restarts from the last 4 tokens (the new one included),
        // at tokens 8, 13 and 18, so the last logits are a fresh decoder's after tokens 15..<20.
        let fresh = m.makeDecoder()
        var last: [Float] = []
        for t in 15..<20 { last = Array(fresh.feed(Int32(t % c.vocab))) }
        let again = m.makeDecoder()
        var out: [Float] = []
        for t in 0..<20 { out = Array(again.feed(Int32(t % c.vocab))) }
        XCTAssertEqual(out, last)
    }

    /// Scoring: the NLL of the tokens after the first; windows when a text is longer than the context.
    func testScoreIsTheMeanNLLAfterTheFirstToken() throws {
        let c = SmallModels.llama
        let m = try LlamaModel(config: c, context: 16, trainable: false, pool: WorkerPool(threads: 2))
        SmallModels.randomize(m.weights, seed: 2)
        var rng = Xoshiro256(seed: 5)
        let short = (0..<10).map { _ in Int32(rng.nextInt(below: c.vocab)) }
        let long = (0..<40).map { _ in Int32(rng.nextInt(below: c.vocab)) }
        let s = m.score(sequences: [short, long, [7]], perToken: true)
        let ref = ReferenceLlama(config: c, params: m.weights.values.array)
        let b = Batch(B: 1, T: 9, tokens: Array(short.prefix(9)), targets: Array(short.dropFirst()))
        XCTAssertEqual(s[0].tokens, 9)
        XCTAssertEqual(s[0].nll, ref.loss(b), accuracy: 1e-5)
        XCTAssertEqual(s[1].tokens, 39)
        XCTAssertEqual(s[1].tokenNLL?.count, 39)
        XCTAssertEqual(s[2].tokens, 0)
        XCTAssertTrue(s[2].nll.isNaN, "a single token has nothing to score")
    }

    /// A GPT-2 base with a working context under its position table's (`--ctx`) scores in
    /// windows of that context and decodes through it, as a llama base does.
    func testGPT2WorkingContextWindowsScoresAndDecoding() throws {
        let full = try SmallModels.gpt2Model(trainable: false)
        let c = SmallModels.gpt2
        XCTAssertEqual(full.context, c.context)
        let short = try GPT2Model(config: c, context: 8, pool: WorkerPool(threads: 2), trainable: false)
        short.params.copy(from: full.params)
        XCTAssertEqual(short.context, 8)
        XCTAssertThrowsError(try GPT2Model(config: c, context: c.context + 1, trainable: false))
        var rng = Xoshiro256(seed: 4)
        let seq = (0..<20).map { _ in Int32(rng.nextInt(below: c.vocab)) }
        let windowed = try XCTUnwrap(short.score(sequences: [seq], perToken: true)[0].tokenNLL)
        let whole = try XCTUnwrap(full.score(sequences: [seq], perToken: true)[0].tokenNLL)
        XCTAssertEqual(windowed.count, 19)
        // The first window (inputs 0..<8) scores targets 1...8 with all of their left context.
        for i in 0..<8 { XCTAssertEqual(windowed[i], whole[i], accuracy: 1e-6, "target \(i + 1)") }
        // The second scores targets 9...12 from inputs 4..<12 only, as a text starting at token 4 would.
        let tail = try XCTUnwrap(full.score(sequences: [Array(seq[4...12])], perToken: true)[0].tokenNLL)
        for i in 8..<12 { XCTAssertEqual(windowed[i], tail[i - 4], accuracy: 1e-6, "target \(i + 1)") }
        XCTAssertNotEqual(windowed[8], whole[8], "target 9 must lose tokens 0..<4 of context")
        // Decoding slides at the working context: after 20 tokens, a fresh decoder fed the last 5.
        let d = short.makeDecoder()
        var out: [Float] = []
        for t in seq { out = Array(d.feed(t)) }
        let fresh = short.makeDecoder()
        var last: [Float] = []
        for t in seq[15...] { last = Array(fresh.feed(t)) }
        XCTAssertEqual(out, last)
    }

    private func trainLoRA(threads: Int, kernels: KernelPath?, steps: Int = 3) throws -> (digest: String, moments: [Float]) {
        let c = SmallModels.llama
        let m = try SmallModels.llamaModel(c, trainable: false, threads: threads, kernels: kernels)
        let config = try LoRAConfiguration(rank: 4, alpha: 8, targets: ["q", "k", "v", "o", "gate", "up", "down"])
            .resolved(against: LlamaModel.loraTargets(c).map(\.name), layerCount: c.layers)
        let adapter = LoRAAdapter(config: config, targets: LlamaModel.loraTargets(c), layers: c.layers, gradients: true)
        var rng = Xoshiro256(seed: 11)
        adapter.initialize(rng: &rng)
        m.attach(adapter)
        var opt = OptimizerConfig()
        opt.learningRate = 1e-2
        opt.warmupSteps = 0
        let t = Trainer(model: m, optimizer: opt, rng: rng)
        for s in 0..<steps { t.step(SmallModels.batch(B: 3, T: 20, vocab: c.vocab, seed: UInt64(s))) }
        return (m.digest, t.optimizer.m.array + t.optimizer.v.array)
    }

    private func trainFull(threads: Int, kernels: KernelPath?, config c: LlamaConfiguration = SmallModels.llamaTied,
                           batch B: Int = 3) throws -> String {
        let m = try SmallModels.llamaModel(c, trainable: true, threads: threads, kernels: kernels)
        var opt = OptimizerConfig()
        opt.warmupSteps = 0
        let t = Trainer(model: m, optimizer: opt, rng: Xoshiro256(seed: 1))
        for s in 0..<3 { t.step(SmallModels.batch(B: B, T: 20, vocab: c.vocab, seed: UInt64(s))) }
        return m.digest
    }

    /// LoRA on a frozen llama, and full fine-tuning: the same bits on every path this CPU runs, at 1, 2 and 3 threads.
    func testLlamaTrainingGivesTheSameBitsOnEveryPathAndThreadCount() throws {
        let lora = try trainLoRA(threads: 1, kernels: .portable)
        let full = try trainFull(threads: 1, kernels: .portable)
        for path in Kernels.availablePaths {
            for threads in [1, 2, 3] where !(path == .portable && threads == 1) {
                let l = try trainLoRA(threads: threads, kernels: path)
                XCTAssertEqual(l.digest, lora.digest, "LoRA, \(path), \(threads) threads")
                XCTAssertEqual(l.moments, lora.moments, "LoRA moments, \(path), \(threads) threads")
                XCTAssertEqual(try trainFull(threads: threads, kernels: path), full, "full, \(path), \(threads) threads")
            }
        }
        print("llama LoRA digest after 3 steps on every path: \(lora.digest)")
    }

    /// Weight gradients wide enough to be cut among threads: q|k|v (128 outputs) and gate|up
    /// (384) by output rows, down (64 outputs of 192 inputs) by input columns, each cut
    /// at 1, 2 and 3 threads; every cut must give the one-thread bits.
    func testFullFineTuningGivesTheSameBitsWhereverWeightGradientsAreCut() throws {
        let c = LlamaConfiguration(layers: 1, dim: 64, heads: 4, kvHeads: 2, ffDim: 192, vocab: 67, context: 24,
                                   rmsEpsilon: 1e-5, ropeTheta: 10_000, tiedEmbeddings: false)
        let one = try trainFull(threads: 1, kernels: nil, config: c)
        for threads in [2, 3] {
            XCTAssertEqual(try trainFull(threads: threads, kernels: nil, config: c), one, "\(threads) threads")
        }
        // 26 rows of 20: products cut into row blocks sharing each packed weight (1 and 2
        // threads) or by columns (3 threads).
        let rows = try trainFull(threads: 1, kernels: nil, config: c, batch: 26)
        for threads in [2, 3] {
            XCTAssertEqual(try trainFull(threads: threads, kernels: nil, config: c, batch: 26), rows, "\(threads) threads, 520 rows")
        }
    }

    /// Training an adapter changes the adapter only: the base's weights keep their bits.
    func testLoRATrainingLeavesTheBaseUntouched() throws {
        let c = SmallModels.llama
        let m = try SmallModels.llamaModel(c, trainable: false)
        let before = m.weights.digest
        let adapter = LoRAAdapter(config: try LoRAConfiguration().resolved(against: LlamaModel.loraTargets(c).map(\.name), layerCount: c.layers),
                                  targets: LlamaModel.loraTargets(c), layers: c.layers, gradients: true)
        var rng = Xoshiro256(seed: 2)
        adapter.initialize(rng: &rng)
        m.attach(adapter)
        let initial = adapter.parameters.digest
        var opt = OptimizerConfig()
        opt.learningRate = 1e-2
        let t = Trainer(model: m, optimizer: opt, rng: rng)
        var losses: [Double] = []
        let b = SmallModels.batch(B: 4, T: 20, vocab: c.vocab, seed: 3)
        for _ in 0..<30 { losses.append(t.step(b).loss) }
        XCTAssertEqual(m.weights.digest, before)
        XCTAssertNotEqual(adapter.parameters.digest, initial)
        XCTAssertEqual(m.digest, adapter.parameters.digest, "a model's digest is its adapter's")
        XCTAssertLessThan(losses.last!, losses.first! - 0.5, "the adapter learns the batch: \(losses.first!) -> \(losses.last!)")
    }
}
