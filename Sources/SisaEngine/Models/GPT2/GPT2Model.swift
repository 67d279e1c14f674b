import Foundation

/// A GPT-2-family model: the byte-level models trained from scratch, and
/// pretrained GPT-2 bases. Parameters and gradients in two flat buffers
/// (views in `GPT2Layout`), an optional LoRA adapter over them, explicit
/// forward and backward passes.
///
///   x = wte[tokens] + wpe[positions]                       [B, T, C]
///   per block:  qkv = ln_1(x) W_attn + b (+ LoRA "attn")   [B, T, 3C]
///               x2 = x + attention(qkv) W_proj + b (+ LoRA "proj")
///               x' = x2 + gelu(ln_2(x2) W_fc + b (+ LoRA "fc")) W_mlp_proj + b (+ LoRA "mlp_proj")
///   logits = ln_f(x_L) wteᵀ                                [B, T, V]
public final class GPT2Model: LanguageModel {
    public let config: GPT2Configuration
    public let layout: GPT2Layout
    public let weights: ParameterSet
    /// `weights.values` and `weights.gradients` (an empty buffer when the weights are frozen).
    public let params: FloatBuffer
    public let grads: FloatBuffer
    public private(set) var adapter: LoRAAdapter?
    /// The adapter (or, in a lock-step forward, the adapters) on the forward's rows.
    private var lora = LoRARowGroups()
    public let pool: WorkerPool
    /// The kernel path every product and reduction runs on (bits do not depend on it).
    public let kernels: Kernels
    private var acts: GPT2Activations?
    /// Set to collect per-kernel timings (benchmarks only).
    public var profiler: Profiler?

    @inline(__always)
    private func timed(_ name: String, _ body: () -> Void) {
        if let profiler { profiler.measure(name, body) } else { body() }
    }

    public var architecture: ModelArchitecture { .gpt2 }
    public var vocabularySize: Int { config.vocab }
    /// The working context: the longest row this instance takes (at most the
    /// position table's `config.context`; a base scored with `--ctx` uses less).
    public let context: Int

    /// The frozen weights packed for the forward products (nil when the weights train).
    let frozenPanels: FrozenPanels?

    /// The products LoRA targets add to.
    enum Product: Int { case attn = 0, proj, fc, mlpProj }

    /// The frozen op(W) [k, n] at `offset` as panels (stored [n, k] when
    /// `transB`, as the tied head is); nil when the weights train.
    func panels(_ offset: Int, transB: Bool, k: Int, n: Int) -> PackedPanels? {
        frozenPanels?.panels(params.pointer, offset: offset, transB: transB, k: k, n: n, kernels: kernels)
    }

    /// out[M, N] = inp[M, K] · W + b for the weight [K, N] at `offset`: from its
    /// panels when the weights are frozen, packing per call otherwise.
    private func linear(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight offset: Int, bias: Int,
                        M: Int, K: Int, N: Int) {
        let P = params.pointer
        guard let p = panels(offset, transB: false, k: K, n: N) else {
            Linear.forward(out: out, inp: inp, w: P + offset, b: P + bias, M: M, K: K, N: N, kernels: kernels, pool: pool)
            return
        }
        Projection.forward(out: out, inp: inp, panels: p, bias: P + bias, M: M, kernels: kernels, pool: pool)
    }

    /// `kernels` nil: the process default (`SISA_KERNELS`, else the fastest path).
    /// `trainable: false` allocates no gradients for the weights (a frozen base).
    /// `context` caps the working context (default: the configuration's).
    public init(config: GPT2Configuration, context: Int? = nil, pool: WorkerPool = .shared, kernels: Kernels? = nil,
                trainable: Bool = true) throws {
        try config.validate()
        let ctx = context ?? config.context
        guard ctx >= 2, ctx <= config.context else {
            throw EngineError.invalidConfig("context \(ctx) must be between 2 and the model's \(config.context)")
        }
        self.context = ctx
        self.kernels = try kernels ?? Kernels.processDefault()
        self.config = config
        self.layout = GPT2Layout(config)
        // Trained weights and their gradients on large pages (FloatBuffer.init), frozen ones not.
        weights = ParameterSet(values: FloatBuffer(count: layout.count, largePages: trainable),
                               gradients: trainable ? FloatBuffer(count: layout.count, largePages: true) : nil,
                               tensors: layout.tensors)
        params = weights.values
        grads = weights.gradients ?? FloatBuffer(count: 0)
        frozenPanels = trainable ? nil : FrozenPanels()
        self.pool = pool
    }

