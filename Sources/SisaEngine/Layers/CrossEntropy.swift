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
}
