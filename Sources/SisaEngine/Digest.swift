import Crypto
import Foundation

public enum Digest {
    public static func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String {
        hex(SHA256.hash(data: bytes))
    }

    public static func sha256Hex<D: DataProtocol>(_ data: D) -> String {
        hex(SHA256.hash(data: data))
    }

    /// Lower-case hex, two digits per byte. Written out by table: `String(format:)`
    /// per byte made hashing the bulk of ingest and of every plan.
    public static func hex<S: Sequence>(_ digest: S) -> String where S.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(digest.underestimatedCount * 2)
        for b in digest {
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
}
