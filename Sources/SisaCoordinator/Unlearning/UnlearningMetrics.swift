import Foundation

/// Measures of how much a model still "knows" forget records (REFERENCE.md §3).
public enum UnlearningMetrics {
    /// LOSS membership inference: AUC of separating members from non-members
    /// by NLL (lower NLL = more likely a member). P(member < non-member) plus
    /// half the ties; 0.5 means indistinguishable.
    public static func lossAUC(members: [Double], nonMembers: [Double]) -> Double {
        MembershipInference.auc(members: members.map { .init($0, group: "") }, nonMembers: nonMembers.map { .init($0, group: "") })
    }

    /// Exposure of a record against a population of held-out records of its
    /// group: -log2 of the fraction of the population whose NLL is at most the
    /// record's. When no held-out record is that likely the fraction is taken
    /// as 1/(n+1), so exposure is capped at log2(n+1).
    public static func exposure(nll: Double, population: [Double]) -> Double {
        guard !population.isEmpty else { return .nan }
        let atMost = population.filter { $0 <= nll }.count
        let fraction = atMost > 0 ? Double(atMost) / Double(population.count) : 1 / Double(population.count + 1)
        return -log2(fraction)
    }

    /// Privacy leak as in MUSE: (AUC_M - AUC_exact) / AUC_exact.
    public static func privacyLeak(auc: Double, exactAUC: Double) -> Double { (auc - exactAUC) / exactAUC }

    /// Likelihood gap against the exactly retrained model: NLL_exact - NLL_M
    /// (0 is perfect; positive: M still finds the record more likely).
    public static func likelihoodGap(nll: Double, exactNLL: Double) -> Double { exactNLL - nll }
}
