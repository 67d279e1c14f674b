// The residual stream: y[n] += x[n] (element-wise IEEE additions, the same
// bits on every path; parts of 32 K floats run in parallel).

enum Residual {
    static let grain = 32_768

    static func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int, pool: WorkerPool) {
        let parts = partCount(n, grain: grain)
        pool.run(parts: parts) { part, _ in
            let r = partRange(part, of: parts, total: n)
            addInPlace(y + r.lowerBound, x + r.lowerBound, r.count)
        }
    }
}
