import XCTest
import SisaEngine

/// DP-SGD's per-record clipping against the naive definition: one backward
/// pass per record.
final class PrivateStepTests: XCTestCase {
    /// Records of varied length: short ones take the ghost-norm path, long
    /// ones the direct product, and the longest spans several rows (T = 64).
    func records(seed: UInt64) -> [[Int32]] {
        var rng = Xoshiro256(seed: seed)
        return [3, 12, 30, 47, 60, 63, 64, 65, 150, 200].map { n in
            [ByteTokenizer.endOfText] + (0..<n).map { _ in Int32(rng.nextInt(below: 256)) } + [ByteTokenizer.endOfText]
        }
    }

    /// A trained-a-little nano model (away from the initialisation's symmetries).
    func trainer(threads: Int = 2) throws -> ByteTrainer {
        let t = try Trainer(model: .nano, optimizer: testOptimizer(lr: 1e-2), seed: 5, pool: WorkerPool(threads: threads))
        for s in 0..<6 { t.step(randomBatch(B: 4, T: 32, seed: 40 + UInt64(s))) }
        return t
    }

    /// Gradient of one record's mean NLL, by its own forward and backward.
    func naiveGradient(_ t: ByteTrainer, _ record: [Int32]) -> [Double] {
        let rb = RecordBatch(records: [record], T: t.config.context)
        t.model.forward(rb.batch, gradients: true, gradScale: 1)
        t.model.backward()
        return t.model.grads.array.map(Double.init)
    }

