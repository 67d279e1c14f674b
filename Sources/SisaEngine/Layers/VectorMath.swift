// SIMD helpers shared by the layers. Every reduction here runs in a fixed
// order (8 lanes, then lanes summed low to high) so results are reproducible.

typealias F8 = SIMD8<Float>

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> F8 {
    UnsafeRawPointer(p).loadUnaligned(as: F8.self)
}
@inline(__always) func load8(_ p: UnsafeMutablePointer<Float>) -> F8 {
    UnsafeRawPointer(p).loadUnaligned(as: F8.self)
}
@inline(__always) func store8(_ v: F8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
}

// The stdlib's clamped/pointwiseMax/max() compile to out-of-line generic calls;
// replacing(with:where:) lowers to one vmaxps/vminps.
@inline(__always) func vmax(_ a: F8, _ b: F8) -> F8 { a.replacing(with: b, where: a .< b) }
@inline(__always) func vmin(_ a: F8, _ b: F8) -> F8 { a.replacing(with: b, where: b .< a) }

/// e^x for 8 lanes: Cody-Waite range reduction x = n ln2 + r and the Cephes
/// degree-6 polynomial for e^r on [-ln2/2, ln2/2]; about 1-2 ulp.
@inline(__always) func exp8(_ x: F8) -> F8 {
    let x = vmin(vmax(x, F8(repeating: -87.0)), F8(repeating: 88.0))
    let n = (x * 1.442_695_04).rounded(.toNearestOrEven)
    var r = x.addingProduct(n, F8(repeating: -0.693_359_375))
    r = r.addingProduct(n, F8(repeating: 2.121_944_4e-4))
    var p = F8(repeating: 1.987_569_150_0e-4)
    p = F8(repeating: 1.398_199_950_7e-3).addingProduct(p, r)
    p = F8(repeating: 8.333_451_907_3e-3).addingProduct(p, r)
    p = F8(repeating: 4.166_579_589_4e-2).addingProduct(p, r)
    p = F8(repeating: 1.666_666_545_9e-1).addingProduct(p, r)
    p = F8(repeating: 5.000_000_120_1e-1).addingProduct(p, r)
    let y = (r.addingProduct(p, r * r)) + 1
    // 2^n through the exponent bits: n + 1.5*2^23 puts n in the low mantissa bits.
    let shifted = unsafeBitCast(n + 12_582_912.0, to: SIMD8<Int32>.self)
    let bits = (shifted &- 0x4B40_0000 &+ 127) &<< 23
    return y * unsafeBitCast(bits, to: F8.self)
}

/// Scalar e^x with the same formula as `exp8` (used for loop tails, so a value
/// does not depend on its position in a row).
@inline(__always) func exp1(_ x: Float) -> Float {
    exp8(F8(repeating: x))[0]
}

/// Horizontal sum, lanes in a fixed order.
@inline(__always) func hsum(_ v: F8) -> Float {
    ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]))
}

@inline(__always) func hmax(_ v: F8) -> Float {
    max(max(max(v[0], v[1]), max(v[2], v[3])), max(max(v[4], v[5]), max(v[6], v[7])))
}

/// sum(a[0..<n]) with 8 lanes plus a scalar tail.
@inline(__always) func sum(_ a: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = F8(repeating: 0)
    var i = 0
    while i + 8 <= n { acc += load8(a + i); i += 8 }
    var s = hsum(acc)
    while i < n { s += a[i]; i += 1 }
    return s
}

/// dot(a, b) over n elements.
@inline(__always) func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = F8(repeating: 0)
    var i = 0
    while i + 8 <= n { acc = acc.addingProduct(load8(a + i), load8(b + i)); i += 8 }
    var s = hsum(acc)
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// y[0..<n] += x[0..<n]
@inline(__always) func addInPlace(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
    var i = 0
    while i + 8 <= n { store8(load8(y + i) + load8(x + i), y + i); i += 8 }
    while i < n { y[i] += x[i]; i += 1 }
}
