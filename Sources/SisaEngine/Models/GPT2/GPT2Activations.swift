/// Forward activations kept for the backward pass, and backward scratch,
/// sized for up to `capacity` rows of T positions. A batch of fewer rows
/// uses a prefix of every buffer (record-sampled DP batches vary in size).
final class GPT2Activations {
    let capacity: Int
    let T: Int
    /// Rows of the current batch (<= capacity).
    var B: Int
    let tokens: UnsafeMutablePointer<Int32>
    let targets: UnsafeMutablePointer<Int32>

    final class Layer {
        let ln1, ln1Mean, ln1Rstd, qkv, att, atty, res2, ln2, ln2Mean, ln2Rstd, fch, fchGelu: FloatBuffer
        init(BT: Int, B: Int, T: Int, C: Int, H: Int) {
            ln1 = FloatBuffer.activation(BT * C); ln1Mean = FloatBuffer.activation(BT); ln1Rstd = FloatBuffer.activation(BT)
            qkv = FloatBuffer.activation(BT * 3 * C)         // [B, T, 3C]
            att = FloatBuffer.activation(B * H * T * T)      // [B, H, T, T] probabilities
            atty = FloatBuffer.activation(BT * C)            // [B, T, C] attention output
            res2 = FloatBuffer.activation(BT * C)            // residual after attention
            ln2 = FloatBuffer.activation(BT * C); ln2Mean = FloatBuffer.activation(BT); ln2Rstd = FloatBuffer.activation(BT)
            fch = FloatBuffer.activation(BT * 4 * C)         // [B, T, 4C] before GELU
            fchGelu = FloatBuffer.activation(BT * 4 * C)     // after GELU
        }
    }

    let residual: [FloatBuffer]   // L+1 of [B, T, C]: input of each block, then the last output
    let layers: [Layer]
    let lnf, lnfMean, lnfRstd: FloatBuffer
    let logits: FloatBuffer       // [B, T, V]; dlogits in place after a training forward
    let losses: FloatBuffer       // [B, T]

    // Backward scratch.
    let dres: FloatBuffer         // [B, T, C] gradient of the residual stream
    let dC: FloatBuffer           // [B, T, C]
    let d4C: FloatBuffer          // [B, T, 4C]
    let dqkv: FloatBuffer         // [B, T, 3C]
    let attScratch: FloatBuffer   // threads x [T, T]
    let lnPartials: FloatBuffer   // per-part LayerNorm dw/db sums

    init(config c: GPT2Configuration, B: Int, T: Int, threads: Int) {
        self.capacity = B
        self.B = B
        self.T = T
        let BT = B * T, C = c.dim
        tokens = .allocate(capacity: BT)
        targets = .allocate(capacity: BT)
        residual = (0...c.layers).map { _ in FloatBuffer.activation(BT * C) }
        layers = (0..<c.layers).map { _ in Layer(BT: BT, B: B, T: T, C: C, H: c.heads) }
        lnf = FloatBuffer.activation(BT * C); lnfMean = FloatBuffer.activation(BT); lnfRstd = FloatBuffer.activation(BT)
        logits = FloatBuffer.activation(BT * c.vocab)
        losses = FloatBuffer.activation(BT)
        dres = FloatBuffer.activation(BT * C)
        dC = FloatBuffer.activation(BT * C)
        d4C = FloatBuffer.activation(BT * 4 * C)
        dqkv = FloatBuffer.activation(BT * 3 * C)
        attScratch = FloatBuffer.activation(threads * T * T)
        lnPartials = FloatBuffer.activation(2 * C * partCount(BT, grain: LayerNorm.rowGrain))
    }

    deinit {
        tokens.deallocate()
        targets.deallocate()
    }
}
