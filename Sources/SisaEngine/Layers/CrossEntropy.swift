import Foundation

// Softmax cross-entropy over the vocabulary, fused with its gradient.
//   logits [M, V] -> loss[M] = -log softmax(logits)[target]   (target < 0: ignored, loss 0)
//   dlogits [M, V] = (softmax - onehot(target)) * scale * w[row] (in place over logits)

enum CrossEntropy {
    static let rowGrain = 64

    /// Log-softmax statistics of one row: (max, log Σ exp(x - max)).
    @inline(__always)
    static func logSumExp(_ row: UnsafePointer<Float>, _ V: Int) -> (Float, Float) {
        var i = 0
        var mx = -Float.infinity
        if V >= 8 {
            var m8 = load8(row); i = 8
            while i + 8 <= V { m8 = vmax(m8, load8(row + i)); i += 8 }
            mx = hmax(m8)
        }
        while i < V { mx = max(mx, row[i]); i += 1 }
        let mv = F8(repeating: mx)
        var acc = F8(repeating: 0)
        i = 0
        while i + 8 <= V { acc += exp8(load8(row + i) - mv); i += 8 }
        var s = hsum(acc)
        while i < V { s += exp1(row[i] - mx); i += 1 }
        return (mx, logf(s))
    }

    /// Writes losses[M] and, when `gradScale` is given, turns logits into dlogits.
    static func forwardBackward(logits: UnsafeMutablePointer<Float>, losses: UnsafeMutablePointer<Float>,
                                targets: UnsafePointer<Int32>, weights: UnsafePointer<Float>? = nil, M: Int, V: Int,
                                gradScale: Float?, pool: WorkerPool) {
        let parts = partCount(M, grain: rowGrain)
        pool.run(parts: parts) { part, _ in
            for r in partRange(part, of: parts, total: M) {
                let row = logits + r * V
                let target = Int(targets[r])
                let (mx, lse) = logSumExp(row, V)
                losses[r] = target >= 0 ? (mx + lse) - row[target] : 0
                guard let baseScale = gradScale else { continue }
                let gradScale = baseScale * (weights?[r] ?? 1)
                if target < 0 {
                    row.update(repeating: 0, count: V)
                    continue
                }
                let shift = F8(repeating: mx + lse), sv = F8(repeating: gradScale)
                var i = 0
                while i + 8 <= V { store8(exp8(load8(row + i) - shift) * sv, row + i); i += 8 }
                while i < V { row[i] = exp1(row[i] - (mx + lse)) * gradScale; i += 1 }
                row[target] -= gradScale
            }
        }
    }
}
