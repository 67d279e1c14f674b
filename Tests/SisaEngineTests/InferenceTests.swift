import XCTest
import SisaEngine

final class InferenceTests: XCTestCase {
    private func trainedNano() throws -> GPT2Model {
        let trainer = try Trainer(model: .nano, optimizer: testOptimizer(lr: 3e-3), seed: 21, pool: WorkerPool(threads: 2))
        for s in 0..<20 { trainer.step(randomBatch(B: 8, T: 64, seed: UInt64(s))) }
        return trainer.model
    }

    func testShortRecordScoreEqualsDirectForward() throws {
        let model = try trainedNano()
        let text = Array("hello, world".utf8)
        let score = model.score([text], perToken: true)[0]
        XCTAssertEqual(score.tokens, text.count + 1)
        let toks = recordTokens(text)
        let direct = model.forward(Batch(rows: [toks], T: toks.count - 1))
        XCTAssertEqual(score.nll, direct, accuracy: 1e-6)
        XCTAssertEqual(score.tokenNLL?.count, text.count + 1)
    }

    func testScoresDoNotDependOnBatchCompanions() throws {
        let model = try trainedNano()
        let a = Array("the quick brown fox".utf8), b = Array("jumps over the lazy dog, twice".utf8)
        let alone = model.score([a])[0].nll
        let together = model.score([b, a, b])[1].nll
        XCTAssertEqual(alone, together, accuracy: 1e-5)
    }

    func testSlidingWindowsScoreEveryTokenOnceWithContext() throws {
        let model = try trainedNano()  // context 64
        let long = (0..<300).map { UInt8(65 + $0 % 26) }
        let score = model.score([long], perToken: true)[0]
        XCTAssertEqual(score.tokens, 301)
        XCTAssertTrue(score.tokenNLL!.allSatisfy { $0 > 0 && $0.isFinite })
        // The first context-worth of tokens is scored exactly as a direct forward would.
        let toks = recordTokens(long)
        model.forward(Batch(rows: [Array(toks[0...64])], T: 64))
        let direct = model.lastTokenLosses
        for t in 0..<64 { XCTAssertEqual(score.tokenNLL![t], direct[t], accuracy: 1e-5) }
        // After the first window, windows advance by context/2 = 32 targets:
        // ends 64, 96, ..., 224, ... The target at sequence index 201 (tokenNLL[200])
        // belongs to the window s[160...224], at position 40, with 40 tokens of context.
        model.forward(Batch(rows: [Array(toks[160...224])], T: 64))
        XCTAssertEqual(score.tokenNLL![200], model.lastTokenLosses[40], accuracy: 1e-5)
        // And the last target (the closing <end>) is scored by the window ending at it.
        model.forward(Batch(rows: [Array(toks[(301 - 64)...301])], T: 64))
        XCTAssertEqual(score.tokenNLL![300], model.lastTokenLosses[63], accuracy: 1e-5)
    }

    func testKVCacheSessionMatchesBatchForward() throws {
        let model = try trainedNano()
        let toks: [Int32] = recordTokens(Array("caching keys and values".utf8))
        model.forward(Batch(B: 1, T: toks.count, tokens: toks, targets: [Int32](repeating: -1, count: toks.count)))
        let V = model.config.vocab
        let full = model.withLastLogits { Array($0) }
        let session = GPT2Decoder(model: model)
        for (t, tok) in toks.enumerated() {
            let logits = Array(session.feed(tok))
            for v in 0..<V { XCTAssertEqual(logits[v], full[t * V + v], accuracy: 1e-4) }
        }
    }

    func testSessionSlidesPastTheContext() throws {
        let model = try trainedNano()
        let session = GPT2Decoder(model: model)
        for i in 0..<150 { _ = session.feed(Int32(97 + i % 3)) }
        XCTAssertEqual(session.history.count, 150)
        XCTAssertTrue(session.logits.allSatisfy { $0.isFinite })
    }

    func testSeededSamplingIsReproducible() throws {
        let model = try trainedNano()
        var s1 = Sampler(temperature: 1.0, topK: 20, seed: 5)
        var s2 = Sampler(temperature: 1.0, topK: 20, seed: 5)
        let a = model.generate(prompt: Array("ab".utf8), maxTokens: 40, sampler: &s1)
        let b = model.generate(prompt: Array("ab".utf8), maxTokens: 40, sampler: &s2)
        XCTAssertEqual(a, b)
        var g = Sampler(temperature: 0)
        let greedy = model.generate(prompt: Array("ab".utf8), maxTokens: 10, sampler: &g)
        var g2 = Sampler(temperature: 0, seed: 99)
        XCTAssertEqual(greedy, model.generate(prompt: Array("ab".utf8), maxTokens: 10, sampler: &g2))
    }

    /// A temperature near 0 tends to greedy: the weights are taken relative to
    /// the most likely token, so they never all underflow (which drew id 0).
    func testANearZeroTemperatureIsGreedy() {
        let probs = [0.2, 0.5, 0.3, 0]
        for t in [1e-3, 1e-6, 1e-30] {
            var s = Sampler(temperature: t, seed: 1)
            for _ in 0..<20 { XCTAssertEqual(s.pick(probs), 1, "temperature \(t)") }
        }
        var warm = Sampler(temperature: 1, seed: 2)
        let drawn = Set((0..<200).map { _ in warm.pick(probs) })
        XCTAssertEqual(drawn, [0, 1, 2], "temperature 1 draws every token of nonzero probability, and never one of 0")
    }

    func testTopKOneIsGreedy() {
        var s = Sampler(temperature: 1, topK: 1, seed: 3)
        let probs = [0.1, 0.5, 0.4]
        for _ in 0..<20 { XCTAssertEqual(s.pick(probs), 1) }
        var t = Sampler(temperature: 1, topK: 2, seed: 3)
        for _ in 0..<50 { XCTAssertNotEqual(t.pick(probs), 0) }
    }
}