    /// The projections LoRA may adapt, in order.
    public static func loraTargets(_ c: GPT2Configuration) -> [LoRATarget] {
        let C = c.dim
        return [
            LoRATarget(name: "attn", inFeatures: C, outFeatures: 3 * C, product: Product.attn.rawValue, column: 0, module: "attn.c_attn"),
            LoRATarget(name: "proj", inFeatures: C, outFeatures: C, product: Product.proj.rawValue, column: 0, module: "attn.c_proj"),
            LoRATarget(name: "fc", inFeatures: C, outFeatures: 4 * C, product: Product.fc.rawValue, column: 0, module: "mlp.c_fc"),
            LoRATarget(name: "mlp_proj", inFeatures: 4 * C, outFeatures: C, product: Product.mlpProj.rawValue, column: 0,
                       module: "mlp.c_proj"),
        ]
    }

    /// Attaches an adapter built for this model's targets.
    public func attach(_ adapter: LoRAAdapter) {
        precondition(adapter.fits(targets: loraTargets, layers: config.layers), "adapter for another model")
        self.adapter = adapter
        lora.reset()
    }

    /// An inference-only model over `other`'s parameters (shared, never
    /// written), with its own activations: several threads can score and
    /// generate with one copy of the weights, each through its own instance
    /// (and its own `pool`; a pool runs one job at a time).
    public init(sharingParametersOf other: GPT2Model, pool: WorkerPool) {
        config = other.config
        context = other.context
        layout = other.layout
        kernels = other.kernels
        weights = ParameterSet(values: other.params, gradients: nil, tensors: other.layout.tensors)
        params = other.params
        grads = FloatBuffer(count: 0)
        adapter = other.adapter?.sharingValues()
        frozenPanels = other.frozenPanels
        self.pool = pool
    }

    /// GPT-2 initialisation: N(0, 0.02) matrices and embeddings, residual
    /// projections scaled by 1/sqrt(2 * layers), zero biases, unit LayerNorm gains.
    public func initialize(rng: inout Xoshiro256) {
        frozenPanels?.removeAll()
        let residualStd = 0.02 / (2 * Double(config.layers)).squareRoot()
        for t in layout.tensors {
            let p = params.pointer + t.offset
            if t.shape.count == 2 {
                let std = t.name.hasSuffix("c_proj.weight") ? residualStd : 0.02
                for i in 0..<t.count { p[i] = Float(rng.nextGaussian() * std) }
            } else if t.name.contains("ln_") && t.name.hasSuffix(".weight") {
                p.update(repeating: 1, count: t.count)
            } else {
                p.update(repeating: 0, count: t.count)
            }
        }
    }

