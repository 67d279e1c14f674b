import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

/// The statistics behind `compare`, `audit` and `exposure`, on inputs whose answers are known.
final class MeasurementTests: XCTestCase {
    func testBootstrapIntervalOfAKnownSample() throws {
        // 400 evenly spread values in [0, 1]: mean 0.5, sd sqrt(1/12) (plus
        // the n/(n-1) correction), so the mean's 95% interval is about
        // 0.5 ± 1.96 · 0.2887 / 20 = [0.4717, 0.5283].
        let xs = (0..<400).map { Double($0) / 399 }
        let ci = try XCTUnwrap(Bootstrap.mean(xs, seed: 1))
        XCTAssertEqual(ci.low, 0.4717, accuracy: 0.005)
        XCTAssertEqual(ci.high, 0.5283, accuracy: 0.005)
        XCTAssertEqual(ci.high - ci.low, 2 * 1.96 * 0.2887 / 20, accuracy: 0.006)
        // Seeded: the same inputs give the same interval.
        XCTAssertEqual(Bootstrap.mean(xs, seed: 1), ci)
        XCTAssertNotEqual(Bootstrap.mean(xs, seed: 2), ci)
        // No spread, no width; nothing to resample, no interval.
        XCTAssertEqual(Bootstrap.mean([3, 3, 3], seed: 0), Interval(3, 3))
        XCTAssertNil(Bootstrap.mean([], seed: 0))
        // Percentiles interpolate between order statistics.
        XCTAssertEqual(Bootstrap.percentile([0, 10, 20, 30, 40], 0.5), 20)
        XCTAssertEqual(Bootstrap.percentile([0, 10], 0.025), 0.25, accuracy: 1e-12)
        // A token-weighted mean resamples records, keeping each one's weight.
        let w = try XCTUnwrap(Bootstrap.weightedMean([1, 1, 1], weights: [1, 5, 9], seed: 0))
        XCTAssertEqual(w, Interval(1, 1))
        // Interval JSON is [low, high].
        XCTAssertEqual(String(decoding: try JSONEncoder().encode(Interval(0.25, 0.75)), as: UTF8.self), "[0.25,0.75]")
    }

    func testCalibratedAttackSeesThroughDifficulty() {
        // Records of very different difficulty d. A member's own-model NLL is
        // d - 0.3 (memorised a little); a non-member's is d. Reference models
        // never saw either: NLL d. The raw attack is fooled by difficulty;
        // the calibrated one separates perfectly.
        let memberD = (0..<20).map { Double($0) * 0.5 }          // 0, 0.5, ..., 9.5
        let nonMemberD = (0..<20).map { Double($0) * 0.5 + 0.25 } // interleaved
        let rawM = memberD.map { MembershipInference.Scored($0 - 0.3, group: "g") }
        let rawN = nonMemberD.map { MembershipInference.Scored($0, group: "g") }
        let calM = memberD.map { MembershipInference.Scored(MembershipInference.calibrated(own: $0 - 0.3, references: [$0, $0])!, group: "g") }
        let calN = nonMemberD.map { MembershipInference.Scored(MembershipInference.calibrated(own: $0, references: [$0])!, group: "g") }
        XCTAssertEqual(MembershipInference.auc(members: calM, nonMembers: calN), 1)
        // Raw: member i (score 0.5i - 0.3) beats non-members j with 0.5j + 0.25 > 0.5i - 0.3, i.e. j >= i - 1.
        let expectedRaw = Double((0..<20).reduce(0) { $0 + (20 - max(0, $1 - 1)) }) / 400
        XCTAssertEqual(MembershipInference.auc(members: rawM, nonMembers: rawN), expectedRaw, accuracy: 1e-12)
        XCTAssertLessThan(expectedRaw, 0.6)
        let attack = MembershipInference.attack(members: calM, nonMembers: calN, seed: 3)
        XCTAssertEqual(attack.auc, 1)
        XCTAssertEqual(attack.aucCI, Interval(1, 1))
        XCTAssertEqual(attack.tpr, 1)
        XCTAssertEqual(attack.fpr ?? 0, 1.0 / 20, accuracy: 1e-12, "fewer than 100 non-members: FPR 1/n")
        // Members are only compared with non-members of their own group.
        XCTAssertEqual(MembershipInference.auc(members: [.init(0, group: "a")], nonMembers: [.init(1, group: "a"), .init(-5, group: "b")]), 1)
        XCTAssertTrue(MembershipInference.auc(members: [.init(0, group: "a")], nonMembers: [.init(1, group: "b")]).isNaN)
        XCTAssertNil(MembershipInference.calibrated(own: 1, references: []))
    }

