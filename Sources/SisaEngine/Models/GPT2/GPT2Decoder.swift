import Foundation

/// Incremental GPT-2 inference with a key/value cache: feed one token, get
/// the next-token logits. Used by generation and by the ensemble, which
/// feeds the same token to every shard. Every product is the chain of the
/// batch forward (a frozen base's packed panels, else `gemv` for the
/// [in, out] weights and `gemvRows` for the tied head; `gemvRows` for q·k),
/// so the logits equal the batch forward's at the same positions.
///
/// As `LlamaDecoder`, one decoder can step several members over one frozen
/// base (a GPT-2 base store's shards, each with its adapter) in lock-step:
/// each base product runs once per token as an S-row product over the
/// panels, and each member's logits are, bit for bit, its own decoder's.
public final class GPT2Decoder: TokenDecoder {
    /// The members (one model, or several over the same frozen base).
    public let members: [GPT2Model]
    public var model: GPT2Model { members[0] }
    private let keys: [[FloatBuffer]]    // per member, per layer [T, C]
    private let values: [[FloatBuffer]]  // per member, per layer [T, C]
    // One row per member: x, h, y, tmp [S, C]; qkv [S, 3C]; fc, fcGelu [S, 4C]; stats [2S] (means, then rstds).
    private let x, h, qkv, y, tmp, fc, fcGelu, scores, stats, u: FloatBuffer
    private let allLogits: FloatBuffer   // [S, V]
    private var window: DecodeWindow
    public var history: [Int32] { window.history }
    private let single = WorkerPool(threads: 1)
    private let pool: WorkerPool

    public var vocabularySize: Int { model.config.vocab }

    /// The first member's logits after the last `feed`.
    public var logits: UnsafeBufferPointer<Float> { logits(member: 0) }

    /// One model's decoder, single-threaded.
    public convenience init(model: GPT2Model) {
        self.init(members: [model], pool: WorkerPool(threads: 1))
    }

