import Foundation

/// A Llama-family model: weights in one flat buffer (`LlamaLayout`), an
/// optional LoRA adapter over them, explicit forward and backward passes.
///
///   x = E[tokens]                                           [B, T, C]
///   per block:  h1 = rmsnorm(x) · w_attn
///               q|k|v = h1 Wqkvᵀ (+ LoRA)                   [B, T, H·hs | Hkv·hs | Hkv·hs]
///               q, k = rope(q), rope(k)
///               y = attention(q, k, v)                      [B, T, H·hs]
///               x2 = x + y Woᵀ (+ LoRA)
///               h2 = rmsnorm(x2) · w_mlp
///               gate|up = h2 Wguᵀ (+ LoRA)                  [B, T, 2F]
///               x' = x2 + (silu(gate) ⊙ up) Wdᵀ (+ LoRA)
///   logits = rmsnorm(x_L) · w_norm · Eᵀ (or lm_headᵀ)       [B, T, V]
///
/// The weights get gradients only when built `trainable` (full fine-tuning);
/// a frozen base passes activation gradients through to its adapter.
public final class LlamaModel: LanguageModel {
    public let config: LlamaConfiguration
    public let layout: LlamaLayout
    public let weights: ParameterSet
    public private(set) var adapter: LoRAAdapter?
    public let pool: WorkerPool
    public let kernels: Kernels
    public var profiler: Profiler?
    /// The working context: the longest row this instance takes.
    public let context: Int
    let rope: RotaryTable
    /// The frozen weights packed for the forward products (nil when the weights train).
    let frozenPanels: FrozenPanels?
    private var acts: LlamaActivations?
    /// The adapter (or, in a lock-step forward, the adapters) on the forward's rows.
    private var lora = LoRARowGroups()

    public var architecture: ModelArchitecture { .llama }
    public var vocabularySize: Int { config.vocab }

    /// The products LoRA targets add to.
    enum Product: Int { case qkv = 0, o, gateUp, down }

    /// A model with zero weights (a loader or `initialize` fills them).
    /// `context` defaults to the configuration's, capped at 4096 positions.
    public init(config: LlamaConfiguration, context: Int? = nil, trainable: Bool, pool: WorkerPool = .shared,
                kernels: Kernels? = nil) throws {
        try config.validate()
        let ctx = context ?? min(config.context, 4096)
        guard ctx >= 2, ctx <= config.context else {
            throw EngineError.invalidConfig("context \(ctx) must be between 2 and the model's \(config.context)")
        }
        self.config = config
        self.context = ctx
        self.kernels = try kernels ?? Kernels.processDefault()
        self.pool = pool
        layout = LlamaLayout(config)
        // Trained weights and their gradients on large pages (FloatBuffer.init), frozen ones not.
        weights = ParameterSet(values: FloatBuffer(count: layout.count, largePages: trainable),
                               gradients: trainable ? FloatBuffer(count: layout.count, largePages: true) : nil,
                               tensors: layout.tensors)
        rope = RotaryTable(config: config, positions: ctx)
        frozenPanels = trainable ? nil : FrozenPanels()
    }

    /// An inference instance over `other`'s weights and adapter values (shared,
    /// never written), with its own activations and `pool`.
    public init(sharing other: LlamaModel, pool: WorkerPool) {
        config = other.config
        context = other.context
        kernels = other.kernels
        layout = other.layout
        weights = ParameterSet(values: other.weights.values, gradients: nil, tensors: other.weights.tensors)
        adapter = other.adapter?.sharingValues()
        rope = other.rope
        frozenPanels = other.frozenPanels
        self.pool = pool
    }