    func testTPRAtLowFPR() {
        let nonMembers = (1...100).map(Double.init)
        XCTAssertEqual(MembershipInference.lowFPR(nonMembers: 100), 0.01)
        XCTAssertEqual(MembershipInference.lowFPR(nonMembers: 40), 1.0 / 40)
        // FPR 1% of 100: one non-member (score 1) may be called; the threshold is 2.
        XCTAssertEqual(MembershipInference.tpr(members: [0.5, 1.5, 50, 200], nonMembers: nonMembers, fpr: 0.01), 0.5)
        // A member tied with the threshold is not called.
        XCTAssertEqual(MembershipInference.tpr(members: [2], nonMembers: nonMembers, fpr: 0.01), 0)
    }

    func testCanaryExposureOfAHandBuiltRanking() {
        // Exact ranks: exposure = log2 |R| - log2 rank.
        XCTAssertEqual(Exposure.exact(rank: 1, space: 1024), 10, accuracy: 1e-12)
        XCTAssertEqual(Exposure.exact(rank: 512, space: 1024), 1, accuracy: 1e-12)
        // Sampled: 4 of 100 candidates are more likely than the secret (NLL 1..4 < 4.5).
        let candidates = (1...100).map(Double.init)
        let e = Exposure.estimate(nll: 4.5, candidateNLL: candidates, spaceBits: 10)
        XCTAssertEqual(e.method, "sampling")
        XCTAssertEqual(e.rank, 1 + 1023 * 0.04, accuracy: 1e-9)
        XCTAssertEqual(e.exposure, 10 - log2(1 + 1023 * 0.04), accuracy: 1e-9)
        // A tie counts half.
        XCTAssertEqual(Exposure.estimate(nll: 4, candidateNLL: candidates, spaceBits: 10).rank, 1 + 1023 * 0.035, accuracy: 1e-9)
        // The least likely secret has exposure about 0.
        XCTAssertEqual(Exposure.estimate(nll: 1000, candidateNLL: candidates, spaceBits: 10).exposure, 0, accuracy: 1e-9)
        // More likely than every candidate: the skew-normal tail, high but at most log2 |R|.
        let far = Exposure.estimate(nll: -200, candidateNLL: candidates, spaceBits: 26.575)
        XCTAssertEqual(far.method, "skew-normal fit")
        XCTAssertGreaterThan(far.exposure, 20)
        XCTAssertLessThanOrEqual(far.exposure, 26.575 + 1e-9)
        let near = Exposure.estimate(nll: 0.9, candidateNLL: candidates, spaceBits: 26.575)
        XCTAssertLessThan(near.exposure, far.exposure)
        // Beyond the sample, the fit never claims less than the sample bounds: fraction <= 1/101.
        XCTAssertGreaterThanOrEqual(near.exposure, 26.575 - log2(1 + (pow(2, 26.575) - 1) / 101) - 1e-9)
    }

