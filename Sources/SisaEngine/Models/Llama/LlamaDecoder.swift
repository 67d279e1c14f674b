/// Incremental Llama inference with a key/value cache: feed one token, get
/// the next-token logits. Every product is the row-chain of the batch
/// forward (over a frozen base's packed panels, else `gemvRows` over the
/// [out, in] weights), so the logits equal the batch forward's at the same
/// positions.
///
/// One decoder can also step several *members* in lock-step: models over one
/// frozen base, each with its own adapter (a base store's shards), fed the
/// same tokens. Each base product then runs once per token for all members,
/// as an S-row product over the packed panels, so the base is read once per
/// token instead of once per member; decoding is bound by reading it. A row
/// of that product is the same chain as the one-row product, so each
/// member's logits are, bit for bit, those of its own decoder.
public final class LlamaDecoder: TokenDecoder {
    /// The members (one model, or several over the same frozen base).
    public let members: [LlamaModel]
    public var model: LlamaModel { members[0] }
    private let keys: [[FloatBuffer]]    // per member, per layer [window, Hkv·hs], rotated
    private let values: [[FloatBuffer]]  // per member, per layer [window, Hkv·hs]
    // One row per member: x, h, tmp [S, C]; qkv [S, W]; y [S, H·hs]; gu [S, 2F]; act [S, F]; rstd [S].
    private let x, h, qkv, y, tmp, gu, act, scores, rstd, u: FloatBuffer
    private let allLogits: FloatBuffer   // [S, V]
    private var window: DecodeWindow
    public var history: [Int32] { window.history }
    /// Runs the row-wise kernels; `pool` splits the base's products by columns.
    private let single = WorkerPool(threads: 1)
    private let pool: WorkerPool

    public var vocabularySize: Int { model.config.vocab }

    /// The first member's logits after the last `feed`.
    public var logits: UnsafeBufferPointer<Float> { logits(member: 0) }

    /// One model's decoder, single-threaded (a server runs one per request).
    public convenience init(model: LlamaModel) {
        self.init(members: [model], pool: WorkerPool(threads: 1))
    }

    /// A lock-step decoder of `members`, which must share one frozen base
    /// (`SharedBase.shared`) unless there is only one. `pool` splits each
    /// base product by columns (the bits do not depend on the split).
    public init(members: [LlamaModel], pool: WorkerPool) {
        precondition(!members.isEmpty, "a decoder needs a model")
        precondition(members.count == 1 || SharedBase.shared(members), "lock-step members must share one frozen base")
        self.members = members
        self.pool = pool
        let c = members[0].config, T = members[0].context, S = members.count
        window = DecodeWindow(context: T)
        keys = members.map { _ in (0..<c.layers).map { _ in FloatBuffer(count: T * c.kvWidth) } }
        values = members.map { _ in (0..<c.layers).map { _ in FloatBuffer(count: T * c.kvWidth) } }
        x = FloatBuffer(count: S * c.dim); h = FloatBuffer(count: S * c.dim); tmp = FloatBuffer(count: S * c.dim)
        qkv = FloatBuffer(count: S * c.qkvWidth); y = FloatBuffer(count: S * c.qWidth)
        gu = FloatBuffer(count: S * 2 * c.ffDim); act = FloatBuffer(count: S * c.ffDim)
        scores = FloatBuffer(count: T); rstd = FloatBuffer(count: S)
        u = FloatBuffer(count: members.map { $0.adapter?.config.rank ?? 1 }.max()!)
        allLogits = FloatBuffer(count: S * c.vocab)
    }

    public func reset() { window.reset() }

    /// Appends `token` for every member and returns the first member's logits for the next one.
    @discardableResult
    public func feed(_ token: Int32) -> UnsafeBufferPointer<Float> {
        precondition(token >= 0 && Int(token) < vocabularySize, "token id \(token) out of range")
        window.feed(token) { step($0, at: $1) }
        return logits
    }

    /// Member `i`'s next-token logits after the last `feed`.
    public func logits(member i: Int) -> UnsafeBufferPointer<Float> {
        let V = model.config.vocab
        return UnsafeBufferPointer(start: allLogits.pointer + i * V, count: V)
    }

    /// Adds each member's adapter updates to its row of product `product`.
    private func adapt(_ product: LlamaModel.Product, layer l: Int, x: UnsafePointer<Float>, ldx: Int, y: UnsafeMutablePointer<Float>,
                       ldy: Int) {
        for (i, m) in members.enumerated() {
            m.adapter?.addUpdates(product: product.rawValue, layer: l, x: x + i * ldx, y: y + i * ldy, u: u.pointer, kernels: m.kernels)
        }
    }

