import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

/// `status` reads a byte store's stage keys and steps from the records'
/// digests and lengths (no text). They must be exactly the full plan's,
/// the plan that training and deletion use, after any seeded sequence of
/// ingests (before and after training begins), deletions and trainings, with
/// and without DP-SGD.
final class StageChainTests: XCTestCase {
    private func assertChainsMatchPlans(_ store: Store, _ context: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for shard in 0..<store.config.shards {
            let plan = try store.plan(shard: shard)
            let chain = try store.stageChain(shard: shard)
            XCTAssertEqual(chain.stages.map(\.key), plan.stages.map(\.key), "\(context): shard \(shard) keys", file: file, line: line)
            XCTAssertEqual(chain.stages.map(\.steps), plan.stages.map(\.steps), "\(context): shard \(shard) steps", file: file, line: line)
            XCTAssertEqual(chain.stages.map(\.ids), plan.stages.map(\.ids), "\(context): shard \(shard) ids", file: file, line: line)
            XCTAssertEqual(chain.stages.map(\.streamCount), plan.stages.map(\.stream.count), file: file, line: line)
            XCTAssertEqual(chain.stages.map(\.samplingRate), plan.stages.map(\.samplingRate), file: file, line: line)
            XCTAssertEqual(chain.noise, plan.noise, file: file, line: line)
            // What status reads: the chain train recorded, when still current, else computed.
            let summaries = try store.stageSummaries(shard: shard)
            XCTAssertEqual(summaries.stages.map(\.key), plan.stages.map(\.key), "\(context): shard \(shard) status keys", file: file, line: line)
            XCTAssertEqual(summaries.stages.map(\.steps), plan.stages.map(\.steps), file: file, line: line)
            XCTAssertEqual(summaries.stages.map(\.samplingRate), plan.stages.map(\.samplingRate), file: file, line: line)
            XCTAssertEqual(summaries.noise, plan.noise, file: file, line: line)
        }
        XCTAssertEqual(try store.verifyPlans().map(\.problem), [], "\(context): verifyPlans", file: file, line: line)
    }