    /// A lock-step decoder of `members`, which must share one frozen base
    /// (`SharedBase.shared`) unless there is only one; `pool` splits each
    /// base product by columns.
    public init(members: [GPT2Model], pool: WorkerPool) {
        precondition(!members.isEmpty, "a decoder needs a model")
        precondition(members.count == 1 || SharedBase.shared(members), "lock-step members must share one frozen base")
        self.members = members
        self.pool = pool
        let c = members[0].config, S = members.count, T = members[0].context
        precondition(members.allSatisfy { $0.context == T }, "lock-step members must share one working context")
        window = DecodeWindow(context: T)
        keys = members.map { _ in (0..<c.layers).map { _ in FloatBuffer(count: T * c.dim) } }
        values = members.map { _ in (0..<c.layers).map { _ in FloatBuffer(count: T * c.dim) } }
        x = FloatBuffer(count: S * c.dim); h = FloatBuffer(count: S * c.dim); y = FloatBuffer(count: S * c.dim)
        tmp = FloatBuffer(count: S * c.dim); qkv = FloatBuffer(count: S * 3 * c.dim)
        fc = FloatBuffer(count: S * 4 * c.dim); fcGelu = FloatBuffer(count: S * 4 * c.dim)
        scores = FloatBuffer(count: T); stats = FloatBuffer(count: 2 * S)
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
    private func adapt(_ product: GPT2Model.Product, layer l: Int, x: UnsafePointer<Float>, ldx: Int, y: UnsafeMutablePointer<Float>,
                       ldy: Int) {
        for (i, m) in members.enumerated() {
            m.adapter?.addUpdates(product: product.rawValue, layer: l, x: x + i * ldx, y: y + i * ldy, u: u.pointer, kernels: m.kernels)
        }
    }

    /// y[S, n] += x[S, k] · W for the [k, n] weight at `offset` (y holds the
    /// bias; `accumulate` false: y = x · W, chains from zero): from its panels when the base is frozen (one row by the one-row
    /// product, several by the S-row product, split by columns over `pool`),
    /// else row by row of W (one member).
    private func linear(_ y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, weight offset: Int, k: Int, n: Int,
                        transB: Bool = false, accumulate: Bool = true) {
        let K = model.kernels, S = members.count
        guard let p = model.panels(offset, transB: transB, k: k, n: n) else {
            for i in 0..<S {
                if transB {
                    K.gemvRows(y: y + i * n, w: model.params.pointer + offset, x: x + i * k, n: n, k: k, ldw: k, accumulate: accumulate)
                } else {
                    K.gemv(y: y + i * n, x: x + i * k, w: model.params.pointer + offset, k: k, n: n, ldw: n, accumulate: accumulate)
                }
            }
            return
        }
        Projection.forwardRows(out: y, inp: x, panels: p, rows: S, accumulate: accumulate, kernels: K, pool: pool)
    }

    /// Each member's row of `dst` [S, n] set to the bias `src` [n].
    private func fill(_ dst: UnsafeMutablePointer<Float>, from src: UnsafePointer<Float>, n: Int) {
        for i in 0..<members.count { (dst + i * n).update(from: src, count: n) }
    }

    private func layerNorm(_ w: Int, _ b: Int) {
        let c = model.config, S = members.count, P = model.params.pointer
        LayerNorm.forward(out: h.pointer, mean: stats.pointer, rstd: stats.pointer + S, x: x.pointer, w: P + w, b: P + b,
                          M: S, C: c.dim, eps: c.epsilon, kernels: model.kernels, pool: single)
    }

    private func step(_ token: Int32, at pos: Int) {
        let c = model.config, C = c.dim, H = c.heads, hs = c.headSize, V = c.vocab, S = members.count
        let L = model.layout, P = model.params.pointer, K = model.kernels
        for i in 0..<C { x[i] = P[L.wte + Int(token) * C + i] + P[L.wpe + pos * C + i] }
        for i in 1..<S { (x.pointer + i * C).update(from: x.pointer, count: C) }
        let scale = 1 / Float(hs).squareRoot()
        for l in 0..<c.layers {
            let w = L.blocks[l]
            layerNorm(w.ln1w, w.ln1b)
            fill(qkv.pointer, from: P + w.qkvb, n: 3 * C)
            linear(qkv.pointer, x: h.pointer, weight: w.qkvw, k: C, n: 3 * C)
            adapt(.attn, layer: l, x: h.pointer, ldx: C, y: qkv.pointer, ldy: 3 * C)
            for i in 0..<S {
                let q = qkv.pointer + i * 3 * C, yi = y.pointer + i * C
                let kc = keys[i][l].pointer, vc = values[i][l].pointer
                (kc + pos * C).update(from: q + C, count: C)
                (vc + pos * C).update(from: q + 2 * C, count: C)
                for head in 0..<H {
                    // scores[j] = q_h · k_j (the chain over hs of the batch's q kᵀ)
                    K.gemvRows(y: scores.pointer, w: kc + head * hs, x: q + head * hs, n: pos + 1, k: hs, ldw: C)
                    K.softmaxCausal(scores.pointer, valid: pos + 1, width: pos + 1, scale: scale)
                    // y_head[hs] = scores[0...pos] · values[0...pos, head]
                    K.gemv(y: yi + head * hs, x: scores.pointer, w: vc + head * hs, k: pos + 1, n: hs, ldw: C)
                }
            }
            fill(tmp.pointer, from: P + w.projb, n: C)
            linear(tmp.pointer, x: y.pointer, weight: w.projw, k: C, n: C)
            adapt(.proj, layer: l, x: y.pointer, ldx: C, y: tmp.pointer, ldy: C)
            addInPlace(x.pointer, tmp.pointer, S * C)
            layerNorm(w.ln2w, w.ln2b)
            fill(fc.pointer, from: P + w.fcb, n: 4 * C)
            linear(fc.pointer, x: h.pointer, weight: w.fcw, k: C, n: 4 * C)
            adapt(.fc, layer: l, x: h.pointer, ldx: C, y: fc.pointer, ldy: 4 * C)
            GELU.forward(out: fcGelu.pointer, x: fc.pointer, N: S * 4 * C, kernels: K, pool: single)
            fill(tmp.pointer, from: P + w.fc2b, n: C)
            linear(tmp.pointer, x: fcGelu.pointer, weight: w.fc2w, k: 4 * C, n: C)
            adapt(.mlpProj, layer: l, x: fcGelu.pointer, ldx: 4 * C, y: tmp.pointer, ldy: C)
            addInPlace(x.pointer, tmp.pointer, S * C)
        }
        layerNorm(L.lnfw, L.lnfb)
        // The tied head: logits = h · wteᵀ.
        linear(allLogits.pointer, x: h.pointer, weight: L.wte, k: C, n: V, transB: true, accumulate: false)
    }
}