    func testCanariesRoundTripAndCandidates() throws {
        let canaries = Canary.generate(count: 5, digits: 8, seed: 4)
        XCTAssertEqual(Set(canaries.map(\.secret)).count, 5)
        for c in canaries {
            XCTAssertEqual(c.secret.count, 8)
            XCTAssertEqual(Canary.parse(Array(c.text.utf8)), c)
            XCTAssertEqual(c.secretSpaceBits, 8 * log2(10.0), accuracy: 1e-12)
            let other = Exposure.candidates(for: c, count: 50, seed: 1)
            XCTAssertEqual(other.count, 50)
            XCTAssertFalse(other.contains(c.secret))
            XCTAssertTrue(other.allSatisfy { $0.count == 8 && $0.allSatisfy(\.isNumber) })
            XCTAssertEqual(Canary.parse(c.with(secret: other[0]))?.secret, other[0])
            XCTAssertEqual(Exposure.candidates(for: c, count: 50, seed: 1), other, "the same candidates for every model")
        }
        XCTAssertEqual(Canary.generate(count: 5, digits: 8, seed: 4), canaries)
        XCTAssertNil(Canary.parse(Array("The cat is 12345678.".utf8)))
        XCTAssertNil(Canary.parse(Array("The secret code of X is 12a45678.".utf8)))
        let lines = try Canary.jsonLines(canaries, repeats: 3, group: "canary", seed: 4).split(separator: "\n")
        XCTAssertEqual(lines.count, 15)
        let ids = try lines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String])["id"]! }
        XCTAssertEqual(Set(ids).count, 15)
    }

    func testExtractionScoringOnKnownStrings() {
        func b(_ s: String) -> [UInt8] { Array(s.utf8) }
        XCTAssertEqual(Extraction.lcsRatio(generated: b("abcdef"), truth: b("abcdef")), 1)
        XCTAssertEqual(Extraction.lcsRatio(generated: b("axcyef"), truth: b("abcdef")), 4.0 / 6, accuracy: 1e-12)
        XCTAssertEqual(Extraction.lcsRatio(generated: b(""), truth: b("abc")), 0)
        // Only as many generated bytes as the truth has are compared.
        XCTAssertEqual(Extraction.lcsRatio(generated: b("abcXYZ"), truth: b("abc")), 1)
        XCTAssertEqual(Extraction.lcsRatio(generated: b("zzzabc"), truth: b("abc")), 0)
        XCTAssertTrue(Extraction.exactMatch(generated: b("hello world"), truth: b("hello")))
        XCTAssertFalse(Extraction.exactMatch(generated: b("hell"), truth: b("hello")))
        var o = Extraction.Options()
        o.promptBytes = 4
        o.continuationBytes = 3
        let s = Extraction.split(b("abcdefghij"), o)
        XCTAssertEqual(s?.prompt, b("abcd"))
        XCTAssertEqual(s?.truth, b("efg"))
        // A short record is cut in half so something is left to extract.
        XCTAssertEqual(Extraction.split(b("abcdef"), Extraction.Options())?.prompt, b("abc"))
        XCTAssertNil(Extraction.split(b("a"), o))
    }
}

/// The verdict and the canary path of `compare`, and `audit`, on real stores.
final class UnlearningEvidenceTests: XCTestCase {
    func testVerdictFiresWhenNothingWasMemorised() throws {
        let tmp = TempDir()
        var config = microConfig(shards: 2, slices: 2, seed: 11)
        config.epochs = 0.05
        let store = try Store.create(at: tmp.url.appendingPathComponent("little"), config: config)
        _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", syntheticRecords(80))], holdout: 0.25)
        _ = try store.train()
        var o = CompareOptions()
        o.forgetGroup = "default"
        o.count = 6
        o.unlearning.steps = 4
        o.evalEvery = 2
        let r = try store.compare(o)
        XCTAssertEqual(r.verdict, "not-measurable", r.verdictReason)
        XCTAssertTrue(r.verdictReason.contains("nothing measurable"), r.verdictReason)
        XCTAssertNil(r.approximate.stepsToReference, "not meaningful")
        // The figures are still reported, with intervals.
        XCTAssertNotNil(r.original.forgetCalibratedAUC)
        XCTAssertNotNil(r.original.forgetCalibratedAUCCI)
        XCTAssertNotNil(r.original.meanLikelihoodGapCI)
        XCTAssertNotNil(r.original.forgetMIAAUCCI)
        XCTAssertNotNil(r.original.holdoutPPLCI)
        XCTAssertNil(r.canaryExposure)
    }