    /// y[S, n] = x[S, k] Wᵀ for the [n, k] weight at `offset`. A frozen base:
    /// from its panels (read once for every member, in order), one row by the
    /// one-row product, several by the S-row product, split by columns over
    /// `pool`. A trainable model (one member): row by row of the weights.
    private func project(_ y: UnsafeMutablePointer<Float>, weight offset: Int, x: UnsafePointer<Float>, n: Int, k: Int) {
        let K = model.kernels, S = members.count
        guard let p = model.panels(offset, K: k, N: n) else {
            for i in 0..<S { K.gemvRows(y: y + i * n, w: model.weights.values.pointer + offset, x: x + i * k, n: n, k: k, ldw: k) }
            return
        }
        Projection.forwardRows(out: y, inp: x, panels: p, rows: S, kernels: K, pool: pool)
    }

    private func step(_ token: Int32, at pos: Int) {
        let c = model.config, C = c.dim, F = c.ffDim, hs = c.headDim, W = c.qkvWidth, S = members.count
        let L = model.layout, P = model.weights.values.pointer, K = model.kernels
        let group = c.heads / c.kvHeads
        let cosP = model.rope.cos(at: pos), sinP = model.rope.sin(at: pos)
        for i in 0..<S { (x.pointer + i * C).update(from: P + L.embed + Int(token) * C, count: C) }
        let scale = 1 / Float(hs).squareRoot()
        for l in 0..<c.layers {
            let w = L.blocks[l]
            RMSNorm.forward(out: h.pointer, rstd: rstd.pointer, x: x.pointer, w: P + w.attnNorm, M: S, C: C, eps: c.rmsEpsilon,
                            kernels: K, pool: single)
            project(qkv.pointer, weight: w.qkv, x: h.pointer, n: W, k: C)
            adapt(.qkv, layer: l, x: h.pointer, ldx: C, y: qkv.pointer, ldy: W)
            for i in 0..<S {
                let q = qkv.pointer + i * W, yi = y.pointer + i * c.qWidth
                K.ropeForward(q, heads: c.heads, headSize: hs, cos: cosP, sin: sinP)
                K.ropeForward(q + c.qWidth, heads: c.kvHeads, headSize: hs, cos: cosP, sin: sinP)
                let kc = keys[i][l].pointer, vc = values[i][l].pointer
                (kc + pos * c.kvWidth).update(from: q + c.qWidth, count: c.kvWidth)
                (vc + pos * c.kvWidth).update(from: q + c.qWidth + c.kvWidth, count: c.kvWidth)
                for head in 0..<c.heads {
                    let g = head / group
                    // scores[j] = q_h · k_j (the chain over hs of the batch's q kᵀ)
                    K.gemvRows(y: scores.pointer, w: kc + g * hs, x: q + head * hs, n: pos + 1, k: hs, ldw: c.kvWidth)
                    K.softmaxCausal(scores.pointer, valid: pos + 1, width: pos + 1, scale: scale)
                    // y_h[hs] = scores[0...pos] · v[0...pos, g]
                    K.gemv(y: yi + head * hs, x: scores.pointer, w: vc + g * hs, k: pos + 1, n: hs, ldw: c.kvWidth)
                }
            }
            project(tmp.pointer, weight: w.o, x: y.pointer, n: C, k: c.qWidth)
            adapt(.o, layer: l, x: y.pointer, ldx: c.qWidth, y: tmp.pointer, ldy: C)
            addInPlace(x.pointer, tmp.pointer, S * C)
            RMSNorm.forward(out: h.pointer, rstd: rstd.pointer, x: x.pointer, w: P + w.mlpNorm, M: S, C: C, eps: c.rmsEpsilon,
                            kernels: K, pool: single)
            project(gu.pointer, weight: w.gateUp, x: h.pointer, n: 2 * F, k: C)
            adapt(.gateUp, layer: l, x: h.pointer, ldx: C, y: gu.pointer, ldy: 2 * F)
            K.swigluForward(out: act.pointer, gu: gu.pointer, rows: S, F: F)
            project(tmp.pointer, weight: w.down, x: act.pointer, n: C, k: F)
            adapt(.down, layer: l, x: act.pointer, ldx: F, y: tmp.pointer, ldy: C)
            addInPlace(x.pointer, tmp.pointer, S * C)
        }
        RMSNorm.forward(out: h.pointer, rstd: rstd.pointer, x: x.pointer, w: P + L.norm, M: S, C: C, eps: c.rmsEpsilon,
                        kernels: K, pool: single)
        project(allLogits.pointer, weight: L.head, x: h.pointer, n: c.vocab, k: C)
    }
}
