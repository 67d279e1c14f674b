import Foundation
import SisaEngine
import XCTest

/// The engine's logits and NLL against transformers' on the same weights,
/// recorded once in Fixtures/models.json and Fixtures/smollm2.json (made by
/// Fixtures/generate/model_fixtures.py): small random llama and GPT-2 models
/// that transformers wrote as Hugging Face folders (F32, BF16 in shards, F16),
/// a GGUF of mixed encodings, and SmolLM2-135M-Instruct.Q4_1.gguf.
final class ModelParityTests: XCTestCase {
    private func floats(_ base64: Any?) throws -> [Float] {
        let d = try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(base64 as? String)))
        return d.withUnsafeBytes { raw in (0..<(d.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } }
    }

    /// A batch predicting each row's next id (the last position has no target).
    private func batch(_ rows: [[Int]]) -> Batch {
        let T = rows[0].count
        var tokens: [Int32] = [], targets: [Int32] = []
        for r in rows {
            tokens += r.map(Int32.init)
            targets += r.dropFirst().map(Int32.init) + [-1]
        }
        return Batch(B: rows.count, T: T, tokens: tokens, targets: targets)
    }

    private func checkTinyModel(_ name: String, url: URL) throws {
        let ref = try XCTUnwrap((try Fixtures.json("models.json"))["models"] as? [String: Any])
        let m = try XCTUnwrap(ref[name] as? [String: Any])
        let ids = try XCTUnwrap(m["ids"] as? [[Int]])
        let expected = try floats(m["logits"])
        let base = try BaseModel.load(url, pool: WorkerPool(threads: 2))
        let b = batch(ids)
        let loss = base.model.forward(b)
        let logits = base.model.withLastLogits { Array($0) }
        XCTAssertEqual(logits.count, expected.count)
        let scale = expected.map { abs($0) }.max()!
        let worst = zip(logits, expected).map { abs($0 - $1) }.max()! / scale
        XCTAssertLessThanOrEqual(worst, 1e-4, "\(name): max relative logit difference")
        XCTAssertEqual(loss, try XCTUnwrap(m["loss"] as? Double), accuracy: 1e-4, "\(name): NLL")
        print("\(name): max relative logit difference \(worst), NLL \(loss) vs transformers \(m["loss"]!)")
    }

    private var fixtures: URL { Fixtures.folder }

    func testRandomLlamaWithGroupedQueryAttentionMatchesTransformers() throws {
        try checkTinyModel("tiny-llama-gqa", url: fixtures.appendingPathComponent("tiny-llama-gqa"))
    }

    func testTiedBF16ShardedLlamaWithLlama3RopeMatchesTransformers() throws {
        try checkTinyModel("tiny-llama-tied", url: fixtures.appendingPathComponent("tiny-llama-tied"))
    }

    func testRandomGPT2InF16MatchesTransformers() throws {
        try checkTinyModel("tiny-gpt2", url: fixtures.appendingPathComponent("tiny-gpt2"))
    }

    /// Q8_0, Q4_0, Q4_1, F16, BF16 and F32 tensors, llama.cpp's q/k permutation undone.
    func testQuantizedGGUFMatchesTransformersGGUFLoader() throws {
        try checkTinyModel("tiny-llama.gguf", url: fixtures.appendingPathComponent("tiny-llama.gguf"))
    }

    func testSmolLM2MatchesTransformersOn128TokenTexts() throws {
        let ref = try Fixtures.json("smollm2.json")
        let fixed = try XCTUnwrap(ref["fixedIds"] as? [Int])
        let texts = try XCTUnwrap(ref["texts"] as? [[String: Any]])
        let base = try BaseModel.load(ModelCache.smolLM2, context: 128, pool: WorkerPool(threads: 2))
        let V = base.model.vocabularySize
        XCTAssertEqual(V, 49_152)
        for (n, t) in texts.enumerated() {
            let ids = try XCTUnwrap(t["ids"] as? [Int])
            XCTAssertEqual(ids.count, 128)
            let loss = base.model.forward(batch([ids]))
            XCTAssertEqual(loss, try XCTUnwrap(t["loss"] as? Double), accuracy: 1e-4, "text \(n): NLL")
            let logits = base.model.withLastLogits { Array($0) }
            let top = try XCTUnwrap(t["topIds"] as? [Int]), topLogits = try floats(t["topLogits"]), fixedLogits = try floats(t["fixedLogits"])
            let scale = try XCTUnwrap(t["maxAbsLogit"] as? Double)
            var worst = 0.0
            for p in 0..<128 {
                for k in 0..<32 { worst = max(worst, Double(abs(logits[p * V + top[p * 32 + k]] - topLogits[p * 32 + k]))) }
                for k in 0..<fixed.count { worst = max(worst, Double(abs(logits[p * V + fixed[k]] - fixedLogits[p * fixed.count + k]))) }
            }
            XCTAssertLessThanOrEqual(worst / scale, 1e-4, "text \(n): max relative logit difference")
            print("SmolLM2 text \(n): NLL \(loss) vs transformers \(t["loss"]!), max relative logit difference \(worst / scale)")
        }
    }
}
