import Foundation
import SisaEngine
import XCTest

/// The BPE tokenizer against Hugging Face's `tokenizers`, on ids recorded
/// once in Fixtures/tokenizer-*.json (made by Fixtures/generate/tokenizer_fixtures.py):
/// hand-made hard cases, and every record of Debian's English, German,
/// Russian and Chinese fortunes.
final class TokenizerParityTests: XCTestCase {
    private func hardCases(_ t: BPETokenizer, fixture: String) throws {
        let f = try Fixtures.json(fixture)
        let cases = try XCTUnwrap(f["hardCases"] as? [[String: Any]])
        XCTAssertGreaterThan(cases.count, 40)
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            let ids = try XCTUnwrap(c["ids"] as? [Int]).map(Int32.init)
            XCTAssertEqual(t.encode(text), ids, "\(fixture): \(text.debugDescription)")
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
        let f = try Fixtures.json(fixture)
        let files = try XCTUnwrap(f["files"] as? [[String: Any]])
        var records = 0, mismatches: [String] = []
        var perCorpus: [String: Int] = [:]
        for file in files {
            let path = try XCTUnwrap(file["path"] as? String)
            let recs = try fortuneRecords(path)
            XCTAssertEqual(recs.count, file["records"] as? Int, "\(path): another version of the corpus")
            XCTAssertEqual(Digest.sha256Hex(Array(recs.joined(separator: "\0").utf8)), file["textSHA256"] as? String,
                           "\(path): another version of the corpus")
            let expected = Array(try XCTUnwrap(file["ids"] as? String))
            for (i, r) in recs.enumerated() where String(expected[(8 * i)..<(8 * i + 8)]) != idsHash(t.encode(r)) {
                mismatches.append("\(path) record \(i): \(r.prefix(80).debugDescription)")
            }
            records += recs.count
            perCorpus[file["corpus"] as? String ?? "?", default: 0] += recs.count
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
