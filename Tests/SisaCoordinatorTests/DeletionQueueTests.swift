import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

/// Deletion as a durable queue: requests are acknowledged before retraining,
/// share one retraining per shard, and one arriving mid-training waits for the next pass.
final class DeletionQueueTests: XCTestCase {
    func testRequestsAreDurableThenCompletedTogether() throws {
        let tmp = TempDir()
        let records = syntheticRecords(60)
        let s = try Store.create(at: tmp.url.appendingPathComponent("s"), config: microConfig())
        _ = try s.ingest(paths: [tmp.jsonl("r.jsonl", records)])
        _ = try s.train()
        let a = records[3].id, b = records[11].id
        guard case let .queued(ra, alreadyA) = try s.submitDeletion(ids: [a], reason: "ticket 1") else { return XCTFail("not queued") }
        guard case let .queued(rb, _) = try s.submitDeletion(ids: [b], reason: nil) else { return XCTFail("not queued") }
        XCTAssertEqual(alreadyA, [])
        XCTAssertEqual(ra.state, .queued)
        XCTAssertEqual(ra.records, [a])
        XCTAssertEqual(ra.reason, "ticket 1")
        XCTAssertNotEqual(ra.id, rb.id)
        // Durable and quarantined: the text is gone and no query uses the shards.
        XCTAssertNil(try s.catalog.text(id: a))
        let shards = Set([try s.catalog.record(id: a)!.shard, try s.catalog.record(id: b)!.shard])
        XCTAssertEqual(Set(try s.catalog.shardStates().filter(\.quarantined).map(\.index)), shards)
        // Asking again answers with the same request's state, changing nothing.
        guard case .alreadyDeleted = try s.submitDeletion(ids: [a], reason: nil) else { return XCTFail("should be known") }

        let report = try XCTUnwrap(try s.processDeletions())
        XCTAssertEqual(Set(report.shards.map(\.shard)), shards, "one retraining per affected shard for both requests")
        for r in [ra, rb] {
            let done = try XCTUnwrap(try s.deletionRequest(id: r.id))
            XCTAssertEqual(done.state, .done)
            XCTAssertNotNil(done.completedAt)
            XCTAssertEqual(Set(try XCTUnwrap(done.receipt).records), [a, b])
        }
        XCTAssertNil(try s.processDeletions(), "nothing left to do")
        XCTAssertNil(try s.deletionRequest(id: 999))

        let never = try Store.create(at: tmp.url.appendingPathComponent("n"), config: microConfig())
        _ = try never.ingest(paths: [tmp.jsonl("rest.jsonl", records.filter { $0.id != a && $0.id != b })])
        _ = try never.train()
        XCTAssertEqual(try digests(s), try digests(never))
        XCTAssertTrue(try Ensemble(store: s).excluded.isEmpty)
    }

    /// A request that arrives while its shard is being retrained is not
    /// marked done by that retraining (which never saw it): its shard stays
    /// quarantined until the next pass.
    func testRequestArrivingDuringRetrainingWaitsForTheNextPass() throws {
        let tmp = TempDir()
        var config = microConfig()
        config.epochs = 20  // enough steps for progress reports
        let records = syntheticRecords(60)
        let s = try Store.create(at: tmp.url.appendingPathComponent("s"), config: config)
        _ = try s.ingest(paths: [tmp.jsonl("r.jsonl", records)])
        _ = try s.train()
        let a = records[3].id
        let shardA = try s.catalog.record(id: a)!.shard
        let b = try XCTUnwrap(records.first { r in (try? s.catalog.record(id: r.id))??.shard == shardA && r.id != a }).id
        guard case let .queued(ra, _) = try s.submitDeletion(ids: [a], reason: nil) else { return XCTFail() }
        let late = LateRequest()
        _ = try s.processDeletions(progress: { _ in
            late.once { _ = try? s.submitDeletion(ids: [b], reason: "late") }
        })
        XCTAssertTrue(late.fired, "the test needs a progress report during training")
        XCTAssertEqual(try s.deletionRequest(id: ra.id)?.state, .done)
        let lateRequest = try XCTUnwrap(try s.catalog.deletion(record: b))
        XCTAssertEqual(lateRequest.status, .pending, "the retraining never saw the late request")
        XCTAssertTrue(try s.catalog.shardStates()[shardA].quarantined, "its shard stays out of queries")
        _ = try s.processDeletions()
        XCTAssertEqual(try s.catalog.deletion(record: b)?.status, .done)
        XCTAssertFalse(try s.catalog.shardStates()[shardA].quarantined)

        let never = try Store.create(at: tmp.url.appendingPathComponent("n"), config: config)
        _ = try never.ingest(paths: [tmp.jsonl("rest.jsonl", records.filter { $0.id != a && $0.id != b })])
        _ = try never.train()
        XCTAssertEqual(try digests(s), try digests(never))
    }
}

private final class LateRequest: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var fired = false
    func once(_ body: () -> Void) {
        lock.lock()
        defer { lock.unlock() }
        guard !fired else { return }
        fired = true
        body()
    }
}
