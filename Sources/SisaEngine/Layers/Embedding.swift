// Token (+ position) embedding; llama has no position table (rotary instead).
//   forward:  x[b, t, :] = wte[tok[b, t], :] (+ wpe[t, :])       x [B, T, C]
//   backward: dwte[tok[b, t], :] += dx[b, t, :]; dwpe[t, :] += dx[b, t, :]
// The backward scatter runs over tokens in order inside each column part, so
// sums are formed in a fixed order whatever the threading.

enum Embedding {
    static let colGrain = 32

    static func forward(x: UnsafeMutablePointer<Float>, tokens: UnsafePointer<Int32>,
                        wte: UnsafePointer<Float>, wpe: UnsafePointer<Float>?,
                        B: Int, T: Int, C: Int, pool: WorkerPool) {
        let parts = partCount(B * T, grain: 256)
        pool.run(parts: parts) { part, _ in
            for i in partRange(part, of: parts, total: B * T) {
                let t = i % T
                let o = x + i * C, e = wte + Int(tokens[i]) * C
                guard let wpe else {
                    o.update(from: e, count: C)
                    continue
                }
                let p = wpe + t * C
                var c = 0
                while c + 8 <= C { store8(load8(e + c) + load8(p + c), o + c); c += 8 }
                while c < C { o[c] = e[c] + p[c]; c += 1 }
            }
        }
    }

    /// dwte accumulates (the head already wrote its share); dwpe (when given) is overwritten.
    static func backward(dwte: UnsafeMutablePointer<Float>, dwpe: UnsafeMutablePointer<Float>?,
                         dx: UnsafePointer<Float>, tokens: UnsafePointer<Int32>,
                         B: Int, T: Int, C: Int, context: Int, pool: WorkerPool) {
        let parts = partCount(C, grain: colGrain)
        pool.run(parts: parts) { part, _ in
            let cols = partRange(part, of: parts, total: C)
            let n = cols.count, c0 = cols.lowerBound
            if let dwpe { for t in 0..<context { (dwpe + t * C + c0).update(repeating: 0, count: n) } }
            for i in 0..<(B * T) {
                let src = dx + i * C + c0
                addInPlace(dwte + Int(tokens[i]) * C + c0, src, n)
                if let dwpe { addInPlace(dwpe + (i % T) * C + c0, src, n) }
            }
        }
    }
}