    /// The projections LoRA may adapt, in order.
    public static func loraTargets(_ c: LlamaConfiguration) -> [LoRATarget] {
        let C = c.dim, F = c.ffDim
        return [
            LoRATarget(name: "q", inFeatures: C, outFeatures: c.qWidth, product: Product.qkv.rawValue, column: 0, module: "self_attn.q_proj"),
            LoRATarget(name: "k", inFeatures: C, outFeatures: c.kvWidth, product: Product.qkv.rawValue, column: c.qWidth, module: "self_attn.k_proj"),
            LoRATarget(name: "v", inFeatures: C, outFeatures: c.kvWidth, product: Product.qkv.rawValue, column: c.qWidth + c.kvWidth,
                       module: "self_attn.v_proj"),
            LoRATarget(name: "o", inFeatures: c.qWidth, outFeatures: C, product: Product.o.rawValue, column: 0, module: "self_attn.o_proj"),
            LoRATarget(name: "gate", inFeatures: C, outFeatures: F, product: Product.gateUp.rawValue, column: 0, module: "mlp.gate_proj"),
            LoRATarget(name: "up", inFeatures: C, outFeatures: F, product: Product.gateUp.rawValue, column: F, module: "mlp.up_proj"),
            LoRATarget(name: "down", inFeatures: F, outFeatures: C, product: Product.down.rawValue, column: 0, module: "mlp.down_proj"),
        ]
    }

    /// Attaches an adapter built for this model's targets.
    public func attach(_ adapter: LoRAAdapter) {
        precondition(adapter.fits(targets: loraTargets, layers: config.layers), "adapter for another model")
        self.adapter = adapter
        lora.reset()
    }

    /// Llama's initialisation for a model trained from scratch (tests): N(0, 0.02)
    /// matrices and embedding, unit RMSNorm gains.
    public func initialize(rng: inout Xoshiro256) {
        frozenPanels?.removeAll()
        for t in layout.tensors {
            let p = weights.values.pointer + t.offset
            if t.shape.count == 2 {
                for i in 0..<t.count { p[i] = Float(rng.nextGaussian() * 0.02) }
            } else {
                p.update(repeating: 1, count: t.count)
            }
        }
    }

    @inline(__always)
    private func timed(_ name: String, _ body: () -> Void) {
        if let profiler { profiler.measure(name, body) } else { body() }
    }

    private func activations(B: Int, T: Int, training: Bool) -> LlamaActivations {
        if let a = acts, a.capacity >= B, a.T == T, a.training == training || (a.training && !training) {
            a.B = B
            return a
        }
        acts = nil  // release before allocating the next
        let a = LlamaActivations(config: config, B: B, T: T, threads: pool.threads, training: training)
        acts = a
        return a
    }

    private var attentionShape: (Int, Int) -> AttentionShape {
        let c = config
        return { B, T in
            AttentionShape(B: B, T: T, heads: c.heads, kvHeads: c.kvHeads, headSize: c.headDim, stride: c.qkvWidth,
                           kOffset: c.qWidth, vOffset: c.qWidth + c.kvWidth, yStride: c.qWidth)
        }
    }

    // MARK: forward

    @discardableResult
    public func forward(_ batch: Batch, gradients: Bool, gradScale: Float?) -> Double {
        forward(batch, gradients: gradients, gradScale: gradScale, members: nil)
    }

    /// The forward pass of several adapters over this model's frozen base at
    /// once (scoring an ensemble's shards): `batch` holds S equal groups of
    /// rows, group i run with `adapters[i]` (nil: the base alone). Every base
    /// product runs once over all S·B rows, reading the base once; each
    /// row's results are those of a forward with its group's adapter alone,
    /// bit for bit (no operation mixes rows of different sequences). The
    /// losses (`lastTokenLosses`) come in the batch's row order. Inference
    /// only: no backward follows.
    @discardableResult
    public func forward(_ batch: Batch, adapters: [LoRAAdapter?]) -> Double {
        forward(batch, gradients: false, gradScale: nil, members: adapters)
    }

