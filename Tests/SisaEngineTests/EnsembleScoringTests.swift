import Foundation
import SisaEngine
import XCTest

/// Lock-step scoring of an ensemble's members over one frozen base: each
/// member's scores are, bit for bit, those it gives alone.
final class EnsembleScoringTests: XCTestCase {
    /// Sequences of many lengths: one token (nothing to score), shorter than
    /// the context, and longer (sliding windows); context 8.
    private func sequences(vocab: Int) -> [[Int32]] {
        var rng = Xoshiro256(seed: 31)
        return [1, 2, 5, 9, 30, 7, 17].map { n in (0..<n).map { _ in Int32(rng.nextInt(below: vocab)) } }
    }

    private func bits(_ s: [RecordScore]) -> [[UInt32]] { s.map { ($0.tokenNLL ?? []).map(\.bitPattern) } }

    /// Five members over one base: each member's lock-step scores equal its
    /// scores alone at one thread, for lock-step at one and two threads, in
    /// batches of 3 windows and of 16 (5 x 16 windows x 8 tokens: the base's
    /// products split by rows, with group boundaries inside a block).
    func testLockstepScoresAreEachMembersOwn() throws {
        let c = EnsembleDecoderTests.config
        var rng = Xoshiro256(seed: 32)
        let seqs = sequences(vocab: c.vocab) + (0..<30).map { _ in (0..<9).map { _ in Int32(rng.nextInt(below: c.vocab)) } }
        let settings: [(String, Kernels)] = Kernels.availablePaths.map { ($0.rawValue, Kernels($0)!) } + [("planned", Kernels.best)]
        let targets = LlamaModel.loraTargets(c)
        let adapters: [LoRAAdapter?] = [
            try SmallModels.adapter(targets: targets, layers: c.layers, rank: 3, seed: 11),
            nil,
            try SmallModels.adapter(targets: targets.filter { ["q", "v", "down"].contains($0.name) }, layers: c.layers,
                                    rank: 5, seed: 12),
            try SmallModels.adapter(targets: targets, layers: c.layers, rank: 2, top: 1, seed: 13),
            try SmallModels.adapter(targets: targets, layers: c.layers, rank: 4, seed: 16),
        ]
        for (path, kernels) in settings {
            func members(threads: Int) throws -> [LlamaModel] {
                let base = try LlamaModel(config: c, trainable: false, pool: WorkerPool(threads: threads), kernels: kernels)
                SmallModels.randomize(base.weights, seed: 5)
                return adapters.map { a in
                    let m = LlamaModel(sharing: base, pool: WorkerPool(threads: threads))
                    if let a { m.attach(a) }
                    return m
                }
            }
            let alone = try members(threads: 1).map { bits($0.score(sequences: seqs, perToken: true, pad: 0)) }
            for threads in [1, 2] {
                let ms = try members(threads: threads)
                for batchSize in [3, 16] {
                    let together = EnsembleScoring.score(ms, sequences: seqs, perToken: true, batchSize: batchSize, pad: 0)
                    for i in ms.indices {
                        XCTAssertTrue(bits(together[i]) == alone[i], "\(path), \(threads) threads, batch \(batchSize), member \(i)")
                    }
                    XCTAssertEqual(together[0][0].tokens, 0, "a one-token sequence has nothing to score")
                    // A logits cap of two windows of 8 x 300 per forward: passes of two adapters, one window each.
                    let capped = ms[0].score(sequences: seqs, adapters: ms.map(\.adapter), perToken: true, batchSize: batchSize,
                                             maxLogits: 2 * 8 * 300)
                    for i in ms.indices { XCTAssertTrue(bits(capped[i]) == alone[i], "\(path), capped, member \(i)") }
                    XCTAssertNotEqual(bits(together[0]), bits(together[1]), "the adapters change the scores")
                }
            }
        }
    }

