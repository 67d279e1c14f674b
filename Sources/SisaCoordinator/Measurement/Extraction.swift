import Foundation
import SisaEngine

/// Verbatim extraction: prompt with a record's first bytes, continue
/// greedily, and compare with the record's true continuation.
public enum Extraction {
    public struct Options: Codable, Sendable {
        /// Prompt length in bytes (at most half the record, so something is left to extract).
        public var promptBytes = 32
        /// Bytes generated and compared.
        public var continuationBytes = 32
        public init() {}
    }

    /// Prompt and true continuation of a record; nil for a record under 2 bytes.
    public static func split(_ text: [UInt8], _ o: Options) -> (prompt: [UInt8], truth: [UInt8])? {
        guard text.count >= 2 else { return nil }
        let k = min(o.promptBytes, text.count / 2)
        return (Array(text[..<k]), Array(text[k...].prefix(o.continuationBytes)))
    }

    /// Exact match: the generation reproduces the whole true continuation.
    public static func exactMatch(generated: [UInt8], truth: [UInt8]) -> Bool {
        generated.count >= truth.count && Array(generated.prefix(truth.count)) == truth
    }

    /// Longest common subsequence of the generation (cut to the truth's
    /// length) and the truth, divided by the truth's length: 1 is verbatim.
    public static func lcsRatio(generated: [UInt8], truth: [UInt8]) -> Double {
        guard !truth.isEmpty else { return 1 }
        let g = Array(generated.prefix(truth.count))
        var prev = [Int](repeating: 0, count: truth.count + 1)
        var cur = prev
        for a in g {
            for (j, b) in truth.enumerated() {
                cur[j + 1] = a == b ? prev[j] + 1 : max(prev[j + 1], cur[j])
            }
            swap(&prev, &cur)
        }
        return Double(prev[truth.count]) / Double(truth.count)
    }

    public struct Result: Codable, Sendable {
        public var exactMatchRate: Double
        public var exactMatchRateCI: Interval?
        public var lcsRatio: Double
        public var lcsRatioCI: Interval?
    }

    /// Greedy continuations under an ensemble (mean of probabilities), scored
    /// per record, with bootstrap intervals over records; through `filter` if given.
    public static func measure(_ ensemble: Ensemble, records: [[UInt8]], options o: Options, seed: UInt64 = 0,
                               filter: OutputFilter? = nil) -> Result? {
        var matches: [Double] = [], ratios: [Double] = []
        for text in records {
            guard let (prompt, truth) = split(text, o) else { continue }
            var sampler = Sampler(temperature: 0)
            let gen = ensemble.generate(prompt: prompt, maxTokens: truth.count, aggregation: .mean, sampler: &sampler,
                                        filter: filter, maxBytes: truth.count)
            matches.append(exactMatch(generated: gen, truth: truth) ? 1 : 0)
            ratios.append(lcsRatio(generated: gen, truth: truth))
        }
        guard !matches.isEmpty else { return nil }
        return Result(exactMatchRate: matches.reduce(0, +) / Double(matches.count),
                      exactMatchRateCI: Bootstrap.mean(matches, seed: seed),
                      lcsRatio: ratios.reduce(0, +) / Double(ratios.count),
                      lcsRatioCI: Bootstrap.mean(ratios, seed: seed &+ 1))
    }
}