    private func forward(_ batch: Batch, gradients: Bool, gradScale: Float?, members: [LoRAAdapter?]?) -> Double {
        let B = batch.B, T = batch.T
        precondition(T >= 1 && T <= context, "sequence length \(T) exceeds context \(context)")
        let a = activations(B: B, T: T, training: gradients)
        let c = config, C = c.dim, F = c.ffDim, V = c.vocab, BT = B * T, W = c.qkvWidth
        let P = weights.values.pointer
        for i in 0..<BT {
            let tok = batch.tokens[i], tgt = batch.targets[i]
            precondition(tok >= 0 && Int(tok) < V && Int(tgt) < V && tgt >= -1, "token id out of range")
            a.tokens[i] = tok
            a.targets[i] = tgt
        }
        // This model's adapter on every row, or one group of rows per member.
        if let members {
            lora.useMembers(members, B: B, T: T, targets: loraTargets, layers: config.layers)
        } else {
            lora.useOwn(adapter, rows: BT)
        }
        timed("embedding fwd") {
            Embedding.forward(x: a.stream(0).pointer, tokens: a.tokens, wte: P + layout.embed, wpe: nil, B: B, T: T, C: C, pool: pool)
        }
        for l in 0..<c.layers {
            let w = layout.blocks[l], L = a.layer(l)
            let x = a.stream(l).pointer, out = a.stream(l + 1).pointer
            timed("rmsnorm fwd") {
                RMSNorm.forward(out: L.h1.pointer, rstd: L.r1.pointer, x: x, w: P + w.attnNorm, M: BT, C: C, eps: c.rmsEpsilon,
                                kernels: kernels, pool: pool)
            }
            timed("matmul fwd") {
                project(out: L.qkv.pointer, inp: L.h1.pointer, weight: w.qkv, M: BT, K: C, N: W)
            }
            adapt(.qkv, layer: l, x: L.h1.pointer, ldx: C, y: L.qkv.pointer, ldy: W)
            timed("rope fwd") {
                RotaryEmbedding.forward(L.qkv.pointer, stride: W, heads: c.heads, headSize: c.headDim, M: BT, T: T, table: rope,
                                        kernels: kernels, pool: pool)
                RotaryEmbedding.forward(L.qkv.pointer + c.qWidth, stride: W, heads: c.kvHeads, headSize: c.headDim, M: BT, T: T,
                                        table: rope, kernels: kernels, pool: pool)
            }
            timed("attention fwd") {
                Attention.forward(y: L.atty.pointer, att: L.att.pointer, qkv: L.qkv.pointer, shape: attentionShape(B, T),
                                  kernels: kernels, pool: pool)
            }
            timed("matmul fwd") {
                project(out: L.x2.pointer, inp: L.atty.pointer, weight: w.o, M: BT, K: c.qWidth, N: C)
            }
            adapt(.o, layer: l, x: L.atty.pointer, ldx: c.qWidth, y: L.x2.pointer, ldy: C)
            timed("residual fwd") { Residual.add(L.x2.pointer, x, count: BT * C, pool: pool) }
            timed("rmsnorm fwd") {
                RMSNorm.forward(out: L.h2.pointer, rstd: L.r2.pointer, x: L.x2.pointer, w: P + w.mlpNorm, M: BT, C: C,
                                eps: c.rmsEpsilon, kernels: kernels, pool: pool)
            }
            timed("matmul fwd") {
                project(out: L.gu.pointer, inp: L.h2.pointer, weight: w.gateUp, M: BT, K: C, N: 2 * F)
            }
            adapt(.gateUp, layer: l, x: L.h2.pointer, ldx: C, y: L.gu.pointer, ldy: 2 * F)
            timed("swiglu fwd") { SwiGLU.forward(out: L.act.pointer, gu: L.gu.pointer, M: BT, F: F, kernels: kernels, pool: pool) }
            timed("matmul fwd") {
                project(out: out, inp: L.act.pointer, weight: w.down, M: BT, K: F, N: C)
            }
            adapt(.down, layer: l, x: L.act.pointer, ldx: F, y: out, ldy: C)
            timed("residual fwd") { Residual.add(out, L.x2.pointer, count: BT * C, pool: pool) }
        }
        timed("rmsnorm fwd") {
            RMSNorm.forward(out: a.hf.pointer, rstd: a.rf.pointer, x: a.stream(c.layers).pointer, w: P + layout.norm, M: BT, C: C,
                            eps: c.rmsEpsilon, kernels: kernels, pool: pool)
        }
        timed("head fwd") {
            if let p = panels(layout.head, K: C, N: V) {
                Projection.forward(out: a.logits.pointer, inp: a.hf.pointer, panels: p, M: BT, kernels: kernels, pool: pool)
            } else {
                Head.forward(logits: a.logits.pointer, x: a.hf.pointer, wte: P + layout.head, M: BT, C: C, V: V, kernels: kernels, pool: pool)
            }
        }
        var loss = 0.0
        timed("softmax-xent fwd") {
            loss = CrossEntropy.batchLoss(logits: a.logits.pointer, losses: a.losses.pointer, targets: a.targets, batch: batch, V: V,
                                          gradients: gradients, gradScale: gradScale, kernels: kernels, pool: pool)
        }
        return loss
    }

