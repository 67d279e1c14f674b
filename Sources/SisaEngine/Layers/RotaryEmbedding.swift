// Rotary position embeddings (Su et al. 2021) in Hugging Face's layout: the
// pairs of a head are (i, i + hs/2), rotated by angle pos · f_i.
//
//   forward:  a' = a cos − b sin,  b' = b cos + a sin       (q and k, in place)
//   backward: da = da' cos + db' sin,  db = db' cos − da' sin
//
// The table is computed once per model in float32 the way transformers does
// (f_i = 1 / θ^(2i/hs), angle = pos · f_i, each a float32 operation), with
// the project's own pow, cos and sin (Numerics) in Double rounded to float:
// the same bits on every machine, and within an ulp of transformers' table.

public struct RotaryTable: Sendable {
    public let positions: Int
    public let half: Int
    let cos: FloatBuffer
    let sin: FloatBuffer

    public init(config c: LlamaConfiguration, positions: Int) {
        self.positions = positions
        half = c.headDim / 2
        cos = FloatBuffer(count: positions * half)
        sin = FloatBuffer(count: positions * half)
        let f = RotaryTable.frequencies(config: c)
        for p in 0..<positions {
            for i in 0..<half {
                let angle = Float(p) * f[i]
                cos[p * half + i] = Float(Numerics.cos(Double(angle)))
                sin[p * half + i] = Float(Numerics.sin(Double(angle)))
            }
        }
    }

    /// The rotary frequencies f_i, i < hs/2, with the configuration's scaling.
    public static func frequencies(config c: LlamaConfiguration) -> [Float] {
        let hs = c.headDim
        let theta = Double(Float(c.ropeTheta))
        var f: [Float] = (0..<(hs / 2)).map { i in
            let e = Float(2 * i) / Float(hs)
            let p = Float(Numerics.pow(theta, Double(e)))
            return 1 / p
        }
        if let factors = c.ropeFrequencyFactors {
            for i in f.indices { f[i] = f[i] / factors[i] }
        }
        guard let s = c.ropeScaling else { return f }
        let factor = Float(s.factor)
        switch s.type {
        case "linear":
            return f.map { $0 / factor }
        default:
            // llama3: long wavelengths divided by the factor, short ones kept,
            // the band between interpolated (transformers' _compute_llama3_parameters).
            // Scalars combine in Double (Python floats), then meet the float32 tensor as floats.
            let lo = s.lowFrequencyFactor!, hi = s.highFrequencyFactor!, old = Double(s.originalContext!)
            let lowWavelength = Float(old / lo), highWavelength = Float(old / hi)
            let twoPi = Float(2 * Double.pi), span = Float(hi - lo), lof = Float(lo), oldf = Float(old)
            return f.map { inv in
                let wavelength = twoPi / inv
                let scaled = wavelength > lowWavelength ? inv / factor : inv
                guard !(wavelength < highWavelength), !(wavelength > lowWavelength) else { return scaled }
                let smooth = (oldf / wavelength - lof) / span
                return (1 - smooth) * scaled / factor + smooth * scaled
            }
        }
    }

    func cos(at p: Int) -> UnsafePointer<Float> { UnsafePointer(cos.pointer + p * half) }
    func sin(at p: Int) -> UnsafePointer<Float> { UnsafePointer(sin.pointer + p * half) }
}

enum RotaryEmbedding {
    static let rowGrain = 64

    /// Rotates the first `heads` heads of each of M rows (row stride `stride`), row i at position i % T.
    static func forward(_ x: UnsafeMutablePointer<Float>, stride: Int, heads: Int, headSize: Int, M: Int, T: Int,
                        table: RotaryTable, kernels: Kernels, pool: WorkerPool) {
        let parts = partCount(M, grain: rowGrain)
        pool.run(parts: parts) { part, _ in
            for i in partRange(part, of: parts, total: M) {
                kernels.ropeForward(x + i * stride, heads: heads, headSize: headSize, cos: table.cos(at: i % T), sin: table.sin(at: i % T))
            }
        }
    }

    static func backward(_ dx: UnsafeMutablePointer<Float>, stride: Int, heads: Int, headSize: Int, M: Int, T: Int,
                         table: RotaryTable, kernels: Kernels, pool: WorkerPool) {
        let parts = partCount(M, grain: rowGrain)
        pool.run(parts: parts) { part, _ in
            for i in partRange(part, of: parts, total: M) {
                kernels.ropeBackward(dx + i * stride, heads: heads, headSize: headSize, cos: table.cos(at: i % T), sin: table.sin(at: i % T))
            }
        }
    }
}
