import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

/// A very small model so stores train in well under a second.
let microModel = GPT2Configuration(layers: 1, heads: 2, dim: 32, context: 32)

func microConfig(shards: Int = 2, slices: Int = 3, seed: UInt64 = 7) -> StoreConfig {
    StoreConfig(shards: shards, slices: slices, model: microModel, batch: 4, epochs: 1, seed: seed)
}

/// Distinct, deterministic records.
func syntheticRecords(_ n: Int, prefix: String = "rec") -> [(id: String, text: String)] {
    let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    return (0..<n).map { i in
        let body = (0..<(3 + i % 5)).map { words[(i * 7 + $0 * 3) % words.count] }.joined(separator: " ")
        return ("\(prefix)-\(i)", "\(prefix) \(i): \(body).")
    }
}

final class TempDir {
    let url: URL
    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("sisa-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes records as JSONL and returns the path.
    func jsonl(_ name: String, _ records: [(id: String, text: String)], group: String? = nil) -> String {
        let lines = records.map { r -> String in
            var o: [String: String] = ["id": r.id, "text": r.text]
            if let group { o["group"] = group }
            return String(decoding: try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
        }
        let p = path(name)
        try! (lines.joined(separator: "\n") + "\n").write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }
}

func digests(_ store: Store) throws -> [String?] {
    try store.catalog.shardStates().map(\.digest)
}

/// Every byte of every file under `dir`.
func allFileBytes(_ dir: URL) -> [(String, Data)] {
    let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil)!
    var out: [(String, Data)] = []
    for case let u as URL in e {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: u.path, isDirectory: &isDir), !isDir.boolValue,
           let d = FileManager.default.contents(atPath: u.path) {
            out.append((u.lastPathComponent, d))
        }
    }
    return out
}

/// Makes a trained store look as a sisa with version-1 numerics (the
/// OpenBLAS engine) left it: its configuration has no "numerics" key, and its
/// checkpoint keys derive from that configuration. (The bits inside are this
/// build's; only the keys and the recorded version matter to the store.)
func makeStoreLookOld(_ url: URL) throws {
    var newKeys: [[String]] = []
    do {
        let s = try Store.open(at: url, writer: "test")
        newKeys = try (0..<s.config.shards).map { try s.plan(shard: $0).stages.map(\.key) }
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: s.config.canonicalJSON) as? [String: Any])
        XCTAssertEqual(json.removeValue(forKey: "numerics") as? Int, Numerics.version)
        try s.catalog.setMeta("config", String(decoding: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), as: UTF8.self))
    }
    let old = try Store.open(at: url, writer: "test")
    for shard in 0..<old.config.shards {
        let oldKeys = try old.plan(shard: shard).stages.map(\.key)
        let rename = Dictionary(zip(newKeys[shard], oldKeys), uniquingKeysWith: { a, _ in a })
        for (from, to) in rename {
            guard let c = try old.catalog.checkpoint(key: from) else { continue }
            let dir = url.appendingPathComponent("checkpoints")
            try FileManager.default.moveItem(at: dir.appendingPathComponent(c.file), to: dir.appendingPathComponent("\(to).ckpt"))
            try old.catalog.removeCheckpoint(key: from)
            try old.catalog.addCheckpoint(CheckpointInfo(key: to, shard: c.shard, stage: c.stage, file: "\(to).ckpt",
                                                         rawBytes: c.rawBytes, storedBytes: c.storedBytes, checksum: c.checksum))
        }
        let st = try old.catalog.shardStates()[shard]
        try old.catalog.setShard(ShardState(index: shard, quarantined: st.quarantined, digest: st.digest,
                                            stagesTrained: st.stagesTrained, currentKey: oldKeys.last))
    }
}
