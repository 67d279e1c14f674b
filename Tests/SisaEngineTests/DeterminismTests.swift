import XCTest
import SisaEngine

final class DeterminismTests: XCTestCase {
    private func train(threads: Int, steps: Int, seed: UInt64 = 5) throws -> Trainer {
        let trainer = try Trainer(model: .nano, optimizer: testOptimizer(), seed: seed, pool: WorkerPool(threads: threads))
        for s in 0..<steps { trainer.step(randomBatch(B: 8, T: 64, seed: UInt64(s))) }
        return trainer
    }

    func testSameBitsWithOneOrTwoOrThreeThreads() throws {
        let one = try train(threads: 1, steps: 12)
        let two = try train(threads: 2, steps: 12)
        let three = try train(threads: 3, steps: 12)
        XCTAssertEqual(one.model.digest, two.model.digest)
        XCTAssertEqual(one.model.digest, three.model.digest)
        XCTAssertEqual(one.serialize(), two.serialize(), "optimizer moments must match too")
    }

    func testTwoRunsGiveTheSameBits() throws {
        XCTAssertEqual(try train(threads: 2, steps: 10).model.digest, try train(threads: 2, steps: 10).model.digest)
    }

    func testDifferentSeedsGiveDifferentModels() throws {
        XCTAssertNotEqual(try train(threads: 2, steps: 2, seed: 1).model.digest,
                          try train(threads: 2, steps: 2, seed: 2).model.digest)
    }

    func testSaveRestoreContinuesBitwise() throws {
        let pool = WorkerPool(threads: 2)
        let n = 10, k = 4
        let straight = try train(threads: 2, steps: n)
        let first = try Trainer(model: .nano, optimizer: testOptimizer(), seed: 5, pool: pool)
        for s in 0..<k { first.step(randomBatch(B: 8, T: 64, seed: UInt64(s))) }
        let restored = try Trainer(restoring: first.serialize(), pool: pool)
        XCTAssertEqual(restored.step, k)
        XCTAssertEqual(restored.rng, first.rng)
        for s in k..<n { restored.step(randomBatch(B: 8, T: 64, seed: UInt64(s))) }
        XCTAssertEqual(restored.model.digest, straight.model.digest)
        XCTAssertEqual(restored.serialize(), straight.serialize())
    }

    func testCorruptStateIsRejected() throws {
        let t = try Trainer(model: .nano, optimizer: testOptimizer(), seed: 5, pool: WorkerPool(threads: 1))
        let bytes = t.serialize()
        XCTAssertThrowsError(try Trainer(restoring: bytes.prefix(bytes.count - 3)))
        XCTAssertThrowsError(try Trainer(restoring: Data("not a state".utf8)))
        var extra = bytes
        extra.append(0)
        XCTAssertThrowsError(try Trainer(restoring: extra))
    }

    func testDigestIsSha256OfParameterBytes() throws {
        let t = try Trainer(model: .nano, optimizer: testOptimizer(), seed: 5, pool: WorkerPool(threads: 1))
        XCTAssertEqual(t.model.digest.count, 64)
        let before = t.model.digest
        t.model.params[0] += 1
        XCTAssertNotEqual(t.model.digest, before)
    }
}

final class WorkerPoolTests: XCTestCase {
    /// A pool used immediately after creation (before its threads have run)
    /// must still complete: regression test for a lost first job.
    func testFreshPoolsCompleteTheirFirstJob() {
        for _ in 0..<200 {
            let pool = WorkerPool(threads: 3)
            var hits = [Int](repeating: 0, count: 16)
            hits.withUnsafeMutableBufferPointer { h in
                let base = h.baseAddress!
                pool.run(parts: 16) { part, _ in base[part] += 1 }
            }
            XCTAssertEqual(hits, [Int](repeating: 1, count: 16))
        }
    }
}
