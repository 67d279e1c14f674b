import Foundation
import SisaEngine
import XCTest

/// The BPE tokenizer against Hugging Face's `tokenizers`, on ids recorded
/// once in Fixtures/tokenizer-*.json (made by Fixtures/generate/tokenizer_fixtures.py):
/// hand-made hard cases, and every record of Debian's English, German,
/// Russian and Chinese fortunes.
final class TokenizerParityTests: XCTestCase {
    private func hardCases(_ t: BPETokenizer, fixture: String) throws {
        try hardCases(t, in: try Fixtures.json(fixture), name: fixture)
    }

    /// Each case's ids, and its decoded text where the fixture gives it.
    private func hardCases(_ t: BPETokenizer, in f: [String: Any], name: String) throws {
        let cases = try XCTUnwrap(f["hardCases"] as? [[String: Any]])
        XCTAssertGreaterThan(cases.count, 40)
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            let ids = try XCTUnwrap(c["ids"] as? [Int]).map(Int32.init)
            XCTAssertEqual(t.encode(text), ids, "\(name): \(text.debugDescription)")
            if let decoded = c["decoded"] as? String {
                XCTAssertEqual(String(decoding: t.decode(ids), as: UTF8.self), decoded, "\(name): decoding \(text.debugDescription)")
            }
        }
    }

    /// sisa's fortune format: records between lines holding only "%", their lines joined by "\n".
    private func fortuneRecords(_ path: String) throws -> [String] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        var lines = data.split(separator: 0x0A, omittingEmptySubsequences: false).map { Array($0) }
        if lines.last == [] { lines.removeLast() }
        lines = lines.map { $0.last == 0x0D ? Array($0.dropLast()) : $0 }
        var records: [String] = [], current: [[UInt8]] = []
        for line in lines + [[0x25]] {
            if line == [0x25] {
                if current.contains(where: { !$0.isEmpty }) {
                    records.append(String(decoding: Array(current.joined(separator: [0x0A])), as: UTF8.self))
                }
                current = []
            } else {
                current.append(line)
            }
        }
        return records
    }

    private func idsHash(_ ids: [Int32]) -> String {
        String(Digest.sha256Hex(Array(ids.map(String.init).joined(separator: ",").utf8)).prefix(8))
    }

    private func corpora(_ t: BPETokenizer, fixture: String) throws {
        try corpora(t, in: try Fixtures.json(fixture), name: fixture)
    }

    /// Every record's ids against the fixture's hashes (the first `recordsPerFile` of each file, when it says).
    private func corpora(_ t: BPETokenizer, in f: [String: Any], name fixture: String) throws {
        let files = try XCTUnwrap(f["files"] as? [[String: Any]])
        let limit = f["recordsPerFile"] as? Int
        var records = 0, mismatches: [String] = []
        var perCorpus: [String: Int] = [:]
        for file in files {
            let path = try XCTUnwrap(file["path"] as? String)
            let recs = try fortuneRecords(path)
            XCTAssertEqual(recs.count, file["records"] as? Int, "\(path): another version of the corpus")
            XCTAssertEqual(Digest.sha256Hex(Array(recs.joined(separator: "\0").utf8)), file["textSHA256"] as? String,
                           "\(path): another version of the corpus")
            let expected = Array(try XCTUnwrap(file["ids"] as? String))
            let checked = limit.map { Array(recs.prefix($0)) } ?? recs
            XCTAssertEqual(expected.count, 8 * checked.count, "\(path): one hash per record")
            for (i, r) in checked.enumerated() where String(expected[(8 * i)..<(8 * i + 8)]) != idsHash(t.encode(r)) {
                mismatches.append("\(path) record \(i): \(r.prefix(80).debugDescription)")
            }
            records += checked.count
            perCorpus[file["corpus"] as? String ?? "?", default: 0] += checked.count
        }
        XCTAssertEqual(Set(perCorpus.keys), ["en", "de", "ru", "zh"])
        XCTAssertTrue(mismatches.isEmpty, "\(mismatches.count) of \(records) records differ, first: \(mismatches.prefix(5))")
        print("\(fixture): \(records) fortune records identical (\(perCorpus.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))")
    }

    func testSmolLM2HardCasesMatchTokenizers() throws {
        try hardCases(BaseModel.tokenizer(at: ModelCache.smolLM2), fixture: "tokenizer-smollm2.json")
    }

    func testSmolLM2FortunesMatchTokenizers() throws {
        try corpora(BaseModel.tokenizer(at: ModelCache.smolLM2), fixture: "tokenizer-smollm2.json")
    }

    func testGPT2HardCasesMatchTokenizers() throws {
        try hardCases(BaseModel.tokenizer(at: ModelCache.gpt2Tokenizer), fixture: "tokenizer-gpt2.json")
    }

    func testGPT2FortunesMatchTokenizers() throws {
        try corpora(BaseModel.tokenizer(at: ModelCache.gpt2Tokenizer), fixture: "tokenizer-gpt2.json")
    }

    /// SentencePiece-style BPE (Llama 2's and TinyLlama's converted tokenizer.json): characters with
    /// byte fallback, "▁" for spaces, in three layouts of one small trained vocabulary
    /// (Fixtures/generate/sentencepiece_fixtures.py): the normalizer's Prepend + Replace (legacy), a
    /// Metaspace pre-tokenizer (metaspace), and no byte fallback, so unknown characters are <unk> (unk);
    /// and as a GGUF vocabulary with scores instead of merges (gguf).
    func testSentencePieceStyleBPEMatchesTokenizers() throws {
        let f = try Fixtures.json("tokenizer-spm.json")
        let variants = try XCTUnwrap(f["variants"] as? [String: [String: Any]])
        let source = Fixtures.folder.appendingPathComponent("spm-bpe/tokenizer.json")
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: source)) as? [String: Any])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sisa-spm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["legacy", "metaspace", "unk"] {
            var v = json
            if name == "metaspace" {
                v["normalizer"] = NSNull()
                v["pre_tokenizer"] = ["type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "first", "split": false]
            }
            if name == "unk", var model = v["model"] as? [String: Any] {
                model["byte_fallback"] = false
                v["model"] = model
            }
            let url = dir.appendingPathComponent("\(name).json")
            try JSONSerialization.data(withJSONObject: v).write(to: url)
            let t = try TokenizerFiles.load(tokenizerJSON: url)
            let expected = try XCTUnwrap(variants[name])
            try hardCases(t, in: expected, name: "spm \(name)")
            try corpora(t, in: expected, name: "spm \(name)")
        }
        // The same tokens as a GGUF SentencePiece vocabulary (scores, no merges), read as llama.cpp reads it.
        let g = try BaseModel.tokenizer(at: Fixtures.folder.appendingPathComponent("spm-vocab.gguf"))
        XCTAssertEqual(g.special, SpecialTokens(bos: 1, eos: 2, pad: nil))
        let expected = try XCTUnwrap(variants["gguf"])
        try hardCases(g, in: expected, name: "spm gguf")
        try corpora(g, in: expected, name: "spm gguf")
        // A whole text decodes without the space the normalizer put first; a generated
        // continuation, token by token, keeps each token's "▁" as a space.
        let t = try TokenizerFiles.load(tokenizerJSON: source)
        let ids = t.encode("Hello world")
        XCTAssertEqual(String(decoding: t.decode(ids), as: UTF8.self), "Hello world")
        XCTAssertEqual(String(decoding: ids.flatMap { t.bytes(of: $0) }, as: UTF8.self), " Hello world")
        // Written back as tokenizer.json (a merged export's), it encodes and decodes the same.
        let again = dir.appendingPathComponent("written.json")
        try t.tokenizerJSON().write(to: again)
        let u = try TokenizerFiles.load(tokenizerJSON: again)
        for text in ["Hello  world", " 你好 🙂 Größe", "<s>x</s> y", ""] {
            XCTAssertEqual(u.encode(text), t.encode(text), text)
            XCTAssertEqual(u.decode(t.encode(text)), t.decode(t.encode(text)), text)
        }
    }

    /// Added tokens as tokenizers' added vocabulary matches them: tokens with "normalized"
    /// false first, in the raw text, then normalized ones in what is left; matches found
    /// leftmost-longest before lstrip and rstrip widen them (a whitespace token inside an
    /// rstrip's stretch is still emitted); single_word's word characters as Rust regex's
    /// \w (Ⅻ is one). GPT-2's tokenizer.json with tokens added by tokenizers 0.23's
    /// `Tokenizer.add_tokens`; the ids are its `encode(text, add_special_tokens=False)`.
    func testAddedTokensFollowTokenizersMatchingRules() throws {
        let base = try JSONSerialization.jsonObject(with: BaseModel.tokenizer(at: ModelCache.gpt2Tokenizer).tokenizerJSON()) as? [String: Any]
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sisa-added-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func token(_ content: String, _ id: Int, special: Bool = false, lstrip: Bool = false, rstrip: Bool = false,
                   singleWord: Bool = false, normalized: Bool) -> [String: Any] {
            ["content": content, "id": id, "special": special, "lstrip": lstrip, "rstrip": rstrip, "single_word": singleWord,
             "normalized": normalized]
        }
        let cases: [(String, [[String: Any]], [(String, [Int32])])] = [
            ("rstrip then a whitespace token", [token("<|user|>", 50257, special: true, rstrip: true, normalized: false), token("  ", 50258, normalized: false)],
             [("<|user|>   The", [50257, 50258, 383]), ("<|user|>  x", [50257, 50258, 87])]),
            ("lstrip against a normalized token", [token("<mask>", 50257, special: true, lstrip: true, normalized: false), token("\t\t", 50258, normalized: true)],
             [("a\t\t<mask>", [64, 50257]), ("\t\t\r\n<mask>", [50257])]),
            ("raw tokens before normalized ones", [token("ab", 397, normalized: true), token("bc", 15630, normalized: false)],
             [("abc", [64, 15630]), ("xabcx", [27865, 15630, 87])]),
            ("single word", [token("word", 4775, singleWord: true, normalized: false)],
             [("a word.", [64, 220, 4775, 13]), ("sword", [30553]), ("word_x", [4775, 62, 87]), (" wordⅫ", [1573, 158, 227, 104])]),
        ]
        for (name, added, texts) in cases {
            var json = try XCTUnwrap(base)
            json["added_tokens"] = (json["added_tokens"] as? [[String: Any]] ?? []) + added
            let url = dir.appendingPathComponent("tokenizer.json")
            try JSONSerialization.data(withJSONObject: json).write(to: url)
            let t = try TokenizerFiles.load(tokenizerJSON: url)
            for (text, ids) in texts { XCTAssertEqual(t.encode(text), ids, "\(name): \(text.debugDescription)") }
        }
    }

    /// A vocabulary-only GGUF SentencePiece file (tokens, scores, types), written by hand.
    private func sentencePieceGGUF(_ tokens: [String], scores: [Float], types: [Int32]) -> Data {
        func u32(_ v: UInt32) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
        func u64(_ v: UInt64) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
        func str(_ s: String) -> Data { u64(UInt64(s.utf8.count)) + Data(s.utf8) }
        var d = Data("GGUF".utf8) + u32(3) + u64(0) + u64(5)
        d += str("general.architecture") + u32(8) + str("llama")
        d += str("tokenizer.ggml.model") + u32(8) + str("llama")
        d += str("tokenizer.ggml.tokens") + u32(9) + u32(8) + u64(UInt64(tokens.count))
        for t in tokens { d += str(t) }
        d += str("tokenizer.ggml.scores") + u32(9) + u32(6) + u64(UInt64(scores.count))
        for x in scores { d += u32(x.bitPattern) }
        d += str("tokenizer.ggml.token_type") + u32(9) + u32(5) + u64(UInt64(types.count))
        for t in types { d += u32(UInt32(bitPattern: t)) }
        return d
    }

    /// llama.cpp merges the best-scored pair, the leftmost of equal scores: with "ab" and "bc"
    /// both at -1000, "abc" is ▁ ab c (transformers' derived merges would give ▁ a bc).
    func testGGUFSentencePieceTiesGoToTheLeftmostPair() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sisa-tie-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: url) }
        try sentencePieceGGUF(["<unk>", "<s>", "</s>", "\u{2581}", "a", "b", "c", "bc", "ab"],
                              scores: [0, 0, 0] + [Float](repeating: -1000, count: 6), types: [2, 3, 3, 1, 1, 1, 1, 1, 1]).write(to: url)
        let t = try BaseModel.tokenizer(at: url)
        XCTAssertEqual(t.encode("abc"), [3, 8, 6])
        XCTAssertEqual(t.encode("bca"), [3, 7, 4])
        XCTAssertEqual(t.encode("<s>ab"), [1, 3, 8], "a space prefix after a special token, as llama.cpp puts it")
        XCTAssertEqual(t.encode("é"), [3, 0], "no byte tokens: unk")
        // A hostile vocabulary of ever longer tokens ("a" x 1...2000: 2.7 billion cuts) is refused
        // before the merges are derived, not loaded for minutes.
        let long = (1...2000).map { String(repeating: "a", count: $0) }
        try sentencePieceGGUF(long, scores: long.map { -Float($0.count) }, types: long.map { _ in 1 }).write(to: url)
        XCTAssertThrowsError(try BaseModel.tokenizer(at: url)) { XCTAssertTrue("\($0)".contains("too long to derive merges"), "\($0)") }
    }

    /// Decoding gives back the text's bytes, special tokens as their text.
    func testDecodeInvertsEncode() throws {
        let t = try BaseModel.tokenizer(at: ModelCache.smolLM2)
        for s in ["Hello, world!", "<|im_start|>user\nPrivet, мир 👋🏽<|im_end|>", "  \t\n  x", "数字 12345"] {
            XCTAssertEqual(t.decode(t.encode(s)), Array(s.utf8), s.debugDescription)
        }
        XCTAssertEqual(t.special, SpecialTokens(bos: 1, eos: 2, pad: 2))
        XCTAssertEqual(t.vocabularySize, 49_152)
    }
}
