import CZstd
import Foundation

/// zstd with a byte-shuffle filter: the i-th bytes of all 4-byte floats are
/// stored together, so the slowly varying sign/exponent bytes form long,
/// compressible runs (lossless; the mantissa's low bytes stay noise).
public enum Compression {
    public static let level: Int32 = 9

    public static func shuffle4(_ data: [UInt8]) -> [UInt8] {
        let n = data.count / 4
        var out = [UInt8](repeating: 0, count: data.count)
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    dst[i] = src[4 * i]
                    dst[n + i] = src[4 * i + 1]
                    dst[2 * n + i] = src[4 * i + 2]
                    dst[3 * n + i] = src[4 * i + 3]
                }
                for i in (4 * n)..<data.count { dst[i] = src[i] }
            }
        }
        return out
    }

    public static func unshuffle4(_ data: [UInt8]) -> [UInt8] {
        let n = data.count / 4
        var out = [UInt8](repeating: 0, count: data.count)
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    dst[4 * i] = src[i]
                    dst[4 * i + 1] = src[n + i]
                    dst[4 * i + 2] = src[2 * n + i]
                    dst[4 * i + 3] = src[3 * n + i]
                }
                for i in (4 * n)..<data.count { dst[i] = src[i] }
            }
        }
        return out
    }

    public static func compress(_ data: [UInt8], level: Int32 = Compression.level) throws -> [UInt8] {
        let bound = ZSTD_compressBound(data.count)
        var out = [UInt8](repeating: 0, count: bound)
        let n = data.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                ZSTD_compress(dst.baseAddress, bound, src.baseAddress, data.count, level)
            }
        }
        if ZSTD_isError(n) != 0 { throw CoordinatorError.io("zstd: \(String(cString: ZSTD_getErrorName(n)))") }
        out.removeSubrange(n...)
        return out
    }

    public static func decompress(_ data: [UInt8], rawSize: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: rawSize)
        let n = data.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                ZSTD_decompress(dst.baseAddress, rawSize, src.baseAddress, data.count)
            }
        }
        if ZSTD_isError(n) != 0 { throw CoordinatorError.io("zstd: \(String(cString: ZSTD_getErrorName(n)))") }
        guard n == rawSize else { throw CoordinatorError.io("zstd: \(n) bytes decompressed, \(rawSize) expected") }
        return out
    }
}
