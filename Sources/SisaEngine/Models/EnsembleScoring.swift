/// Scores of the same sequences under each of an ensemble's members.
///
/// Members over one frozen Llama base (a base store's shards) score in
/// lock-step: each batch of windows runs once for all of them, every base
/// product over all their rows, so the base is read once per batch instead
/// of once per shard. A request scoring a few short texts is bound by that
/// read. Any other member scores alone. Either way member i's scores are,
/// bit for bit, `models[i].score(sequences:)`.
public enum EnsembleScoring {
    public static func score(_ models: [any LanguageModel], sequences: [[Int32]], perToken: Bool = false, batchSize: Int = 16,
                             pad: Int32 = 0) -> [[RecordScore]] {
        var out = [[RecordScore]](repeating: [], count: models.count)
        var taken = Set<Int>()
        for (i, m) in models.enumerated() where !taken.contains(i) {
            var peers = [i]
            if let llama = m as? LlamaModel, llama.frozenPanels != nil {
                peers = models.indices.filter { j in
                    !taken.contains(j) && (models[j] as? LlamaModel).map { LlamaDecoder.shareBase([llama, $0]) } == true
                }
            }
            taken.formUnion(peers)
            if peers.count == 1 {
                out[i] = m.score(sequences: sequences, perToken: perToken, batchSize: batchSize, pad: pad)
                continue
            }
            // The first member's instance runs the forward (its activations), with every peer's adapter.
            let adapters = peers.map { (models[$0] as! LlamaModel).adapter }
            let scores = (m as! LlamaModel).score(sequences: sequences, adapters: adapters, perToken: perToken, batchSize: batchSize, pad: pad)
            for (k, j) in peers.enumerated() { out[j] = scores[k] }
        }
        return out
    }
}