    func testChainsFromDigestsEqualThePlansAfterRandomHistories() throws {
        let configs: [(String, StoreConfig)] = [
            ("plain", microConfig(shards: 3, slices: 2, seed: 4)),
            ("dp noise", StoreConfig(shards: 2, slices: 2, model: microModel, batch: 4, epochs: 1, seed: 5,
                                     dp: DPConfig(clip: 1, noise: 1.1))),
            ("dp epsilon", StoreConfig(shards: 2, slices: 3, model: microModel, batch: 4, epochs: 1, seed: 6,
                                       dp: DPConfig(clip: 1, targetEpsilon: 8, delta: 1e-5))),
        ]
        for (name, config) in configs {
            let tmp = TempDir()
            let store = try Store.create(at: tmp.url.appendingPathComponent("s"), config: config)
            var rng = Xoshiro256(seed: 99)
            var live: [String] = []
            var n = 0
            for step in 0..<7 {
                switch rng.nextInt(below: 3) {
                case 0, 1:
                    let count = 3 + rng.nextInt(below: 12)
                    let recs = (0..<count).map { i -> (id: String, text: String) in
                        n += 1
                        return ("r\(n)", String(repeating: "word\(i) ", count: 1 + rng.nextInt(below: 9)) + "end \(n)")
                    }
                    _ = try store.ingest(paths: [tmp.jsonl("i\(step).jsonl", recs)], holdout: rng.nextInt(below: 2) == 0 ? 0.2 : 0)
                    live += recs.map(\.id)
                    // An ingest records every shard's chain, trained or not.
                    for shard in 0..<store.config.shards {
                        XCTAssertTrue(try store.chainIsRecorded(shard: shard), "\(name) step \(step): shard \(shard)'s chain not recorded at ingest")
                    }
                default:
                    guard live.count > 2 else { continue }
                    let victim = live.remove(at: rng.nextInt(below: live.count))
                    _ = try store.delete(ids: [victim], deferRetrain: rng.nextInt(below: 2) == 0)
                }
                try assertChainsMatchPlans(store, "\(name) after step \(step)")
                if step == 2 { _ = try store.train() }
            }
            _ = try store.train()
            try assertChainsMatchPlans(store, "\(name) at the end")
            // Right after training every shard's chain is read from the catalog, not recomputed.
            for shard in 0..<store.config.shards {
                XCTAssertTrue(try store.chainIsRecorded(shard: shard), "\(name): shard \(shard)'s chain was not recorded")
            }
            // A recorded chain that disagrees with the records is what verifyPlans reports.
            try store.catalog.setMeta("chain.0", try XCTUnwrap(try store.catalog.meta("chain.0")).replacingOccurrences(of: "\"steps\":", with: "\"steps\":1"))
            XCTAssertEqual(try store.verifyPlans().map(\.shard), [0], name)
            // And status, which reads the chains, sees every stage trained.
            let status = try store.status()
            for s in status.shards { XCTAssertEqual(s.stagesTrained, s.stages, "\(name) shard \(s.index)") }
            // Its counts (made in SQL) agree with the records listed one by one.
            let all = try store.catalog.records(includeDeleted: true)
            let listed = all.filter { $0.status == .live }
            XCTAssertEqual(status.records, listed.count)
            XCTAssertEqual(status.trainingRecords, listed.filter { !$0.holdout }.count)
            XCTAssertEqual(status.holdoutRecords, listed.filter { $0.holdout }.count)
            XCTAssertEqual(status.deletedRecords, all.count - listed.count)
            XCTAssertGreaterThan(status.deletedRecords, 0, "\(name): the history deleted nothing")
            XCTAssertEqual(status.groups, Dictionary(grouping: listed, by: { $0.group }).mapValues { $0.count })
            for s in status.shards { XCTAssertEqual(s.records, listed.filter { $0.shard == s.index && !$0.holdout }.count) }
        }
    }

    /// A catalog from before the counts table (schema 3) is counted once when
    /// opened; the triggers keep the counts from then on.
    func testRecordCountsOfAnOlderCatalogAreCountedAtUpgrade() throws {
        let tmp = TempDir()
        let url = tmp.url.appendingPathComponent("old")
        let store = try Store.create(at: url, config: microConfig())
        _ = try store.ingest(paths: [tmp.jsonl("a.jsonl", syntheticRecords(30, prefix: "a"))], group: "a", holdout: 0.2)
        _ = try store.delete(ids: ["a-1", "a-2"], deferRetrain: true)
        let outside = try SQLiteDatabase(path: url.appendingPathComponent("catalog.sqlite").path)
        try outside.execute("""
            DROP TRIGGER record_counts_insert; DROP TRIGGER record_counts_update; DROP TRIGGER record_counts_delete;
            DROP TABLE record_counts; PRAGMA user_version = 3;
            """)
        let reopened = try Store.open(at: url)
        XCTAssertEqual(try outside.scalarInt("PRAGMA user_version"), 6)
        _ = try reopened.ingest(paths: [tmp.jsonl("b.jsonl", syntheticRecords(12, prefix: "b"))], group: "b")
        _ = try reopened.delete(ids: ["b-3"], deferRetrain: true)
        let status = try reopened.status()
        let all = try reopened.catalog.records(includeDeleted: true)
        let live = all.filter { $0.status == .live }
        XCTAssertEqual(status.records, live.count)
        XCTAssertEqual(status.deletedRecords, 3)
        XCTAssertEqual(status.holdoutRecords, live.filter(\.holdout).count)
        XCTAssertEqual(status.groups, ["a": 28, "b": 11])
        XCTAssertEqual(try reopened.catalog.liveRecordCount(group: "a"), 28)
    }
}
