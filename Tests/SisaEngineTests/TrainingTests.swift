import XCTest
import SisaEngine

final class TrainingTests: XCTestCase {
    func testInitialLossIsNearUniform() throws {
        let trainer = try Trainer(model: .nano, optimizer: testOptimizer(), seed: 1, pool: WorkerPool(threads: 2))
        let loss = trainer.model.forward(randomBatch(B: 4, T: 64, seed: 2))
        XCTAssertEqual(loss, log(257.0), accuracy: 0.05)
    }

    func testOverfitsOneSmallBatch() throws {
        let trainer = try Trainer(model: .nano, optimizer: testOptimizer(lr: 3e-3), seed: 1, pool: WorkerPool(threads: 2))
        let batch = randomBatch(B: 2, T: 32, seed: 4)
        var loss = 0.0
        for _ in 0..<300 { loss = trainer.step(batch).loss }
        XCTAssertLessThan(loss, 0.05, "a model should memorise one small batch")
    }

    /// On real text the loss must fall well below what a unigram model gets.
    func testLearnsFortunesBelowUnigramEntropy() throws {
        let data = try fortunesCorpus()
        let cut = data.count * 9 / 10
        let train = Array(data[..<cut]), heldOut = Array(data[cut...])
        var counts = [Double](repeating: 0, count: 256)
        for b in train { counts[Int(b)] += 1 }
        let n = Double(train.count)
        let unigram = counts.filter { $0 > 0 }.reduce(0) { $0 - ($1 / n) * log($1 / n) }

        let trainer = try Trainer(model: .nano, optimizer: testOptimizer(lr: 3e-3), seed: 1, pool: WorkerPool(threads: 2))
        for s in 0..<300 { trainer.step(randomBatch(B: 16, T: 64, seed: 1000 + UInt64(s), data: train)) }
        var eval = 0.0
        for s in 0..<4 { eval += trainer.model.forward(randomBatch(B: 16, T: 64, seed: 77 + UInt64(s), data: heldOut)) }
        eval /= 4
        print("fortunes: unigram entropy \(unigram) nats, held-out loss after 300 steps \(eval)")
        XCTAssertLessThan(eval, unigram - 0.4)
    }
}
