import Foundation
import SisaCoordinator
import XCTest

/// The challenge's forgetting score against values computed once with the
/// challenge's own code: google-deepmind/unlearning_evaluation `metric.py`
/// (HEAD of 2024), on CPU (`.cuda()` calls removed, `assert thr_eps` made
/// `assert len(thr_eps)`), torch 2.13 and numpy 2, on the populations below,
/// which both sides generate exactly (splitmix64 uniforms, sums of four).
final class ChallengeScoreTests: XCTestCase {
    /// splitmix64, as the reference script has it.
    struct SplitMix {
        var x: UInt64
        mutating func next() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }
        /// Irwin-Hall(4) − 2: bell-shaped on (−2, 2), exact in double.
        mutating func bell() -> Double {
            let a = uniform(), b = uniform(), c = uniform(), d = uniform()
            return a + b + c + d - 2.0
        }
    }

    struct Case {
        let name: String, models: Int, examples: Int, scale: Double, shift: Double, seed: UInt64
        let epsilons: [Double], forgetScore: Double
    }

    /// Retrained: bell(); unlearned: bell() × scale + shift; model-major.
    static func populations(_ c: Case) -> (unlearned: [[Double]], retrained: [[Double]]) {
        var g = SplitMix(x: c.seed)
        let r = (0..<c.models).map { _ in (0..<c.examples).map { _ in g.bell() } }
        let u = (0..<c.models).map { _ in (0..<c.examples).map { _ in g.bell() * c.scale + c.shift } }
        return (u, r)
    }

    static let cases: [Case] = [
        Case(name: "same", models: 32, examples: 8, scale: 1, shift: 0, seed: 1000,
             epsilons: [1.6093738079071045, 2.0794014930725098, 2.1971888542175293, 2.1971888542175293,
                        1.7917060852050781, 2.1971888542175293, 1.9458644390106201, 1.5040417909622192],
             forgetScore: 0.09375),
        Case(name: "shifted", models: 32, examples: 8, scale: 1, shift: 0.75, seed: 1001,
             epsilons: [2.708028793334961, 2.8331944942474365, 3.0445072650909424, 2.564924716949463,
                        2.484879970550537, 2.708028793334961, 2.302553176879883, 2.708028793334961],
             forgetScore: 0.037109375),
        Case(name: "wider", models: 32, examples: 8, scale: 2, shift: 0, seed: 1002,
             epsilons: [2.3978662490844727, 2.708028793334961, 2.6390345096588135, 2.564924716949463,
                        2.708028793334961, 2.564924716949463, 2.1971888542175293, 2.564924716949463],
             forgetScore: 0.0390625),
        Case(name: "narrow", models: 16, examples: 8, scale: 0.25, shift: 0.5, seed: 1003,
             epsilons: [2.484893321990967, 2.7080395221710205, 2.6390459537506104, 2.397880792617798,
                        2.564937114715576, 2.6390459537506104, 2.6390459537506104, 2.397880792617798],
             forgetScore: 0.04296875),
        Case(name: "separated", models: 8, examples: 4, scale: 0.1, shift: 10, seed: 1004,
             epsilons: [50, 50, 50, 50], forgetScore: 0),
        Case(name: "small", models: 5, examples: 6, scale: 1, shift: 0.25, seed: 1005,
             epsilons: [1.3862818479537964, 50.0, 1.0985956192016602, 1.3862818479537964, 1.0985956192016602, 1.3862818479537964],
             forgetScore: 0.20833333333333334),
        Case(name: "far", models: 64, examples: 4, scale: 1, shift: 2, seed: 1006,
             epsilons: [4.127123832702637, 4.110863208770752, 4.127123832702637, 4.127123832702637],
             forgetScore: 0.00390625),
    ]

    func testScoreMatchesTheChallengesCode() throws {
        for c in Self.cases {
            let (u, r) = Self.populations(c)
            let s = try ChallengeScore.score(unlearned: u, retrained: r)
            XCTAssertEqual(s.epsilons.count, c.examples, c.name)
            for (i, (got, want)) in zip(s.epsilons, c.epsilons).enumerated() {
                // The reference's logs are numpy's single-precision ones; glibc's may differ in the last bit.
                XCTAssertEqual(got, want, accuracy: 2e-6 * max(1, want), "\(c.name) example \(i)")
            }
            XCTAssertEqual(s.forgetScore, c.forgetScore, accuracy: 1e-12, c.name)
        }
    }

    func testPopulationsSwappedGiveTheSameEpsilons() throws {
        // ε is symmetric: the positive class is chosen per example by the medians.
        let (u, r) = Self.populations(Self.cases[1])
        XCTAssertEqual(try ChallengeScore.score(unlearned: u, retrained: r).epsilons,
                       try ChallengeScore.score(unlearned: r, retrained: u).epsilons)
    }

    func testOneConstantPopulationScoresTheCap() throws {
        // A deterministic method gives N identical models: under 1% of the other's range.
        let (_, r) = Self.populations(Self.cases[0])
        let u = r.map { $0.map { _ in 0.25 } }
        let s = try ChallengeScore.score(unlearned: u, retrained: r)
        XCTAssertEqual(s.epsilons, [Double](repeating: 50, count: r[0].count))
        XCTAssertEqual(s.forgetScore, 0)
    }

    func testIdenticalConstantPopulationsCannotBeToldApart() throws {
        let u = [[Double]](repeating: [1.5, -2], count: 8)
        XCTAssertEqual(try ChallengeScore.score(unlearned: u, retrained: u).epsilons, [0, 0])
        let v = [[Double]](repeating: [1.5, -1], count: 8)
        XCTAssertEqual(try ChallengeScore.score(unlearned: u, retrained: v).epsilons, [0, 50])
    }

    func testBucketsFollowTheModelCount() {
        // 32 models: ceil(ln 31) = 4, so eight buckets of 0.5 worth 1, 1/2, ..., 1/128.
        XCTAssertEqual(ChallengeScore.bucketStarts(models: 32), [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5])
        XCTAssertEqual(ChallengeScore.bucketStarts(models: 8), [0, 0.5, 1, 1.5])
        XCTAssertEqual(ChallengeScore.bucketStarts(models: 2), [])
    }

    func testFinalScoreMultipliesTheAccuracyRatios() {
        XCTAssertEqual(ChallengeScore.finalScore(forgetScore: 0.5, retainAccuracy: (0.8, 1.0), testAccuracy: (0.5, 0.25)), 0.8, accuracy: 1e-12)
    }

    func testMalformedPopulationsAreRefusedWithTheirPlace() {
        let good = [[Double]](repeating: [0, 1], count: 4)
        XCTAssertThrowsError(try ChallengeScore.score(unlearned: good, retrained: Array(good.prefix(3)))) {
            XCTAssertTrue("\($0)".contains("4 models"), "\($0)")
        }
        var ragged = good
        ragged[2] = [0]
        XCTAssertThrowsError(try ChallengeScore.score(unlearned: ragged, retrained: good)) {
            XCTAssertTrue("\($0)".contains("model 2 has 1 examples"), "\($0)")
        }
        XCTAssertThrowsError(try ChallengeScore.score(unlearned: [[1]], retrained: [[1]]))
        XCTAssertThrowsError(try ChallengeScore.score(unlearned: good, retrained: good, delta: 0))
    }

    func testCommandPrintsEpsilonsAndTheScoreAsJSON() throws {
        let sisa = try sisaBinary()
        let tmp = TempDir()
        let c = Self.cases[0]
        let (u, r) = Self.populations(c)
        try JSONEncoder().encode(u).write(to: tmp.url.appendingPathComponent("U.json"))
        try JSONEncoder().encode(r).write(to: tmp.url.appendingPathComponent("R.json"))
        let out = try runSisa(sisa, ["benchmark", "challenge-score", "--unlearned", tmp.path("U.json"), "--retrained", tmp.path("R.json"), "--json"])
        XCTAssertEqual(out.status, 0, out.err)
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(out.out.utf8)) as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(j["forgetScore"] as? Double), c.forgetScore, accuracy: 1e-12)
        let eps = try XCTUnwrap(j["epsilons"] as? [Double])
        XCTAssertEqual(eps.count, c.examples)
        for (a, b) in zip(eps, c.epsilons) { XCTAssertEqual(a, b, accuracy: 2e-6 * max(1, b)) }

        try Data("[[1, 2], [3, \"x\"]]".utf8).write(to: tmp.url.appendingPathComponent("bad.json"))
        let bad = try runSisa(sisa, ["benchmark", "challenge-score", "--unlearned", tmp.path("bad.json"), "--retrained", tmp.path("R.json")])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("bad.json") && bad.err.contains("[1][1]"), bad.err)
    }
}