    func norm(_ g: [Double]) -> Double { g.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    func testRecordBatchSpansCoverEveryTargetOnce() {
        let recs = records(seed: 1)
        let rb = RecordBatch(records: recs, T: 64)
        XCTAssertEqual(rb.spans.map(\.count), recs.map { $0.count - 1 })
        XCTAssertEqual(rb.batch.targetCount, recs.reduce(0) { $0 + $1.count - 1 })
        for (r, s) in zip(recs, rb.spans) {
            XCTAssertEqual(s.map { rb.batch.targets[$0] }, Array(r.dropFirst()), "targets of a span are its record's")
        }
        // Spans are disjoint and in order.
        for (a, b) in zip(rb.spans, rb.spans.dropFirst()) { XCTAssertLessThanOrEqual(a.upperBound, b.lowerBound) }
    }

    func testRecordNormsEqualOneBackwardPerRecord() throws {
        let t = try trainer()
        let recs = records(seed: 2)
        let naive = recs.map { norm(naiveGradient(t, $0)) }
        let (_, norms) = t.clippedGradientSum(RecordBatch(records: recs, T: 64), clip: 1e9)
        XCTAssertEqual(norms.count, recs.count)
        for (i, (a, b)) in zip(norms, naive).enumerated() {
            XCTAssertEqual(a, b, accuracy: 2e-4 * b, "record \(i) (\(recs[i].count) tokens)")
        }
    }

    /// The clipped sum is Σ min(1, C/||g_i||) g_i, and no record contributes more than C.
    func testClippedSumBoundsEachRecordsContribution() throws {
        let t = try trainer()
        let recs = records(seed: 3)
        let gs = recs.map { naiveGradient(t, $0) }
        let norms = gs.map(norm)
        let clip = norms.sorted()[norms.count / 2]
        XCTAssertTrue(norms.contains { $0 > clip * 1.05 }, "some records must be clipped for this test")
        var expected = [Double](repeating: 0, count: gs[0].count)
        for (g, n) in zip(gs, norms) {
            let f = min(1, clip / (n + 1e-6))
            XCTAssertLessThanOrEqual(norm(g.map { $0 * f }), clip * (1 + 1e-6), "a clipped record exceeds C")
            for j in 0..<g.count { expected[j] += f * g[j] }
        }
        t.clippedGradientSum(RecordBatch(records: recs, T: 64), clip: clip)
        let got = t.model.grads.array.map(Double.init)
        let diff = norm(zip(got, expected).map { $0 - $1 })
        XCTAssertLessThan(diff, 1e-4 * norm(expected))
        XCTAssertLessThanOrEqual(norm(got), clip * Double(recs.count) * (1 + 1e-5))

        // Each record's share, taken out of the batch, is bounded by C.
        for drop in [0, 8, 9] {
            var rest = recs
            rest.remove(at: drop)
            t.clippedGradientSum(RecordBatch(records: rest, T: 64), clip: clip)
            let share = zip(got, t.model.grads.array.map(Double.init)).map { $0 - $1 }
            XCTAssertLessThanOrEqual(norm(share), clip * (1 + 1e-4), "record \(drop) moved the sum by more than C")
        }
    }

    /// More rows than one pass holds: the sum is formed pass by pass, and equals the one-pass sum up to rounding.
    func testPassesOfBoundedRowsGiveTheSameClippedSum() throws {
        let t = try trainer()
        var rng = Xoshiro256(seed: 8)
        let recs = (0..<20).map { i in
            [ByteTokenizer.endOfText] + (0..<(40 + 17 * i)).map { _ in Int32(rng.nextInt(below: 256)) } + [ByteTokenizer.endOfText]
        }
        let rows = recs.reduce(0) { $0 + RecordBatch.rows(tokens: $1.count, T: 64) }
        XCTAssertGreaterThan(rows, RecordBatch.maxRowsPerPass, "the test needs several passes")
        let (lossOne, normsOne) = t.clippedGradientSum(RecordBatch(records: recs, T: 64), clip: 0.3)
        let one = t.model.grads.array.map(Double.init)
        let (lossPasses, normsPasses) = t.clippedGradientSum(records: recs, clip: 0.3)
        let passes = t.model.grads.array.map(Double.init)
        XCTAssertEqual(lossPasses, lossOne, accuracy: 1e-5 * lossOne)
        for (a, b) in zip(normsPasses, normsOne) { XCTAssertEqual(a, b, accuracy: 1e-5 * b) }
        XCTAssertLessThan(norm(zip(one, passes).map { $0 - $1 }), 1e-5 * norm(one))
    }

    func testPrivateStepIsAFunctionOfItsInputs() throws {
        let recs = records(seed: 4)
        var digests: [String] = []
        for threads in [1, 2, 3] {
            let t = try trainer(threads: threads)
            for s in 0..<3 {
                t.privateStep(records: Array(recs[s...]), clip: 0.5, noise: 1.1, expectedRecords: 8, noiseSeed: 77 + UInt64(s))
            }
            digests.append(t.model.digest)
        }
        XCTAssertEqual(Set(digests).count, 1, "threads changed the bits: \(digests)")
        let other = try trainer()
        for s in 0..<3 {
            other.privateStep(records: Array(recs[s...]), clip: 0.5, noise: 1.1, expectedRecords: 8, noiseSeed: 78 + UInt64(s))
        }
        XCTAssertNotEqual(other.model.digest, digests[0], "the noise seed must matter")
        // A step that samples no record is pure noise, and still a step.
        let empty = try trainer()
        let before = empty.model.digest
        let r = empty.privateStep(records: [], clip: 0.5, noise: 1.1, expectedRecords: 8, noiseSeed: 1)
        XCTAssertEqual(r.records, 0)
        XCTAssertNotEqual(empty.model.digest, before)
    }

    func testNoiseHasTheRequestedScale() throws {
        let t = try trainer()
        let r = t.privateStep(records: [], clip: 2, noise: 1.5, expectedRecords: 4, noiseSeed: 9)
        XCTAssertEqual(r.loss, 0)
        // grads hold (0 + 1.5 * 2 * z) / 4 before AdamW consumed them; AdamW leaves them in place.
        let g = t.model.grads.array.map(Double.init)
        let mean = g.reduce(0, +) / Double(g.count)
        let sd = (g.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(g.count)).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 0.01)
        XCTAssertEqual(sd, 0.75, accuracy: 0.75 * 0.01)
    }
}
