import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

/// `sisa benchmark challenge`: the protocol on tiny byte-level stores.
final class ChallengeTests: XCTestCase {
    func runChallenge(_ tmp: TempDir, seeds: Int = 3) throws -> (ChallengeReport, Store) {
        let template = try Store.create(at: tmp.url.appendingPathComponent("template"), config: microConfig(seed: 7))
        _ = try template.ingest(paths: [tmp.jsonl("r.jsonl", syntheticRecords(60))], holdout: 0.2)
        var o = ChallengeOptions()
        o.seeds = seeds
        o.methods = [.exact, .ga, .filter]
        o.forgetCount = 6
        o.sample = 8
        o.unlearning.steps = 3
        o.unlearning.batch = 2
        o.unlearning.learningRate = 1e-3
        o.keepStores = true
        return (try Challenge.run(template: template, options: o, work: tmp.url.appendingPathComponent("work")), template)
    }

    func testRetrainPopulationIsTheStoreThatNeverSawTheForgetSet() throws {
        let tmp = TempDir()
        let (report, template) = try runChallenge(tmp)
        let work = tmp.url.appendingPathComponent("work")
        let retained = try String(contentsOf: work.appendingPathComponent("retained.jsonl"), encoding: .utf8)
        let trainingCount = try template.catalog.records().filter { !$0.holdout }.count
        XCTAssertEqual(retained.split(separator: "\n").count, trainingCount - 6)
        for id in report.forgetIDs { XCTAssertFalse(retained.contains("\"\(id)\""), id) }
        // Seed 1's exact deletion against a store of that seed that never ingested the forget records.
        var c = template.config
        c.seed = 7 + 1
        let fresh = try Store.create(at: tmp.url.appendingPathComponent("fresh"), config: c)
        _ = try fresh.ingest(paths: [work.appendingPathComponent("retained.jsonl").path], format: .jsonl)
        _ = try fresh.train()
        let texts = try report.forgetIDs.map { try XCTUnwrap(template.catalog.text(id: $0)) }
        XCTAssertEqual(try Ensemble(store: fresh).challengeMeasures(texts).confidences, report.retrainedConfidences[1])
        XCTAssertEqual(report.retrainedConfidences.count, 3)
        XCTAssertEqual(report.retrainedConfidences[0].count, 6)
    }

    func testExactDeletionUnderTheChallengesProtocolIsOneModelNTimes() throws {
        let tmp = TempDir()
        let (report, _) = try runChallenge(tmp)
        let exact = try XCTUnwrap(report.results.first { $0.method == .exact && $0.protocol == "challenge" })
        XCTAssertEqual(Set(exact.confidences.map { $0 }).count, 1, "N deterministic runs give one model")
        XCTAssertEqual(exact.forgetScore, 0)
        XCTAssertEqual(exact.epsilonMedian, ChallengeScore.epsilonCap)
        XCTAssertTrue(exact.note?.contains("same digests") ?? false, exact.note ?? "no note")
    }

    func testApproximateRunsOfTheChallengeProtocolDifferInDataOrder() throws {
        let tmp = TempDir()
        let (report, _) = try runChallenge(tmp)
        let ga = try XCTUnwrap(report.results.first { $0.method == .ga && $0.protocol == "challenge" })
        XCTAssertGreaterThan(Set(ga.confidences).count, 1, "the N runs from one original differ only in data order, and do differ")
        XCTAssertNotNil(report.results.first { $0.method == .ga && $0.protocol == "per-seed" })
        // Every reported F is the metric applied to the reported populations.
        for r in report.results {
            let s = try ChallengeScore.score(unlearned: r.confidences, retrained: report.retrainedConfidences)
            XCTAssertEqual(r.forgetScore, s.forgetScore, "\(r.method) \(r.protocol)")
        }
        let ceiling = try ChallengeScore.score(unlearned: try XCTUnwrap(report.ceilingConfidences), retrained: report.retrainedConfidences)
        XCTAssertEqual(report.ceiling, ceiling.forgetScore)
    }

    func testATemplateWithoutHoldoutIsRefused() throws {
        let tmp = TempDir()
        let template = try Store.create(at: tmp.url.appendingPathComponent("template"), config: microConfig())
        _ = try template.ingest(paths: [tmp.jsonl("r.jsonl", syntheticRecords(20))])
        XCTAssertThrowsError(try Challenge.run(template: template, options: ChallengeOptions(), work: tmp.url.appendingPathComponent("w"))) {
            XCTAssertTrue("\($0)".contains("holdout"), "\($0)")
        }
    }
}
