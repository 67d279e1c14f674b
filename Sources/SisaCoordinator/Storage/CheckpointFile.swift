import Foundation
import SisaEngine

/// The checkpoint file format, without the catalog: what a cluster worker
/// (which never opens the catalog) writes and the coordinator checks.
///
/// File: "SISACK01" | u64 raw size | u64 float-section offset | 32-byte
/// sha256 of the raw state | zstd(raw prefix ++ byte-shuffled float section).
enum CheckpointFile {
    static let magic = Array("SISACK01".utf8)
    /// A state's header (magic, JSON, counters) is far smaller than this.
    static let maxPrefixBytes = 1 << 20

    /// The file bytes of a training state, and the state's checksum.
    static func encode(_ state: Data, floatBytes: Int) throws -> (bytes: Data, rawBytes: Int, checksum: String) {
        let raw = [UInt8](state)
        let prefix = raw.count - floatBytes
        let filtered = Array(raw[..<prefix]) + Compression.shuffle4(Array(raw[prefix...]))
        let compressed = try Compression.compress(filtered)
        let checksum = Digest.sha256Hex(raw)
        var out = Data(magic)
        out.appendLE(UInt64(raw.count))
        out.appendLE(UInt64(prefix))
        out.append(contentsOf: hexBytes(checksum))
        out.append(contentsOf: compressed)
        return (out, raw.count, checksum)
    }

    /// The training state in a file's bytes, checked against the checksum the
    /// file carries and, when given, the one recorded elsewhere.
    static func decode(_ bytes: [UInt8], floatBytes: Int, expectedChecksum: String? = nil,
                       expectedRawBytes: Int? = nil) throws -> (state: Data, checksum: String) {
        guard bytes.count > 56, Array(bytes[0..<8]) == magic else { throw CoordinatorError.corrupt("bad header") }
        // Sizes are checked against the store's configuration before anything is allocated.
        guard let rawSize = Int(exactly: readLE(bytes, 8)), let prefix = Int(exactly: readLE(bytes, 16)),
              expectedRawBytes.map({ $0 == rawSize }) ?? true, prefix <= maxPrefixBytes, rawSize - prefix == floatBytes
        else { throw CoordinatorError.corrupt("size mismatch") }
        let stored = Digest.hex(bytes[24..<56])
        if let expectedChecksum, stored != expectedChecksum {
            throw CoordinatorError.corrupt("checksum in file differs from catalog")
        }
        let filtered = try Compression.decompress(Array(bytes[56...]), rawSize: rawSize)
        let raw = Array(filtered[..<prefix]) + Compression.unshuffle4(Array(filtered[prefix...]))
        guard Digest.sha256Hex(raw) == stored else { throw CoordinatorError.corrupt("checksum mismatch") }
        return (Data(raw), stored)
    }

    static func name(key: String) -> String { "\(key).ckpt" }

    /// Writes a state as `dir/KEY.ckpt`, atomically (temp file, fsync, rename).
    static func write(_ state: Data, floatBytes: Int, key: String, dir: URL) throws -> (rawBytes: Int, storedBytes: Int, checksum: String) {
        let encoded = try encode(state, floatBytes: floatBytes)
        try FileIO.writeAtomically(encoded.bytes, to: dir.appendingPathComponent(name(key: key)).path)
        return (encoded.rawBytes, encoded.bytes.count, encoded.checksum)
    }
}
