import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

/// The promise: after deleting X, every shard is bitwise identical to a store
/// with the same configuration and seed that never ingested X.
final class ExactUnlearningTests: XCTestCase {
    func testDeleteEqualsNeverIngested() throws {
        let tmp = TempDir()
        var records = syntheticRecords(60)
        records[17].text = "SECRET-PAYLOAD-xyzzy-4711 belongs to record seventeen"
        let victim = records[17].id

        let a = try Store.create(at: tmp.url.appendingPathComponent("a"), config: microConfig())
        _ = try a.ingest(paths: [tmp.jsonl("all.jsonl", records)], holdout: 0.1)
        _ = try a.train()
        let before = try digests(a)
        let info = try XCTUnwrap(try a.catalog.record(id: victim))
        XCTAssertFalse(info.holdout, "pick a training record for this test")
        let oldChain = try a.plan(shard: info.shard).stages.map(\.key)

        let receipt = try a.delete(ids: [victim])
        XCTAssertEqual(receipt.records, [victim])
        XCTAssertEqual(receipt.shards.map(\.shard), [info.shard], "only the victim's shard retrains")
        XCTAssertEqual(receipt.shards[0].fromStage, info.slice, "retraining starts at the victim's slice")
        XCTAssertEqual(receipt.shards[0].stagesTrained, 3 - info.slice)

        let b = try Store.create(at: tmp.url.appendingPathComponent("b"), config: microConfig())
        _ = try b.ingest(paths: [tmp.jsonl("rest.jsonl", records.filter { $0.id != victim })], holdout: 0.1)
        _ = try b.train()

        XCTAssertEqual(try digests(a), try digests(b))
        let after = try digests(a)
        for s in 0..<2 where s != info.shard { XCTAssertEqual(after[s], before[s], "untouched shard changed") }
        XCTAssertNotEqual(after[info.shard], before[info.shard])

        // Checkpoints trained on the victim are gone; earlier ones were reused.
        let keys = Set(try a.catalog.checkpoints().map(\.key))
        for (stage, key) in oldChain.enumerated() {
            if stage < info.slice { XCTAssertTrue(keys.contains(key), "stage \(stage) should be reused") }
            else { XCTAssertFalse(keys.contains(key), "stage \(stage) trained on the victim survives") }
        }
        // The text's bytes are in no file of the store.
        let needle = Data("SECRET-PAYLOAD-xyzzy-4711".utf8)
        for (name, bytes) in allFileBytes(a.url) {
            XCTAssertNil(bytes.range(of: needle), "deleted text still present in \(name)")
        }
        XCTAssertEqual(try a.catalog.record(id: victim)?.status, .deleted)
        XCTAssertNil(try a.catalog.text(id: victim))
        XCTAssertEqual(try a.status().pendingDeletions, 0)
    }

    func testCoalescedDeletionAcrossShardsAndAppendedSlices() throws {
        let tmp = TempDir()
        let first = syntheticRecords(40, prefix: "first"), second = syntheticRecords(12, prefix: "second")
        let a = try Store.create(at: tmp.url.appendingPathComponent("a"), config: microConfig(shards: 3))
        _ = try a.ingest(paths: [tmp.jsonl("f1.jsonl", first)])
        _ = try a.train()
        let r2 = try a.ingest(paths: [tmp.jsonl("f2.jsonl", second)])
        XCTAssertEqual(r2.appendedSlice, 3, "an ingest after training opens a new slice")
        let t2 = try a.train()
        XCTAssertTrue(t2.shards.allSatisfy { $0.fromStage == 3 && $0.stagesTrained == 1 }, "only the new stage trains")
        XCTAssertEqual(try a.stageCount(), 4)

        let victims = [first[3].id, first[4].id, first[20].id, second[5].id]
        let receipt = try a.delete(ids: victims)
        XCTAssertEqual(Set(receipt.records), Set(victims))
        // One retrain per affected shard, from its earliest affected stage.
        for s in receipt.shards {
            let slices = try victims.compactMap { try a.catalog.record(id: $0) }.filter { $0.shard == s.shard }.map(\.slice)
            XCTAssertEqual(s.fromStage, slices.min())
        }
        XCTAssertEqual(Set(receipt.shards.map(\.shard)).count, receipt.shards.count)

        let b = try Store.create(at: tmp.url.appendingPathComponent("b"), config: microConfig(shards: 3))
        _ = try b.ingest(paths: [tmp.jsonl("g1.jsonl", first.filter { !victims.contains($0.id) })])
        _ = try b.train()
        _ = try b.ingest(paths: [tmp.jsonl("g2.jsonl", second.filter { !victims.contains($0.id) })])
        _ = try b.train()
        XCTAssertEqual(try digests(a), try digests(b))
    }

