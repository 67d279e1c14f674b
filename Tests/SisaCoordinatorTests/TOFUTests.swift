import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

final class TOFUTests: XCTestCase {
    func testGeneratorIsSeededAndWellFormed() {
        let b = TOFU.generate(people: 40, seed: 3)
        XCTAssertEqual(b.people.count, 40)
        XCTAssertEqual(Set(b.people).count, 40, "distinct fictitious names")
        XCTAssertEqual(b.questions.count, 200)
        XCTAssertEqual(TOFU.generate(people: 40, seed: 3).questions, b.questions)
        XCTAssertNotEqual(TOFU.generate(people: 40, seed: 4).questions, b.questions)
        for q in b.questions {
            XCTAssertEqual(q.perturbed.count, 4)
            XCTAssertFalse(q.perturbed.contains(q.answer) || q.perturbed.contains(q.paraphrased), "perturbed answers are false")
            XCTAssertEqual(Set(q.perturbed).count, 4)
            // Perturbations of the paraphrase (TOFU): same wording around a false fact.
            for p in q.perturbed {
                let prefix = zip(p, q.paraphrased).prefix { $0 == $1 }.count
                let suffix = zip(p.reversed(), q.paraphrased.reversed()).prefix { $0 == $1 }.count
                XCTAssertGreaterThanOrEqual(prefix + suffix, 12, "\(p) is not a perturbation of \(q.paraphrased)")
            }
            XCTAssertTrue(q.answer.contains(b.people[q.person]) && q.paraphrased.contains(b.people[q.person]))
            XCTAssertTrue(q.text.hasPrefix("Question: \(q.question)\nAnswer: "))
        }
        // Splits of 1%, 5% and 10% of the people, nested, at least one person.
        let s1 = TOFU.forgetPeople(b, percent: 1), s5 = TOFU.forgetPeople(b, percent: 5), s10 = TOFU.forgetPeople(b, percent: 10)
        XCTAssertEqual([s1.count, s5.count, s10.count], [1, 2, 4])
        XCTAssertTrue(s1.isSubset(of: s5) && s5.isSubset(of: s10))
    }

    func testTruthRatioOnAHandBuiltScorer() {
        // A scorer that gives every answer byte of the true (paraphrased) answer NLL 0.1
        // and of any other text NLL 1.0: R = exp(-1.0) / exp(-0.1).
        let q = TOFU.Question(person: 0, question: "Q?", answer: "yes.", paraphrased: "indeed.", perturbed: ["no.", "never."])
        let truth = Array(("Question: Q?\nAnswer: indeed.").utf8)
        let scorer: ([[UInt8]]) -> [RecordScore] = { texts in
            texts.map { t in
                let v: Float = t == truth ? 0.1 : 1.0
                return RecordScore(tokens: t.count + 1, nll: Double(v), tokenNLL: [Float](repeating: v, count: t.count + 1))
            }
        }
        XCTAssertEqual(TOFU.truthRatio(q, score: scorer), exp(-1.0) / exp(-Double(Float(0.1))), accuracy: 1e-9)
        // Batched over questions (one call of the scorer): the same ratios, in order.
        var calls = 0
        let counting: ([[UInt8]]) -> [RecordScore] = { calls += 1; return scorer($0) }
        let other = TOFU.Question(person: 1, question: "R?", answer: "no.", paraphrased: "not at all.", perturbed: ["yes.", "indeed."])
        let batched = TOFU.truthRatios([q, other, q], score: counting)
        XCTAssertEqual(calls, 1)
        XCTAssertEqual(batched, [TOFU.truthRatio(q, score: scorer), TOFU.truthRatio(other, score: scorer), TOFU.truthRatio(q, score: scorer)])
        // Forget quality of identical distributions is 1; of disjoint ones small.
        XCTAssertEqual(TOFU.forgetQuality(unlearned: [0.1, 0.2, 0.3], retrained: [0.1, 0.2, 0.3]), 1)
        XCTAssertLessThan(TOFU.forgetQuality(unlearned: [0.1, 0.2, 0.3, 0.4, 0.5], retrained: [0.6, 0.7, 0.8, 0.9, 1.0]), 0.01)
    }

    /// On a base store the answer is the record's tokens after the question's,
    /// where a BPE tokenizer merges the space after "Answer:" into the answer's
    /// first word: the question alone ends in a token the record lacks.
    func testAnswerTokensUnderATokenizerThatMergesTheSpace() {
        // A toy BPE: bytes, except that a space before a letter joins it (id 300 + letter).
        func encode(_ text: [UInt8]) -> [Int32] {
            var out: [Int32] = [], i = 0
            while i < text.count {
                if text[i] == 32, i + 1 < text.count, (97...122).contains(text[i + 1]) {
                    out.append(300 + Int32(text[i + 1])); i += 2
                } else { out.append(Int32(text[i])); i += 1 }
            }
            return out
        }
        let q = TOFU.Question(person: 0, question: "Q?", answer: "yes.", paraphrased: "indeed so.", perturbed: ["no."])
        let truth = Array("Question: Q?\nAnswer: indeed so.".utf8)
        let k = encode(Array("Question: Q?\nAnswer:".utf8)).count  // the merged " i" token
        let n = encode(truth).count - k                              // " i n d e e d", " s", "o", "."
        XCTAssertEqual(n, 9)
        let scorer: ([[UInt8]]) -> [RecordScore] = { texts in
            texts.map { t in
                let m = encode(t).count + 1
                // Question tokens 5.0; on the truth its first answer token 0.4, the rest 0.1; any other text 1.0.
                let v: [Float] = t == truth ? (0..<m).map { $0 < k ? 5.0 : $0 == k ? 0.4 : 0.1 } : [Float](repeating: 1, count: m)
                return RecordScore(tokens: m, nll: 0, tokenNLL: v)
            }
        }
        let truthNLL = (Double(Float(0.4)) + Double(n - 1) * Double(Float(0.1))) / Double(n)
        XCTAssertEqual(TOFU.truthRatio(q, encode: encode, score: scorer), exp(-1.0) / exp(-truthNLL), accuracy: 1e-9)
    }

