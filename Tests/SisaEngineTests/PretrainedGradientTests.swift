import Foundation
import SisaEngine
import XCTest

/// Small llama and GPT-2 models with random weights of a generic size
/// (no near-zero gradients), shared by the gradient, decoder and
/// determinism tests of the pretrained families.
enum SmallModels {
    static let llama = LlamaConfiguration(layers: 2, dim: 32, heads: 4, kvHeads: 2, ffDim: 48, vocab: 67, context: 24,
                                          rmsEpsilon: 1e-5, ropeTheta: 10_000, tiedEmbeddings: false)
    static let llamaTied = LlamaConfiguration(layers: 2, dim: 24, heads: 2, kvHeads: 1, headDim: 12, ffDim: 40, vocab: 53,
                                              context: 24, rmsEpsilon: 1e-6, ropeTheta: 500_000,
                                              ropeScaling: .init(type: "llama3", factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4,
                                                                 originalContext: 8),
                                              tiedEmbeddings: true)
    static let gpt2 = GPT2Configuration(layers: 2, heads: 2, dim: 24, context: 24, vocab: 61)

    /// Matrices N(0, std), gains 1 + N(0, 0.3), biases N(0, 0.1).
    static func randomize(_ p: ParameterSet, seed: UInt64, std: Double = 0.2) {
        var rng = Xoshiro256(seed: seed)
        for t in p.tensors {
            let v = p.values.pointer + t.offset
            for i in 0..<t.count {
                if t.shape.count == 2 {
                    v[i] = Float(rng.nextGaussian() * std)
                } else if t.name.hasSuffix("bias") {
                    v[i] = Float(rng.nextGaussian() * 0.1)
                } else {
                    v[i] = Float(1 + rng.nextGaussian() * 0.3)
                }
            }
        }
    }

    static func llamaModel(_ c: LlamaConfiguration = llama, trainable: Bool, threads: Int = 2, kernels: KernelPath? = nil,
                           seed: UInt64 = 3) throws -> LlamaModel {
        let m = try LlamaModel(config: c, trainable: trainable, pool: WorkerPool(threads: threads), kernels: kernels.map { Kernels($0)! })
        randomize(m.weights, seed: seed)
        return m
    }

    static func gpt2Model(trainable: Bool, threads: Int = 2, seed: UInt64 = 3) throws -> GPT2Model {
        let m = try GPT2Model(config: gpt2, pool: WorkerPool(threads: threads), trainable: trainable)
        randomize(m.weights, seed: seed)
        return m
    }

    /// An adapter on every target, with random A and B (an initialised B is zero, which hides A's gradient).
    static func adapter(targets: [LoRATarget], layers: Int, rank: Int = 3, top: Int? = nil, seed: UInt64 = 9) throws -> LoRAAdapter {
        let config = try LoRAConfiguration(rank: rank, alpha: 6, targets: targets.map(\.name), layers: top)
            .resolved(against: targets.map(\.name), layerCount: layers)
        let a = LoRAAdapter(config: config, targets: targets, layers: layers, gradients: true)
        var rng = Xoshiro256(seed: seed)
        for i in 0..<a.parameters.count { a.parameters.values[i] = Float(rng.nextGaussian() * 0.3) }
        return a
    }

    /// Random rows with a few ignored targets.
    static func batch(B: Int, T: Int, vocab: Int, seed: UInt64) -> Batch {
        var rng = Xoshiro256(seed: seed)
        let rows = (0..<B).map { _ in (0...T).map { _ in Int32(rng.nextInt(below: vocab)) } }
        var b = Batch(rows: rows, T: T, pad: 0)
        b.targets[3] = -1
        return b
    }
}

/// Finite differences in Float64 (ReferenceLlama, ReferenceGPT with LoRA)
/// against the engine's analytical Float32 gradients, tensor by tensor.
final class PretrainedGradientTests: XCTestCase {
    /// Directional derivative over each tensor plus its three largest entries, as GradientCheckTests does.
    private func check(tensors: [ParameterTensor], grads: [Float], values: [Double], h: Double = 1e-4,
                       loss: ([Double]) -> Double, file: StaticString = #filePath, line: UInt = #line) {
        var rng = Xoshiro256(seed: 99)
        var worst = 0.0
        func fd(_ range: Range<Int>, _ d: [Double]) -> Double {
            var plus = values, minus = values
            for (k, i) in range.enumerated() { plus[i] += h * d[k]; minus[i] -= h * d[k] }
            return (loss(plus) - loss(minus)) / (2 * h)
        }
        for t in tensors {
            let range = t.offset..<(t.offset + t.count)
            let g = range.map { Double(grads[$0]) }
            let gnorm = g.reduce(0) { $0 + $1 * $1 }.squareRoot()
            XCTAssertGreaterThan(gnorm, 0, "\(t.name) has an all-zero gradient", file: file, line: line)
            var d = range.map { _ in rng.nextGaussian() }
            let dn = d.reduce(0) { $0 + $1 * $1 }.squareRoot()
            d = d.map { $0 / dn }
            var checks = [(zip(g, d).reduce(0) { $0 + $1.0 * $1.1 }, fd(range, d), "direction")]
            for i in g.indices.sorted(by: { abs(g[$0]) > abs(g[$1]) }).prefix(3) {
                var e = [Double](repeating: 0, count: g.count)
                e[i] = 1
                checks.append((g[i], fd(range, e), "element \(i)"))
            }
            for (a, f, what) in checks {
                let err = abs(a - f)
                worst = max(worst, err / (abs(f) + 1e-4 * gnorm))
                XCTAssertLessThanOrEqual(err, 5e-4 * abs(f) + 1e-4 * gnorm, "\(t.name) \(what): analytic \(a) vs finite difference \(f)",
                                         file: file, line: line)
            }
        }
        print("gradient check (\(tensors.count) tensors): worst relative error \(worst)")
    }

