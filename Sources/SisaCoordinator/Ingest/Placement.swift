import Crypto
import Foundation

/// Where a record goes. A pure function of the seed, the record's id and the
/// ingest call that brought it, never of other records: deleting one record
/// cannot move another.
public struct Placement: Equatable, Sendable {
    public let shard: Int
    public let slice: Int
    public let holdout: Bool

    /// - appendedSlice: for ingest calls made after training began, the new
    ///   slice they open at the end of every shard; nil for the initial slices.
    public static func place(id: String, seed: UInt64, shards: Int, slices: Int,
                             appendedSlice: Int?, holdoutFraction: Double) -> Placement {
        let shard = Int(hash64(seed, id, "shard") % UInt64(shards))
        let slice = appendedSlice ?? Int(hash64(seed, id, "slice") % UInt64(slices))
        let u = Double(hash64(seed, id, "holdout") >> 11) * 0x1.0p-53
        return Placement(shard: shard, slice: slice, holdout: u < holdoutFraction)
    }

    /// First 8 bytes (big-endian) of sha256("sisa|seed|purpose|id").
    public static func hash64(_ seed: UInt64, _ id: String, _ purpose: String) -> UInt64 {
        // Hashed straight from the string's UTF-8 storage: no Data copy (ingest
        // and every plan call this once or more per record).
        var message = "sisa|\(seed)|\(purpose)|\(id)"
        let d = message.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
        return d.withUnsafeBytes { b in (0..<8).reduce(UInt64(0)) { ($0 << 8) | UInt64(b[$1]) } }
    }
}
