import Foundation
import SisaEngine

/// What the challenge asks of a model, defined for language models.
///
/// - A record's **confidence** is the mean, over its predicted tokens, of
///   log p − log(1 − p), where p is the ensemble's probability of the true
///   next token (the shards' softmax outputs averaged) and 1 − p the sum of
///   the other tokens' probabilities. This is the logit scaling LiRA and the
///   challenge apply to a classifier's true class, applied per token.
/// - **Accuracy** is next-token top-1 accuracy: the share of predicted tokens
///   (pooled over the records) whose most probable token under the ensemble
///   is the true one.
///
/// A record is `<sep> tokens <sep>` cut to the model's context + 1 tokens,
/// as training sees it.
public struct ChallengeMeasures: Sendable {
    public let confidences: [Double]
    public let correct: Int
    public let tokens: Int
    public var accuracy: Double { tokens == 0 ? .nan : Double(correct) / Double(tokens) }
}

extension Ensemble {
    public func challengeMeasures(_ records: [[UInt8]]) -> ChallengeMeasures {
        let lm = models[0].model.model
        let V = lm.vocabularySize, context = lm.context
        let seqs = records.map { Array(codec.sequence($0).prefix(context + 1)) }
        var confidences = [Double](repeating: .nan, count: records.count)
        var correct = 0, tokens = 0
        // Batches of rows whose averaged distributions fit in about 16 M doubles.
        let widest = max(1, seqs.map { $0.count - 1 }.max() ?? 1)
        let rowsPerBatch = max(1, min(16, (16 << 20) / (widest * V)))
        var start = 0
        while start < seqs.count {
            let chunk = Array(seqs[start..<min(seqs.count, start + rowsPerBatch)])
            let T = max(1, chunk.map { $0.count - 1 }.max()!)
            var mean = [Double](repeating: 0, count: chunk.count * T * V)
            let share = 1 / Double(models.count)
            var e = [Double](repeating: 0, count: V)
            for (_, m) in models {
                m.model.forward(Batch(rows: chunk, T: T, pad: codec.separator))
                m.model.withLastLogits { logits in
                    for (r, row) in chunk.enumerated() {
                        for t in 0..<max(0, row.count - 1) {
                            // This shard's softmax, each exp computed once, added with weight 1/shards.
                            let at = (r * T + t) * V
                            var top = -Float.infinity
                            for v in 0..<V { top = max(top, logits[at + v]) }
                            var sum = 0.0
                            for v in 0..<V {
                                e[v] = Foundation.exp(Double(logits[at + v] - top))
                                sum += e[v]
                            }
                            let scale = share / sum
                            for v in 0..<V { mean[at + v] += e[v] * scale }
                        }
                    }
                }
            }
            for (r, row) in chunk.enumerated() where row.count > 1 {
                var total = 0.0
                for t in 0..<(row.count - 1) {
                    let at = (r * T + t) * V, target = Int(row[t + 1])
                    var best = 0, wrong = 0.0
                    for v in 0..<V {
                        if mean[at + v] > mean[at + best] { best = v }
                        if v != target { wrong += mean[at + v] }
                    }
                    // The challenge's guard against log 0.
                    total += Foundation.log(mean[at + target] + 1e-45) - Foundation.log(wrong + 1e-45)
                    if best == target { correct += 1 }
                    tokens += 1
                }
                confidences[start + r] = total / Double(row.count - 1)
            }
            start += chunk.count
        }
        return ChallengeMeasures(confidences: confidences, correct: correct, tokens: tokens)
    }
}
