// Softmax cross-entropy over the vocabulary, fused with its gradient.
//   logits [M, V] -> loss[M] = -log softmax(logits)[target]   (target < 0: ignored, loss 0)
//   dlogits [M, V] = (softmax - onehot(target)) * scale * w[row] (in place over logits)

enum CrossEntropy {
    static let rowGrain = 64

    /// Writes losses[M] and, when `gradScale` is given, turns logits into dlogits.
    static func forwardBackward(logits: UnsafeMutablePointer<Float>, losses: UnsafeMutablePointer<Float>,
                                targets: UnsafePointer<Int32>, weights: UnsafePointer<Float>? = nil, M: Int, V: Int,
                                gradScale: Float?, kernels: Kernels, pool: WorkerPool) {
        let parts = partCount(M, grain: rowGrain)
        pool.run(parts: parts) { part, _ in
            let r = partRange(part, of: parts, total: M)
            kernels.crossEntropy(logits: logits + r.lowerBound * V, losses: losses + r.lowerBound,
                                 targets: targets + r.lowerBound, weights: weights.map { $0 + r.lowerBound },
                                 rows: r.count, V: V, gradScale: gradScale)
        }
    }

    /// The mean NLL of `batch`'s targets from `logits` [B·T, V] (losses [B·T] kept per
    /// position). With `gradients` the logits become dlogits, scaled by `gradScale`
    /// (default 1/targets) and the batch's per-position weights. Logits alone (no target,
    /// no gradient) are left as they are: nothing to score.
    static func batchLoss(logits: UnsafeMutablePointer<Float>, losses: UnsafeMutablePointer<Float>,
                          targets: UnsafePointer<Int32>, batch: Batch, V: Int, gradients: Bool, gradScale: Float?,
                          kernels: Kernels, pool: WorkerPool) -> Double {
        let M = batch.B * batch.T
        let count = batch.targetCount
        if count == 0 && !gradients {
            losses.update(repeating: 0, count: M)
            return 0
        }
        let scale: Float? = gradients ? (gradScale ?? 1 / Float(max(count, 1))) : nil
        precondition(batch.weights.map { $0.count == M } ?? true, "batch weights must hold B*T values")
        (batch.weights ?? []).withUnsafeBufferPointer { wp in
            forwardBackward(logits: logits, losses: losses, targets: targets, weights: batch.weights == nil ? nil : wp.baseAddress,
                            M: M, V: V, gradScale: scale, kernels: kernels, pool: pool)
        }
        guard count > 0 else { return 0 }
        var total = 0.0
        for i in 0..<M { total += Double(losses[i]) }
        return total / Double(count)
    }

    /// Multiplies the dlogits [rows, V] of each span of positions by its factor: the next
    /// backward then yields the weighted sum of per-record gradients (rows of a
    /// transformer never mix, so scaling a record's dlogits scales its whole gradient).
    static func scale(dlogits: UnsafeMutablePointer<Float>, rows: Int, V: Int, spans: [Range<Int>], factors: [Float]) {
        precondition(spans.count == factors.count)
        for (span, f) in zip(spans, factors) where f != 1 {
            precondition(span.upperBound <= rows)
            let p = dlogits + span.lowerBound * V
            for i in 0..<(span.count * V) { p[i] *= f }
        }
    }
}
