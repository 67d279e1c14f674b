import Foundation

/// Records laid out as batch rows for DP-SGD, one record per row group: a
/// record's tokens (<end> text <end>) are cut into windows of T+1 tokens
/// that overlap by one, so every target is predicted exactly once and no
/// row holds two records (rows never mix, which keeps gradients per record).
public struct RecordBatch: Sendable {
    /// Rows of one pass of the two-pass clipping, and so the most rows a DP
    /// store's record may take (stores refuse longer records at ingest).
    public static let maxRowsPerPass = 32

    /// Rows a record of `tokens` tokens (<end> text <end>) takes at context T.
    public static func rows(tokens: Int, T: Int) -> Int { max(1, (tokens - 1 + T - 1) / T) }

    public let batch: Batch
    /// Positions [B * T] of each record's targets: contiguous, since only a
    /// record's last row is cut short.
    public let spans: [Range<Int>]

    public init(records: [[Int32]], T: Int) {
        var rows: [[Int32]] = []
        var spans: [Range<Int>] = []
        for r in records {
            precondition(r.count >= 2, "a record needs at least one target")
            let first = rows.count
            var o = 0
            while o < r.count - 1 {
                rows.append(Array(r[o..<min(o + T + 1, r.count)]))
                o += T
            }
            let lastTargets = rows[rows.count - 1].count - 1
            spans.append((first * T)..<((rows.count - 1) * T + lastTargets))
        }
        var batch = Batch(rows: rows, T: T)
        // Each record's loss is its mean NLL: its gradient does not grow with its length.
        var weights = [Float](repeating: 0, count: batch.B * T)
        for s in spans {
            let w = 1 / Float(s.count)
            for t in s { weights[t] = w }
        }
        batch.weights = weights
        self.batch = batch
        self.spans = spans
    }
}

public struct PrivateStepResult: Sendable {
    /// Mean NLL over the sampled records' targets (0 when none was sampled).
    public let loss: Double
    public let learningRate: Float
    public let records: Int
    /// Each sampled record's gradient norm before clipping.
    public let recordNorms: [Double]
    public var clippedFraction: Double {
        recordNorms.isEmpty ? 0 : Double(recordNorms.filter { $0 > clipNorm }.count) / Double(recordNorms.count)
    }
    let clipNorm: Double
}

extension Trainer where Model == GPT2Model {
    /// Fills `model.grads` with Σ_i min(1, C / ||g_i||) g_i over the records,
    /// g_i the gradient of record i's mean NLL; returns each ||g_i||.
    ///
    /// Two passes instead of one backward per record: an activations-only
    /// backward that collects every record's norm, then the dlogits of each
    /// record scaled by its clipping factor and one ordinary backward.
    @discardableResult
    public func clippedGradientSum(_ rb: RecordBatch, clip: Double) -> (loss: Double, norms: [Double]) {
        guard !rb.spans.isEmpty else {
            model.grads.zero()
            return (0, [])
        }
        let loss = model.forward(rb.batch, gradients: true, gradScale: 1)
        let acc = RecordGradientNorms(spans: rb.spans, kernels: model.kernels, pool: model.pool)
        model.backward(weightGradients: false, recordNorms: acc)
        let norms = acc.norms
        // Opacus's factor: C / (norm + 1e-6), at most 1.
        let factors = norms.map { Float(min(1, clip / ($0 + 1e-6))) }
        model.scaleLossGradients(spans: rb.spans, factors: factors)
        model.backward()
        return (loss, norms)
    }

    /// The same over any number of records, in passes of at most
    /// `RecordBatch.maxRowsPerPass` rows (a record is never split: its norm
    /// needs all its rows at once), summed in order, so a step's memory is
    /// bounded whatever the sample's size.
    @discardableResult
    public func clippedGradientSum(records: [[Int32]], clip: Double) -> (loss: Double, norms: [Double]) {
        let T = model.context
        var passes: [[[Int32]]] = [[]]
        var rows = 0
        for r in records {
            let n = RecordBatch.rows(tokens: r.count, T: T)
            if rows + n > RecordBatch.maxRowsPerPass && !passes[passes.count - 1].isEmpty {
                passes.append([])
                rows = 0
            }
            passes[passes.count - 1].append(r)
            rows += n
        }
        guard passes.count > 1 else { return clippedGradientSum(RecordBatch(records: records, T: T), clip: clip) }
        let sum = FloatBuffer(count: model.grads.count)
        var lossTotal = 0.0, targets = 0
        var norms: [Double] = []
        for p in passes {
            let rb = RecordBatch(records: p, T: T)
            let (loss, n) = clippedGradientSum(rb, clip: clip)
            let t = rb.batch.targetCount
            lossTotal += loss * Double(t)
            targets += t
            norms += n
            addInPlace(sum.pointer, model.grads.pointer, sum.count)
        }
        model.grads.pointer.update(from: sum.pointer, count: sum.count)
        return (targets > 0 ? lossTotal / Double(targets) : 0, norms)
    }

    /// One DP-SGD step (Abadi et al. 2016) on the records sampled for it:
    /// per-record clipping to `clip`, Gaussian noise of standard deviation
    /// noise·clip on every coordinate of the sum, division by the expected
    /// number of records, then the AdamW update (post-processing).
    /// The noise is drawn from `noiseSeed` alone, so the step is a function
    /// of its inputs.
    @discardableResult
    public func privateStep(records: [[Int32]], clip: Double, noise: Double, expectedRecords: Double,
                            noiseSeed: UInt64) -> PrivateStepResult {
        precondition(clip > 0 && noise >= 0 && expectedRecords > 0)
        let (loss, norms) = clippedGradientSum(records: records, clip: clip)
        GaussianNoise.add(to: model.grads, std: Float(noise * clip), scale: Float(1 / expectedRecords),
                          seed: noiseSeed, pool: model.pool)
        let (lr, _) = optimizer.update(params: model.params, grads: model.grads, kernels: model.kernels, pool: model.pool)
        return PrivateStepResult(loss: loss, learningRate: lr, records: records.count, recordNorms: norms, clipNorm: clip)
    }
}

/// g = (g + std·z) · scale with z standard normal, drawn in fixed chunks
/// each from its own generator (seeded by the step's seed and the chunk
/// index), so the values do not depend on the thread count.
enum GaussianNoise {
    static let chunk = 1 << 15

    static func add(to g: FloatBuffer, std: Float, scale: Float, seed: UInt64, pool: WorkerPool) {
        let n = g.count, p = g.pointer
        let chunks = (n + chunk - 1) / chunk
        pool.run(parts: chunks) { c, _ in
            var rng = Xoshiro256(seed: seed ^ (UInt64(c) &* 0x9E37_79B9_7F4A_7C15))
            var i = c * chunk
            let end = min(n, i + chunk)
            // Marsaglia's polar method, both values of each accepted pair.
            while i < end {
                let u = 2 * rng.nextDouble() - 1, v = 2 * rng.nextDouble() - 1
                let s = u * u + v * v
                guard s > 0 && s < 1 else { continue }
                let f = (-2 * Numerics.log(s) / s).squareRoot()
                p[i] = (p[i] + std * Float(u * f)) * scale
                if i + 1 < end { p[i + 1] = (p[i + 1] + std * Float(v * f)) * scale }
                i += 2
            }
        }
    }
}
