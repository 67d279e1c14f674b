import Foundation

/// Whether a comparison has anything to measure: if the original ensemble
/// does not treat the forget records differently from records it never saw,
/// "steps to reach the exact model" and every gap are noise.
///
/// Not measurable with a single forget record, when the calibrated
/// membership AUC's 95% interval does not lie above 0.5, or when the interval of the original-vs-exact likelihood gap (paired
/// bootstrap over the forget records) does not lie above 0. A forget group
/// without holdout records (canaries, for example) is judged on the gap alone.
public struct Verdict: Sendable {
    public let measurable: Bool
    public let reason: String

    /// A single forget record has no interval over records to speak of.
    public static let minimumRecords = 2

    public static func judge(original m: ModelMetrics, forgetRecords: Int) -> Verdict {
        var problems: [String] = []
        if forgetRecords < minimumRecords {
            problems.append("\(forgetRecords) forget record(s): intervals over records need at least \(minimumRecords)")
        }
        var evidence: [String] = []
        if let auc = m.forgetCalibratedAUC, let ci = m.forgetCalibratedAUCCI {
            let text = String(format: "calibrated membership AUC %.3f, 95%% interval %@", auc, ci.description)
            if ci.low <= 0.5 { problems.append(text + " does not lie above 0.5: forget records are not more member-like than holdout records") } else { evidence.append(text) }
        } else if m.forgetCalibratedAUC != nil {
            problems.append("too few records for an interval of the calibrated membership AUC")
        }
        if let gap = m.meanLikelihoodGap, let ci = m.meanLikelihoodGapCI {
            let text = String(format: "original-vs-exact NLL gap %+.4f nats/token, 95%% interval %@", gap, ci.description)
            if ci.low <= 0 { problems.append(text + " does not lie above 0: the exact model does not find them less likely") } else { evidence.append(text) }
        } else {
            problems.append("no interval for the original-vs-exact gap")
        }
        if problems.isEmpty {
            return Verdict(measurable: true, reason: "the original ensemble has measurably memorised the forget set: " + evidence.joined(separator: "; "))
        }
        return Verdict(measurable: false, reason: "nothing measurable to unlearn: " + problems.joined(separator: "; ")
                       + ". stepsToReference is not meaningful; train longer, forget more records, or plant canaries (sisa canaries)")
    }
}
