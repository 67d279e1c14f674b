/// Incremental Llama inference with a key/value cache: feed one token, get
/// the next-token logits. Every product is the row-chain of the batch
/// forward (over a frozen base's packed panels, else `gemvRows` over the
/// [out, in] weights), so the logits equal the batch forward's at the same
/// positions.
public final class LlamaDecoder: TokenDecoder {
    public let model: LlamaModel
    private let keys: [FloatBuffer]    // per layer [window, Hkv·hs], rotated
    private let values: [FloatBuffer]  // per layer [window, Hkv·hs]
    private let x, h, qkv, y, tmp, gu, act, scores, rstd, u: FloatBuffer
    public let logits: FloatBuffer     // [V]
    private var window: DecodeWindow
    public var history: [Int32] { window.history }
    private let single = WorkerPool(threads: 1)

    public var vocabularySize: Int { model.config.vocab }

    public init(model: LlamaModel) {
        self.model = model
        let c = model.config, T = model.context
        window = DecodeWindow(context: T)
        keys = (0..<c.layers).map { _ in FloatBuffer(count: T * c.kvWidth) }
        values = (0..<c.layers).map { _ in FloatBuffer(count: T * c.kvWidth) }
        x = FloatBuffer(count: c.dim); h = FloatBuffer(count: c.dim); tmp = FloatBuffer(count: c.dim)
        qkv = FloatBuffer(count: c.qkvWidth); y = FloatBuffer(count: c.qWidth)
        gu = FloatBuffer(count: 2 * c.ffDim); act = FloatBuffer(count: c.ffDim)
        scores = FloatBuffer(count: T); rstd = FloatBuffer(count: 1)
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

    private func adapt(_ product: LlamaModel.Product, layer l: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        model.adapter?.addUpdates(product: product.rawValue, layer: l, x: x, y: y, u: u.pointer, kernels: model.kernels)
    }

    /// y[n] = W x for the [n, k] weight at `offset`: from its panels when the
    /// base is frozen (read once, in order), else row by row.
    private func project(_ y: UnsafeMutablePointer<Float>, weight offset: Int, x: UnsafePointer<Float>, n: Int, k: Int) {
        if let p = model.panels(offset, K: k, N: n) {
            model.kernels.gemv(y: y, x: x, panels: p)
        } else {
            model.kernels.gemvRows(y: y, w: model.weights.values.pointer + offset, x: x, n: n, k: k, ldw: k)
        }
    }

    private func step(_ token: Int32, at pos: Int) {
        let c = model.config, C = c.dim, F = c.ffDim, hs = c.headDim, W = c.qkvWidth
        let L = model.layout, P = model.weights.values.pointer, K = model.kernels
        let group = c.heads / c.kvHeads
        let cosP = model.rope.cos(at: pos), sinP = model.rope.sin(at: pos)
        x.pointer.update(from: P + L.embed + Int(token) * C, count: C)
        let scale = 1 / Float(hs).squareRoot()
        for l in 0..<c.layers {
            let w = L.blocks[l]
            RMSNorm.forward(out: h.pointer, rstd: rstd.pointer, x: x.pointer, w: P + w.attnNorm, M: 1, C: C, eps: c.rmsEpsilon,
                            kernels: K, pool: single)
            project(qkv.pointer, weight: w.qkv, x: h.pointer, n: W, k: C)
            adapt(.qkv, layer: l, x: h.pointer, y: qkv.pointer)
            K.ropeForward(qkv.pointer, heads: c.heads, headSize: hs, cos: cosP, sin: sinP)
            K.ropeForward(qkv.pointer + c.qWidth, heads: c.kvHeads, headSize: hs, cos: cosP, sin: sinP)
            (keys[l].pointer + pos * c.kvWidth).update(from: qkv.pointer + c.qWidth, count: c.kvWidth)
            (values[l].pointer + pos * c.kvWidth).update(from: qkv.pointer + c.qWidth + c.kvWidth, count: c.kvWidth)
            for head in 0..<c.heads {
                let g = head / group
                // scores[j] = q_h · k_j (the chain over hs of the batch's q kᵀ)
                K.gemvRows(y: scores.pointer, w: keys[l].pointer + g * hs, x: qkv.pointer + head * hs, n: pos + 1, k: hs,
                           ldw: c.kvWidth)
                K.softmaxCausal(scores.pointer, valid: pos + 1, width: pos + 1, scale: scale)
                // y_h[hs] = scores[0...pos] · v[0...pos, g]
                K.gemv(y: y.pointer + head * hs, x: scores.pointer, w: values[l].pointer + g * hs, k: pos + 1, n: hs, ldw: c.kvWidth)
            }
            project(tmp.pointer, weight: w.o, x: y.pointer, n: C, k: c.qWidth)
            adapt(.o, layer: l, x: y.pointer, y: tmp.pointer)
            addInPlace(x.pointer, tmp.pointer, C)
            RMSNorm.forward(out: h.pointer, rstd: rstd.pointer, x: x.pointer, w: P + w.mlpNorm, M: 1, C: C, eps: c.rmsEpsilon,
                            kernels: K, pool: single)
            project(gu.pointer, weight: w.gateUp, x: h.pointer, n: 2 * F, k: C)
            adapt(.gateUp, layer: l, x: h.pointer, y: gu.pointer)
            K.swigluForward(out: act.pointer, gu: gu.pointer, rows: 1, F: F)
            project(tmp.pointer, weight: w.down, x: act.pointer, n: C, k: F)
            adapt(.down, layer: l, x: act.pointer, y: tmp.pointer)
            addInPlace(x.pointer, tmp.pointer, C)
        }
        RMSNorm.forward(out: h.pointer, rstd: rstd.pointer, x: x.pointer, w: P + L.norm, M: 1, C: C, eps: c.rmsEpsilon,
                        kernels: K, pool: single)
        project(logits.pointer, weight: L.head, x: h.pointer, n: c.vocab, k: C)
    }
}