    /// Runs over seeds fold into one row per split and method: mean, range, and
    /// how many runs the KS test tells apart from the exact model.
    func testSummaryOverSeeds() throws {
        func result(_ method: String, split: Double, fq: Double, utility: Double, auc: Double?) throws -> TOFUResult {
            var o: [String: Any] = ["method": method, "split": split, "forgetPeople": 1, "forgetRecords": 4, "forgetQuality": fq,
                                    "ksStatistic": 0.5, "meanTruthRatio": 0.6, "forgetQualityTrained": fq / 2,
                                    "ksStatisticTrained": 0.5, "meanTruthRatioTrained": 0.5, "utility": utility,
                                    "holdoutPPL": 10.0, "seconds": 2.0]
            if let auc { o["calibratedAUC"] = auc }
            return try JSONDecoder().decode(TOFUResult.self, from: JSONSerialization.data(withJSONObject: o))
        }
        let rs = [try result("ga", split: 5, fq: 0.01, utility: 0.2, auc: 0.4), try result("exact", split: 5, fq: 1, utility: 0.5, auc: 0.5),
                  try result("ga", split: 5, fq: 0.5, utility: 0.4, auc: nil), try result("ga", split: 1, fq: 0.9, utility: 0.3, auc: 0.6),
                  try result("ga", split: 5, fq: 0.03, utility: 0.3, auc: 0.6)]
        let rows = TOFUSummary.rows(rs)
        XCTAssertEqual(rows.map { "\($0.split) \($0.method) \($0.runs)" }, ["1.0 ga 1", "5.0 ga 3", "5.0 exact 1"])
        let ga = rows[1]
        XCTAssertEqual(ga.forgetQuality.mean, (0.01 + 0.5 + 0.03) / 3, accuracy: 1e-12)
        XCTAssertEqual([ga.forgetQuality.min, ga.forgetQuality.max], [0.01, 0.5])
        XCTAssertEqual(ga.detected, 2, "two runs below 0.05")
        XCTAssertEqual(ga.utility.mean, 0.3, accuracy: 1e-12)
        XCTAssertEqual(ga.calibratedAUC?.mean ?? 0, 0.5, accuracy: 1e-12, "the run without an AUC is left out")
        XCTAssertEqual(ga.calibratedAUC?.min, 0.4)
        let table = TOFUSummary.table(rows)
        XCTAssertTrue(table.contains("| 5% | ga | 3 | 4 | 0.18 [0.01, 0.5] | 2/3 |"), table)
    }

    /// The benchmark run end to end on a small store: every method gets a row,
    /// the exact model is the reference (forget quality 1), the filter and
    /// "none" leave truth ratios as they were, and the store is unchanged.
    func testRunOnAStoreMeasuresEveryMethod() throws {
        let tmp = TempDir()
        let b = TOFU.generate(people: 20, seed: 2)
        let records = zip(b.questions, TOFU.recordIDs(b)).map { (id: $0.1, text: $0.0.text) }
        var config = microConfig(shards: 2, slices: 2, seed: 1)
        config.epochs = 4
        let store = try Store.create(at: tmp.url.appendingPathComponent("t"), config: config)
        _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records, group: "tofu")], holdout: 0.1)
        _ = try store.train()
        let before = try digests(store)
        var o = CompareOptions()
        o.unlearning.steps = 2
        o.evalEvery = 2
        XCTAssertThrowsError(try store.runTOFU(b, percent: 10, methods: [.dp], options: o), "dp needs a DP store")
        let rs = try store.runTOFU(b, percent: 10, methods: [.exact, .none, .ga, .filter], options: o)
        XCTAssertEqual(rs.map(\.method), ["exact", "none", "filter", "ga"])
        let exact = rs[0], none = rs[1], filter = rs[2], ga = rs[3]
        XCTAssertEqual(exact.forgetQuality, 1)
        XCTAssertEqual(exact.forgetQualityTrained, 1)
        XCTAssertEqual(exact.forgetPeople, 2)
        XCTAssertGreaterThan(exact.forgetRecords, 0)
        XCTAssertLessThanOrEqual(exact.forgetRecords, 10)
        XCTAssertEqual(filter.meanTruthRatio, none.meanTruthRatio)
        XCTAssertEqual(filter.forgetQualityTrained, none.forgetQualityTrained)
        XCTAssertEqual(filter.extractionRate, 0)
        XCTAssertNotEqual(ga.meanTruthRatioTrained, none.meanTruthRatioTrained, "two GA steps change the model")
        for r in rs {
            XCTAssertTrue((0...1).contains(r.forgetQuality) && (0...1).contains(r.forgetQualityTrained))
            XCTAssertTrue(r.utility > 0 && r.utility < 1)
        }
        XCTAssertEqual(try digests(store), before)
    }

}
