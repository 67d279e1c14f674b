import Foundation

/// Incremental inference for one sequence with a key/value cache: feed one
/// token, get the next-token logits. Used by generation and by the ensemble,
/// which feeds the same token to every shard's session.
public final class InferenceSession {
    public let model: GPT
    private let keys: [FloatBuffer]    // per layer [T, C]
    private let values: [FloatBuffer]  // per layer [T, C]
    private let x, h, qkv, y, tmp, fc, fcGelu, scores, stats: FloatBuffer
    /// wte transposed, [C, V]: the head as a row-streaming gemv.
    private let wteT: FloatBuffer
    public let logits: FloatBuffer     // [V]
    public private(set) var history: [Int32] = []
    private var position = 0
    private let single = WorkerPool(threads: 1)

    public init(model: GPT) {
        self.model = model
        let c = model.config
        keys = (0..<c.layers).map { _ in FloatBuffer(count: c.context * c.dim) }
        values = (0..<c.layers).map { _ in FloatBuffer(count: c.context * c.dim) }
        x = FloatBuffer(count: c.dim); h = FloatBuffer(count: c.dim); y = FloatBuffer(count: c.dim)
        tmp = FloatBuffer(count: c.dim); qkv = FloatBuffer(count: 3 * c.dim)
        fc = FloatBuffer(count: 4 * c.dim); fcGelu = FloatBuffer(count: 4 * c.dim)
        scores = FloatBuffer(count: c.context); stats = FloatBuffer(count: 2)
        logits = FloatBuffer(count: c.vocab)
        wteT = FloatBuffer(count: c.dim * c.vocab)
        let wte = model.params.pointer + model.layout.wte
        for v in 0..<c.vocab {
            for i in 0..<c.dim { wteT[i * c.vocab + v] = wte[v * c.dim + i] }
        }
    }

    public func reset() {
        history = []
        position = 0
    }

    /// Appends `token` and returns the logits for the next one. When the context
    /// is full, the cache is rebuilt from the last half of the history.
    @discardableResult
    public func feed(_ token: Int32) -> UnsafeBufferPointer<Float> {
        precondition(token >= 0 && Int(token) < model.config.vocab, "token id \(token) out of range")
        let T = model.config.context
        history.append(token)
        if position == T {
            let keep = Array(history.suffix(T / 2))
            position = 0
            for t in keep { step(t) }
        } else {
            step(token)
        }
        return UnsafeBufferPointer(start: logits.pointer, count: logits.count)
    }

