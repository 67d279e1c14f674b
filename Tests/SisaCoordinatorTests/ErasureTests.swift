import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

/// A deletion erases the text's bytes from every file of the store, whatever
/// SQLite did with them before: records spread over many pages by several
/// ingests (page splits and rebalancing move cells), long ones on overflow
/// pages, short ones in shared leaves, and deletions coalesced, deferred or
/// made before training. The check greps every file, the write-ahead log included.
final class ErasureTests: XCTestCase {
    func testDeletedTextLeavesEveryFileOfABusyCatalog() throws {
        let tmp = TempDir()
        var rng = Xoshiro256(seed: 2026)
        let words = ["amber", "basalt", "cobalt", "dune", "ember", "fjord", "garnet", "heath", "isle", "jade"]
        func text(_ n: Int) -> String { (0..<n).map { _ in words[rng.nextInt(below: words.count)] }.joined(separator: " ") }
        var secrets: [String: String] = [:]
        var batches: [[(id: String, text: String)]] = []
        for b in 0..<4 {
            var batch: [(id: String, text: String)] = []
            for i in 0..<600 {
                // Mostly short records, some long enough for overflow pages (4 KB pages).
                let n = rng.nextInt(below: 10) == 0 ? 400 + rng.nextInt(below: 1500) : 2 + rng.nextInt(below: 20)
                var t = text(n)
                let id = "b\(b)-\(i)"
                if rng.nextInt(below: 40) == 0 {
                    let secret = "SECRET-\(b)-\(i)-\(rng.next() % 1_000_000_007)"
                    secrets[id] = secret
                    t = rng.nextInt(below: 2) == 0 ? "\(secret) \(t)" : "\(t) \(secret)"
                }
                batch.append((id, t))
            }
            batches.append(batch)
        }
        let store = try Store.create(at: tmp.url.appendingPathComponent("s"),
                                     config: StoreConfig(shards: 3, slices: 2, model: microModel, batch: 2, epochs: 0.02, seed: 5))
        // Two ingests before training, deletions before training, then training and more.
        _ = try store.ingest(paths: [tmp.jsonl("b0.jsonl", batches[0])])
        _ = try store.ingest(paths: [tmp.jsonl("b1.jsonl", batches[1])])
        let ids = secrets.keys.sorted()
        XCTAssertGreaterThan(ids.count, 20)
        let early = ids.filter { $0.hasPrefix("b0") }
        _ = try store.delete(ids: Array(early.prefix(3)))
        _ = try store.train()
        _ = try store.ingest(paths: [tmp.jsonl("b2.jsonl", batches[2])])
        _ = try store.ingest(paths: [tmp.jsonl("b3.jsonl", batches[3])])
        _ = try store.train()
        let rest = ids.filter { !early.prefix(3).contains($0) }
        _ = try store.delete(ids: Array(rest.prefix(rest.count / 2)), deferRetrain: true)
        for id in rest.dropFirst(rest.count / 2) { _ = try store.delete(ids: [id]) }
        _ = try store.train()
        let files = allFileBytes(store.url)
        XCTAssertTrue(files.contains { $0.0.hasSuffix("catalog.sqlite") })
        for (name, bytes) in files {
            for id in ids {
                XCTAssertNil(bytes.range(of: Data(secrets[id]!.utf8)), "\(id)'s text still in \(name)")
            }
        }
        // The rest of the records are untouched.
        XCTAssertEqual(try store.catalog.texts(holdout: false).count + ids.count, 2400)
    }

    /// The same at a million records: erasure costs what the record costs
    /// (no VACUUM), and still leaves no byte of the text in any file.
    func testDeletedTextLeavesEveryFileOfAMillionRecordCatalog() throws {
        let tmp = TempDir()
        let n = 1_000_000
        var rng = Xoshiro256(seed: 1_000_000)
        let words = ["amber", "basalt", "cobalt", "dune", "ember", "fjord", "garnet", "heath", "isle", "jade"]
        var secrets: [Int: String] = [:]
        while secrets.count < 20 { secrets[rng.nextInt(below: n)] = "SECRET-\(rng.next() % 1_000_000_007)-MILLION" }
        var out = Data()
        out.reserveCapacity(n * 64)
        for i in 0..<n {
            var t = (0..<6).map { _ in words[rng.nextInt(below: words.count)] }.joined(separator: " ")
            if let s = secrets[i] { t += " " + s }
            out.append(Data("{\"id\":\"m\(i)\",\"text\":\"\(t)\"}\n".utf8))
        }
        let file = tmp.url.appendingPathComponent("million.jsonl")
        try out.write(to: file)
        out = Data()
        let store = try Store.create(at: tmp.url.appendingPathComponent("s"),
                                     config: StoreConfig(shards: 8, slices: 4, model: microModel, batch: 2, epochs: 0.01, seed: 3))
        XCTAssertEqual(try store.ingest(paths: [file.path]).added, n)
        try FileManager.default.removeItem(at: file)
        let victims = secrets.keys.sorted().prefix(10)
        for v in victims { _ = try store.delete(ids: ["m\(v)"], deferRetrain: true) }
        let files = allFileBytes(store.url)
        XCTAssertTrue(files.contains { $0.0.hasSuffix("catalog.sqlite") })
        for (name, bytes) in files {
            for (i, s) in secrets {
                let found = bytes.range(of: Data(s.utf8)) != nil
                if victims.contains(i) { XCTAssertFalse(found, "m\(i)'s text still in \(name)") }
            }
        }
        // The grep finds what was not deleted: the remaining secrets are in the catalog.
        let catalog = try XCTUnwrap(files.first { $0.0.hasSuffix("catalog.sqlite") }).1
            + (files.first { $0.0.hasSuffix("catalog.sqlite-wal") }?.1 ?? Data())
        for (i, s) in secrets where !victims.contains(i) {
            XCTAssertNotNil(catalog.range(of: Data(s.utf8)), "m\(i) (not deleted) should still be in the catalog")
        }
        XCTAssertEqual(try store.status().records, n - victims.count)
    }
}