    /// out[M, N] = inp[M, K] · Wᵀ for the weight [N, K] at `offset`: from its
    /// panels when the weights are frozen, packing per call otherwise.
    private func project(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight offset: Int, M: Int, K: Int, N: Int) {
        if let p = panels(offset, K: K, N: N) {
            Projection.forward(out: out, inp: inp, panels: p, M: M, kernels: kernels, pool: pool)
        } else {
            Projection.forward(out: out, inp: inp, w: weights.values.pointer + offset, M: M, K: K, N: N, kernels: kernels, pool: pool)
        }
    }

    /// The frozen weight [N, K] at `offset` as panels of its transpose (nil when the weights train).
    func panels(_ offset: Int, K: Int, N: Int) -> PackedPanels? {
        frozenPanels?.panels(weights.values.pointer, offset: offset, transB: true, k: K, n: N, kernels: kernels)
    }

    /// Adds the adapters' updates to product `product` of layer `layer`, each to its rows.
    private func adapt(_ product: Product, layer: Int, x: UnsafePointer<Float>, ldx: Int, y: UnsafeMutablePointer<Float>, ldy: Int) {
        guard !lora.isEmpty else { return }
        timed("lora fwd") {
            lora.forward(product: product.rawValue, layer: layer, x: x, ldx: ldx, y: y, ldy: ldy, kernels: kernels, pool: pool)
        }
    }

    /// Gradients of the adapter's updates on product `product`, dx accumulated into (when given).
    private func adaptBackward(_ product: Product, layer: Int, x: UnsafePointer<Float>, ldx: Int, dy: UnsafePointer<Float>,
                               ldy: Int, dx: UnsafeMutablePointer<Float>?, M: Int, weightGradients: Bool) {
        guard let acts = lora.ownActivations else { return }
        timed("lora bwd") {
            acts.backward(product: product.rawValue, layer: layer, x: x, ldx: ldx, dy: dy, ldy: ldy, dx: dx, M: M,
                          weightGradients: weightGradients, kernels: kernels, pool: pool)
        }
    }

    public var lastTokenLosses: [Float] {
        guard let a = acts else { return [] }
        return Array(UnsafeBufferPointer(start: a.losses.pointer, count: a.B * a.T))
    }

    public func withLastLogits<R>(_ body: (UnsafeBufferPointer<Float>) -> R) -> R {
        let a = acts!
        return body(UnsafeBufferPointer(start: a.logits.pointer, count: a.B * a.T * config.vocab))
    }

