// The few element-wise loops that stay in Swift: additions only (residual
// stream, embedding scatter, bias gradients, part reductions). A lane-wise
// IEEE addition gives the same bits on every CPU and vector width, so these
// need no per-path code; anything with a product, a reduction tree or a
// transcendental function lives in CSisaKernels (see Numerics.swift).

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

/// y[0..<n] += x[0..<n]
@inline(__always) func addInPlace(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
    var i = 0
    while i + 8 <= n { store8(load8(y + i) + load8(x + i), y + i); i += 8 }
    while i < n { y[i] += x[i]; i += 1 }
}
