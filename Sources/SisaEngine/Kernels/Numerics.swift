import CSisaKernels

/// The numerics contract: what fixes the bits of every result, on every CPU.
///
/// A trained model must be a function of its inputs and of this project's
/// code only, never of the CPU's vector width, a library's kernel choice or
/// the thread count; otherwise "delete = never ingested" and `sisa verify`
/// hold on one machine only. The rules:
///
/// - Matrix products (`Kernels.gemm`, `gemv`): each output element is one
///   chain of fused multiply-adds over k = 0, 1, ..., K-1, starting from 0 or
///   from the value already in C. Tiles and k-blocks only decide which
///   elements are computed together; a k-block continues the chain through C.
///   A fused multiply-add is correctly rounded on every IEEE-754 machine.
/// - Reductions (sums, dot products, maxima in LayerNorm, softmax,
///   cross-entropy and the gradient norm): 16 logical lanes, element i into
///   lane i % 16 in order, then a fixed pairwise fold (lane l + lane l+8,
///   then +4, +2, +1). The tree is written once, in CSisaKernels/vecmath.h.
/// - Everything else is element-wise IEEE arithmetic (+ - * / sqrt), never
///   contracted into a fused operation (`#pragma clang fp contract(off)` in
///   C; Swift does not contract). No approximate reciprocal or rsqrt.
/// - exp and log are this project's polynomials (vecmath.h for Float, this
///   file for Double), never libm's, whose results may differ by platform
///   and version.
/// - Parallel work is cut into parts by the shapes alone, never by the thread
///   count, and partial sums are combined in part order (`WorkerPool`).
/// - Denormals are not flushed (the IEEE default on Linux and macOS).
///
/// `version` names these bits. Bump it whenever any result may change;
/// stores record it and refuse to continue training across versions.
public enum Numerics {
    /// 1: the OpenBLAS era (bits chosen by OpenBLAS's kernel at run time).
    /// 2: the project's own kernels (CSisaKernels), identical on every path.
    public static let version = 2

    // MARK: Double math with fixed bits (initialisation, schedules, sampling, metrics)

    // ln 2 split so that n * ln2Hi is exact for |n| < 2^11 (fdlibm's constants).
    static let ln2Hi = 6.93147180369123816490e-01
    static let ln2Lo = 1.90821492927058770002e-10

    /// 1/k! for k = 0...20.
    private static let inverseFactorials: [Double] = {
        var f = 1.0
        var t = [1.0]
        for k in 1...20 {
            f *= Double(k)
            t.append(1 / f)
        }
        return t
    }()

    /// e^x: x = n ln2 + r with |r| <= ln2/2, then the Taylor series of e^r to
    /// degree 13 (truncation below 1e-17), scaled by 2^n. Within a few ulp.
    public static func exp(_ x: Double) -> Double {
        if x.isNaN { return x }
        if x > 709.78 { return .infinity }
        if x < -745.2 { return 0 }
        let n = (x * 1.4426950408889634).rounded(.toNearestOrEven)
        let r = (x - n * ln2Hi) - n * ln2Lo
        var s = inverseFactorials[13]
        for k in stride(from: 12, through: 0, by: -1) { s = s * r + inverseFactorials[k] }
        return scaled(s, byPowerOfTwo: Int(n))
    }

    /// log(x): x = 2^e m with m in [sqrt(1/2), sqrt(2)), then
    /// log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, by its odd series.
    public static func log(_ x: Double) -> Double {
        if x.isNaN || x < 0 { return .nan }
        if x == 0 { return -.infinity }
        if x.isInfinite { return x }
        var m = x.significand      // [1, 2)
        var e = Double(x.exponent)
        if m > 1.4142135623730951 {
            m *= 0.5
            e += 1
        }
        let s = (m - 1) / (m + 1)
        let s2 = s * s
        var series = 1.0 / 25
        for k in stride(from: 23, through: 1, by: -2) { series = series * s2 + 1 / Double(k) }
        return (e * ln2Hi + 2 * s * series) + e * ln2Lo
    }

    /// x = k·pi/2 + r with |r| <= pi/4: the quadrant k mod 4 and r, for |x| < 2^20.
    private static func quarterTurns(_ x: Double) -> (quadrant: Int, r: Double) {
        precondition(abs(x) < 1_048_576, "Numerics: argument \(x) of cos or sin out of range")
        // pi/2 = pio2Hi + pio2Tail, pio2Hi with 33 bits: k * pio2Hi is exact for |k| < 2^20.
        let k = (x * 0.6366197723675814).rounded(.toNearestOrEven)
        return (Int(k) & 3, (x - k * 1.57079632673412561417) - k * 6.07710050650619224932e-11)
    }

    /// cos r and sin r for |r| <= pi/4, their Taylor series to r^20 and r^19.
    private static func cosSeries(_ r: Double) -> Double {
        let r2 = r * r
        var c = inverseFactorials[20]
        for j in stride(from: 18, through: 0, by: -2) { c = -c * r2 + inverseFactorials[j] }
        return c
    }

    private static func sinSeries(_ r: Double) -> Double {
        let r2 = r * r
        var s = inverseFactorials[19]
        for j in stride(from: 17, through: 1, by: -2) { s = -s * r2 + inverseFactorials[j] }
        return s * r
    }

    /// cos(x) for |x| < 2^20, by quadrant from the series of cos r or sin r.
    public static func cos(_ x: Double) -> Double {
        if !x.isFinite { return .nan }
        let (q, r) = quarterTurns(x)
        switch q {
        case 0: return cosSeries(r)
        case 1: return -sinSeries(r)
        case 2: return -cosSeries(r)
        default: return sinSeries(r)
        }
    }

    /// sin(x) for |x| < 2^20, by the same reduction.
    public static func sin(_ x: Double) -> Double {
        if !x.isFinite { return .nan }
        let (q, r) = quarterTurns(x)
        switch q {
        case 0: return sinSeries(r)
        case 1: return cosSeries(r)
        case 2: return -sinSeries(r)
        default: return -cosSeries(r)
        }
    }

    /// b^e for b > 0 and any e, as exp(e · log b) in Double (within a few ulp).
    public static func pow(_ b: Double, _ e: Double) -> Double {
        precondition(b > 0, "Numerics.pow: base \(b) must be positive")
        return exp(e * log(b))
    }

    /// b^n for n >= 0 by repeated squaring.
    public static func pow(_ b: Double, _ n: Int) -> Double {
        precondition(n >= 0)
        var result = 1.0, base = b, e = n
        while e > 0 {
            if e & 1 == 1 { result *= base }
            base *= base
            e >>= 1
        }
        return result
    }

    /// x * 2^n (exact unless the result is subnormal).
    static func scaled(_ x: Double, byPowerOfTwo n: Int) -> Double {
        var x = x, n = n
        while n > 1000 { x *= 0x1p1000; n -= 1000 }
        while n < -1000 { x *= 0x1p-1000; n += 1000 }
        return x * Double(sign: .plus, exponent: n, significand: 1)
    }

    /// The Float exp and log of the kernels (same bits as the vector paths).
    public static func exp(_ x: Float) -> Float { sisa_expf(x) }
    public static func log(_ x: Float) -> Float { sisa_logf(x) }
}
