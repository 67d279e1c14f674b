import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

final class UnlearningMetricsTests: XCTestCase {
    func testLossAUCOnKnownLists() {
        // Members have lower NLL: perfectly separated.
        XCTAssertEqual(UnlearningMetrics.lossAUC(members: [1, 2], nonMembers: [3, 4, 5]), 1)
        XCTAssertEqual(UnlearningMetrics.lossAUC(members: [6], nonMembers: [3, 4, 5]), 0)
        // [2] vs [1, 2, 3]: wins over 3, tie with 2, loses to 1 -> (1 + 0.5) / 3.
        XCTAssertEqual(UnlearningMetrics.lossAUC(members: [2], nonMembers: [1, 2, 3]), 0.5, accuracy: 1e-12)
        // Mann-Whitney by hand: members [1, 4], non-members [2, 3, 5]:
        // 1 beats all 3; 4 beats 5 only -> 4 of 6 pairs.
        XCTAssertEqual(UnlearningMetrics.lossAUC(members: [1, 4], nonMembers: [2, 3, 5]), 4.0 / 6, accuracy: 1e-12)
        XCTAssertEqual(UnlearningMetrics.privacyLeak(auc: 0.75, exactAUC: 0.5), 0.5, accuracy: 1e-12)
    }

    func testExposureOfKnownRanking() {
        let population = [1.0, 2, 3, 4]
        XCTAssertEqual(UnlearningMetrics.exposure(nll: 2.5, population: population), 1, accuracy: 1e-12)   // 2 of 4
        XCTAssertEqual(UnlearningMetrics.exposure(nll: 1, population: population), 2, accuracy: 1e-12)     // 1 of 4
        XCTAssertEqual(UnlearningMetrics.exposure(nll: 9, population: population), 0, accuracy: 1e-12)     // all
        XCTAssertEqual(UnlearningMetrics.exposure(nll: 0.5, population: population), log2(5), accuracy: 1e-12) // capped
        XCTAssertEqual(UnlearningMetrics.likelihoodGap(nll: 1.5, exactNLL: 2), 0.5)
    }
}

final class ComparisonTests: XCTestCase {
    /// A store whose models memorise: many epochs over few records.
    private func memorisingStore(_ tmp: TempDir, name: String, records: [(id: String, text: String)]) throws -> Store {
        var config = microConfig(shards: 2, slices: 2, seed: 3)
        config.epochs = 30
        let s = try Store.create(at: tmp.url.appendingPathComponent(name), config: config)
        _ = try s.ingest(paths: [tmp.jsonl("\(name).jsonl", records)], holdout: 0.25)
        _ = try s.train()
        return s
    }

    func testCompareIsAWhatIfAndExactMatchesNeverIngested() throws {
        let tmp = TempDir()
        let records = syntheticRecords(48)
        let store = try memorisingStore(tmp, name: "a", records: records)
        let before = try store.status()
        let checkpointsBefore = try store.catalog.checkpoints().map(\.key).sorted()
        var o = CompareOptions()
        o.forgetGroup = "default"
        o.count = 3
        o.seed = 5
        o.unlearning.steps = 12
        o.unlearning.learningRate = 1e-3
        o.evalEvery = 4
        let report = try store.compare(o)

        // The store is unchanged.
        let after = try store.status()
        XCTAssertEqual(after.shards.map(\.digest), before.shards.map(\.digest))
        XCTAssertEqual(after.records, before.records)
        XCTAssertEqual(after.deletedRecords, 0)
        XCTAssertEqual(try store.catalog.checkpoints().map(\.key).sorted(), checkpointsBefore)

        // Gradient ascent raises the forget NLL, step by step overall.
        let curve = report.approximate.curve
        XCTAssertEqual(curve.map(\.step), [0, 4, 8, 12])
        XCTAssertEqual(curve[0].forgetNLL, report.original.forgetNLL, accuracy: 1e-9)
        XCTAssertGreaterThan(curve.last!.forgetNLL, report.original.forgetNLL + 0.1)
        XCTAssertGreaterThan(curve.last!.flops, 0)

        // The exact model's forget NLL is what a store that never saw the records gives.
        let forgotten = Set(report.forgetIDs)
        let never = try memorisingStore(tmp, name: "b", records: records.filter { !forgotten.contains($0.id) })
        let neverDigests = try never.status().shards
        for s in report.affectedShards {
            XCTAssertEqual(report.exactDigests[String(s)], neverDigests[s].digest, "shard \(s): exact model differs")
        }
        let texts = records.filter { forgotten.contains($0.id) }.map { Array($0.text.utf8) }
        let neverScores = try Ensemble(store: never).score(texts)
        // Same models; scores may differ in the last bits from batch shapes.
        XCTAssertEqual(report.exact.forgetNLL, meanNLL(neverScores), accuracy: 1e-6)
        // Memorised records are more likely under the original than under the exact model.
        XCTAssertLessThan(report.original.forgetNLL, report.exact.forgetNLL)
        XCTAssertEqual(report.exact.privacyLeak, 0)
        XCTAssertEqual(report.records.count, 3)
    }

    func testMethodsAndErrors() throws {
        let tmp = TempDir()
        let records = syntheticRecords(40)
        let store = try memorisingStore(tmp, name: "m", records: records)
        let target = try XCTUnwrap(try store.catalog.records().first { !$0.holdout })
        for method in [UnlearningMethod.graddiff, .npo] {
            var o = CompareOptions()
            o.forgetIDs = [target.id]
            o.unlearning.method = method
            o.unlearning.steps = 6
            o.unlearning.learningRate = 1e-3
            o.evalEvery = 3
            let r = try store.compare(o)
            XCTAssertEqual(r.affectedShards, [target.shard])
            XCTAssertGreaterThan(r.approximate.curve.last!.forgetNLL, r.original.forgetNLL, "\(method) should forget")
        }
        var bad = CompareOptions()
        bad.forgetIDs = ["nope"]
        XCTAssertThrowsError(try store.compare(bad)) { XCTAssertEqual($0 as? CoordinatorError, .unknownIDs(["nope"])) }
        let held = try XCTUnwrap(try store.catalog.records().first { $0.holdout })
        bad.forgetIDs = [held.id]
        XCTAssertThrowsError(try store.compare(bad)) { XCTAssertTrue("\($0)".contains("holdout")) }
    }

    func testPlotIsSelfContainedSVG() throws {
        let tmp = TempDir()
        let store = try memorisingStore(tmp, name: "p", records: syntheticRecords(32))
        var o = CompareOptions()
        o.forgetGroup = "default"
        o.count = 2
        o.unlearning.steps = 4
        o.evalEvery = 2
        let r = try store.compare(o)
        let svg = ComparisonPlot.svg([("in", r), ("again", r)])
        XCTAssertTrue(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        XCTAssertTrue(svg.contains("unlearning steps"))
        XCTAssertTrue(svg.contains("forget-set NLL"))
        XCTAssertTrue(svg.contains("holdout perplexity"))
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 4, "one curve per run and panel")
        XCTAssertFalse(svg.contains("href"), "no external references")
    }
}
