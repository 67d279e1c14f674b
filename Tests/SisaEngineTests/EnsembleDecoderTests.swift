import Foundation
import SisaEngine
import XCTest

/// Lock-step decoding of an ensemble's members over one frozen base: each
/// member's logits are, bit for bit, those of its own decoder.
final class EnsembleDecoderTests: XCTestCase {
    /// Wide enough that the head and gate|up products split by columns over two
    /// threads and cross panel boundaries (300 = 4 x 64 + 44); context 8, so
    /// the 20 tokens slide the window twice.
    static let config = LlamaConfiguration(layers: 2, dim: 32, heads: 4, kvHeads: 2, ffDim: 80, vocab: 300, context: 8,
                                           rmsEpsilon: 1e-5, ropeTheta: 10_000, tiedEmbeddings: false)

    /// Inference copies of one frozen base, with different adapters (the
    /// fourth with none), as a base store's shards are loaded.
    private func members(_ base: LlamaModel) throws -> [LlamaModel] {
        let targets = LlamaModel.loraTargets(base.config)
        let adapters: [LoRAAdapter?] = [
            try SmallModels.adapter(targets: targets, layers: base.config.layers, rank: 3, seed: 11),
            try SmallModels.adapter(targets: targets.filter { ["q", "v"].contains($0.name) }, layers: base.config.layers,
                                    rank: 5, seed: 12),
            try SmallModels.adapter(targets: targets, layers: base.config.layers, rank: 2, top: 1, seed: 13),
            nil,
        ] + (try (0..<5).map { k in try SmallModels.adapter(targets: targets, layers: base.config.layers, rank: 2, seed: 40 + UInt64(k)) })
        // Nine members: the S-row products span more than one register tile (6 or 8 rows).
        return adapters.map { a in
            let m = LlamaModel(sharing: base, pool: WorkerPool(threads: 1))
            if let a { m.attach(a) }
            return m
        }
    }

    func testLockstepMembersGetTheLogitsOfTheirOwnDecoders() throws {
        var rng = Xoshiro256(seed: 21)
        let ids = (0..<20).map { _ in Int32(rng.nextInt(below: Self.config.vocab)) }
        let settings: [(String, Kernels)] = Kernels.availablePaths.map { ($0.rawValue, Kernels($0)!) } + [("planned", Kernels.best)]
        for (path, kernels) in settings {
            let base = try LlamaModel(config: Self.config, trainable: false, pool: WorkerPool(threads: 2), kernels: kernels)
            SmallModels.randomize(base.weights, seed: 5)
            let ms = try members(base)
            // Each member alone: one decoder each, one row per product.
            let alone: [[[UInt32]]] = ms.map { m in
                let d = m.makeDecoder()
                return ids.map { d.feed($0).map(\.bitPattern) }
            }
            for threads in [1, 2] {
                let ens = EnsembleDecoder(models: ms, pool: WorkerPool(threads: threads))
                XCTAssertEqual(ens.lockstepMembers, ms.count, "\(path): one frozen base, so every member in lock-step")
                for (t, id) in ids.enumerated() {
                    let out = ens.feed(id)
                    XCTAssertEqual(out.count, ms.count)
                    for i in ms.indices {
                        XCTAssertTrue(out[i].map(\.bitPattern) == alone[i][t], "\(path), \(threads) threads, member \(i), token \(t)")
                    }
                }
            }
        }
    }

    /// Members that do not share a frozen base (a trainable model, another
    /// base, a GPT-2 base) decode alone, in member order, with the same logits.
    func testMembersOverOtherWeightsDecodeAlone() throws {
        let base = try LlamaModel(config: Self.config, trainable: false, pool: WorkerPool(threads: 1))
        SmallModels.randomize(base.weights, seed: 5)
        let ms = try members(base)
        let trainable = try LlamaModel(config: Self.config, trainable: true, pool: WorkerPool(threads: 1))
        SmallModels.randomize(trainable.weights, seed: 5)
        let other = try LlamaModel(config: Self.config, trainable: false, pool: WorkerPool(threads: 1))
        SmallModels.randomize(other.weights, seed: 6)
        let gpt2 = try SmallModels.gpt2Model(trainable: false, threads: 1)
        let models: [any LanguageModel] = [ms[0], trainable, ms[1], other, gpt2, ms[2]]
        let ens = EnsembleDecoder(models: models, pool: WorkerPool(threads: 2))
        XCTAssertEqual(ens.lockstepMembers, 3, "the three copies of one base")
        let alone = models.map { $0.makeDecoder() }
        for t in 0..<12 {
            let id = Int32(t * 7 % SmallModels.gpt2.vocab)
            let out = ens.feed(id)
            for i in models.indices {
                XCTAssertTrue(out[i].map(\.bitPattern) == alone[i].feed(id).map(\.bitPattern), "member \(i), token \(t)")
            }
        }
        XCTAssertFalse(SharedBase.shared([ms[0], other]))
        XCTAssertFalse(SharedBase.shared([trainable]))
        XCTAssertTrue(SharedBase.shared([ms[0], ms[3], ms[8]]))
    }

    /// GPT-2 bases too: copies of one frozen base with their own adapters
    /// (and one without), on every path, at one and two threads.
    func testGPT2LockstepMembersGetTheLogitsOfTheirOwnDecoders() throws {
        let config = GPT2Configuration(layers: 2, heads: 2, dim: 24, context: 8, vocab: 300)
        var rng = Xoshiro256(seed: 22)
        let ids = (0..<20).map { _ in Int32(rng.nextInt(below: config.vocab)) }
        let settings: [(String, Kernels)] = Kernels.availablePaths.map { ($0.rawValue, Kernels($0)!) } + [("planned", Kernels.best)]
        for (path, kernels) in settings {
            let base = try GPT2Model(config: config, kernels: kernels, trainable: false)
            SmallModels.randomize(base.weights, seed: 7)
            let targets = GPT2Model.loraTargets(config)
            let adapters: [LoRAAdapter?] = [
                try SmallModels.adapter(targets: targets, layers: config.layers, rank: 3, seed: 14),
                nil,
                try SmallModels.adapter(targets: targets, layers: config.layers, rank: 4, top: 1, seed: 15),
            ]
            let ms: [GPT2Model] = adapters.map { a in
                let m = GPT2Model(sharingParametersOf: base, pool: WorkerPool(threads: 1))
                if let a { m.attach(a) }
                return m
            }
            let alone: [[[UInt32]]] = ms.map { m in
                let d = m.makeDecoder()
                return ids.map { d.feed($0).map(\.bitPattern) }
            }
            for threads in [1, 2] {
                let ens = EnsembleDecoder(models: ms, pool: WorkerPool(threads: threads))
                XCTAssertEqual(ens.lockstepMembers, ms.count, "\(path)")
                for (t, id) in ids.enumerated() {
                    let out = ens.feed(id)
                    for i in ms.indices {
                        XCTAssertTrue(out[i].map(\.bitPattern) == alone[i][t], "\(path), \(threads) threads, member \(i), token \(t)")
                    }
                }
            }
            XCTAssertFalse(SharedBase.shared([ms[0], try GPT2Model(config: config, trainable: false)]))
        }
    }
}