    func testRepeatedCanaryIsMemorisedMeasurablyAndForgottenExactly() throws {
        let tmp = TempDir()
        var config = microConfig(shards: 2, slices: 2, seed: 12)
        config.epochs = 30
        let store = try Store.create(at: tmp.url.appendingPathComponent("canary"), config: config)
        _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", syntheticRecords(60))], holdout: 0.25)
        let canaryFile = tmp.url.appendingPathComponent("c.jsonl").path
        try Canary.jsonLines(Canary.generate(count: 1, digits: 6, seed: 1), repeats: 6, group: "canary", seed: 1)
            .write(toFile: canaryFile, atomically: true, encoding: .utf8)
        _ = try store.ingest(paths: [canaryFile])
        _ = try store.train()
        var o = CompareOptions()
        o.forgetGroup = "canary"
        o.count = 6
        o.unlearning.steps = 20
        o.unlearning.learningRate = 1e-3
        o.evalEvery = 5
        o.canaryCandidates = 200
        let r = try store.compare(o)
        XCTAssertEqual(r.verdict, "measurable", r.verdictReason)
        XCTAssertNil(r.original.forgetMIAAUC, "canaries have no holdout: judged on the gap")
        // The keys are still there, as null.
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(r)) as? [String: Any])
        let original = try XCTUnwrap(json["original"] as? [String: Any])
        XCTAssertTrue(original["forgetCalibratedAUC"] is NSNull)
        XCTAssertTrue(original["forgetMIAAUCCI"] is NSNull)
        XCTAssertEqual((original["meanLikelihoodGapCI"] as? [Double])?.count, 2)
        XCTAssertNotNil((json["canaryExposure"] as? [String: Any])?["approximate"] as? Double)
        XCTAssertGreaterThan(try XCTUnwrap(r.original.meanLikelihoodGapCI).low, 0)
        XCTAssertNotNil(r.approximate.stepsToReference)
        let c = try XCTUnwrap(r.canaryExposure)
        XCTAssertEqual(c.canaries, 1)
        XCTAssertGreaterThan(c.original, c.exact + 3, "memorised, then exactly forgotten")
        XCTAssertGreaterThan(c.original, 10)
        XCTAssertNotNil(r.original.extraction)
        XCTAssertNotNil(r.approximate.curve.last?.extraction)
    }

    func testTrialsUseDisjointForgetSets() throws {
        let tmp = TempDir()
        var config = microConfig(shards: 2, slices: 2, seed: 13)
        config.epochs = 10
        let store = try Store.create(at: tmp.url.appendingPathComponent("t"), config: config)
        _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", syntheticRecords(60))], holdout: 0.25)
        _ = try store.train()
        var o = CompareOptions()
        o.forgetGroup = "default"
        o.count = 4
        o.trials = 3
        o.unlearning.steps = 2
        o.evalEvery = 1
        let r = try store.compare(o)
        let trials = try XCTUnwrap(r.trials)
        XCTAssertEqual(trials.count, 3)
        XCTAssertEqual(Set(trials.flatMap(\.forgetIDs)).count, 12, "disjoint")
        XCTAssertEqual(r.forgetIDs, trials[0].forgetIDs)
        XCTAssertEqual(r.trialsMeasurable, trials.filter { $0.verdict == "measurable" }.count)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(r)) as? [String: Any])
        XCTAssertTrue(json.keys.contains("stepsToReferenceCI"))
        // A value exactly when some measurable trial reached the exact level.
        XCTAssertEqual(json["stepsToReferenceCI"] is NSNull, r.stepsToReferenceMean == nil)
        if r.verdict == "not-measurable" { XCTAssertNil(r.approximate.stepsToReference, "not reported under that verdict") }
        XCTAssertEqual((json["trials"] as? [Any])?.count, 3)
        o.trials = 20
        XCTAssertThrowsError(try store.compare(o)) { XCTAssertTrue("\($0)".contains("disjoint"), "\($0)") }
    }

    func testAuditDetectsMembershipAndNotAfterDeletion() throws {
        let tmp = TempDir()
        var config = microConfig(shards: 3, slices: 2, seed: 14)
        config.epochs = 40
        let store = try Store.create(at: tmp.url.appendingPathComponent("a"), config: config)
        // Random letters: nothing to learn but the records themselves.
        var rng = Xoshiro256(seed: 5)
        let records = (0..<90).map { i in
            (id: "r\(i)", text: String((0..<40).map { _ in Character(UnicodeScalar(UInt8(97 + rng.next() % 26))) }))
        }
        _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records)], holdout: 0.3)
        _ = try store.train()
        let targets = try store.catalog.records().filter { !$0.holdout }.prefix(16)
        var o = AuditOptions()
        o.ids = targets.map(\.id)
        let before = try store.audit(o)
        XCTAssertEqual(before.verdict, "detectable", before.verdictReason)
        // One record alone is tested against the holdout directly: the most
        // member-like of the group is detectable by itself.
        var one = AuditOptions()
        one.ids = [try XCTUnwrap(before.records.min { $0.holdoutFractionAtMost < $1.holdoutFractionAtMost }).id]
        let single = try store.audit(one)
        XCTAssertEqual(single.verdict, "detectable", single.verdictReason)
        XCTAssertTrue(single.verdictReason.contains("tested alone"), single.verdictReason)
        // Read and scored a page at a time: the same report whatever the page size.
        var byGroup = AuditOptions()
        byGroup.group = "default"
        byGroup.ids = [targets.first!.id]
        let whole = try store.audit(byGroup)
        let paged = try store.audit(byGroup, pageSize: 7)
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys
        XCTAssertEqual(try enc.encode(paged), try enc.encode(whole))
        XCTAssertEqual(whole.records.map(\.id), try store.catalog.records().filter { !$0.holdout }.map(\.id),
                       "the group's records in ingest order, each once")
        let texts = Dictionary(uniqueKeysWithValues: records.map { ($0.id, Array($0.text.utf8)) })
        _ = try store.delete(ids: o.ids)
        XCTAssertThrowsError(try store.audit(o)) { XCTAssertTrue("\($0)".contains("--file"), "\($0)") }
        for id in o.ids { o.texts[id] = texts[id] }
        let after = try store.audit(o)
        XCTAssertEqual(after.verdict, "not-detectable", after.verdictReason)
        XCTAssertTrue(after.records.allSatisfy { $0.status == .deleted })
        one.texts[one.ids[0]] = texts[one.ids[0]]
        XCTAssertEqual(try store.audit(one).verdict, "not-detectable")
    }
}