    func testLlamaLossMatchesFloat64Reference() throws {
        for c in [SmallModels.llama, SmallModels.llamaTied] {
            let m = try SmallModels.llamaModel(c, trainable: false)
            let b = SmallModels.batch(B: 2, T: 20, vocab: c.vocab, seed: 5)
            let ref = ReferenceLlama(config: c, params: m.weights.values.array)
            XCTAssertEqual(m.forward(b), ref.loss(b), accuracy: 1e-5 * ref.loss(b), "\(c)")
        }
    }

    func testLlamaGradientsOfEveryTensorMatchFiniteDifferences() throws {
        for c in [SmallModels.llama, SmallModels.llamaTied] {
            let m = try SmallModels.llamaModel(c, trainable: true)
            let b = SmallModels.batch(B: 2, T: 16, vocab: c.vocab, seed: 7)
            m.forward(b, gradients: true)
            m.backward()
            var ref = ReferenceLlama(config: c, params: m.weights.values.array)
            check(tensors: m.layout.tensors, grads: m.weights.gradients!.array, values: ref.p) { v in
                ref.p = v
                return ref.loss(b)
            }
        }
    }

    /// The base is frozen: it has no gradient buffer, and only the adapter's A and B get gradients
    /// (on every layer, and on the top layer alone, where the backward stops early).
    func testLlamaLoRAGradientsOnEveryTargetMatchFiniteDifferences() throws {
        let c = SmallModels.llama
        for top in [nil, 1] as [Int?] {
            let m = try SmallModels.llamaModel(c, trainable: false)
            let adapter = try SmallModels.adapter(targets: LlamaModel.loraTargets(c), layers: c.layers, top: top)
            m.attach(adapter)
            XCTAssertNil(m.weights.gradients)
            XCTAssertEqual(Set(adapter.slots.map(\.target.name)), ["q", "k", "v", "o", "gate", "up", "down"])
            let b = SmallModels.batch(B: 2, T: 16, vocab: c.vocab, seed: 8)
            m.forward(b, gradients: true)
            m.backward()
            var ref = ReferenceLlama(config: c, params: m.weights.values.array, lora: adapter)
            check(tensors: adapter.parameters.tensors, grads: adapter.parameters.gradients!.array, values: ref.lora!.q) { v in
                ref.lora!.q = v
                return ref.loss(b)
            }
        }
    }

    func testGPT2LoRAGradientsOnEveryTargetMatchFiniteDifferences() throws {
        let c = SmallModels.gpt2
        let m = try SmallModels.gpt2Model(trainable: false)
        let adapter = try SmallModels.adapter(targets: GPT2Model.loraTargets(c), layers: c.layers)
        m.attach(adapter)
        let b = SmallModels.batch(B: 2, T: 16, vocab: c.vocab, seed: 8)
        m.forward(b, gradients: true)
        m.backward()
        var ref = ReferenceGPT(config: c, params: m.params.array, lora: adapter)
        XCTAssertEqual(m.forward(b), ref.loss(b), accuracy: 1e-5 * ref.loss(b))
        m.forward(b, gradients: true)
        m.backward()
        check(tensors: adapter.parameters.tensors, grads: adapter.parameters.gradients!.array, values: ref.lora!.q) { v in
            ref.lora!.q = v
            return ref.loss(b)
        }
    }

    /// A fresh adapter (B = 0) leaves the base's outputs unchanged, bit for bit,
    /// and `--lora-layers K` adapts the top K blocks only.
    func testFreshAdapterIsTheIdentityAndTopLayersOnly() throws {
        let c = SmallModels.llama
        let m = try SmallModels.llamaModel(c, trainable: false)
        let b = SmallModels.batch(B: 2, T: 12, vocab: c.vocab, seed: 2)
        m.forward(b)
        let before = m.withLastLogits { Array($0) }
        let config = try LoRAConfiguration(rank: 4, alpha: 8, targets: ["v", "q"], layers: 1)
            .resolved(against: LlamaModel.loraTargets(c).map(\.name), layerCount: c.layers)
        XCTAssertEqual(config.targets, ["q", "v"], "targets in the family's order")
        let adapter = LoRAAdapter(config: config, targets: LlamaModel.loraTargets(c), layers: c.layers, gradients: true)
        var rng = Xoshiro256(seed: 1)
        adapter.initialize(rng: &rng)
        XCTAssertEqual(Set(adapter.slots.map(\.layer)), [c.layers - 1])
        m.attach(adapter)
        m.forward(b)
        XCTAssertEqual(m.withLastLogits { Array($0) }, before)
        XCTAssertThrowsError(try LoRAConfiguration(targets: ["attn"]).resolved(against: LlamaModel.loraTargets(c).map(\.name), layerCount: 2)) {
            XCTAssertTrue("\($0)".contains("'attn' is not a projection"), "\($0)")
        }
    }
}
