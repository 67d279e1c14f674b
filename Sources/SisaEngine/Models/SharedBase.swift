/// Which of an ensemble's members share one frozen base and can run in
/// lock-step (`EnsembleDecoder`, `EnsembleScoring`): inference copies of one
/// llama or GPT-2 base with the same configuration, whatever their adapters
/// (`LlamaDecoder.shareBase`, `GPT2Decoder.shareBase`).
enum SharedBase {
    /// Member indices in groups, in order of each group's first member: a
    /// group of several shares one frozen base; a model with weights of its
    /// own (a byte model, a fully fine-tuned shard) is a group alone.
    static func groups(_ models: [any LanguageModel]) -> [[Int]] {
        var groups: [[Int]] = []
        var taken = Set<Int>()
        for (i, m) in models.enumerated() where !taken.contains(i) {
            var group = [i]
            if let llama = m as? LlamaModel, llama.frozenPanels != nil {
                group = models.indices.filter { j in
                    !taken.contains(j) && (models[j] as? LlamaModel).map { LlamaDecoder.shareBase([llama, $0]) } == true
                }
            } else if let gpt2 = m as? GPT2Model, gpt2.frozenPanels != nil {
                group = models.indices.filter { j in
                    !taken.contains(j) && (models[j] as? GPT2Model).map { GPT2Decoder.shareBase([gpt2, $0]) } == true
                }
            }
            taken.formUnion(group)
            groups.append(group)
        }
        return groups
    }
}
