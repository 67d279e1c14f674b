import Foundation
import SisaEngine

/// Exposure of canaries under model ensembles: each canary's true text and
/// its candidate texts (other secrets of the same format) are scored once
/// per model, and any ensemble's mixture is formed from those scores.
public struct CanaryExposure {
    public let canaries: [Canary]
    public let candidates: Int
    /// Per canary: the true text, then `candidates` candidate texts.
    let texts: [[UInt8]]

    public init(canaries: [Canary], candidates: Int, seed: UInt64) {
        self.canaries = canaries
        self.candidates = candidates
        texts = canaries.flatMap { c in
            [Array(c.text.utf8)] + Exposure.candidates(for: c, count: candidates, seed: seed).map { c.with(secret: $0) }
        }
    }

    /// The distinct canaries among records (in order of first appearance), with the shard of the first.
    public static func find(_ records: [(shard: Int, text: [UInt8])]) -> [(canary: Canary, shard: Int)] {
        var seen = Set<String>()
        return records.compactMap { r in
            guard let c = Canary.parse(r.text), seen.insert(c.text).inserted else { return nil }
            return (c, r.shard)
        }
    }

    /// Per-token scores of every text under one model.
    public func score(_ model: ShardModel) -> [RecordScore] { model.score(texts, perToken: true) }

    /// Exposure of each canary under the mixture of the given models' scores (one model: that model alone).
    public func estimates(_ perModel: [[RecordScore]]) -> [Exposure.Estimate] {
        let mix = perModel.count == 1 ? perModel[0] : Ensemble.mixture(perModel)
        let total = mix.map { $0.nll * Double($0.tokens) }
        let stride = candidates + 1
        return canaries.indices.map { i in
            Exposure.estimate(nll: total[i * stride], candidateNLL: Array(total[(i * stride + 1)..<((i + 1) * stride)]),
                              spaceBits: canaries[i].secretSpaceBits)
        }
    }

    static func mean(_ e: [Exposure.Estimate]) -> Double { e.reduce(0) { $0 + $1.exposure } / Double(e.count) }

    /// `compare`'s canary figures: nil when the forget set holds no canary.
    static func measure(forget: [(shard: Int, text: [UInt8])], answering: [Int], original: [Int: ShardModel],
                        exact: [Int: ShardModel], approximate: [Int: ShardModel], candidates: Int, seed: UInt64,
                        log: ((String) -> Void)?) throws -> CanaryExposureReport? {
        let found = find(forget)
        guard !found.isEmpty else { return nil }
        log?("canary exposure: \(found.count) canaries against \(candidates) random secrets each")
        let ce = CanaryExposure(canaries: found.map(\.canary), candidates: candidates, seed: seed)
        var orig: [Int: [RecordScore]] = [:]
        for s in answering { orig[s] = ce.score(original[s]!) }
        func state(_ replaced: [Int: ShardModel]) -> [[RecordScore]] {
            answering.map { s in replaced[s].map { ce.score($0) } ?? orig[s]! }
        }
        // The owning shard alone, per canary: one set of estimates per owning shard.
        var byShard: [Int: [Exposure.Estimate]] = [:]
        for s in Set(found.map(\.shard)) { byShard[s] = ce.estimates([orig[s] ?? orig[answering[0]]!]) }
        let own = found.indices.map { byShard[found[$0].shard]![$0].exposure }
        return CanaryExposureReport(canaries: found.count, secretSpaceBits: found[0].canary.secretSpaceBits, candidates: candidates,
                                    original: mean(ce.estimates(answering.map { orig[$0]! })),
                                    exact: mean(ce.estimates(state(exact))),
                                    approximate: mean(ce.estimates(state(approximate))),
                                    originalOwnShard: own.reduce(0, +) / Double(own.count))
    }
}
