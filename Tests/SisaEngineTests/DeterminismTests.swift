import XCTest
import SisaEngine

final class DeterminismTests: XCTestCase {
    private func train(threads: Int, steps: Int, seed: UInt64 = 5, kernels: KernelPath? = nil, B: Int = 8) throws -> ByteTrainer {
        let trainer = try Trainer(model: .nano, optimizer: testOptimizer(), seed: seed, pool: WorkerPool(threads: threads),
                                  kernels: kernels.map { Kernels($0)! })
        for s in 0..<steps { trainer.step(randomBatch(B: B, T: 64, seed: UInt64(s))) }
        return trainer
    }

    /// The promise: the bits do not depend on the CPU's instruction
    /// set or the thread count. Every path this machine runs, at 1, 2 and 3
    /// threads, must end in the same parameters and optimizer state.
    /// Digests are lower-case hex, two digits per byte (FIPS 180-2's test vectors).
    func testDigestHexIsTheStandardLowerCaseForm() {
        XCTAssertEqual(Digest.sha256Hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(Digest.sha256Hex([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(Digest.hex([0x00, 0x0f, 0xa0, 0xff]), "000fa0ff")
    }

    func testEveryKernelPathAndThreadCountGivesTheSameBits() throws {
        // 8 rows of 64: 512-row products, cut into row blocks sharing a packed weight
        // at 1 and 2 threads and by columns at 3.
        let reference = try train(threads: 1, steps: 4, kernels: .portable, B: 8)
        for path in Kernels.availablePaths {
            for threads in [1, 2, 3] where !(path == .portable && threads == 1) {
                let t = try train(threads: threads, steps: 4, kernels: path, B: 8)
                XCTAssertEqual(t.model.digest, reference.model.digest, "\(path) with \(threads) threads")
                XCTAssertEqual(t.serialize(), reference.serialize(), "\(path) with \(threads) threads: optimizer state")
            }
        }
        print("nano digest after 4 steps on every path (\(Kernels.availablePaths.map(\.rawValue).joined(separator: ", "))): \(reference.model.digest)")
    }

    /// The bits of a fixed run, recorded once (numerics version 2). A change
    /// here means a kernel's results changed: bump `Numerics.version`, so
    /// stores refuse to mix checkpoints, then record the new digest.
    func testNumericsVersionPinsTheBits() throws {
        XCTAssertEqual(Numerics.version, 2, "update the pinned digest below together with the version")
        let t = try train(threads: 2, steps: 3)
        XCTAssertEqual(t.model.digest, Self.pinnedDigest,
                       "the numerics changed: bump Numerics.version and record the new digest")
        XCTAssertEqual(t.numericsVersion, Numerics.version)
    }

    static let pinnedDigest = "2ef510554018230226c50761aecad97a847ba6f1932617589a4370ac45850844"

    func testStatesRecordTheirNumericsVersion() throws {
        let t = try train(threads: 1, steps: 1)
        let restored = try Trainer(restoring: t.serialize())
        XCTAssertEqual(restored.numericsVersion, Numerics.version)
        // A state written before version 2 has no "numerics" key in its header.
        var old = t.serialize()
        let headerLength = Int(old[8]) | Int(old[9]) << 8 | Int(old[10]) << 16 | Int(old[11]) << 24
        let header = String(decoding: old[12..<(12 + headerLength)], as: UTF8.self)
        let stripped = header.replacingOccurrences(of: ",\"numerics\":2", with: "")
        XCTAssertNotEqual(stripped, header)
        var length = UInt32(stripped.utf8.count).littleEndian
        old.replaceSubrange(8..<(12 + headerLength), with: Data(bytes: &length, count: 4) + Data(stripped.utf8))
        XCTAssertEqual(try Trainer(restoring: old).numericsVersion, 1)
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
    /// A weight gradient's blocks cover its output once, one per thread, cut along the
    /// wider side, with row cuts on multiples of the alignment.
    func testWeightGradientBlocksCoverTheOutputOnceAlongTheWiderSide() {
        for (threads, R, C) in [(2, 512, 128), (3, 257, 128), (2, 128, 384), (3, 100, 100), (2, 70, 20), (4, 24, 24)] {
            let pool = WorkerPool(threads: threads)
            var hits = [Int](repeating: 0, count: R * C)
            var blocks: [(Range<Int>, Range<Int>)] = []
            let lock = NSLock()
            hits.withUnsafeMutableBufferPointer { h in
                let base = h.baseAddress!
                pool.weightGradientBlocks(rows: R, columns: C, grain: 64) { rows, cols in
                    for r in rows { for c in cols { base[r * C + c] += 1 } }
                    lock.lock(); blocks.append((rows, cols)); lock.unlock()
                }
            }
            XCTAssertEqual(hits, [Int](repeating: 1, count: R * C), "\(R) x \(C), \(threads) threads")
            XCTAssertEqual(blocks.count, min(threads, (max(R, C) + 63) / 64), "\(R) x \(C), \(threads) threads")
            for (rows, cols) in blocks {
                if C >= R {
                    XCTAssertEqual(rows, 0..<R)
                } else {
                    XCTAssertEqual(cols, 0..<C)
                    XCTAssertEqual(rows.lowerBound % 8, 0, "row cut at \(rows.lowerBound)")
                }
            }
        }
    }

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