final class VerdictAndTailTests: XCTestCase {
    private func metrics(_ extra: [String: Any]) throws -> ModelMetrics {
        var d: [String: Any] = ["forgetNLL": 2.0, "holdoutPPL": 8.0, "holdoutPPLByGroup": [String: Double](), "retainNLL": 2.0,
                                "seconds": 0, "flops": 0]
        d.merge(extra) { $1 }
        return try JSONDecoder().decode(ModelMetrics.self, from: JSONSerialization.data(withJSONObject: d))
    }

    func testVerdictRules() throws {
        let gap: [String: Any] = ["meanLikelihoodGap": 0.1, "meanLikelihoodGapCI": [0.05, 0.15]]
        func auc(_ lo: Double, _ hi: Double) -> [String: Any] { ["forgetCalibratedAUC": (lo + hi) / 2, "forgetCalibratedAUCCI": [lo, hi]] }
        XCTAssertTrue(Verdict.judge(original: try metrics(gap.merging(auc(0.6, 0.9)) { $1 }), forgetRecords: 8).measurable)
        XCTAssertFalse(Verdict.judge(original: try metrics(gap.merging(auc(0.45, 0.7)) { $1 }), forgetRecords: 8).measurable, "contains 0.5")
        XCTAssertFalse(Verdict.judge(original: try metrics(gap.merging(auc(0.3, 0.45)) { $1 }), forgetRecords: 8).measurable, "below 0.5")
        XCTAssertFalse(Verdict.judge(original: try metrics(gap.merging(auc(0.6, 0.9)) { $1 }), forgetRecords: 1).measurable, "one record")
        let flatGap: [String: Any] = ["meanLikelihoodGap": 0.01, "meanLikelihoodGapCI": [-0.01, 0.03]]
        XCTAssertFalse(Verdict.judge(original: try metrics(flatGap.merging(auc(0.6, 0.9)) { $1 }), forgetRecords: 8).measurable, "gap touches 0")
        // No holdout (canaries): the gap alone decides.
        XCTAssertTrue(Verdict.judge(original: try metrics(gap), forgetRecords: 6).measurable)
        XCTAssertFalse(Verdict.judge(original: try metrics([:]), forgetRecords: 6).measurable)
    }

    func testSkewNormalTail() {
        // Owen's T at a = 1: T(h, 1) = Φ(h)(1 - Φ(h)) / 2.
        for h in [-2.0, -0.5, 0, 0.7, 1.9] {
            let p = SkewNormal.phi(h)
            XCTAssertEqual(SkewNormal.owensT(h, 1), p * (1 - p) / 2, accuracy: 1e-9)
        }
        // Shape 0 is the normal distribution.
        let normal = SkewNormal(location: 1, scale: 2, shape: 0)
        XCTAssertEqual(normal.cdf(1), 0.5, accuracy: 1e-12)
        XCTAssertEqual(normal.cdf(1 - 2 * 1.959963984540054), 0.025, accuracy: 1e-9)
        // A skewed CDF against numerical integration of the density 2 φ(z) Φ(a z) / scale.
        let skewed = SkewNormal(location: 0, scale: 1.5, shape: 4)
        for x in [-1.0, 0, 0.5, 2] {
            let n = 20000, lo = -12.0
            let h = (x - lo) / Double(n)
            var s = 0.0
            for i in 0...n {
                let z = (lo + Double(i) * h) / 1.5
                let f = 2 * exp(-z * z / 2) / (2 * Double.pi).squareRoot() * SkewNormal.phi(4 * z) / 1.5
                s += f * (i == 0 || i == n ? 1 : (i % 2 == 1 ? 4 : 2))
            }
            XCTAssertEqual(skewed.cdf(x), s * h / 3, accuracy: 1e-6, "x \(x)")
        }
        // The fit recovers a skewed sample's direction: right-skewed data, positive shape.
        let sample = (1...400).map { i -> Double in let u = Double(i) / 401; return -log(1 - u) }  // exponential quantiles
        XCTAssertGreaterThan(SkewNormal.fit(sample).shape, 1)
    }
}
