import Foundation

/// xoshiro256** seeded through SplitMix64: small, fast, and its whole state
/// is four words, so a training checkpoint can store and restore it exactly.
public struct Xoshiro256: RandomNumberGenerator, Equatable, Sendable {
    public private(set) var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var sm = seed
        func splitmix() -> UInt64 {
            sm &+= 0x9E37_79B9_7F4A_7C15
            var z = sm
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public init(state: [UInt64]) {
        precondition(state.count == 4)
        self.state = (state[0], state[1], state[2], state[3])
    }

    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    @inline(__always) static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = Self.rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = Self.rotl(state.3, 45)
        return result
    }

    /// Uniform in [0, 1) with 53 bits.
    public mutating func nextDouble() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Integer in 0..<n by multiply-high (bias below 2^-40 for our n; fixed
    /// here rather than borrowed from the stdlib, whose algorithm may change).
    public mutating func nextInt(below n: Int) -> Int {
        precondition(n > 0)
        return Int(next().multipliedFullWidth(by: UInt64(n)).high)
    }

    /// Standard normal by Marsaglia's polar method (one value per call, the
    /// second discarded). Only IEEE arithmetic and the project's own log, so
    /// the values are the same on every machine.
    public mutating func nextGaussian() -> Double {
        while true {
            let u = 2 * nextDouble() - 1, v = 2 * nextDouble() - 1
            let s = u * u + v * v
            if s > 0 && s < 1 { return u * (-2 * Numerics.log(s) / s).squareRoot() }
        }
    }

    public static func == (a: Xoshiro256, b: Xoshiro256) -> Bool { a.stateWords == b.stateWords }
}

/// Fisher-Yates shuffle driven by our own generator, so the permutation is a
/// documented function of the seed (the stdlib's algorithm may change).
public func deterministicShuffle<T>(_ items: inout [T], using rng: inout Xoshiro256) {
    guard items.count > 1 else { return }
    for i in stride(from: items.count - 1, to: 0, by: -1) {
        let j = rng.nextInt(below: i + 1)
        items.swapAt(i, j)
    }
}