    func testDeferredDeletionQuarantinesThenMatches() throws {
        let tmp = TempDir()
        let records = syntheticRecords(30)
        let path = tmp.jsonl("r.jsonl", records)
        let a = try Store.create(at: tmp.url.appendingPathComponent("a"), config: microConfig())
        _ = try a.ingest(paths: [path])
        _ = try a.train()
        let victim = records[2].id
        let shard = try XCTUnwrap(try a.catalog.record(id: victim)).shard
        let receipt = try a.delete(ids: [victim], deferRetrain: true)
        XCTAssertTrue(receipt.pending)
        let st = try a.status()
        XCTAssertTrue(st.shards[shard].quarantined)
        XCTAssertEqual(st.pendingDeletions, 1)
        let ens = try Ensemble(store: a)
        XCTAssertFalse(ens.models.contains { $0.shard == shard }, "a quarantined shard must not answer")
        XCTAssertEqual(ens.excluded.map(\.shard), [shard])
        XCTAssertNil(try a.catalog.text(id: victim), "text is erased at once, even when deferred")

        let report = try a.train()
        XCTAssertEqual(report.completedDeletions, [victim])
        XCTAssertFalse(try a.status().shards[shard].quarantined)

        let b = try Store.create(at: tmp.url.appendingPathComponent("b"), config: microConfig())
        _ = try b.ingest(paths: [tmp.jsonl("b.jsonl", records.filter { $0.id != victim })])
        _ = try b.train()
        XCTAssertEqual(try digests(a), try digests(b))
    }

    /// Deleting again answers with the earlier receipt and changes nothing;
    /// an unknown id in any request changes nothing.
    func testRepeatedDeletionReturnsItsReceipt() throws {
        let tmp = TempDir()
        let records = syntheticRecords(40)
        let s = try Store.create(at: tmp.url.appendingPathComponent("s"), config: microConfig())
        _ = try s.ingest(paths: [tmp.jsonl("r.jsonl", records)])
        _ = try s.train()
        let first = try s.delete(ids: [records[4].id])
        XCTAssertNil(first.alreadyDeleted)
        let digestsAfter = try digests(s)
        let checkpointsAfter = try s.catalog.checkpoints().map(\.key)

        let again = try s.delete(ids: [records[4].id])
        XCTAssertEqual(again.records, first.records)
        XCTAssertEqual(again.shards.map(\.digest), first.shards.map(\.digest))
        XCTAssertEqual(again.alreadyDeleted, [records[4].id])
        XCTAssertEqual(try digests(s), digestsAfter)
        XCTAssertEqual(try s.catalog.checkpoints().map(\.key), checkpointsAfter)

        XCTAssertThrowsError(try s.delete(ids: [records[4].id, "nope"])) { XCTAssertEqual($0 as? CoordinatorError, .unknownIDs(["nope"])) }
        XCTAssertThrowsError(try s.delete(ids: [records[5].id, "nope"]))
        XCTAssertEqual(try s.catalog.record(id: records[5].id)?.status, .live, "a mixed request with an unknown id changes nothing")

        let mixed = try s.delete(ids: [records[4].id, records[5].id])
        XCTAssertEqual(mixed.records, [records[5].id])
        XCTAssertEqual(mixed.alreadyDeleted, [records[4].id])
        XCTAssertEqual(try s.catalog.record(id: records[5].id)?.status, .deleted)

        // A deferred deletion asked again is still pending.
        _ = try s.delete(ids: [records[6].id], deferRetrain: true)
        XCTAssertTrue(try s.delete(ids: [records[6].id]).pending)
    }

    func testUnknownIDChangesNothing() throws {
        let tmp = TempDir()
        let a = try Store.create(at: tmp.url.appendingPathComponent("a"), config: microConfig())
        _ = try a.ingest(paths: [tmp.jsonl("r.jsonl", syntheticRecords(20))])
        _ = try a.train()
        let before = try a.status()
        XCTAssertThrowsError(try a.delete(ids: ["rec-1", "no-such-record"])) { e in
            XCTAssertEqual(e as? CoordinatorError, .unknownIDs(["no-such-record"]))
        }
        let after = try a.status()
        XCTAssertEqual(after.records, before.records)
        XCTAssertEqual(after.pendingDeletions, 0)
        XCTAssertEqual(after.shards.map(\.digest), before.shards.map(\.digest))
        XCTAssertFalse(after.shards.contains { $0.quarantined })
        XCTAssertEqual(try a.catalog.record(id: "rec-1")?.status, .live)
    }

