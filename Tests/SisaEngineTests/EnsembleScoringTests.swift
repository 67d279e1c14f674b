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

    func testLockstepScoresAreEachMembersOwn() throws {
        let c = EnsembleDecoderTests.config
        let seqs = sequences(vocab: c.vocab)
        let settings: [(String, Kernels)] = Kernels.availablePaths.map { ($0.rawValue, Kernels($0)!) } + [("planned", Kernels.best)]
        for (path, kernels) in settings {
            for threads in [1, 2] {
                let base = try LlamaModel(config: c, trainable: false, pool: WorkerPool(threads: threads), kernels: kernels)
                SmallModels.randomize(base.weights, seed: 5)
                let targets = LlamaModel.loraTargets(c)
                let adapters: [LoRAAdapter?] = [
                    try SmallModels.adapter(targets: targets, layers: c.layers, rank: 3, seed: 11),
                    nil,
                    try SmallModels.adapter(targets: targets.filter { ["q", "v", "down"].contains($0.name) }, layers: c.layers,
                                            rank: 5, seed: 12),
                ]
                let members: [LlamaModel] = adapters.map { a in
                    let m = LlamaModel(sharing: base, pool: WorkerPool(threads: threads))
                    if let a { m.attach(a) }
                    return m
                }
                // Batches of 3 windows, so the lock-step batches differ from the lone ones' too.
                let together = EnsembleScoring.score(members, sequences: seqs, perToken: true, batchSize: 3, pad: 0)
                for (i, m) in members.enumerated() {
                    let alone = m.score(sequences: seqs, perToken: true, batchSize: 16, pad: 0)
                    XCTAssertEqual(together[i].map(\.tokens), alone.map(\.tokens), "\(path), \(threads) threads, member \(i)")
                    XCTAssertTrue(bits(together[i]) == bits(alone), "\(path), \(threads) threads, member \(i)")
                    XCTAssertEqual(together[i].map { $0.nll.bitPattern }, alone.map { $0.nll.bitPattern })
                }
                XCTAssertEqual(together[0][0].tokens, 0, "a one-token sequence has nothing to score")
                XCTAssertNotEqual(bits(together[0]), bits(together[1]), "the adapters change the scores")
            }
        }
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
