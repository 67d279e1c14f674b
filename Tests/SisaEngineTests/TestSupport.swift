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
