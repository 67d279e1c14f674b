import Foundation
import SisaCoordinator
import XCTest

/// A store on a pretrained base driven through the real binary, as a user
/// (and an external check) scripts it: `init --base` with its adapter
/// options, `status --json`, ingest, train, query, score, eval, delete,
/// verify and export, and the errors of a bad base or bad options. The base
/// is the engine's tiny GGUF fixture (random weights), so every step is quick.
final class BaseStoreCommandTests: XCTestCase {
    var sisa: URL!

    override func setUpWithError() throws { sisa = try sisaBinary() }

    @discardableResult
    private func run(_ args: [String], expect status: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> (out: String, err: String) {
        let r = try runSisa(sisa, args)
        XCTAssertEqual(r.status, status, "sisa \(args.joined(separator: " ")): \(r.err)", file: file, line: line)
        return (r.out, r.err)
    }

    private func object(_ s: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any], s)
    }

    private func records(_ tmp: TempDir, _ n: Int, secret: String) throws -> String {
        var lines: [String] = []
        for i in 0..<n {
            let text = i == 3 ? "\(secret) is what record three says" : "record \(i) talks about the weather on day \(i * 7 % 31)"
            lines.append("{\"id\": \"r\(i)\", \"text\": \"\(text)\"}")
        }
        let file = tmp.path("records.jsonl")
        try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    func testTheFourJobsOnABaseStoreThroughTheCLI() throws {
        let tmp = TempDir()
        let store = tmp.path("store")
        let s = ["--store", store]
        let created = try run(["init", "--base", TinyBase.gguf.path, "--shards", "2", "--slices", "2", "--lora-rank", "4",
                               "--lora-alpha", "8", "--lora-targets", "q,k,v,o", "--lora-layers", "1", "--ctx", "32",
                               "--batch", "4", "--epochs", "1", "--seed", "3"] + s)
        XCTAssertTrue(created.out.contains("LoRA r4 alpha 8.0 on q,k,v,o of the top 1 layers"), created.out)
        XCTAssertTrue(FileManager.default.fileExists(atPath: store + "/base/tiny-llama.gguf"))

        let file = try records(tmp, 24, secret: "ZEBRA-QUOKKA-1234")
        try run(["ingest", file, "--holdout", "0.2"] + s)
        try run(["train", "--json"] + s)

        let status = try object(try run(["status", "--json"] + s).out)
        let config = try XCTUnwrap(status["config"] as? [String: Any])
        let base = try XCTUnwrap(config["base"] as? [String: Any])
        XCTAssertEqual(base["name"] as? String, "tiny-llama.gguf")
        XCTAssertEqual((base["sha256"] as? String)?.count, 64)
        XCTAssertEqual(base["context"] as? Int, 32)
        let size = try FileManager.default.attributesOfItem(atPath: TinyBase.gguf.path)[.size] as! Int
        XCTAssertEqual(status["baseBytes"] as? Int, size)
        // rank 4 on q (64 -> 64), k and v (64 -> 32, GQA), o (64 -> 64) of one layer: 4 * (128 + 96 + 96 + 128).
        XCTAssertEqual(status["trainableParameters"] as? Int, 4 * (128 + 96 + 96 + 128))
        let shards = try XCTUnwrap(status["shards"] as? [[String: Any]])
        XCTAssertEqual(shards.count, 2)
        for shard in shards {
            XCTAssertEqual(shard["stagesTrained"] as? Int, 2)
            let bytes = try XCTUnwrap(shard["checkpointBytes"] as? Int)
            // Two stages of an adapter's state: far below one copy of the base.
            XCTAssertGreaterThan(bytes, 0)
            XCTAssertLessThan(bytes, size / 4)
        }
        let human = try run(["status"] + s).out
        XCTAssertTrue(human.contains("base: tiny-llama.gguf (llama, sha256 \(base["sha256"] as! String)"), human)

        let q1 = try run(["query", "record 1", "--max-tokens", "6", "--temperature", "0.8", "--seed", "5"] + s).out
        let q2 = try run(["query", "record 1", "--max-tokens", "6", "--temperature", "0.8", "--seed", "5", "--aggregate", "vote"] + s).out
        XCTAssertTrue(q1.hasPrefix("record 1"), q1)
        XCTAssertTrue(q2.hasPrefix("record 1"), q2)
        let score = try object(try run(["score", "--text", "record 5 talks about", "--json"] + s).out)
        XCTAssertGreaterThan(score["meanNLL"] as? Double ?? 0, 0)
        let eval = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try run(["eval", "--json"] + s).out.utf8)) as? [[String: Any]])
        XCTAssertNotNil(eval.first?["baseNLL"] as? Double, "eval on a base store reports the base alone")
        XCTAssertTrue(try run(["eval"] + s).out.contains("the base alone (zero-shot)"))

        let receipt = try object(try run(["delete", "r3", "--json"] + s).out)
        XCTAssertEqual(receipt["records"] as? [String], ["r3"])
        let verify = try run(["verify"] + s).out
        XCTAssertEqual(verify.components(separatedBy: "OK").count - 1, 2, verify)
        for (name, bytes) in allFileBytes(URL(fileURLWithPath: store)) {
            XCTAssertNil(bytes.range(of: Data("ZEBRA-QUOKKA-1234".utf8)), "deleted text still in \(name)")
        }

        try run(["export", "--shard", "1", "--kind", "adapter", tmp.path("adapter")] + s)
        for f in ["adapter_config.json", "adapter_model.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.path("adapter/" + f)), f)
        }
        try run(["export", "--shard", "1", tmp.path("merged")] + s)
        for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.path("merged/" + f)), f)
        }
        let bad = try run(["export", "--shard", "1", "--kind", "weights", tmp.path("x")] + s, expect: 64).err
        XCTAssertTrue(bad.contains("merged") && bad.contains("adapter"), bad)
    }

    func testBadBaseOptionsAndAChangedBaseGetClearErrors() throws {
        let tmp = TempDir()
        let base = ["init", "--base", TinyBase.gguf.path, "--shards", "2", "--slices", "2"]
        func refused(_ extra: [String], _ needle: String, line: UInt = #line) throws {
            let store = tmp.path("s\(line)")
            let r = try runSisa(sisa, base + extra + ["--store", store])
            XCTAssertNotEqual(r.status, 0, "\(extra) was accepted", line: line)
            let err = r.err
            XCTAssertTrue(err.contains(needle), "\(extra): \(err)", line: line)
            XCTAssertFalse(FileManager.default.fileExists(atPath: store + "/catalog.sqlite"), "a refused init left a store", line: line)
        }
        try refused(["--ctx", "65"], "context")
        try refused(["--lora-targets", "q,attn"], "attn")
        try refused(["--lora-layers", "3"], "layers")
        try refused(["--preset", "tiny"], "--preset")
        try refused(["--dp-noise", "1", "--dp-clip", "1"], "DP-SGD is not available on a base store")
        try refused(["--adapter", "full", "--lora-targets", "q"], "--lora-targets")
        let missing = try runSisa(sisa, ["init", "--base", tmp.path("nope.gguf"), "--shards", "1", "--slices", "1", "--store", tmp.path("m")])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.err.contains("nope.gguf"), missing.err)

        let store = tmp.path("store")
        try run(base + ["--ctx", "16", "--store", store])
        let file = try records(tmp, 8, secret: "S")
        try run(["ingest", file, "--store", store])
        let copy = URL(fileURLWithPath: store + "/base/tiny-llama.gguf")
        var bytes = try Data(contentsOf: copy)
        bytes[bytes.count - 5] ^= 0x40
        try bytes.write(to: copy)
        let err = try run(["train", "--store", store], expect: 1).err
        XCTAssertTrue(err.contains("the base changed") && err.contains("tiny-llama.gguf"), err)
    }
}
