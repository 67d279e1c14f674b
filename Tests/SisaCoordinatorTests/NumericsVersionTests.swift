import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

/// A store's checkpoints are of one numerics version: training, deletion,
/// verification and comparison refuse to continue from another version's,
/// and `train --rebuild` moves the store over.
final class NumericsVersionTests: XCTestCase {
    /// A trained store as a sisa with version-1 numerics left it (see `makeStoreLookOld`).
    private func trainedOldStore(_ tmp: TempDir, records: [(id: String, text: String)]) throws -> URL {
        let url = tmp.url.appendingPathComponent("old")
        do {
            let s = try Store.create(at: url, config: microConfig())
            _ = try s.ingest(paths: [tmp.jsonl("all.jsonl", records)])
            _ = try s.train()
        }
        try makeStoreLookOld(url)
        return url
    }

    /// Only the configuration of an untrained store.
    private func makeItLookOld(_ store: Store) throws {
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: store.config.canonicalJSON) as? [String: Any])
        XCTAssertEqual(json.removeValue(forKey: "numerics") as? Int, Numerics.version)
        let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
        try store.catalog.setMeta("config", String(decoding: data, as: UTF8.self))
    }

    func testNewStoresRecordThisBuildsVersion() throws {
        let tmp = TempDir()
        let s = try Store.create(at: tmp.url.appendingPathComponent("s"), config: microConfig())
        XCTAssertEqual(s.config.numerics, Numerics.version)
        XCTAssertEqual(try Store.open(at: s.url).config.numerics, Numerics.version)
        XCTAssertTrue(try s.status().numericsIsCurrent)
    }

    func testEveryCommandThatTrainsRefusesOldCheckpointsAndChangesNothing() throws {
        let tmp = TempDir()
        let records = syntheticRecords(40)
        let url = try trainedOldStore(tmp, records: records)
        let store = try Store.open(at: url, writer: "test")
        XCTAssertEqual(store.config.numerics, 1)
        XCTAssertFalse(try store.status().numericsIsCurrent)
        let filesBefore = allFileBytes(url.appendingPathComponent("checkpoints")).map(\.0).sorted()
        let digestsBefore = try digests(store)

        func assertRefused(_ what: String, _ body: () throws -> Void) {
            XCTAssertThrowsError(try body(), what) { e in
                guard case CoordinatorError.numericsMismatch(_, stored: 1, current: Numerics.version) = e else {
                    return XCTFail("\(what): expected numericsMismatch, got \(e)")
                }
                XCTAssertTrue("\(e)".contains("sisa train --rebuild"), "\(what): the message must give the way out: \(e)")
            }
        }
        assertRefused("train") { _ = try store.train() }
        assertRefused("delete") { _ = try store.delete(ids: [records[3].id]) }
        assertRefused("verify") { _ = try store.verify(shard: 0) }
        var options = CompareOptions()
        options.forgetIDs = [records[3].id]
        assertRefused("compare") { _ = try store.compare(options) }

        XCTAssertEqual(try store.catalog.record(id: records[3].id)?.status, .live, "a refused delete changes nothing")
        XCTAssertEqual(try digests(store), digestsBefore)
        XCTAssertEqual(allFileBytes(url.appendingPathComponent("checkpoints")).map(\.0).sorted(), filesBefore)
        XCTAssertEqual(try Store.open(at: url).config.numerics, 1)
    }

    func testRebuildRetrainsEverythingAndKeepsDeferredDeletions() throws {
        let tmp = TempDir()
        let records = syntheticRecords(40)
        let victim = records[5].id
        let url = try trainedOldStore(tmp, records: records)
        let store = try Store.open(at: url, writer: "test")
        let oldFiles = Set(allFileBytes(url.appendingPathComponent("checkpoints")).map(\.0))

        // A deferred deletion retrains nothing, so it is allowed: the text goes at once.
        let receipt = try store.delete(ids: [victim], deferRetrain: true)
        XCTAssertTrue(receipt.pending)
        XCTAssertNil(try store.catalog.text(id: victim))

        XCTAssertEqual(store.config.numerics, 1)
        let report = try store.train(rebuild: true)
        XCTAssertEqual(store.config.numerics, Numerics.version)
        XCTAssertEqual(Set(report.shards.map(\.shard)), [0, 1], "every shard is retrained")
        XCTAssertTrue(report.shards.allSatisfy { $0.fromStage == 0 }, "from scratch")
        XCTAssertEqual(report.completedDeletions, [victim])
        let newFiles = Set(allFileBytes(url.appendingPathComponent("checkpoints")).map(\.0))
        XCTAssertTrue(oldFiles.isDisjoint(with: newFiles), "checkpoints of the old version are removed")

        // The rebuilt store is exactly a fresh store that never saw the victim.
        let fresh = try Store.create(at: tmp.url.appendingPathComponent("fresh"), config: microConfig())
        _ = try fresh.ingest(paths: [tmp.jsonl("rest.jsonl", records.filter { $0.id != victim })])
        _ = try fresh.train()
        XCTAssertEqual(try digests(store), try digests(fresh))
        XCTAssertEqual(try Store.open(at: url).config.numerics, Numerics.version)
        XCTAssertTrue(try store.verify(shard: 0).matches)
    }

    func testAStoreWithNothingTrainedAdoptsTheVersionSilently() throws {
        let tmp = TempDir()
        let url = tmp.url.appendingPathComponent("s")
        do {
            let s = try Store.create(at: url, config: microConfig())
            _ = try s.ingest(paths: [tmp.jsonl("all.jsonl", syntheticRecords(20))])
            try makeItLookOld(s)
        }
        let reopened = try Store.open(at: url, writer: "test")
        XCTAssertEqual(reopened.config.numerics, 1)
        XCTAssertTrue(try reopened.status().numericsIsCurrent, "nothing to mix yet")
        _ = try reopened.train()
        XCTAssertEqual(try Store.open(at: url).config.numerics, Numerics.version)
    }
}
