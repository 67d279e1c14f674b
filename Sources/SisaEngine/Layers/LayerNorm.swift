// LayerNorm over the last dimension, eps 1e-5 (GPT-2).
//
//   forward:  out[M, C] = (x - mean) * rstd * w[C] + b[C]; keeps mean[M], rstd[M]
//   backward: dx[M, C] (accumulated into), dw[C], db[C] (overwritten)

enum LayerNorm {
    static let eps: Float = 1e-5
    static let rowGrain = 64

    static func forward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                        rstd: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                        w: UnsafePointer<Float>, b: UnsafePointer<Float>,
                        M: Int, C: Int, pool: WorkerPool) {
        let parts = partCount(M, grain: rowGrain)
        pool.run(parts: parts) { part, _ in
            for r in partRange(part, of: parts, total: M) {
                let xr = x + r * C, o = out + r * C
                let m = sum(xr, C) / Float(C)
                var acc = F8(repeating: 0)
                var i = 0
                let mv = F8(repeating: m)
                while i + 8 <= C { let d = load8(xr + i) - mv; acc = acc.addingProduct(d, d); i += 8 }
                var v = hsum(acc)
                while i < C { let d = xr[i] - m; v += d * d; i += 1 }
                let s = 1 / (v / Float(C) + eps).squareRoot()
                mean[r] = m
                rstd[r] = s
                i = 0
                let sv = F8(repeating: s)
                while i + 8 <= C {
                    store8((load8(xr + i) - mv) * sv * load8(w + i) + load8(b + i), o + i)
                    i += 8
                }
                while i < C { o[i] = (xr[i] - m) * s * w[i] + b[i]; i += 1 }
            }
        }
    }

    /// dx += LayerNorm backward; dw, db overwritten with this call's gradients.
    /// `partials` is scratch of 2 * C * parts floats for per-part dw/db sums.
    static func backward(dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>,
                         db: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                         x: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                         w: UnsafePointer<Float>, M: Int, C: Int,
                         partials: UnsafeMutablePointer<Float>, pool: WorkerPool) {
        let parts = partCount(M, grain: rowGrain)
        pool.run(parts: parts) { part, _ in
            let pdw = partials + part * 2 * C, pdb = pdw + C
            pdw.update(repeating: 0, count: 2 * C)
            for r in partRange(part, of: parts, total: M) {
                let xr = x + r * C, g = dout + r * C, d = dx + r * C
                let m = mean[r], s = rstd[r]
                // mean(dnorm) and mean(dnorm * xhat), dnorm = g * w
                var a1 = F8(repeating: 0), a2 = F8(repeating: 0)
                let mv = F8(repeating: m), sv = F8(repeating: s)
                var i = 0
                while i + 8 <= C {
                    let xh = (load8(xr + i) - mv) * sv
                    let dn = load8(g + i) * load8(w + i)
                    a1 += dn
                    a2 = a2.addingProduct(dn, xh)
                    i += 8
                }
                var s1 = hsum(a1), s2 = hsum(a2)
                while i < C { let xh = (xr[i] - m) * s; let dn = g[i] * w[i]; s1 += dn; s2 += dn * xh; i += 1 }
                let m1 = F8(repeating: s1 / Float(C)), m2 = F8(repeating: s2 / Float(C))
                i = 0
                while i + 8 <= C {
                    let xh = (load8(xr + i) - mv) * sv
                    let gv = load8(g + i)
                    let dn = gv * load8(w + i)
                    store8(load8(d + i) + sv * (dn - m1 - xh * m2), d + i)
                    store8(load8(pdw + i).addingProduct(gv, xh), pdw + i)
                    store8(load8(pdb + i) + gv, pdb + i)
                    i += 8
                }
                while i < C {
                    let xh = (xr[i] - m) * s
                    let dn = g[i] * w[i]
                    d[i] += s * (dn - s1 / Float(C) - xh * s2 / Float(C))
                    pdw[i] += g[i] * xh
                    pdb[i] += g[i]
                    i += 1
                }
            }
        }
        // Reduce the per-part sums in part order.
        dw.update(from: partials, count: C)
        db.update(from: partials + C, count: C)
        for p in 1..<max(parts, 1) {
            addInPlace(dw, partials + p * 2 * C, C)
            addInPlace(db, partials + p * 2 * C + C, C)
        }
    }
}
