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
            ln1 = FloatBuffer(count: BT * C); ln1Mean = FloatBuffer(count: BT); ln1Rstd = FloatBuffer(count: BT)
            qkv = FloatBuffer(count: BT * 3 * C)         // [B, T, 3C]
            att = FloatBuffer(count: B * H * T * T)      // [B, H, T, T] probabilities
            atty = FloatBuffer(count: BT * C)            // [B, T, C] attention output
            res2 = FloatBuffer(count: BT * C)            // residual after attention
            ln2 = FloatBuffer(count: BT * C); ln2Mean = FloatBuffer(count: BT); ln2Rstd = FloatBuffer(count: BT)
            fch = FloatBuffer(count: BT * 4 * C)         // [B, T, 4C] before GELU
            fchGelu = FloatBuffer(count: BT * 4 * C)     // after GELU
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
        residual = (0...c.layers).map { _ in FloatBuffer(count: BT * C) }
        layers = (0..<c.layers).map { _ in Layer(BT: BT, B: B, T: T, C: C, H: c.heads) }
        lnf = FloatBuffer(count: BT * C); lnfMean = FloatBuffer(count: BT); lnfRstd = FloatBuffer(count: BT)
        logits = FloatBuffer(count: BT * c.vocab)
        losses = FloatBuffer(count: BT)
        dres = FloatBuffer(count: BT * C)
        dC = FloatBuffer(count: BT * C)
        d4C = FloatBuffer(count: BT * 4 * C)
        dqkv = FloatBuffer(count: BT * 3 * C)
        attScratch = FloatBuffer(count: threads * T * T)
        lnPartials = FloatBuffer(count: 2 * C * partCount(BT, grain: LayerNorm.rowGrain))
    }

    deinit {
        tokens.deallocate()
        targets.deallocate()
    }
}
