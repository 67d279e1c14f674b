import Foundation

/// `compare --trials N`: one comparison per disjoint forget set, and the
/// spread of what matters across them.
enum ComparisonTrials {
    /// The first trial's report, carrying every trial and the across-trial
    /// figures: mean and bootstrap interval (over trials) of stepsToReference
    /// and of the utility cost at that step, over the trials where the
    /// verdict is measurable and the exact level was reached. With a handful
    /// of trials a percentile bootstrap undercovers, and the trials share the
    /// models and the holdout: read the interval as a spread, not a guarantee.
    static func summarise(_ reports: [ComparisonReport], seed: UInt64) -> ComparisonReport {
        var top = reports[0]
        top.trials = reports
        let measurable = reports.filter { $0.verdict == "measurable" }
        top.trialsMeasurable = measurable.count
        let steps = measurable.compactMap { $0.approximate.stepsToReference }.map(Double.init)
        let costs = measurable.compactMap { $0.approximate.utilityCostAtReference }
        if !steps.isEmpty {
            top.stepsToReferenceMean = steps.reduce(0, +) / Double(steps.count)
            top.stepsToReferenceCI = Bootstrap.mean(steps, seed: seed &+ 11)
        }
        if !costs.isEmpty {
            top.utilityCostAtReferenceMean = costs.reduce(0, +) / Double(costs.count)
            top.utilityCostAtReferenceCI = Bootstrap.mean(costs, seed: seed &+ 12)
        }
        // The verdict over all trials: measurable only if every trial is.
        if measurable.count == reports.count {
            top.verdict = "measurable"
            top.verdictReason = "all \(reports.count) trials measurable; first trial: " + reports[0].verdictReason
        } else {
            // The top level's own figures are the first trial's; its step count
            // is not reported under an overall verdict of not measurable.
            top.approximate.stepsToReference = nil
            top.approximate.utilityCostAtReference = nil
            top.verdict = "not-measurable"
            top.verdictReason = "\(measurable.count) of \(reports.count) trials measurable (the across-trial figures use those); first trial: "
                + reports[0].verdictReason
        }
        return top
    }
}
