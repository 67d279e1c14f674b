import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

/// A very small model so stores train in well under a second.
let microModel = ModelConfig(layers: 1, heads: 2, dim: 32, context: 32)

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