    public func scaleLossGradients(spans: [Range<Int>], factors: [Float]) {
        guard let a = acts else { preconditionFailure("scaleLossGradients() before forward()") }
        CrossEntropy.scale(dlogits: a.logits.pointer, rows: a.B * a.T, V: config.vocab, spans: spans, factors: factors)
    }

    // MARK: backward

    public func backward(weightGradients: Bool = true, recordNorms: RecordGradientNorms? = nil) {
        guard let a = acts, a.training, !lora.isLockstep else { preconditionFailure("backward() needs a forward with gradients") }
        precondition(recordNorms == nil, "per-record gradient norms are not implemented for llama")
        let B = a.B, T = a.T, BT = B * T
        let c = config, C = c.dim, F = c.ffDim, V = c.vocab, W = c.qkvWidth
        let P = weights.values.pointer
        let G: UnsafeMutablePointer<Float>? = weightGradients ? weights.gradients?.pointer : nil
        func wgrad(_ offset: Int) -> UnsafeMutablePointer<Float>? { G.map { $0 + offset } }
        // Head: dlogits -> d hf (in dC); d head weight (overwritten: the lookup adds its share later when tied).
        timed("head bwd") {
            Head.backward(dx: a.dC.pointer, dwte: wgrad(layout.head), dlogits: a.logits.pointer, x: a.hf.pointer,
                          wte: P + layout.head, M: BT, C: C, V: V, kernels: kernels, pool: pool)
        }
        a.dres.zero()
        timed("rmsnorm bwd") {
            RMSNorm.backward(dx: a.dres.pointer, dw: wgrad(layout.norm), dout: a.dC.pointer, x: a.stream(c.layers).pointer,
                             rstd: a.rf.pointer, w: P + layout.norm, M: BT, C: C, partials: a.normPartials.pointer,
                             kernels: kernels, pool: pool)
        }
        // With the weights frozen, nothing below the lowest adapted layer learns, and that
        // layer needs no gradient of its input: the backward stops there.
        let lowest = G == nil ? (adapter?.slots.map(\.layer).min() ?? c.layers) : 0
        for l in stride(from: c.layers - 1, through: 0, by: -1) where l >= lowest {
            let needInput = l > lowest || G != nil
            let w = layout.blocks[l], L = a.layer(l)
            // MLP. a.dres = d(block output).
            timed("matmul bwd") {
                Projection.backward(dinp: a.dF.pointer, dw: wgrad(w.down), dout: a.dres.pointer, inp: L.act.pointer, w: P + w.down,
                                    M: BT, K: F, N: C, kernels: kernels, pool: pool)
            }
            adaptBackward(.down, layer: l, x: L.act.pointer, ldx: F, dy: a.dres.pointer, ldy: C, dx: a.dF.pointer, M: BT,
                          weightGradients: weightGradients)
            timed("swiglu bwd") { SwiGLU.backward(dgu: a.dGU.pointer, dout: a.dF.pointer, gu: L.gu.pointer, M: BT, F: F, kernels: kernels, pool: pool) }
            timed("matmul bwd") {
                Projection.backward(dinp: a.dC.pointer, dw: wgrad(w.gateUp), dout: a.dGU.pointer, inp: L.h2.pointer, w: P + w.gateUp,
                                    M: BT, K: C, N: 2 * F, kernels: kernels, pool: pool)
            }
            adaptBackward(.gateUp, layer: l, x: L.h2.pointer, ldx: C, dy: a.dGU.pointer, ldy: 2 * F, dx: a.dC.pointer, M: BT,
                          weightGradients: weightGradients)
            timed("rmsnorm bwd") {
                RMSNorm.backward(dx: a.dres.pointer, dw: wgrad(w.mlpNorm), dout: a.dC.pointer, x: L.x2.pointer, rstd: L.r2.pointer,
                                 w: P + w.mlpNorm, M: BT, C: C, partials: a.normPartials.pointer, kernels: kernels, pool: pool)
            }
            // Attention. a.dres = d(x2).
            timed("matmul bwd") {
                Projection.backward(dinp: a.dY.pointer, dw: wgrad(w.o), dout: a.dres.pointer, inp: L.atty.pointer, w: P + w.o,
                                    M: BT, K: c.qWidth, N: C, kernels: kernels, pool: pool)
            }
            adaptBackward(.o, layer: l, x: L.atty.pointer, ldx: c.qWidth, dy: a.dres.pointer, ldy: C, dx: a.dY.pointer, M: BT,
                          weightGradients: weightGradients)
            timed("attention bwd") {
                Attention.backward(dqkv: a.dQKV.pointer, dy: a.dY.pointer, qkv: L.qkv.pointer, att: L.att.pointer,
                                   shape: attentionShape(B, T), scratch: a.attScratch.pointer, kernels: kernels, pool: pool)
            }
            timed("rope bwd") {
                RotaryEmbedding.backward(a.dQKV.pointer, stride: W, heads: c.heads, headSize: c.headDim, M: BT, T: T, table: rope,
                                         kernels: kernels, pool: pool)
                RotaryEmbedding.backward(a.dQKV.pointer + c.qWidth, stride: W, heads: c.kvHeads, headSize: c.headDim, M: BT, T: T,
                                         table: rope, kernels: kernels, pool: pool)
            }
            timed("matmul bwd") {
                Projection.backward(dinp: needInput ? a.dC.pointer : nil, dw: wgrad(w.qkv), dout: a.dQKV.pointer, inp: L.h1.pointer,
                                    w: P + w.qkv, M: BT, K: C, N: W, kernels: kernels, pool: pool)
            }
            adaptBackward(.qkv, layer: l, x: L.h1.pointer, ldx: C, dy: a.dQKV.pointer, ldy: W, dx: needInput ? a.dC.pointer : nil,
                          M: BT, weightGradients: weightGradients)
            guard needInput else { break }
            timed("rmsnorm bwd") {
                RMSNorm.backward(dx: a.dres.pointer, dw: wgrad(w.attnNorm), dout: a.dC.pointer, x: a.stream(l).pointer,
                                 rstd: L.r1.pointer, w: P + w.attnNorm, M: BT, C: C, partials: a.normPartials.pointer,
                                 kernels: kernels, pool: pool)
            }
        }
        if let dE = wgrad(layout.embed) {
            timed("embedding bwd") {
                if !c.tiedEmbeddings { dE.update(repeating: 0, count: V * C) }
                Embedding.backward(dwte: dE, dwpe: nil, dx: a.dres.pointer, tokens: a.tokens, B: B, T: T, C: C, context: T, pool: pool)
            }
        }
    }

    public func makeDecoder() -> any TokenDecoder { LlamaDecoder(model: self) }

    /// Weights are [out, in]; a fused product's targets are consecutive row ranges.
    public func placement(layer: Int, target: LoRATarget) -> WeightPlacement {
        let b = layout.blocks[layer]
        let base: Int
        switch Product(rawValue: target.product)! {
        case .qkv: base = b.qkv
        case .o: base = b.o
        case .gateUp: base = b.gateUp
        case .down: base = b.down
        }
        return WeightPlacement(offset: base + target.column * target.inFeatures, outStride: target.inFeatures, inStride: 1)
    }

    public var layerCount: Int { config.layers }
    public var loraTargets: [LoRATarget] { LlamaModel.loraTargets(config) }

    public func sharingWeights(pool: WorkerPool) -> any LanguageModel {
        let m = LlamaModel(sharing: self, pool: pool)
        m.adapter = nil
        return m
    }

    public func copyingWeights(pool: WorkerPool, trainable: Bool) throws -> any LanguageModel {
        let m = try LlamaModel(config: config, context: context, trainable: trainable, pool: pool, kernels: kernels)
        m.weights.values.copy(from: weights.values)
        return m
    }
}