    private func step(_ token: Int32) {
        let c = model.config, C = c.dim, H = c.heads, hs = c.headSize, V = c.vocab
        let L = model.layout, P = model.params.pointer, K = model.kernels
        let pos = position
        for i in 0..<C { x[i] = P[L.wte + Int(token) * C + i] + P[L.wpe + pos * C + i] }
        for l in 0..<c.layers {
            let w = L.blocks[l]
            LayerNorm.forward(out: h.pointer, mean: stats.pointer, rstd: stats.pointer + 1, x: x.pointer,
                              w: P + w.ln1w, b: P + w.ln1b, M: 1, C: C, kernels: K, pool: single)
            qkv.pointer.update(from: P + w.qkvb, count: 3 * C)
            K.gemv(y: qkv.pointer, x: h.pointer, w: P + w.qkvw, k: C, n: 3 * C, ldw: 3 * C, accumulate: true)
            (keys[l].pointer + pos * C).update(from: qkv.pointer + C, count: C)
            (values[l].pointer + pos * C).update(from: qkv.pointer + 2 * C, count: C)
            let scale = 1 / Float(hs).squareRoot()
            for head in 0..<H {
                let q = qkv.pointer + head * hs
                for j in 0...pos { scores[j] = K.dot(q, keys[l].pointer + j * C + head * hs, hs) }
                K.softmaxCausal(scores.pointer, valid: pos + 1, width: pos + 1, scale: scale)
                // y_head[hs] = scores[0...pos] · values[0...pos, head]
                K.gemv(y: y.pointer + head * hs, x: scores.pointer, w: values[l].pointer + head * hs,
                       k: pos + 1, n: hs, ldw: C)
            }
            tmp.pointer.update(from: P + w.projb, count: C)
            K.gemv(y: tmp.pointer, x: y.pointer, w: P + w.projw, k: C, n: C, ldw: C, accumulate: true)
            addInPlace(x.pointer, tmp.pointer, C)
            LayerNorm.forward(out: h.pointer, mean: stats.pointer, rstd: stats.pointer + 1, x: x.pointer,
                              w: P + w.ln2w, b: P + w.ln2b, M: 1, C: C, kernels: K, pool: single)
            fc.pointer.update(from: P + w.fcb, count: 4 * C)
            K.gemv(y: fc.pointer, x: h.pointer, w: P + w.fcw, k: C, n: 4 * C, ldw: 4 * C, accumulate: true)
            GELU.forward(out: fcGelu.pointer, x: fc.pointer, N: 4 * C, kernels: K, pool: single)
            tmp.pointer.update(from: P + w.fc2b, count: C)
            K.gemv(y: tmp.pointer, x: fcGelu.pointer, w: P + w.fc2w, k: 4 * C, n: C, ldw: C, accumulate: true)
            addInPlace(x.pointer, tmp.pointer, C)
        }
        LayerNorm.forward(out: h.pointer, mean: stats.pointer, rstd: stats.pointer + 1, x: x.pointer,
                          w: P + L.lnfw, b: P + L.lnfb, M: 1, C: C, kernels: K, pool: single)
        K.gemv(y: logits.pointer, x: h.pointer, w: wteT.pointer, k: C, n: V, ldw: V)
        position += 1
    }
}

/// Next-token choice: greedy at temperature 0, else softmax(logits / T)
/// restricted to the top k, sampled with a seeded generator.
public struct Sampler {
    public var temperature: Double
    public var topK: Int?
    public var rng: Xoshiro256

    public init(temperature: Double = 1, topK: Int? = nil, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.rng = Xoshiro256(seed: seed)
    }

    /// Softmax of logits (Double, for aggregation across models).
    public static func probabilities<C: Collection>(_ logits: C) -> [Double] where C.Element == Float {
        let mx = Double(logits.max() ?? 0)
        let e = logits.map { Numerics.exp(Double($0) - mx) }
        let z = e.reduce(0, +)
        return e.map { $0 / z }
    }

    /// Picks a token from a probability vector (already aggregated if from an ensemble).
    public mutating func pick(_ probs: [Double]) -> Int32 {
        if temperature <= 0 { return Int32(probs.indices.max { probs[$0] < probs[$1] }!) }
        var order = Array(probs.indices)
        if let k = topK, k > 0, k < probs.count {
            order.sort { probs[$0] != probs[$1] ? probs[$0] > probs[$1] : $0 < $1 }
            order = Array(order.prefix(k))
        }
        // A byte of probability 0 (refused by an output filter) is never drawn.
        let w = order.map { probs[$0] > 0 ? Numerics.exp(Numerics.log(max(probs[$0], 1e-300)) / temperature) : 0 }
        let z = w.reduce(0, +)
        var u = rng.nextDouble() * z
        for (i, idx) in order.enumerated() {
            u -= w[i]
            if u <= 0 { return Int32(idx) }
        }
        return Int32(order.last!)
    }
}

extension GPT {
    /// Generates up to `maxTokens` bytes after `prompt`, stopping at end-of-text.
    public func generate(prompt: [UInt8], maxTokens: Int, sampler: inout Sampler) -> [UInt8] {
        let session = InferenceSession(model: self)
        var logits = session.feed(ModelConfig.endOfText)
        for b in prompt { logits = session.feed(Int32(b)) }
        var out: [UInt8] = []
        for _ in 0..<maxTokens {
            let next = sampler.pick(Sampler.probabilities(logits))
            if next == ModelConfig.endOfText { break }
            out.append(UInt8(next))
            logits = session.feed(next)
        }
        return out
    }
}
