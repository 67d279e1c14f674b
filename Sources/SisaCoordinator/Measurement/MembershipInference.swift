import Foundation

/// Membership-inference statistics over attack scores where **lower means
/// more likely a member** (an NLL, or a calibrated NLL difference).
///
/// The raw LOSS attack scores a record by its NLL. The calibrated attack
/// (difficulty calibration: Watson et al. 2022; offline LiRA, Carlini et al.
/// 2022) subtracts the record's mean NLL under reference models that never
/// saw it, so that hard-to-predict text no longer looks like a non-member.
public enum MembershipInference {
    /// A scored record; AUCs compare members only with non-members of the same group.
    public struct Scored: Sendable {
        public var score: Double
        public var group: String
        public init(_ score: Double, group: String) {
            self.score = score
            self.group = group
        }
    }

    /// P(member score < non-member score) + half the ties, over (member,
    /// non-member) pairs of the same group, pooled. 0.5: indistinguishable.
    /// NaN when there is no such pair.
    public static func auc(members: [Scored], nonMembers: [Scored]) -> Double {
        var byGroup: [String: [Double]] = [:]
        for n in nonMembers { byGroup[n.group, default: []].append(n.score) }
        for k in byGroup.keys { byGroup[k]!.sort() }
        var wins = 0.0, pairs = 0.0
        for m in members {
            guard let pop = byGroup[m.group], !pop.isEmpty else { continue }
            let below = lowerBound(pop, m.score)         // non-members with a lower score
            let upTo = upperBound(pop, m.score)          // ... lower or equal
            wins += Double(pop.count - upTo) + 0.5 * Double(upTo - below)
            pairs += Double(pop.count)
        }
        return pairs > 0 ? wins / pairs : .nan
    }

    /// The false-positive rate a population of n non-members can resolve:
    /// 1%, or 1/n when there are fewer than 100 of them.
    public static func lowFPR(nonMembers n: Int) -> Double { n >= 100 ? 0.01 : 1 / Double(max(n, 1)) }

    /// True-positive rate at false-positive rate at most `fpr`: a record is
    /// called a member when its score is below a threshold that at most
    /// floor(fpr * n) non-members fall below. Pooled over groups.
    public static func tpr(members: [Double], nonMembers: [Double], fpr: Double) -> Double {
        guard !members.isEmpty, !nonMembers.isEmpty else { return .nan }
        let pop = nonMembers.sorted()
        let allowed = Int((fpr * Double(pop.count) + 1e-9).rounded(.down))
        let threshold = allowed < pop.count ? pop[allowed] : .infinity
        // Strictly below: a member tied with the threshold is not called, so
        // at most `allowed` non-members are.
        return Double(members.filter { $0 < threshold }.count) / Double(members.count)
    }

    /// Calibrated score: NLL under the model that may have seen the record,
    /// minus the mean NLL under reference models that did not. Nil without references.
    public static func calibrated(own: Double, references: [Double]) -> Double? {
        guard !references.isEmpty else { return nil }
        return own - references.reduce(0, +) / Double(references.count)
    }

    /// AUC, TPR at a low FPR, and their bootstrap intervals (members and
    /// non-members resampled separately).
    public struct Attack: Codable, Sendable {
        public var auc: Double?
        public var aucCI: Interval?
        public var fpr: Double?
        public var tpr: Double?
        public var tprCI: Interval?
    }

    public static func attack(members: [Scored], nonMembers: [Scored], seed: UInt64 = 0) -> Attack {
        let a = auc(members: members, nonMembers: nonMembers)
        guard a.isFinite else { return Attack() }
        let fpr = lowFPR(nonMembers: nonMembers.count)
        let t = tpr(members: members.map(\.score), nonMembers: nonMembers.map(\.score), fpr: fpr)
        let aucCI = Bootstrap.interval(counts: [members.count, nonMembers.count], seed: seed) { idx in
            auc(members: idx[0].map { members[$0] }, nonMembers: idx[1].map { nonMembers[$0] })
        }
        let tprCI = Bootstrap.interval(counts: [members.count, nonMembers.count], seed: seed &+ 1) { idx in
            tpr(members: idx[0].map { members[$0].score }, nonMembers: idx[1].map { nonMembers[$0].score }, fpr: fpr)
        }
        return Attack(auc: a, aucCI: aucCI, fpr: fpr, tpr: t, tprCI: tprCI)
    }

    static func lowerBound(_ a: [Double], _ x: Double) -> Int {
        var lo = 0, hi = a.count
        while lo < hi { let mid = (lo + hi) / 2; if a[mid] < x { lo = mid + 1 } else { hi = mid } }
        return lo
    }

    static func upperBound(_ a: [Double], _ x: Double) -> Int {
        var lo = 0, hi = a.count
        while lo < hi { let mid = (lo + hi) / 2; if a[mid] <= x { lo = mid + 1 } else { hi = mid } }
        return lo
    }
}
