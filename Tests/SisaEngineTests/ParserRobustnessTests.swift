import Foundation
import SisaEngine
import XCTest

/// Readers of files a user may get from elsewhere (training states,
/// safetensors, Hugging Face folders) keep Swift's checks and check sizes
/// before allocating: truncated, bit-flipped and oversized inputs end in an
/// error, never in a crash. A crash would end this test process, so each
/// case passing here means "error or a consistent result".
final class ParserRobustnessTests: XCTestCase {
    private let tiny = GPT2Configuration(layers: 1, heads: 2, dim: 16, context: 8)

    private func littleEndian(_ v: UInt64) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
    private func littleEndian(_ v: UInt32) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }

    func testTrainingStatesNeverCrashTheReader() throws {
        let t = try Trainer(model: tiny, optimizer: testOptimizer(), seed: 1, pool: WorkerPool(threads: 1))
        t.step(randomBatch(B: 2, T: 8, seed: 1))
        let valid = t.serialize()
        var rejected = 0, accepted = 0
        for d in seededMutations(of: valid, count: 3000, hot: 400, seed: 11) {
            do {
                let r = try Trainer(restoring: d, pool: WorkerPool(threads: 1))
                XCTAssertEqual(r.model.params.count, t.model.params.count)
                accepted += 1  // a flip in the float data is still a valid state
            } catch let e as EngineError {
                guard case .corruptState = e else { return XCTFail("unexpected \(e)") }
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, 1500)
        // Hand-made hostile headers: huge sizes, overflowing counts, absurd shapes.
        let headerLength = Int(valid[8]) | Int(valid[9]) << 8 | Int(valid[10]) << 16 | Int(valid[11]) << 24
        let json = String(decoding: valid[12..<(12 + headerLength)], as: UTF8.self)
        func state(header: String, step: UInt64 = 1, rng: [UInt64] = [1, 2, 3, 4], count: UInt64, floats: Int) -> Data {
            var d = Data("SISATS01".utf8) + littleEndian(UInt32(header.utf8.count)) + Data(header.utf8) + littleEndian(step)
            for w in rng { d += littleEndian(w) }
            return d + littleEndian(count) + Data(count: floats * 4)
        }
        let P = UInt64(t.model.params.count)
        let cases: [(String, Data)] = [
            ("header length beyond the data", Data("SISATS01".utf8) + littleEndian(UInt32.max) + Data(count: 64)),
            ("huge model", state(header: json.replacingOccurrences(of: "\"dim\":16", with: "\"dim\":4000000000"), count: P, floats: 0)),
            ("negative dims", state(header: json.replacingOccurrences(of: "\"layers\":1", with: "\"layers\":-3"), count: P, floats: 0)),
            ("largest allowed model, no data", state(header: json.replacingOccurrences(of: "\"dim\":16", with: "\"dim\":4096")
                .replacingOccurrences(of: "\"layers\":1", with: "\"layers\":64"), count: P, floats: 0)),
            ("parameter count overflow", state(header: json, count: UInt64.max, floats: 0)),
            ("step beyond Int", state(header: json, step: UInt64.max, count: P, floats: 3 * Int(P))),
            ("all-zero generator", state(header: json, rng: [0, 0, 0, 0], count: P, floats: 3 * Int(P))),
            ("negative warm-up", state(header: json.replacingOccurrences(of: "\"warmupSteps\":2", with: "\"warmupSteps\":-9223372036854775807"),
                                       count: P, floats: 3 * Int(P))),
            ("short float data", state(header: json, count: P, floats: 3 * Int(P) - 1)),
        ]
        XCTAssertTrue(json.contains("\"dim\":16") && json.contains("\"warmupSteps\":2"), json)
        for (what, d) in cases {
            XCTAssertThrowsError(try Trainer(restoring: d, pool: WorkerPool(threads: 1)), what)
        }
        XCTAssertNoThrow(try Trainer(restoring: state(header: json, count: P, floats: 3 * Int(P))), "the hand-made layout is valid")
        print("training states: \(rejected) rejected, \(accepted) accepted of 3000 mutations")
    }

    func testSafetensorsNeverCrashTheReader() throws {
        let values: [Float] = (0..<96).map { Float($0) / 7 }
        let valid = try values.withUnsafeBufferPointer { p in
            try Safetensors.encode([("a", [4, 8], UnsafeBufferPointer(rebasing: p[0..<32])),
                                    ("b.weight", [64], UnsafeBufferPointer(rebasing: p[32..<96]))],
                                   metadata: ["format": "pt"])
        }
        var rejected = 0
        for d in seededMutations(of: valid, count: 3000, hot: 180, seed: 12) {
            do {
                let (tensors, _) = try Safetensors.decode(d)
                for t in tensors.values { XCTAssertEqual(t.values.count, t.shape.reduce(1, *)) }
            } catch let e as EngineError {
                guard case .format = e else { return XCTFail("unexpected \(e)") }
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, 1000)
        func file(_ header: String, data: Int = 16) -> Data {
            littleEndian(UInt64(header.utf8.count)) + Data(header.utf8) + Data(count: data)
        }
        let hostile: [(String, Data)] = [
            ("header length UInt64.max", littleEndian(UInt64.max) + Data(count: 32)),
            ("header length 2^63", littleEndian(UInt64(1) << 63) + Data(count: 32)),
            ("shape overflow", file(#"{"t":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#)),
            ("negative shape", file(#"{"t":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#)),
            ("huge shape", file(#"{"t":{"dtype":"F32","shape":[1e300],"data_offsets":[0,16]}}"#)),
            ("fractional shape", file(#"{"t":{"dtype":"F32","shape":[3.5],"data_offsets":[0,16]}}"#)),
            ("reversed offsets", file(#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[16,12]}}"#)),
            ("offset overflow", file(#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[9223372036854775807,-9223372036854775808]}}"#)),
            ("offsets past the end", file(#"{"t":{"dtype":"F16","shape":[16],"data_offsets":[0,32]}}"#)),
            ("not an object", file("[1,2,3]")),
        ]
        for (what, d) in hostile { XCTAssertThrowsError(try Safetensors.decode(d), what) }
        XCTAssertEqual(try Safetensors.decode(file(#"{"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#)).tensors["t"]?.shape, [2, 2])
    }

    func testHuggingFaceFoldersWithHostileConfigsAreRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sisa-hf-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try GPT2Model(config: tiny, pool: WorkerPool(threads: 1))
        var rng = Xoshiro256(seed: 3)
        model.initialize(rng: &rng)
        try HuggingFace.export(model, to: dir)
        XCTAssertEqual(try HuggingFace.load(from: dir, pool: WorkerPool(threads: 1)).digest, model.digest)
        let configURL = dir.appendingPathComponent("config.json")
        let original = try Data(contentsOf: configURL)
        for (key, value) in [("n_embd", "4096000000"), ("n_layer", "100000"), ("n_positions", "1e300"), ("n_head", "-2"),
                             ("n_embd", "2.5"), ("vocab_size", "50257"), ("n_embd", "4096")] {
            var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: original) as? [String: Any])
            json[key] = try JSONSerialization.jsonObject(with: Data(value.utf8), options: [.fragmentsAllowed])
            try JSONSerialization.data(withJSONObject: json).write(to: configURL)
            XCTAssertThrowsError(try HuggingFace.load(from: dir, pool: WorkerPool(threads: 1)), "\(key)=\(value)") { e in
                XCTAssertTrue("\(e)".contains("config.json") || "\(e)".contains("model.safetensors"), "\(e)")
            }
        }
    }
}
