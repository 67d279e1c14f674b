import Foundation
import SisaEngine

/// Compressed, checksummed training states, one file per stage key
/// (format: `CheckpointFile`), each recorded in the catalog.
///
/// Written to a temp file, fsynced, renamed, and the folder fsynced, so a crash
/// leaves either the old state or the new one. A file whose checksum fails is
/// reported, removed and rebuilt, never loaded.
/// `@unchecked Sendable`: the catalog and the warning list are used with
/// `mutex` held; `canRepair` is set once, when the store is opened, before
/// any thread shares it.
public final class CheckpointStore: @unchecked Sendable {
    public let dir: URL
    let catalog: Catalog
    /// Size of the float section of every state in this store (the engine's
    /// `Trainer.stateFloatBytes`): a file claiming another size is corrupt.
    let floatBytes: Int
    private var _warnings: [String] = []
    /// Shards train on several threads; the catalog connection and the warning
    /// list are shared, so their use is serialised here.
    let mutex = NSLock()
    /// Only a writer (holding the store lock) removes a bad checkpoint; a
    /// reader just reports it, so a transient read error never destroys data.
    var canRepair = false
    public var warnings: [String] { mutex.withLock { _warnings } }

    init(dir: URL, catalog: Catalog, floatBytes: Int) throws {
        self.dir = dir
        self.catalog = catalog
        self.floatBytes = floatBytes
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    func path(_ file: String) -> String { dir.appendingPathComponent(file).path }

    /// Saves a training state under `key` (no-op if a valid one exists).
    @discardableResult
    func save(key: String, shard: Int, stage: Int, state: Data) throws -> CheckpointInfo {
        if let existing = try mutex.withLock({ try catalog.checkpoint(key: key) }),
           FileManager.default.fileExists(atPath: path(existing.file)) {
            return existing
        }
        let written = try CheckpointFile.write(state, floatBytes: floatBytes, key: key, dir: dir)
        let info = CheckpointInfo(key: key, shard: shard, stage: stage, file: CheckpointFile.name(key: key),
                                  rawBytes: written.rawBytes, storedBytes: written.storedBytes, checksum: written.checksum)
        FaultInjection.checkpointFileWritten()
        try mutex.withLock { try catalog.addCheckpoint(info) }
        FaultInjection.checkpointWritten(shard: shard, stage: stage)
        return info
    }

    /// The state stored under `key`, or nil when it is missing or corrupt (in
    /// which case the bad entry is dropped so the stage is rebuilt).
    public func load(key: String) throws -> Data? {
        guard let info = try mutex.withLock({ try catalog.checkpoint(key: key) }) else { return nil }
        do {
            return try read(info)
        } catch {
            try mutex.withLock {
                _warnings.append("checkpoint \(info.file) (shard \(info.shard), stage \(info.stage)) is unusable: \(error)"
                                 + (canRepair ? "; it will be rebuilt" : "; `sisa train` will rebuild it"))
                if canRepair {
                    try? FileManager.default.removeItem(atPath: path(info.file))
                    try catalog.removeCheckpoint(key: key)
                }
            }
            return nil
        }
    }

    func read(_ info: CheckpointInfo) throws -> Data {
        guard let d = FileManager.default.contents(atPath: path(info.file)) else {
            throw CoordinatorError.corrupt("missing file")
        }
        return try CheckpointFile.decode([UInt8](d), floatBytes: floatBytes, expectedChecksum: info.checksum,
                                         expectedRawBytes: info.rawBytes).state
    }

    /// Records a checkpoint file written by a cluster worker, after checking
    /// it reads back whole; a key already recorded is left as it is (a
    /// checkpoint is never recorded twice). Nil when there is no valid file.
    @discardableResult
    func adopt(key: String, shard: Int, stage: Int) throws -> CheckpointInfo? {
        if let existing = try mutex.withLock({ try catalog.checkpoint(key: key) }) { return existing }
        let file = CheckpointFile.name(key: key)
        guard let d = FileManager.default.contents(atPath: path(file)),
              let decoded = try? CheckpointFile.decode([UInt8](d), floatBytes: floatBytes) else { return nil }
        let info = CheckpointInfo(key: key, shard: shard, stage: stage, file: file, rawBytes: decoded.state.count,
                                  storedBytes: d.count, checksum: decoded.checksum)
        try mutex.withLock { try catalog.addCheckpoint(info) }
        return info
    }

    /// `adopt` for every stage of these plans whose file is on disk but not
    /// in the catalog.
    func adoptFiles(_ plans: [ShardPlan]) throws {
        let files = Set((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [])
        for p in plans {
            for stage in p.stages where files.contains(CheckpointFile.name(key: stage.key)) {
                try adopt(key: stage.key, shard: p.shard, stage: stage.stage)
            }
        }
    }

    func remove(_ info: CheckpointInfo) throws {
        try? FileManager.default.removeItem(atPath: path(info.file))
        try catalog.removeCheckpoint(key: info.key)
    }

    /// Files in the folder that the catalog does not know (left by a crash
    /// between rename and catalog insert, or temp files).
    func orphanFiles() throws -> [String] {
        let known = Set(try catalog.checkpoints().map(\.file))
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return files.filter { !known.contains($0) }
    }
}

enum FileIO {
    /// temp file + fsync + rename + fsync of the folder.
    static func writeAtomically(_ data: Data, to path: String) throws {
        // Unique across the nodes of a cluster writing into one shared folder.
        let tmp = path + ".tmp-\(ProcessInfo.processInfo.hostName)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CoordinatorError.io("\(tmp): cannot create (\(String(cString: strerror(errno))))") }
        var ok = data.withUnsafeBytes { buf -> Bool in
            var off = 0
            while off < buf.count {
                let n = write(fd, buf.baseAddress! + off, buf.count - off)
                if n <= 0 { return false }
                off += n
            }
            return true
        }
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw CoordinatorError.io("\(path): write failed (\(String(cString: strerror(errno))))")
        }
        fsyncDirectory((path as NSString).deletingLastPathComponent)
    }

    static func fsyncDirectory(_ path: String) {
        let dfd = open(path, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}

func readLE(_ b: [UInt8], _ at: Int) -> UInt64 {
    (0..<8).reduce(UInt64(0)) { $0 | (UInt64(b[at + $1]) << (8 * UInt64($1))) }
}

func hexBytes(_ hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var it = hex.utf8.makeIterator()
    while let a = it.next(), let b = it.next() {
        out.append(UInt8(String(bytes: [a, b], encoding: .ascii)!, radix: 16)!)
    }
    return out
}
