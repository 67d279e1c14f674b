import Foundation
import SisaEngine
import XCTest

/// Model files come from the internet. Every reader (GGUF, safetensors and
/// their index, tokenizer.json, vocab.json + merges.txt, config.json) gets
/// seeded truncations, bit flips and appended garbage of a valid file, and
/// hand-made oversized headers, offsets past the end and overflowing counts.
/// Each case must end in an error that names the file, or in a model that
/// runs; a crash or a huge allocation would end this test process.
final class ModelFileRobustnessTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("sisa-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    private func copyFolder(_ name: String) throws -> URL {
        let dst = scratch.appendingPathComponent(name)
        try? FileManager.default.removeItem(at: dst)
        try FileManager.default.copyItem(at: Fixtures.folder.appendingPathComponent(name), to: dst)
        return dst
    }

    /// Loads `url` and runs a forward when it loads; an error must name `file`.
    @discardableResult
    private func outcome(_ url: URL, naming file: URL, _ what: String) -> Bool {
        do {
            let b = try BaseModel.load(url, context: 8, pool: WorkerPool(threads: 1))
            let V = Int32(b.model.vocabularySize)
            b.model.forward(Batch(B: 1, T: 3, tokens: [0, 1, V - 1], targets: [1, V - 1, -1]))
            _ = b.tokenizer.encode("robust <|im_start|> 123")
            return true
        } catch {
            XCTAssertTrue("\(error)".contains(file.lastPathComponent), "\(what): error does not name \(file.lastPathComponent): \(error)")
            return false
        }
    }

    private func le64(_ v: UInt64) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
    private func le32(_ v: UInt32) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
    private func ggufString(_ s: String) -> Data { le64(UInt64(s.utf8.count)) + Data(s.utf8) }

    func testGGUFMutationsNeverCrashTheReader() throws {
        let valid = try Data(contentsOf: Fixtures.folder.appendingPathComponent("tiny-llama.gguf"))
        let header = try GGUFFile(ModelFileBytes(path: "tiny-llama.gguf", data: valid)).dataStart
        let url = scratch.appendingPathComponent("mutant.gguf")
        var rejected = 0, accepted = 0
        for (i, d) in seededMutations(of: valid, count: 2500, hot: header, seed: 21).enumerated() {
            try d.write(to: url)
            if outcome(url, naming: url, "mutation \(i)") { accepted += 1 } else { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, 1000)
        print("GGUF: \(rejected) rejected, \(accepted) loaded and ran, of 2500 mutations")
    }

    func testHostileGGUFHeadersAreRefused() throws {
        let magic = Data("GGUF".utf8) + le32(3)
        func kv(_ key: String, type: UInt32, _ value: Data) -> Data { ggufString(key) + le32(type) + value }
        let arch = kv("general.architecture", type: 8, ggufString("llama"))
        // Two 64-byte F32 tensors at these data offsets: llama.cpp writes tensors end to end, never sharing bytes.
        func twoTensors(at a: UInt64, _ b: UInt64) -> Data {
            let header: Data = magic + le64(2) + le64(1) + arch
            let first: Data = ggufString("a") + le32(1) + le64(16) + le32(0) + le64(a)
            let second: Data = ggufString("b") + le32(1) + le64(16) + le32(0) + le64(b)
            return header + first + second + Data(count: 256)
        }
        let cases: [(String, Data)] = [
            ("tensor count 2^63", magic + le64(1 << 63) + le64(0) + Data(count: 64)),
            ("metadata count UInt64.max", magic + le64(0) + le64(.max) + Data(count: 64)),
            ("key length past the end", magic + le64(0) + le64(1) + le64(1 << 40) + Data(count: 64)),
            ("array count 2^61", magic + le64(0) + le64(1) + ggufString("a") + le32(9) + le32(8) + le64(1 << 61) + Data(count: 64)),
            ("arrays nested deeply", magic + le64(0) + le64(1) + ggufString("a") + le32(9)
                + Data((0..<20).flatMap { _ in Array(le32(9) + le64(1)) }) + Data(count: 64)),
            ("unknown value type", magic + le64(0) + le64(1) + ggufString("a") + le32(77) + Data(count: 64)),
            ("bool 7", magic + le64(0) + le64(1) + ggufString("a") + le32(7) + Data([7]) + Data(count: 64)),
            ("version 1", Data("GGUF".utf8) + le32(1) + Data(count: 64)),
            ("alignment 3", magic + le64(0) + le64(2) + arch + kv("general.alignment", type: 4, le32(3)) + Data(count: 64)),
            ("tensor with 9 dimensions", magic + le64(1) + le64(1) + arch + ggufString("t") + le32(9) + Data(count: 128)),
            ("overflowing extents", magic + le64(1) + le64(1) + arch + ggufString("t") + le32(4)
                + le64(1 << 30) + le64(1 << 30) + le64(1 << 30) + le64(1 << 30) + le32(0) + le64(0) + Data(count: 64)),
            ("offset past the end", magic + le64(1) + le64(1) + arch + ggufString("t") + le32(1) + le64(32) + le32(0)
                + le64(1 << 40) + Data(count: 64)),
            ("data past the end", magic + le64(1) + le64(1) + arch + ggufString("t") + le32(1) + le64(1 << 20) + le32(0)
                + le64(0) + Data(count: 64)),
            ("invalid UTF-8 key", magic + le64(0) + le64(1) + le64(2) + Data([0xFF, 0xFE]) + le32(4) + le32(1) + Data(count: 64)),
            ("overlapping tensors", twoTensors(at: 0, 32)),
            ("aliased tensors", twoTensors(at: 64, 64)),
        ]
        let url = scratch.appendingPathComponent("hostile.gguf")
        for (what, d) in cases {
            try d.write(to: url)
            XCTAssertFalse(outcome(url, naming: url, what), what)
        }
        for (what, d) in cases where what.hasSuffix("tensors") {
            XCTAssertThrowsError(try GGUFFile(ModelFileBytes(path: url.path, data: d)), what) { e in XCTAssertTrue("\(e)".contains("overlaps"), "\(what): \(e)") }
        }
        // A byte-level tokenizer without merges would split every text into bytes: refused.
        var noMerges = try Data(contentsOf: Fixtures.folder.appendingPathComponent("tiny-llama.gguf"))
        let mergesKey = Data("tokenizer.ggml.merges".utf8)
        let found = try XCTUnwrap(noMerges.range(of: mergesKey))
        noMerges.replaceSubrange(found, with: Data("tokenizer.ggml.mergez".utf8))
        try noMerges.write(to: url)
        XCTAssertThrowsError(try BaseModel.tokenizer(at: url)) { e in
            XCTAssertTrue("\(e)".contains(url.lastPathComponent) && "\(e)".contains("tokenizer.ggml.merges is missing"), "\(e)")
        }
        // A tensor the engine would not read (here a layer past block_count) is refused, not ignored.
        var extra = try Data(contentsOf: Fixtures.folder.appendingPathComponent("tiny-llama.gguf"))
        let layerZero = try XCTUnwrap(extra.range(of: Data("blk.0.attn_norm.weight".utf8)))
        extra.replaceSubrange(layerZero, with: Data("blk.9.attn_norm.weight".utf8))
        try extra.write(to: url)
        XCTAssertThrowsError(try BaseModel.load(url)) { e in
            XCTAssertTrue("\(e)".contains(url.lastPathComponent) && "\(e)".contains("blk.9.attn_norm.weight is not one this engine reads"), "\(e)")
        }
        // Metadata that claims a model far larger than the file: refused before anything is allocated.
        let g = try GGUFFile(url: Fixtures.folder.appendingPathComponent("tiny-llama.gguf"))
        var text = try Data(contentsOf: URL(fileURLWithPath: g.file.path))
        let key = Data("llama.embedding_length".utf8)
        let at = try XCTUnwrap(text.range(of: key)).upperBound
        text.replaceSubrange((at + 4)..<(at + 8), with: le32(16_384))  // type u32, then the value
        try text.write(to: url)
        XCTAssertFalse(outcome(url, naming: url, "embedding_length 16384"))
    }

    func testSafetensorsMutationsNeverCrashTheReader() throws {
        let folder = try copyFolder("tiny-llama-gqa")
        let file = folder.appendingPathComponent("model.safetensors")
        let valid = try Data(contentsOf: file)
        let headerLength = Int(valid.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        var rejected = 0
        for (i, d) in seededMutations(of: valid, count: 2500, hot: 8 + headerLength, seed: 22).enumerated() {
            try d.write(to: file)
            if !outcome(folder, naming: file, "mutation \(i)") { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, 1000)
        print("safetensors: \(rejected) rejected of 2500 mutations")
        // Oversized header, offsets past the end.
        for (what, d) in [("header length 2^62", le64(1 << 62) + Data(count: 64)),
                          ("offsets past the end", le64(88) + Data(#"{"model.norm.weight":{"dtype":"F32","shape":[64],"data_offsets":[0,1099511627776]}}"#.utf8)
                            + Data(count: 16))] {
            try d.write(to: file)
            XCTAssertFalse(outcome(folder, naming: file, what), what)
        }
        // A truncated file: the error says so (the same error in every process: BaseCommandTests).
        try valid.prefix(valid.count / 2).write(to: file)
        XCTAssertThrowsError(try BaseModel.load(folder, context: 8, pool: WorkerPool(threads: 1))) {
            XCTAssertTrue("\($0)".contains("run past the end of the data (") && "\($0)".contains("truncated"), "\($0)")
        }
    }

    /// The index names shard files of the folder only; a shard may not be claimed by two files or be missing.
    func testShardIndexMutationsAndEscapesAreRefused() throws {
        let folder = try copyFolder("tiny-llama-tied")
        let index = folder.appendingPathComponent("model.safetensors.index.json")
        let valid = try Data(contentsOf: index)
        var rejected = 0
        for (i, d) in seededMutations(of: valid, count: 2500, hot: valid.count, seed: 23).enumerated() {
            try d.write(to: index)
            if !outcome(folder, naming: index, "mutation \(i)") { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, 1500)
        let json = String(decoding: valid, as: UTF8.self)
        for bad in ["../escape.safetensors", "/etc/passwd", "sub/dir.safetensors", "model.bin", ".hidden.safetensors",
                    "model-00009-of-00003.safetensors"] {
            try Data(json.replacingOccurrences(of: "model-00001-of-00003.safetensors", with: bad).utf8).write(to: index)
            XCTAssertThrowsError(try BaseModel.load(folder), bad) { e in XCTAssertTrue("\(e)".contains(".safetensors") || "\(e)".contains(bad), "\(e)") }
        }
    }

    /// The SentencePiece-style layout (characters, byte fallback, Metaspace) read from mutated files.
    func testSentencePieceTokenizerJSONMutationsNeverCrashTheReader() throws {
        let file = scratch.appendingPathComponent("tokenizer.json")
        let valid = try Data(contentsOf: Fixtures.folder.appendingPathComponent("spm-bpe/tokenizer.json"))
        func outcome(_ what: String) -> Bool {
            do {
                let t = try TokenizerFiles.load(tokenizerJSON: file)
                let ids = t.encode("robust 你好 <s>x</s> ▁▁ 🙂")
                _ = t.decode(ids)
                return true
            } catch {
                XCTAssertTrue("\(error)".contains(file.lastPathComponent), "\(what): error does not name the file: \(error)")
                return false
            }
        }
        var rejected = 0
        for (i, d) in seededMutations(of: valid, count: 1500, hot: valid.count, seed: 31).enumerated() {
            try d.write(to: file)
            if !outcome("mutation \(i)") { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, 500)
        // Its GGUF form: tokens, scores and types, whose implied merges are derived at load.
        let gguf = scratch.appendingPathComponent("spm.gguf")
        let vocab = try Data(contentsOf: Fixtures.folder.appendingPathComponent("spm-vocab.gguf"))
        var refused = 0
        for (i, d) in seededMutations(of: vocab, count: 1500, hot: vocab.count, seed: 32).enumerated() {
            try d.write(to: gguf)
            do {
                let t = try BaseModel.tokenizer(at: gguf)
                _ = t.decode(t.encode("robust 你好 <s>x</s> ▁▁ 🙂"))
            } catch {
                refused += 1
                XCTAssertTrue("\(error)".contains(gguf.lastPathComponent), "gguf mutation \(i): \(error)")
            }
        }
        XCTAssertGreaterThan(refused, 300)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: valid) as? [String: Any])
        let model = try XCTUnwrap(obj["model"] as? [String: Any])
        let cases: [(String, (inout [String: Any], inout [String: Any]) -> Void)] = [
            ("unk outside the vocabulary", { _, m in m["unk_token"] = "<nope>" }),
            ("byte fallback with ByteLevel", { o, _ in o["pre_tokenizer"] = ["type": "ByteLevel", "add_prefix_space": false] }),
            ("another replacement", { o, _ in o["pre_tokenizer"] = ["type": "Metaspace", "replacement": "_", "prepend_scheme": "first"] }),
            ("unknown prepend scheme", { o, _ in o["pre_tokenizer"] = ["type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "sometimes"] }),
        ]
        for (what, mutate) in cases {
            var o = obj, m = model
            mutate(&o, &m)
            o["model"] = m
            try JSONSerialization.data(withJSONObject: o).write(to: file)
            XCTAssertFalse(outcome(what), what)
        }
    }

    func testTokenizerJSONMutationsNeverCrashTheReader() throws {
        let folder = try copyFolder("tiny-llama-gqa")
        let file = folder.appendingPathComponent("tokenizer.json")
        let valid = try Data(contentsOf: file)
        var rejected = 0
        for (i, d) in seededMutations(of: valid, count: 2500, hot: valid.count, seed: 24).enumerated() {
            try d.write(to: file)
            if !outcome(folder, naming: file, "mutation \(i)") { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, 1000)
        // Structurally hostile: ids past any vocabulary, a catastrophic split pattern, merges outside the vocabulary.
        var obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: valid) as? [String: Any])
        var model = try XCTUnwrap(obj["model"] as? [String: Any])
        let cases: [(String, (inout [String: Any], inout [String: Any]) -> Void)] = [
            ("id 2^40", { _, m in var v = m["vocab"] as! [String: Any]; v["Ġhuge"] = 1 << 40; m["vocab"] = v }),
            ("negative id", { _, m in var v = m["vocab"] as! [String: Any]; v["Ġneg"] = -5; m["vocab"] = v }),
            ("merge outside the vocabulary", { _, m in m["merges"] = ["Ġ zzz"] }),
            ("unsupported model", { _, m in m["type"] = "WordPiece" }),
            ("dropout", { _, m in m["dropout"] = 0.1 }),
            ("catastrophic pattern", { o, _ in o["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": "(a*)*$"], "behavior": "Isolated", "invert": false],
                ["type": "ByteLevel", "add_prefix_space": false, "use_regex": false]]] }),
            ("unsupported pattern", { o, _ in o["pre_tokenizer"] = ["type": "Split", "pattern": ["Regex": "(?<=a)b"], "behavior": "Isolated"] }),
            ("added token id 2^40", { o, _ in o["added_tokens"] = [["id": 1 << 40, "content": "<x>", "special": true]] }),
        ]
        for (what, mutate) in cases {
            var o = obj, m = model
            mutate(&o, &m)
            o["model"] = m
            try JSONSerialization.data(withJSONObject: o).write(to: file)
            let loaded = outcome(folder, naming: file, what)
            if what == "catastrophic pattern" {
                // Loads (the pattern is legal); matching it is bounded, so encoding returns.
                XCTAssertTrue(loaded, what)
                let t = try BaseModel.tokenizer(at: folder)
                _ = t.encode(String(repeating: "a", count: 5000) + "b")
            } else {
                XCTAssertFalse(loaded, what)
            }
        }
        obj["model"] = model
        model["merges"] = []
        _ = model
    }

    func testVocabAndMergesMutationsNeverCrashTheReader() throws {
        let folder = try copyFolder("tiny-gpt2")
        let merges = folder.appendingPathComponent("merges.txt"), vocab = folder.appendingPathComponent("vocab.json")
        for (file, seed) in [(merges, UInt64(25)), (vocab, 26)] {
            let valid = try Data(contentsOf: file)
            var rejected = 0
            for (i, d) in seededMutations(of: valid, count: 1500, hot: valid.count, seed: seed).enumerated() {
                try d.write(to: file)
                if !outcome(folder, naming: file, "\(file.lastPathComponent) mutation \(i)") { rejected += 1 }
            }
            try valid.write(to: file)
            XCTAssertGreaterThan(rejected, 300, file.lastPathComponent)
        }
    }

    /// config.json values that would overflow sizes, or claim more than the weights hold.
    func testHostileConfigsAreRefusedBeforeAllocating() throws {
        let folder = try copyFolder("tiny-llama-gqa")
        let url = folder.appendingPathComponent("config.json")
        let original = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        for (key, value) in [("hidden_size", "16384"), ("num_hidden_layers", "256"), ("vocab_size", "1048576"), ("intermediate_size", "65536"),
                             ("num_attention_heads", "0"), ("num_key_value_heads", "3"), ("head_dim", "-2"), ("hidden_size", "1e300"),
                             ("rms_norm_eps", "-1"), ("rope_parameters", #"{"rope_type": "yarn", "factor": 4}"#),
                             ("hidden_act", #""gelu""#), ("max_position_embeddings", "1"), ("model_type", #""mamba""#)] {
            var json = original
            json[key] = try JSONSerialization.jsonObject(with: Data(value.utf8), options: [.fragmentsAllowed])
            try JSONSerialization.data(withJSONObject: json).write(to: url)
            XCTAssertThrowsError(try BaseModel.load(folder), "\(key)=\(value)") { e in
                XCTAssertTrue("\(e)".contains("config.json") || "\(e)".contains("model.safetensors"), "\(key)=\(value): \(e)")
            }
        }
    }

    private typealias StoredTensor = (name: String, shape: [Int], values: [Float])

    /// Every tensor of `folder`'s model.safetensors, as fp32.
    private func tensors(in folder: URL) throws -> [StoredTensor] {
        let file = try SafetensorsFile(url: folder.appendingPathComponent("model.safetensors"))
        return try file.tensors.sorted(by: { $0.key < $1.key }).map { name, info in
            var values = [Float](repeating: 0, count: info.shape.reduce(1, *))
            try values.withUnsafeMutableBufferPointer { try file.read(name, shape: info.shape, into: $0.baseAddress!) }
            return (name, info.shape, values)
        }
    }

    private func write(_ tensors: [StoredTensor], to folder: URL) throws {
        func encode(_ i: Int, _ done: [(name: String, shape: [Int], values: UnsafeBufferPointer<Float>)]) throws -> Data {
            guard i < tensors.count else { return try Safetensors.encode(done) }
            return try tensors[i].values.withUnsafeBufferPointer { try encode(i + 1, done + [(tensors[i].name, tensors[i].shape, $0)]) }
        }
        try encode(0, []).write(to: folder.appendingPathComponent("model.safetensors"))
    }

    private func editConfig(_ folder: URL, _ edit: (inout [String: Any]) -> Void) throws {
        let url = folder.appendingPathComponent("config.json")
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: url)
    }

    /// A head the engine would not use is refused, never silently replaced by
    /// the embedding: GPT-2 configured untied, and a tied model (GPT-2 or llama)
    /// whose checkpoint holds an lm_head.weight with other values. The same
    /// values (a tied model saved with both) load.
    func testAHeadOtherThanTheTiedEmbeddingIsRefused() throws {
        let untied = try copyFolder("tiny-gpt2")
        try editConfig(untied) { $0["tie_word_embeddings"] = false }
        XCTAssertThrowsError(try BaseModel.load(untied)) { e in
            XCTAssertTrue("\(e)".contains("config.json") && "\(e)".contains("tie_word_embeddings"), "\(e)")
        }
        for (name, embedding) in [("tiny-gpt2", "wte.weight"), ("tiny-llama-gqa", "model.embed_tokens.weight")] {
            let folder = try copyFolder(name)
            try editConfig(folder) { $0["tie_word_embeddings"] = true }
            let base = try tensors(in: folder).filter { $0.name != "lm_head.weight" }
            let e = try XCTUnwrap(base.first { $0.name == embedding || $0.name == "transformer." + embedding })
            try write(base + [("lm_head.weight", e.shape, e.values.map { $0 * 2 })], to: folder)
            XCTAssertThrowsError(try BaseModel.load(folder), name) { err in
                XCTAssertTrue("\(err)".contains("model.safetensors") && "\(err)".contains("lm_head.weight differs"), "\(name): \(err)")
            }
            try write(base + [("lm_head.weight", e.shape, e.values)], to: folder)
            XCTAssertNoThrow(try BaseModel.load(folder), name)
        }
    }

    /// A checkpoint holding tensors its config.json does not describe (a layer past
    /// num_hidden_layers or n_layer, an attention bias llama lacks) is refused, naming
    /// the tensor, as a GGUF file's are, instead of loading a truncated model; the
    /// buffers older transformers saved (rotary inverse frequencies, GPT-2's causal
    /// mask, cos_cached and sin_cached tables) are not weights and load.
    func testTensorsTheConfigDoesNotDescribeAreRefused() throws {
        for (name, key, tensor) in [("tiny-llama-gqa", "num_hidden_layers", "model.layers.1."), ("tiny-gpt2", "n_layer", "h.1.")] {
            let folder = try copyFolder(name)
            try editConfig(folder) { $0[key] = 1 }
            XCTAssertThrowsError(try BaseModel.load(folder), name) { e in
                XCTAssertTrue("\(e)".contains("model.safetensors") && "\(e)".contains(tensor) && "\(e)".contains("refused rather than ignored"),
                              "\(name): \(e)")
            }
        }
        let llama = try copyFolder("tiny-llama-gqa")
        let weights = try tensors(in: llama)
        try write(weights + [("model.layers.0.self_attn.q_proj.bias", [8], [Float](repeating: 0, count: 8))], to: llama)
        XCTAssertThrowsError(try BaseModel.load(llama)) { XCTAssertTrue("\($0)".contains("q_proj.bias"), "\($0)") }
        try write(weights + [("model.layers.0.self_attn.rotary_emb.inv_freq", [4], [1, 0.1, 0.01, 0.001]),
                             ("model.layers.1.self_attn.rotary_emb.cos_cached", [1, 1, 2, 2], [1, 1, 0.5, 0.5]),
                             ("model.layers.1.self_attn.rotary_emb.sin_cached", [1, 1, 2, 2], [0, 0, 0.8, 0.8])], to: llama)
        XCTAssertNoThrow(try BaseModel.load(llama))
        let gpt2 = try copyFolder("tiny-gpt2")
        let g = try tensors(in: gpt2)
        let prefix = g.contains { $0.name.hasPrefix("transformer.") } ? "transformer." : ""
        try write(g + [(prefix + "h.0.attn.bias", [1, 1, 2, 2], [1, 0, 1, 1]), (prefix + "h.0.attn.masked_bias", [1], [-1e4])], to: gpt2)
        XCTAssertNoThrow(try BaseModel.load(gpt2))
    }

    /// config.json's bos/eos ids that the tokenizer does not have (GPT2Config's
    /// default 50256 with a smaller vocabulary) are left out, as transformers
    /// scores such a model; the tokenizer's own end-of-text applies.
    func testConfigSpecialIdsOutsideTheTokenizerAreLeftOut() throws {
        let folder = try copyFolder("tiny-gpt2")
        let before = try BaseModel.load(folder).tokenizer
        try editConfig(folder) { $0["eos_token_id"] = 50256; $0["bos_token_id"] = 50256 }
        let b = try BaseModel.load(folder)
        XCTAssertEqual(b.tokenizer.encode("robust text 123"), before.encode("robust text 123"))
        for id in [b.tokenizer.special.bos, b.tokenizer.special.eos].compactMap({ $0 }) {
            XCTAssertLessThan(Int(id), b.tokenizer.vocabularySize)
        }
    }

    /// The engine never reads pickle: a folder with only pytorch_model.bin is refused with the reason.
    func testPickleCheckpointsAreRefused() throws {
        let folder = try copyFolder("tiny-llama-gqa")
        try FileManager.default.removeItem(at: folder.appendingPathComponent("model.safetensors"))
        try Data("not loaded".utf8).write(to: folder.appendingPathComponent("pytorch_model.bin"))
        XCTAssertThrowsError(try BaseModel.load(folder)) { e in XCTAssertTrue("\(e)".contains("never reads pickle"), "\(e)") }
    }
}
