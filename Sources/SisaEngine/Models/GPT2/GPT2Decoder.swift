import Foundation

/// Incremental GPT-2 inference for one sequence with a key/value cache:
/// feed one token, get the next-token logits. Used by generation and by the
/// ensemble, which feeds the same token to every shard's decoder. Every
/// product is the chain of the batch forward (a frozen base's packed panels,
/// else `gemv` for the [in, out] weights and `gemvRows` for the tied head;
/// `gemvRows` for q·k), so the logits equal the batch forward's at the same
/// positions.
public final class GPT2Decoder: TokenDecoder {
    public let model: GPT2Model
    private let keys: [FloatBuffer]    // per layer [T, C]
    private let values: [FloatBuffer]  // per layer [T, C]
    private let x, h, qkv, y, tmp, fc, fcGelu, scores, stats, u: FloatBuffer
    public let logits: FloatBuffer     // [V]
    private var window: DecodeWindow
    public var history: [Int32] { window.history }
    private let single = WorkerPool(threads: 1)

    public var vocabularySize: Int { model.config.vocab }

    public init(model: GPT2Model) {
        self.model = model
        let c = model.config
        window = DecodeWindow(context: c.context)
        keys = (0..<c.layers).map { _ in FloatBuffer(count: c.context * c.dim) }
        values = (0..<c.layers).map { _ in FloatBuffer(count: c.context * c.dim) }
        x = FloatBuffer(count: c.dim); h = FloatBuffer(count: c.dim); y = FloatBuffer(count: c.dim)
        tmp = FloatBuffer(count: c.dim); qkv = FloatBuffer(count: 3 * c.dim)
        fc = FloatBuffer(count: 4 * c.dim); fcGelu = FloatBuffer(count: 4 * c.dim)
        scores = FloatBuffer(count: c.context); stats = FloatBuffer(count: 2)
        u = FloatBuffer(count: model.adapter?.config.rank ?? 1)
        logits = FloatBuffer(count: c.vocab)
    }

    public func reset() { window.reset() }

    /// Appends `token` and returns the logits for the next one.
    @discardableResult
    public func feed(_ token: Int32) -> UnsafeBufferPointer<Float> {
        precondition(token >= 0 && Int(token) < vocabularySize, "token id \(token) out of range")
        window.feed(token) { step($0, at: $1) }
        return UnsafeBufferPointer(start: logits.pointer, count: logits.count)
    }

    private func adapt(_ product: GPT2Model.Product, layer l: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        model.adapter?.addUpdates(product: product.rawValue, layer: l, x: x, y: y, u: u.pointer, kernels: model.kernels)
    }

    /// y[n] += x[k] · W for the [k, n] weight at `offset` (y holds the bias):
    /// from its panels when the base is frozen, else row by row of W.
    private func linear(_ y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, weight offset: Int, k: Int, n: Int) {
        if let p = model.panels(offset, transB: false, k: k, n: n) {
            model.kernels.gemv(y: y, x: x, panels: p, accumulate: true)
        } else {
            model.kernels.gemv(y: y, x: x, w: model.params.pointer + offset, k: k, n: n, ldw: n, accumulate: true)
        }
    }

    private func step(_ token: Int32, at pos: Int) {
        let c = model.config, C = c.dim, H = c.heads, hs = c.headSize, V = c.vocab
        let L = model.layout, P = model.params.pointer, K = model.kernels, eps = c.epsilon
        for i in 0..<C { x[i] = P[L.wte + Int(token) * C + i] + P[L.wpe + pos * C + i] }
        for l in 0..<c.layers {
            let w = L.blocks[l]
            LayerNorm.forward(out: h.pointer, mean: stats.pointer, rstd: stats.pointer + 1, x: x.pointer,
                              w: P + w.ln1w, b: P + w.ln1b, M: 1, C: C, eps: eps, kernels: K, pool: single)
            qkv.pointer.update(from: P + w.qkvb, count: 3 * C)
            linear(qkv.pointer, x: h.pointer, weight: w.qkvw, k: C, n: 3 * C)
            adapt(.attn, layer: l, x: h.pointer, y: qkv.pointer)
            (keys[l].pointer + pos * C).update(from: qkv.pointer + C, count: C)
            (values[l].pointer + pos * C).update(from: qkv.pointer + 2 * C, count: C)
            let scale = 1 / Float(hs).squareRoot()
            for head in 0..<H {
                // scores[j] = q_h · k_j (the chain over hs of the batch's q kᵀ)
                K.gemvRows(y: scores.pointer, w: keys[l].pointer + head * hs, x: qkv.pointer + head * hs, n: pos + 1, k: hs, ldw: C)
                K.softmaxCausal(scores.pointer, valid: pos + 1, width: pos + 1, scale: scale)
                // y_head[hs] = scores[0...pos] · values[0...pos, head]
                K.gemv(y: y.pointer + head * hs, x: scores.pointer, w: values[l].pointer + head * hs,
                       k: pos + 1, n: hs, ldw: C)
            }
            tmp.pointer.update(from: P + w.projb, count: C)
            linear(tmp.pointer, x: y.pointer, weight: w.projw, k: C, n: C)
            adapt(.proj, layer: l, x: y.pointer, y: tmp.pointer)
            addInPlace(x.pointer, tmp.pointer, C)
            LayerNorm.forward(out: h.pointer, mean: stats.pointer, rstd: stats.pointer + 1, x: x.pointer,
                              w: P + w.ln2w, b: P + w.ln2b, M: 1, C: C, eps: eps, kernels: K, pool: single)
            fc.pointer.update(from: P + w.fcb, count: 4 * C)
            linear(fc.pointer, x: h.pointer, weight: w.fcw, k: C, n: 4 * C)
            adapt(.fc, layer: l, x: h.pointer, y: fc.pointer)
            GELU.forward(out: fcGelu.pointer, x: fc.pointer, N: 4 * C, kernels: K, pool: single)
            tmp.pointer.update(from: P + w.fc2b, count: C)
            linear(tmp.pointer, x: fcGelu.pointer, weight: w.fc2w, k: 4 * C, n: C)
            adapt(.mlpProj, layer: l, x: fcGelu.pointer, y: tmp.pointer)
            addInPlace(x.pointer, tmp.pointer, C)
        }
        LayerNorm.forward(out: h.pointer, mean: stats.pointer, rstd: stats.pointer + 1, x: x.pointer,
                          w: P + L.lnfw, b: P + L.lnfb, M: 1, C: C, eps: eps, kernels: K, pool: single)
        if let p = model.panels(L.wte, transB: true, k: C, n: V) {
            K.gemv(y: logits.pointer, x: h.pointer, panels: p)
        } else {
            K.gemvRows(y: logits.pointer, w: P + L.wte, x: h.pointer, n: V, k: C, ldw: C)
        }
    }
}