    /// A model that led a lock-step forward trains afterwards as if it never
    /// had: the same loss and adapter gradients, bit for bit, as a fresh copy.
    func testATrainingStepAfterALockstepForwardIsUnchanged() throws {
        let c = EnsembleDecoderTests.config
        let base = try LlamaModel(config: c, trainable: false, pool: WorkerPool(threads: 2))
        SmallModels.randomize(base.weights, seed: 5)
        func trainable() throws -> LlamaModel {
            let m = LlamaModel(sharing: base, pool: WorkerPool(threads: 2))
            m.attach(try SmallModels.adapter(targets: LlamaModel.loraTargets(c), layers: c.layers, rank: 3, seed: 11))
            return m
        }
        let led = try trainable(), fresh = try trainable()
        let other = LlamaModel(sharing: base, pool: WorkerPool(threads: 1))
        other.attach(try SmallModels.adapter(targets: LlamaModel.loraTargets(c), layers: c.layers, rank: 6, seed: 12))
        _ = EnsembleScoring.score([led, other], sequences: sequences(vocab: c.vocab), perToken: true)
        let batch = SmallModels.batch(B: 4, T: 8, vocab: c.vocab, seed: 3)
        var grads: [[UInt32]] = []
        var losses: [UInt64] = []
        for m in [led, fresh] {
            let a = m.adapter!
            a.parameters.gradients!.pointer.update(repeating: 0, count: a.parameters.count)
            losses.append(m.forward(batch, gradients: true).bitPattern)
            m.backward()
            grads.append(UnsafeBufferPointer(start: a.parameters.gradients!.pointer, count: a.parameters.count).map(\.bitPattern))
        }
        XCTAssertEqual(losses[0], losses[1])
        XCTAssertTrue(grads[0] == grads[1], "adapter gradients after a lock-step forward")
        XCTAssertTrue(grads[0].contains { $0 != 0 })
    }

    /// Members over other weights (another base, a trainable model, GPT-2)
    /// score alone; every member's result is in its place.
    func testMixedMembersScoreInTheirPlaces() throws {
        let c = EnsembleDecoderTests.config
        let seqs = sequences(vocab: 61)
        let base = try LlamaModel(config: c, trainable: false, pool: WorkerPool(threads: 2))
        SmallModels.randomize(base.weights, seed: 5)
        let copy = LlamaModel(sharing: base, pool: WorkerPool(threads: 2))
        copy.attach(try SmallModels.adapter(targets: LlamaModel.loraTargets(c), layers: c.layers, rank: 2, seed: 3))
        let other = try LlamaModel(config: c, trainable: true, pool: WorkerPool(threads: 2))
        SmallModels.randomize(other.weights, seed: 6)
        let gpt2 = try SmallModels.gpt2Model(trainable: false)
        let models: [any LanguageModel] = [gpt2, base, other, copy]
        let together = EnsembleScoring.score(models, sequences: seqs, perToken: true)
        for (i, m) in models.enumerated() {
            XCTAssertTrue(bits(together[i]) == bits(m.score(sequences: seqs, perToken: true)), "member \(i)")
        }
    }

    /// GPT-2 bases too, on every path, at one and two threads.
    func testGPT2LockstepScoresAreEachMembersOwn() throws {
        let config = GPT2Configuration(layers: 2, heads: 2, dim: 24, context: 8, vocab: 300)
        let seqs = sequences(vocab: config.vocab)
        let settings: [(String, Kernels)] = Kernels.availablePaths.map { ($0.rawValue, Kernels($0)!) } + [("planned", Kernels.best)]
        for (path, kernels) in settings {
            for threads in [1, 2] {
                let base = try GPT2Model(config: config, pool: WorkerPool(threads: threads), kernels: kernels, trainable: false)
                SmallModels.randomize(base.weights, seed: 7)
                let targets = GPT2Model.loraTargets(config)
                let adapters: [LoRAAdapter?] = [
                    nil,
                    try SmallModels.adapter(targets: targets, layers: config.layers, rank: 3, seed: 14),
                    try SmallModels.adapter(targets: targets, layers: config.layers, rank: 4, top: 1, seed: 15),
                ]
                let members: [GPT2Model] = adapters.map { a in
                    let m = GPT2Model(sharingParametersOf: base, pool: WorkerPool(threads: threads))
                    if let a { m.attach(a) }
                    return m
                }
                let together = EnsembleScoring.score(members, sequences: seqs, perToken: true, batchSize: 3, pad: 0)
                for (i, m) in members.enumerated() {
                    let alone = m.score(sequences: seqs, perToken: true, pad: 0)
                    XCTAssertTrue(bits(together[i]) == bits(alone), "\(path), \(threads) threads, member \(i)")
                }
                XCTAssertNotEqual(bits(together[0]), bits(together[1]), "the adapters change the scores")
            }
        }
    }
}
