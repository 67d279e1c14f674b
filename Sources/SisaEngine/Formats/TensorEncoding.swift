import Foundation

/// How a tensor's values are stored in a model file, and their exact
/// conversion to fp32 at load.
///
/// Every conversion is exact arithmetic written here (numerics contract):
/// F16 and BF16 widen without rounding; the GGUF blocks compute, per weight,
/// exactly what gguf-py and ggml compute in float32 (REFERENCE.md §8):
///
///   Q8_0  [fp16 d | 32 x int8 q]                 w = d·q
///   Q4_0  [fp16 d | 16 bytes, low nibbles are weights 0-15, high 16-31]
///                                                w = d·(q − 8)
///   Q4_1  [fp16 d | fp16 m | 16 bytes as Q4_0]   w = (d·q) + m   (two roundings, no FMA)
///
/// Swift never contracts `a * b + c` into a fused multiply-add, so the two
/// roundings of Q4_1 are the ones written.
public enum TensorEncoding: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", q8_0 = "Q8_0", q4_0 = "Q4_0", q4_1 = "Q4_1"

    /// Weights per block and bytes per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q8_0, .q4_0, .q4_1: return 32
        }
    }

    public var bytesPerBlock: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q8_0: return 34
        case .q4_0: return 18
        case .q4_1: return 20
        }
    }

    /// Bytes that `count` values take, nil when `count` is not a whole number of blocks or overflows.
    public func byteCount(values count: Int) -> Int? {
        guard count >= 0, count % blockSize == 0 else { return nil }
        let (b, o) = (count / blockSize).multipliedReportingOverflow(by: bytesPerBlock)
        return o ? nil : b
    }

    /// Decodes `count` values from `src` (exactly `byteCount(values: count)` bytes) into `dst`.
    public func decode(_ src: UnsafeRawBufferPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        precondition(byteCount(values: count) == src.count, "decode: \(src.count) bytes for \(count) \(rawValue) values")
        guard count > 0, let base = src.baseAddress else { return }
        switch self {
        case .f32:
            for i in 0..<count { dst[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f16:
            for i in 0..<count { dst[i] = halfToFloat(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .bf16:
            for i in 0..<count {
                let h = UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                dst[i] = Float(bitPattern: UInt32(h) << 16)
            }
        case .q8_0:
            for blk in 0..<(count / 32) {
                let p = base + blk * 34, out = dst + blk * 32
                let d = halfToFloat(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)))
                for j in 0..<32 { out[j] = d * Float(Int8(bitPattern: p.load(fromByteOffset: 2 + j, as: UInt8.self))) }
            }
        case .q4_0:
            for blk in 0..<(count / 32) {
                let p = base + blk * 18, out = dst + blk * 32
                let d = halfToFloat(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)))
                for j in 0..<16 {
                    let q = p.load(fromByteOffset: 2 + j, as: UInt8.self)
                    out[j] = d * Float(Int(q & 0x0F) - 8)
                    out[j + 16] = d * Float(Int(q >> 4) - 8)
                }
            }
        case .q4_1:
            for blk in 0..<(count / 32) {
                let p = base + blk * 20, out = dst + blk * 32
                let d = halfToFloat(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)))
                let m = halfToFloat(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
                for j in 0..<16 {
                    let q = p.load(fromByteOffset: 4 + j, as: UInt8.self)
                    let lo = d * Float(q & 0x0F), hi = d * Float(q >> 4)
                    out[j] = lo + m
                    out[j + 16] = hi + m
                }
            }
        }
    }
}

/// IEEE binary16 to binary32, exactly (every half is a float), by bits.
@inline(__always)
public func halfToFloat(_ h: UInt16) -> Float {
    let sign: UInt32 = UInt32(h & 0x8000) << 16
    let exponent = Int(h >> 10) & 0x1F
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0 {
        if mantissa == 0 { return Float(bitPattern: sign) }
        // Subnormal half: mantissa · 2^-24, exact in binary32.
        let v = Float(mantissa) * 0x1p-24
        return sign == 0 ? v : -v
    }
    if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | mantissa << 13)
}
