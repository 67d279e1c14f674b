/// Which of an ensemble's members share one frozen base and can run in
/// lock-step (`EnsembleDecoder`, `EnsembleScoring`): inference copies of one
/// llama or GPT-2 base with the same configuration, whatever their adapters.
public enum SharedBase {
    /// Whether `models` run over the same frozen weights and packed panels,
    /// with one configuration and context. Their kernels may differ: every
    /// path gives the same bits.
    public static func shared(_ models: [LlamaModel]) -> Bool {
        guard let first = models.first, let panels = first.frozenPanels else { return false }
        return models.allSatisfy {
            $0.weights.values === first.weights.values && $0.frozenPanels === panels && $0.config == first.config
                && $0.context == first.context
        }
    }

    /// The same for GPT-2 bases.
    public static func shared(_ models: [GPT2Model]) -> Bool {
        guard let first = models.first, let panels = first.frozenPanels else { return false }
        return models.allSatisfy { $0.params === first.params && $0.frozenPanels === panels && $0.config == first.config }
    }

    /// Member indices in groups, in order of each group's first member: a
    /// group of several shares one frozen base; a model with weights of its
    /// own (a byte model, a fully fine-tuned shard) is a group alone.
    static func groups(_ models: [any LanguageModel]) -> [[Int]] {
        var groups: [[Int]] = []
        var taken = Set<Int>()
        for (i, m) in models.enumerated() where !taken.contains(i) {
            let rest = models.indices[i...].filter { !taken.contains($0) }
            var group = [i]
            if let llama = m as? LlamaModel {
                group = rest.filter { j in (models[j] as? LlamaModel).map { shared([llama, $0]) } == true }
            } else if let gpt2 = m as? GPT2Model {
                group = rest.filter { j in (models[j] as? GPT2Model).map { shared([gpt2, $0]) } == true }
            }
            if group.isEmpty { group = [i] }  // weights of its own (not frozen): alone
            taken.formUnion(group)
            groups.append(group)
        }
        return groups
    }
}
