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
            XCTAssertFalse(q.perturbed.contains(q.answer), "perturbed answers are false")
            XCTAssertEqual(Set(q.perturbed).count, 4)
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
        // Forget quality of identical distributions is 1; of disjoint ones small.
        XCTAssertEqual(TOFU.forgetQuality(unlearned: [0.1, 0.2, 0.3], retrained: [0.1, 0.2, 0.3]), 1)
        XCTAssertLessThan(TOFU.forgetQuality(unlearned: [0.1, 0.2, 0.3, 0.4, 0.5], retrained: [0.6, 0.7, 0.8, 0.9, 1.0]), 0.01)
    }
}
