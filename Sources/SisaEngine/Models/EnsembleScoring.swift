/// Scores of the same sequences under each of an ensemble's members.
///
/// Members over one frozen base (a base store's shards) score in
/// lock-step: each batch of windows runs once for all of them, every base
/// product over all their rows, so the base is read once per batch instead
/// of once per shard. A request scoring a few short texts is bound by that
/// read. Any other member scores alone. Either way member i's scores are,
/// bit for bit, `models[i].score(sequences:)`.
public enum EnsembleScoring {
    public static func score(_ models: [any LanguageModel], sequences: [[Int32]], perToken: Bool = false, batchSize: Int = 16,
                             pad: Int32 = 0) -> [[RecordScore]] {
        var out = [[RecordScore]](repeating: [], count: models.count)
        for group in SharedBase.groups(models) {
            let lead = models[group[0]]
            guard group.count > 1, let lockstep = lead as? any LockstepForward else {
                for i in group { out[i] = models[i].score(sequences: sequences, perToken: perToken, batchSize: batchSize, pad: pad) }
                continue
            }
            // The first member's instance runs the forward (its activations), with every member's adapter.
            let scores = lockstep.score(sequences: sequences, adapters: group.map { models[$0].adapter }, perToken: perToken,
                                        batchSize: batchSize, pad: pad)
            for (k, i) in group.enumerated() { out[i] = scores[k] }
        }
        return out
    }
}
