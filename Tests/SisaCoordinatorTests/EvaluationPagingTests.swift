import Foundation
import SisaCoordinator
import XCTest

/// `eval` reads the holdout a page at a time; its figures are those of
/// scoring every holdout record of a group at once, bit for bit, whatever
/// the page size.
final class EvaluationPagingTests: XCTestCase {
    func testPagedEvaluationEqualsScoringEveryRecordAtOnce() throws {
        let tmp = TempDir()
        let store = try Store.create(at: tmp.url.appendingPathComponent("s"), config: microConfig())
        _ = try store.ingest(paths: [tmp.jsonl("a.jsonl", syntheticRecords(60, prefix: "a"))], group: "a", holdout: 0.3)
        _ = try store.ingest(paths: [tmp.jsonl("b.jsonl", syntheticRecords(40, prefix: "b"))], group: "b", holdout: 0.3)
        _ = try store.train()
        let ensemble = try Ensemble(store: store)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let whole = try ensemble.evaluate(store: store)
        XCTAssertEqual(whole.map(\.group), ["a", "b"])
        for size in [1, 3, 17] {
            XCTAssertEqual(try encoder.encode(try ensemble.evaluate(store: store, pageSize: size)), try encoder.encode(whole), "page size \(size)")
        }
        for g in whole {
            let texts = try store.catalog.texts(holdout: true, group: g.group).map(\.text)
            XCTAssertEqual(g.records, texts.count)
            XCTAssertEqual(g.ensembleNLL, meanNLL(ensemble.score(texts)))
            for (s, m) in zip(g.shards, ensemble.models) { XCTAssertEqual(s.nll, meanNLL(m.model.score(texts)), "shard \(s.shard)") }
        }
    }
}
