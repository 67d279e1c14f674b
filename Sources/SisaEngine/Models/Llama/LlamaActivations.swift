/// What a Llama forward keeps for its backward, and the backward's scratch,
/// for up to `capacity` rows of T positions. An inference forward keeps one
/// layer's buffers and two residual streams (ping-pong), so scoring a long
/// window costs one layer's attention matrix, not thirty.
final class LlamaActivations {
    let capacity: Int
    let T: Int
    var B: Int
    let training: Bool
    let tokens: UnsafeMutablePointer<Int32>
    let targets: UnsafeMutablePointer<Int32>

    final class Layer {
        let h1, r1, qkv, att, atty, x2, h2, r2, gu, act: FloatBuffer
        init(BT: Int, B: Int, T: Int, c: LlamaConfiguration) {
            h1 = FloatBuffer.activation(BT * c.dim)           // [B, T, C] normed input of attention
            r1 = FloatBuffer.activation(BT)                   // its 1/rms
            qkv = FloatBuffer.activation(BT * c.qkvWidth)     // [B, T, q|k|v], q and k rotated
            att = FloatBuffer.activation(B * c.heads * T * T) // [B, H, T, T] probabilities
            atty = FloatBuffer.activation(BT * c.qWidth)      // [B, T, H·hs] attention output
            x2 = FloatBuffer.activation(BT * c.dim)           // residual after attention
            h2 = FloatBuffer.activation(BT * c.dim)           // normed input of the MLP
            r2 = FloatBuffer.activation(BT)
            gu = FloatBuffer.activation(BT * 2 * c.ffDim)     // [B, T, gate|up]
            act = FloatBuffer.activation(BT * c.ffDim)        // silu(gate) ⊙ up
        }
    }

    let residual: [FloatBuffer]   // inputs of each block, then the last output (training); two otherwise
    let layers: [Layer]
    let hf, rf: FloatBuffer       // final norm output [B, T, C] and its 1/rms
    let logits: FloatBuffer       // [B, T, V]; dlogits in place after a training forward
    let losses: FloatBuffer       // [B, T]

    // Backward scratch (training only).
    let dres, dC, dQKV, dY, dGU, dF, attScratch, normPartials: FloatBuffer

    init(config c: LlamaConfiguration, B: Int, T: Int, threads: Int, training: Bool) {
        capacity = B
        self.B = B
        self.T = T
        self.training = training
        let BT = B * T, C = c.dim
        tokens = .allocate(capacity: BT)
        targets = .allocate(capacity: BT)
        residual = (0..<(training ? c.layers + 1 : 2)).map { _ in FloatBuffer.activation(BT * C) }
        layers = (0..<(training ? c.layers : 1)).map { _ in Layer(BT: BT, B: B, T: T, c: c) }
        hf = FloatBuffer.activation(BT * C)
        rf = FloatBuffer.activation(BT)
        logits = FloatBuffer.activation(BT * c.vocab)
        losses = FloatBuffer.activation(BT)
        let n = training ? 1 : 0
        dres = FloatBuffer.activation(n * BT * C)
        dC = FloatBuffer.activation(n * BT * C)
        dQKV = FloatBuffer.activation(n * BT * c.qkvWidth)
        dY = FloatBuffer.activation(n * BT * c.qWidth)
        dGU = FloatBuffer.activation(n * BT * 2 * c.ffDim)
        dF = FloatBuffer.activation(n * BT * c.ffDim)
        attScratch = FloatBuffer.activation(n * threads * T * T)
        normPartials = FloatBuffer.activation(n * RMSNorm.partialFloats(M: BT, C: C))
    }

    func layer(_ l: Int) -> Layer { layers[training ? l : 0] }
    func stream(_ l: Int) -> FloatBuffer { residual[training ? l : l % 2] }

    deinit {
        tokens.deallocate()
        targets.deallocate()
    }
}