    private func activations(B: Int, T: Int) -> GPT2Activations {
        if let a = acts, a.capacity >= B, a.T == T {
            a.B = B
            return a
        }
        let a = GPT2Activations(config: config, B: B, T: T, threads: pool.threads)
        acts = a
        return a
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

    private func attentionShape(B: Int, T: Int) -> AttentionShape {
        let C = config.dim
        return AttentionShape(B: B, T: T, heads: config.heads, kvHeads: config.heads, headSize: config.headSize,
                              stride: 3 * C, kOffset: C, vOffset: 2 * C, yStride: C)
    }

    // MARK: forward

    /// Runs the model on `batch`. With `gradients`, the logits are replaced by
    /// dlogits for `backward()`; otherwise they stay available.
    /// Returns the mean NLL over the batch's targets (0 if it has none).
    /// `gradScale` replaces the gradient's 1/targets factor (DP-SGD weights
    /// each record by its own target count through `batch.weights`).
    @discardableResult
    public func forward(_ batch: Batch, gradients: Bool, gradScale: Float?) -> Double {
        forward(batch, gradients: gradients, gradScale: gradScale, members: nil)
    }

    /// The forward pass of several adapters over this model's frozen base at
    /// once, as `LlamaModel.forward(_:adapters:)`: `batch` holds S equal
    /// groups of rows, group i run with `adapters[i]`; each row's results are
    /// those of a forward with its group's adapter alone. Inference only.
    @discardableResult
    public func forward(_ batch: Batch, adapters: [LoRAAdapter?]) -> Double {
        forward(batch, gradients: false, gradScale: nil, members: adapters)
    }

    private func forward(_ batch: Batch, gradients: Bool, gradScale: Float?, members: [LoRAAdapter?]?) -> Double {
        let B = batch.B, T = batch.T
        precondition(T >= 1 && T <= context, "sequence length \(T) exceeds context \(context)")
        let a = activations(B: B, T: T)
        let C = config.dim, V = config.vocab, BT = B * T, eps = config.epsilon
        let P = params.pointer
        // This model's adapter on every row, or one group of rows per member.
        if let members {
            lora.useMembers(members, B: B, T: T, targets: loraTargets, layers: config.layers)
        } else {
            lora.useOwn(adapter, rows: BT)
        }
        for i in 0..<BT {
            let tok = batch.tokens[i], tgt = batch.targets[i]
            precondition(tok >= 0 && Int(tok) < V && Int(tgt) < V && tgt >= -1, "token id out of range")
            a.tokens[i] = tok
            a.targets[i] = tgt
        }
        timed("embedding fwd") {
            Embedding.forward(x: a.residual[0].pointer, tokens: a.tokens, wte: P + layout.wte, wpe: P + layout.wpe,
                              B: B, T: T, C: C, pool: pool)
        }
        for l in 0..<config.layers {
            let w = layout.blocks[l], L = a.layers[l]
            let x = a.residual[l].pointer
            timed("layernorm fwd") {
                LayerNorm.forward(out: L.ln1.pointer, mean: L.ln1Mean.pointer, rstd: L.ln1Rstd.pointer, x: x,
                                  w: P + w.ln1w, b: P + w.ln1b, M: BT, C: C, eps: eps, kernels: kernels, pool: pool)
            }
            timed("matmul fwd") {
                linear(out: L.qkv.pointer, inp: L.ln1.pointer, weight: w.qkvw, bias: w.qkvb, M: BT, K: C, N: 3 * C)
            }
            adapt(.attn, layer: l, x: L.ln1.pointer, ldx: C, y: L.qkv.pointer, ldy: 3 * C)
            timed("attention fwd") {
                Attention.forward(y: L.atty.pointer, att: L.att.pointer, qkv: L.qkv.pointer, shape: attentionShape(B: B, T: T),
                                  kernels: kernels, pool: pool)
            }
            timed("matmul fwd") {
                linear(out: L.res2.pointer, inp: L.atty.pointer, weight: w.projw, bias: w.projb, M: BT, K: C, N: C)
            }
            adapt(.proj, layer: l, x: L.atty.pointer, ldx: C, y: L.res2.pointer, ldy: C)
            timed("residual fwd") {
                Residual.add(L.res2.pointer, x, count: BT * C, pool: pool)
            }
            timed("layernorm fwd") {
                LayerNorm.forward(out: L.ln2.pointer, mean: L.ln2Mean.pointer, rstd: L.ln2Rstd.pointer,
                                  x: L.res2.pointer, w: P + w.ln2w, b: P + w.ln2b, M: BT, C: C, eps: eps, kernels: kernels, pool: pool)
            }
            timed("matmul fwd") {
                linear(out: L.fch.pointer, inp: L.ln2.pointer, weight: w.fcw, bias: w.fcb, M: BT, K: C, N: 4 * C)
            }
            adapt(.fc, layer: l, x: L.ln2.pointer, ldx: C, y: L.fch.pointer, ldy: 4 * C)
            timed("gelu fwd") {
                GELU.forward(out: L.fchGelu.pointer, x: L.fch.pointer, N: BT * 4 * C, kernels: kernels, pool: pool)
            }
            let out = a.residual[l + 1].pointer
            timed("matmul fwd") {
                linear(out: out, inp: L.fchGelu.pointer, weight: w.fc2w, bias: w.fc2b, M: BT, K: 4 * C, N: C)
            }
            adapt(.mlpProj, layer: l, x: L.fchGelu.pointer, ldx: 4 * C, y: out, ldy: C)
            timed("residual fwd") {
                Residual.add(out, L.res2.pointer, count: BT * C, pool: pool)
            }
        }
        timed("layernorm fwd") {
            LayerNorm.forward(out: a.lnf.pointer, mean: a.lnfMean.pointer, rstd: a.lnfRstd.pointer,
                              x: a.residual[config.layers].pointer, w: P + layout.lnfw, b: P + layout.lnfb,
                              M: BT, C: C, eps: eps, kernels: kernels, pool: pool)
        }
        timed("head fwd") {
            if let p = panels(layout.wte, transB: true, k: C, n: V) {
                Projection.forward(out: a.logits.pointer, inp: a.lnf.pointer, panels: p, M: BT, kernels: kernels, pool: pool)
            } else {
                Head.forward(logits: a.logits.pointer, x: a.lnf.pointer, wte: P + layout.wte, M: BT, C: C, V: V, kernels: kernels, pool: pool)
            }
        }
        var loss = 0.0
        timed("softmax-xent fwd") {
            loss = CrossEntropy.batchLoss(logits: a.logits.pointer, losses: a.losses.pointer, targets: a.targets, batch: batch, V: V,
                                          gradients: gradients, gradScale: gradScale, kernels: kernels, pool: pool)
        }
        return loss
    }

    /// Per-position NLL of the last forward, [B * T] (0 where the target was ignored).
    public var lastTokenLosses: [Float] {
        guard let a = acts else { return [] }
        return Array(UnsafeBufferPointer(start: a.losses.pointer, count: a.B * a.T))
    }

    /// Logits of the last forward without gradients, [B * T * V].
    public func withLastLogits<R>(_ body: (UnsafeBufferPointer<Float>) -> R) -> R {
        let a = acts!
        return body(UnsafeBufferPointer(start: a.logits.pointer, count: a.B * a.T * config.vocab))
    }

    // MARK: backward

    /// Fills `grads` with d(mean loss)/d(params) for the last `forward(_, gradients: true)`.
    ///
    /// `weightGradients: false` propagates gradients through the activations
    /// only and leaves `grads` undefined (the first of DP-SGD's two passes);
    /// `recordNorms` then collects each record's squared gradient norm from
    /// every layer's input activations and output gradients.
    public func backward(weightGradients: Bool = true, recordNorms: RecordGradientNorms? = nil) {
        guard let a = acts, !lora.isLockstep else { preconditionFailure("backward() before forward() (or after a lock-step one)") }
        precondition(weights.gradients != nil || adapter?.parameters.gradients != nil,
                     "backward() on an inference-only model (init(sharingParametersOf:))")
        let B = a.B, T = a.T, BT = B * T
        let C = config.dim, V = config.vocab
        let P = params.pointer
        let norms = recordNorms
        // Weight-gradient destinations; nil skips those products (pass 1 of
        // DP-SGD, and every product of a frozen base).
        let G: UnsafeMutablePointer<Float>? = weightGradients ? weights.gradients?.pointer : nil
        func wgrad(_ offset: Int) -> UnsafeMutablePointer<Float>? { G.map { $0 + offset } }
        // Head: dlogits (in a.logits) -> d lnf (in dC), dwte (overwritten).
        timed("head bwd") {
            Head.backward(dx: a.dC.pointer, dwte: wgrad(layout.wte), dlogits: a.logits.pointer, x: a.lnf.pointer,
                          wte: P + layout.wte, M: BT, C: C, V: V, kernels: kernels, pool: pool)
        }
        a.dres.zero()
        timed("layernorm bwd") {
            norms?.layerNorm(dout: a.dC.pointer, x: a.residual[config.layers].pointer, mean: a.lnfMean.pointer,
                             rstd: a.lnfRstd.pointer, C: C)
            LayerNorm.backward(dx: a.dres.pointer, dw: wgrad(layout.lnfw), db: wgrad(layout.lnfb), dout: a.dC.pointer,
                               x: a.residual[config.layers].pointer, mean: a.lnfMean.pointer, rstd: a.lnfRstd.pointer,
                               w: P + layout.lnfw, M: BT, C: C, partials: a.lnPartials.pointer, kernels: kernels, pool: pool)
        }
        for l in stride(from: config.layers - 1, through: 0, by: -1) {
            let w = layout.blocks[l], L = a.layers[l]
            // MLP. a.dres = d(block output).
            do {
                norms?.linear(inp: L.fchGelu.pointer, dout: a.dres.pointer, K: 4 * C, N: C)
                Linear.backward(dinp: a.d4C.pointer, dw: wgrad(w.fc2w), db: wgrad(w.fc2b), dout: a.dres.pointer,
                                inp: L.fchGelu.pointer, w: P + w.fc2w, M: BT, K: 4 * C, N: C, kernels: kernels, pool: pool, profiler: profiler)
            }
            adaptBackward(.mlpProj, layer: l, x: L.fchGelu.pointer, ldx: 4 * C, dy: a.dres.pointer, ldy: C, dx: a.d4C.pointer,
                          M: BT, weightGradients: weightGradients)
            timed("gelu bwd") {
                GELU.backward(dx: a.d4C.pointer, dout: a.d4C.pointer, x: L.fch.pointer, N: BT * 4 * C, kernels: kernels, pool: pool)
            }
            do {
                norms?.linear(inp: L.ln2.pointer, dout: a.d4C.pointer, K: C, N: 4 * C)
                Linear.backward(dinp: a.dC.pointer, dw: wgrad(w.fcw), db: wgrad(w.fcb), dout: a.d4C.pointer,
                                inp: L.ln2.pointer, w: P + w.fcw, M: BT, K: C, N: 4 * C, kernels: kernels, pool: pool, profiler: profiler)
            }
            adaptBackward(.fc, layer: l, x: L.ln2.pointer, ldx: C, dy: a.d4C.pointer, ldy: 4 * C, dx: a.dC.pointer,
                          M: BT, weightGradients: weightGradients)
            timed("layernorm bwd") {
                norms?.layerNorm(dout: a.dC.pointer, x: L.res2.pointer, mean: L.ln2Mean.pointer, rstd: L.ln2Rstd.pointer, C: C)
                LayerNorm.backward(dx: a.dres.pointer, dw: wgrad(w.ln2w), db: wgrad(w.ln2b), dout: a.dC.pointer,
                                   x: L.res2.pointer, mean: L.ln2Mean.pointer, rstd: L.ln2Rstd.pointer,
                                   w: P + w.ln2w, M: BT, C: C, partials: a.lnPartials.pointer, kernels: kernels, pool: pool)
            }
            // Attention. a.dres = d(res2).
            do {
                norms?.linear(inp: L.atty.pointer, dout: a.dres.pointer, K: C, N: C)
                Linear.backward(dinp: a.dC.pointer, dw: wgrad(w.projw), db: wgrad(w.projb), dout: a.dres.pointer,
                                inp: L.atty.pointer, w: P + w.projw, M: BT, K: C, N: C, kernels: kernels, pool: pool, profiler: profiler)
            }
            adaptBackward(.proj, layer: l, x: L.atty.pointer, ldx: C, dy: a.dres.pointer, ldy: C, dx: a.dC.pointer,
                          M: BT, weightGradients: weightGradients)
            timed("attention bwd") {
                Attention.backward(dqkv: a.dqkv.pointer, dy: a.dC.pointer, qkv: L.qkv.pointer, att: L.att.pointer,
                                   shape: attentionShape(B: B, T: T), scratch: a.attScratch.pointer, kernels: kernels, pool: pool)
            }
            do {
                norms?.linear(inp: L.ln1.pointer, dout: a.dqkv.pointer, K: C, N: 3 * C)
                Linear.backward(dinp: a.dC.pointer, dw: wgrad(w.qkvw), db: wgrad(w.qkvb), dout: a.dqkv.pointer,
                                inp: L.ln1.pointer, w: P + w.qkvw, M: BT, K: C, N: 3 * C, kernels: kernels, pool: pool, profiler: profiler)
            }
            adaptBackward(.attn, layer: l, x: L.ln1.pointer, ldx: C, dy: a.dqkv.pointer, ldy: 3 * C, dx: a.dC.pointer,
                          M: BT, weightGradients: weightGradients)
            timed("layernorm bwd") {
                norms?.layerNorm(dout: a.dC.pointer, x: a.residual[l].pointer, mean: L.ln1Mean.pointer, rstd: L.ln1Rstd.pointer, C: C)
                LayerNorm.backward(dx: a.dres.pointer, dw: wgrad(w.ln1w), db: wgrad(w.ln1b), dout: a.dC.pointer,
                                   x: a.residual[l].pointer, mean: L.ln1Mean.pointer, rstd: L.ln1Rstd.pointer,
                                   w: P + w.ln1w, M: BT, C: C, partials: a.lnPartials.pointer, kernels: kernels, pool: pool)
            }
        }
        // The tied embedding: the head's share and the lookup's share form one tensor per record.
        norms?.embeddings(dlogits: a.logits.pointer, x: a.lnf.pointer, dx: a.dres.pointer, tokens: a.tokens,
                          T: T, C: C, V: V)
        if let G {
            timed("embedding bwd") {
                Embedding.backward(dwte: G + layout.wte, dwpe: G + layout.wpe, dx: a.dres.pointer, tokens: a.tokens,
                                   B: B, T: T, C: C, context: config.context, pool: pool)
            }
        }
    }

    public func makeDecoder() -> any TokenDecoder { GPT2Decoder(model: self) }

    /// Weights are Conv1D [in, out]; a target's outputs are a column range of its product.
    public func placement(layer: Int, target: LoRATarget) -> WeightPlacement {
        let b = layout.blocks[layer], C = config.dim
        let (base, width): (Int, Int)
        switch Product(rawValue: target.product)! {
        case .attn: (base, width) = (b.qkvw, 3 * C)
        case .proj: (base, width) = (b.projw, C)
        case .fc: (base, width) = (b.fcw, 4 * C)
        case .mlpProj: (base, width) = (b.fc2w, C)
        }
        return WeightPlacement(offset: base + target.column, outStride: 1, inStride: width)
    }

    public var layerCount: Int { config.layers }
    public var loraTargets: [LoRATarget] { GPT2Model.loraTargets(config) }

    public func sharingWeights(pool: WorkerPool) -> any LanguageModel {
        let m = GPT2Model(sharingParametersOf: self, pool: pool)
        m.adapter = nil
        return m
    }

    public func copyingWeights(pool: WorkerPool, trainable: Bool) throws -> any LanguageModel {
        let m = try GPT2Model(config: config, context: context, pool: pool, kernels: kernels, trainable: trainable)
        m.params.copy(from: params)
        return m
    }

    /// Multiplies the loss gradient (dlogits, kept from the last training
    /// forward) of each record's positions by its factor: the next
    /// `backward()` then yields the weighted sum of per-record gradients.
    /// Rows of a transformer never mix, so scaling a record's dlogits scales
    /// its whole gradient.
    public func scaleLossGradients(spans: [Range<Int>], factors: [Float]) {
        guard let a = acts else { preconditionFailure("scaleLossGradients() before forward()") }
        CrossEntropy.scale(dlogits: a.logits.pointer, rows: a.B * a.T, V: config.vocab, spans: spans, factors: factors)
    }
}