    func testJobsAndThreadsDoNotChangeTheBits() throws {
        let tmp = TempDir()
        let path = tmp.jsonl("r.jsonl", syntheticRecords(40))
        let a = try Store.create(at: tmp.url.appendingPathComponent("a"), config: microConfig(shards: 3))
        _ = try a.ingest(paths: [path])
        _ = try a.train(jobs: 1, threads: 2)
        let b = try Store.create(at: tmp.url.appendingPathComponent("b"), config: microConfig(shards: 3))
        _ = try b.ingest(paths: [path])
        _ = try b.train(jobs: 3, threads: 1)
        XCTAssertEqual(try digests(a), try digests(b))
        XCTAssertTrue(try digests(a).allSatisfy { $0 != nil })
    }

    func testVerifyRetrainsFromScratchAndMatches() throws {
        let tmp = TempDir()
        let a = try Store.create(at: tmp.url.appendingPathComponent("a"), config: microConfig())
        let records = syntheticRecords(30)
        _ = try a.ingest(paths: [tmp.jsonl("r.jsonl", records)])
        _ = try a.train()
        _ = try a.delete(ids: [records[9].id])
        for s in 0..<2 {
            let v = try a.verify(shard: s)
            XCTAssertTrue(v.matches, "shard \(s): \(v.retrainedDigest) vs \(v.storedDigest ?? "nil")")
        }
    }

    /// A deletion retrains only the shards with pending deletions, even when
    /// other shards have untrained work (ingested but not yet trained).
    func testDeletionRetrainsOnlyAffectedShards() throws {
        let tmp = TempDir()
        let a = try Store.create(at: tmp.url.appendingPathComponent("a"), config: microConfig(shards: 3))
        let records = syntheticRecords(30)
        _ = try a.ingest(paths: [tmp.jsonl("r.jsonl", records)])
        _ = try a.train()
        _ = try a.ingest(paths: [tmp.jsonl("late.jsonl", syntheticRecords(9, prefix: "late"))])
        let victim = try XCTUnwrap(try a.catalog.record(id: records[4].id))
        let receipt = try a.delete(ids: [victim.id])
        XCTAssertEqual(receipt.shards.map(\.shard), [victim.shard])
        // The other shards' new stage is still to be trained, and `train` does it.
        let report = try a.train()
        let lateShards = Set(try a.catalog.records().filter { $0.id.hasPrefix("late") }.map(\.shard))
        XCTAssertEqual(Set(report.shards.map(\.shard)), lateShards.subtracting([victim.shard]))
        XCTAssertTrue(try a.status().shards.allSatisfy { $0.stagesTrained == $0.stages })
    }

    /// Deleting before any training must not change how later ingests are
    /// placed (review finding: it used to freeze the slice layout).
    func testDeleteBeforeTrainingKeepsLaterPlacement() throws {
        let tmp = TempDir()
        let first = syntheticRecords(24), second = syntheticRecords(10, prefix: "second")
        let a = try Store.create(at: tmp.url.appendingPathComponent("a"), config: microConfig())
        _ = try a.ingest(paths: [tmp.jsonl("f.jsonl", first)])
        let receipt = try a.delete(ids: [first[5].id])
        XCTAssertFalse(receipt.pending)
        XCTAssertTrue(receipt.shards.isEmpty, "nothing was trained, nothing to retrain")
        let r2 = try a.ingest(paths: [tmp.jsonl("s.jsonl", second)])
        XCTAssertNil(r2.appendedSlice, "training has not started: placement by hash")
        _ = try a.train()
        let b = try Store.create(at: tmp.url.appendingPathComponent("b"), config: microConfig())
        _ = try b.ingest(paths: [tmp.jsonl("g.jsonl", first.filter { $0.id != first[5].id })])
        _ = try b.ingest(paths: [tmp.jsonl("h.jsonl", second)])
        _ = try b.train()
        XCTAssertEqual(try digests(a), try digests(b))
    }

    /// A quarantined shard's model (still trained on the deleted record) is
    /// never handed out for export.
    func testQuarantinedShardIsNotExported() throws {
        let tmp = TempDir()
        let a = try Store.create(at: tmp.url.appendingPathComponent("a"), config: microConfig())
        let records = syntheticRecords(20)
        _ = try a.ingest(paths: [tmp.jsonl("r.jsonl", records)])
        _ = try a.train()
        let shard = try XCTUnwrap(try a.catalog.record(id: records[0].id)).shard
        _ = try a.delete(ids: [records[0].id], deferRetrain: true)
        XCTAssertThrowsError(try a.model(shard: shard)) { XCTAssertTrue("\($0)".contains("quarantined"), "\($0)") }
        _ = try a.train()
        XCTAssertNoThrow(try a.model(shard: shard))
    }
}
