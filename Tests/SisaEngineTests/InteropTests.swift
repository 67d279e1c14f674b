import XCTest
import SisaEngine

final class InteropTests: XCTestCase {
    private func tempDir() -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("sisa-test-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: u) }
        return u
    }

    func testSafetensorsRoundTripAndLayout() throws {
        let a: [Float] = [1, -2.5, 3e-8, .greatestFiniteMagnitude, 0, -0]
        let b: [Float] = [42]
        let data = try a.withUnsafeBufferPointer { pa in
            try b.withUnsafeBufferPointer { pb in
                try Safetensors.encode([("x.weight", [2, 3], pa), ("y", [1], pb)], metadata: ["k": "v"])
            }
        }
        // u64 header length, header padded to 8 bytes, then 7 floats.
        let n = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        XCTAssertEqual(n % 8, 0)
        XCTAssertEqual(data.count, 8 + n + 7 * 4)
        let (tensors, meta) = try Safetensors.decode(data)
        XCTAssertEqual(meta, ["k": "v"])
        XCTAssertEqual(tensors["x.weight"], .init(shape: [2, 3], values: a))
        XCTAssertEqual(tensors["y"], .init(shape: [1], values: b))
    }

    func testSafetensorsRejectsBadInput() {
        XCTAssertThrowsError(try Safetensors.decode(Data([1, 2, 3])))
        var bad = Data()
        let header = Array(#"{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#.utf8)
        bad.append(contentsOf: withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) })
        bad.append(contentsOf: header)
        bad.append(contentsOf: [0, 0, 0, 0])  // 4 bytes where 16 are promised
        XCTAssertThrowsError(try Safetensors.decode(bad))
    }

    func testHuggingFaceExportImportRoundTrip() throws {
        let trainer = try Trainer(model: .nano, optimizer: testOptimizer(), seed: 3, pool: WorkerPool(threads: 2))
        for s in 0..<3 { trainer.step(randomBatch(B: 4, T: 32, seed: UInt64(s))) }
        let dir = tempDir()
        try HuggingFace.export(trainer.model, to: dir)
        let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as! [String: Any]
        XCTAssertEqual(cfg["model_type"] as? String, "gpt2")
        XCTAssertEqual(cfg["activation_function"] as? String, "gelu_new")
        XCTAssertEqual(cfg["eos_token_id"] as? Int, 256)
        let st = try Safetensors.decode(Data(contentsOf: dir.appendingPathComponent("model.safetensors")))
        XCTAssertEqual(st.tensors["h.0.attn.c_attn.weight"]?.shape, [64, 192])
        XCTAssertEqual(st.tensors["h.1.mlp.c_proj.weight"]?.shape, [256, 64])
        XCTAssertEqual(st.tensors["wte.weight"]?.shape, [257, 64])
        let loaded = try HuggingFace.load(from: dir)
        XCTAssertEqual(loaded.config, .nano)
        XCTAssertEqual(loaded.digest, trainer.model.digest)
        let batch = randomBatch(B: 2, T: 16, seed: 9)
        XCTAssertEqual(loaded.forward(batch), trainer.model.forward(batch))
    }

    func testImportRejectsWrongShapes() throws {
        let model = try GPT2Model(config: .nano)
        let dir = tempDir()
        try HuggingFace.export(model, to: dir)
        // Claim a different width in config.json: every tensor shape then mismatches.
        let url = dir.appendingPathComponent("config.json")
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        cfg["n_embd"] = 32
        try JSONSerialization.data(withJSONObject: cfg).write(to: url)
        XCTAssertThrowsError(try HuggingFace.load(from: dir)) { e in
            XCTAssertTrue("\(e)".contains("shape"), "\(e)")
        }
    }
}
