import Foundation
import SisaEngine

/// `sisa audit`: is membership of these records detectable in the current
/// ensemble? Run after a deletion, it should say no.
///
/// Each record is scored with the reference-calibrated attack: its NLL under
/// the model of the shard its placement names, minus its mean NLL under the
/// other shards' models, which never saw it. Holdout records of the same
/// groups, scored the same way with their own placement shards, are the
/// non-member population. A deleted record's shard was retrained without it,
/// so after an exact deletion its score should look like a holdout record's.
public struct AuditOptions: Sendable {
    /// Records in the store, by id (a deleted record needs its text in `texts`).
    public var ids: [String] = []
    /// Every live training record of this group.
    public var group: String?
    /// Texts given by the caller (for example the deleted records' own
    /// file), by id; these override the catalog.
    public var texts: [String: [UInt8]] = [:]
    public var seed: UInt64 = 0
    public init() {}
}

public struct AuditRecord: Codable, Sendable {
    public let id: String
    public let group: String
    public let shard: Int
    public let status: RecordStatus
    /// Mean NLL per token under the record's own shard, and the mean of the other shards'.
    public let ownNLL: Double
    public let referenceNLL: Double
    /// ownNLL - referenceNLL: lower looks more like a member.
    public let calibratedScore: Double
    /// (k + 1) / (N + 1), k of the N holdout records scoring at most this
    /// record's score: a permutation p-value for "never seen" (small = member-like).
    public let holdoutFractionAtMost: Double
}

public struct AuditReport: Codable, Sendable {
    /// "detectable" when the calibrated AUC's 95% interval lies above 0.5
    /// (with fewer than `minimumForAUC` records: when a record's score is below
    /// all but 5%/n of the holdout's), else "not-detectable".
    public static let minimumForAUC = 5
    public let verdict: String
    public let verdictReason: String
    public let records: [AuditRecord]
    public let population: Int
    public let populationGroups: [String]
    public let calibratedAUC: Double?
    public let calibratedAUCCI: Interval?
    public let calibratedTPR: Double?
    public let calibratedTPRCI: Interval?
    public let lowFPR: Double?
    /// The raw LOSS attack (own-shard NLL alone) on the same records, for comparison.
    public let rawAUC: Double?
    public let rawAUCCI: Interval?
    public let shards: [Int]
}

extension Store {
    public func audit(_ o: AuditOptions, pool: WorkerPool = .shared) throws -> AuditReport {
        // The records, with their texts.
        var targets: [(info: RecordInfo, text: [UInt8])] = []
        if let g = o.group {
            let recs = try catalog.records(group: g).filter { !$0.holdout }
            guard !recs.isEmpty else { throw CoordinatorError.invalidInput("group \(g) has no live training records") }
            // One query for the group's texts, not one per record.
            let stored = Dictionary(uniqueKeysWithValues: try catalog.texts(holdout: false, group: g).map { ($0.id, $0.text) })
            for r in recs { targets.append((r, o.texts[r.id] ?? stored[r.id] ?? [])) }
        }
        var unknown: [String] = []
        for id in o.ids {
            guard let r = try catalog.record(id: id) else { unknown.append(id); continue }
            guard let text = try o.texts[id] ?? catalog.text(id: id) else {
                throw CoordinatorError.invalidInput("record \(id) is deleted and its text is gone: give it with --file FILE.jsonl (fields id, text)")
            }
            targets.append((r, text))
        }
        guard unknown.isEmpty else { throw CoordinatorError.unknownIDs(unknown) }
        // A record named twice (by --group and --ids) counts once.
        var seenIDs = Set<String>()
        targets = targets.filter { seenIDs.insert($0.info.id).inserted }
        guard !targets.isEmpty else { throw CoordinatorError.invalidInput("nothing to audit: give --ids, --group or --file") }
        if let holdout = targets.first(where: { $0.info.holdout }) {
            throw CoordinatorError.invalidInput("record \(holdout.info.id) is a holdout record: it was never trained on")
        }

        let ensemble = try Ensemble(store: self, pool: pool)
        let answering = ensemble.models.map(\.shard)
        guard answering.count >= 2 else {
            throw CoordinatorError.invalidInput("the calibrated attack needs at least two answering shards (reference models that never saw a record)")
        }
        for t in targets where !answering.contains(t.info.shard) {
            throw CoordinatorError.invalidInput("record \(t.info.id): its shard \(t.info.shard) cannot answer (quarantined or untrained); run `sisa train`")
        }
        let groups = Set(targets.map(\.info.group))
        var holdout = try catalog.texts(holdout: true).filter { answering.contains($0.shard) }
        let sameGroup = holdout.filter { groups.contains($0.group) }
        // Groups are matched only if every audited group has holdout records.
        let pooled = !groups.allSatisfy { g in sameGroup.contains { $0.group == g } }
        if !pooled { holdout = sameGroup }
        guard !holdout.isEmpty else {
            throw CoordinatorError.invalidInput("the store has no holdout records to compare with: ingest some with --holdout FRACTION")
        }

        let texts = targets.map(\.text) + holdout.map(\.text)
        let shards = targets.map(\.info.shard) + holdout.map(\.shard)
        var perShard: [Int: [RecordScore]] = [:]
        for (s, m) in ensemble.models { perShard[s] = m.score(texts) }
        func own(_ i: Int) -> Double { perShard[shards[i]]![i].nll }
        func reference(_ i: Int) -> Double {
            let refs = answering.filter { $0 != shards[i] }.map { perShard[$0]![i].nll }
            return refs.reduce(0, +) / Double(refs.count)
        }
        // With no holdout in the records' groups, every holdout record is the population and groups are not matched.
        func group(_ i: Int) -> String { pooled ? "" : (i < targets.count ? targets[i].info.group : holdout[i - targets.count].group) }
        let members = targets.indices.map { MembershipInference.Scored(own($0) - reference($0), group: group($0)) }
        let nonMembers = holdout.indices.map { j -> MembershipInference.Scored in
            let i = targets.count + j
            return .init(own(i) - reference(i), group: group(i))
        }
        let cal = MembershipInference.attack(members: members, nonMembers: nonMembers, seed: o.seed)
        let raw = MembershipInference.attack(members: targets.indices.map { .init(own($0), group: group($0)) },
                                             nonMembers: holdout.indices.map { .init(own(targets.count + $0), group: group(targets.count + $0)) },
                                             seed: o.seed &+ 1)
        let records = targets.enumerated().map { i, t -> AuditRecord in
            let pop = nonMembers.filter { $0.group == members[i].group }.map(\.score)
            return AuditRecord(id: t.info.id, group: t.info.group, shard: t.info.shard, status: t.info.status,
                               ownNLL: own(i), referenceNLL: reference(i), calibratedScore: members[i].score,
                               holdoutFractionAtMost: Double(pop.filter { $0 <= members[i].score }.count + 1) / Double(pop.count + 1))
        }
        // An AUC's interval needs several records to say anything about them:
        // with one record it only measures where that record sits among the
        // holdout. Below `minimumForAUC` records, each record is tested on its
        // own: its score must be below all but alpha/n of the holdout's.
        let detectable: Bool
        var reason: String
        if targets.count >= AuditReport.minimumForAUC, let auc = cal.auc, let ci = cal.aucCI {
            detectable = ci.low > 0.5
            reason = String(format: "calibrated membership AUC %.3f, 95%% interval %@, against %d holdout records", auc, ci.description, holdout.count)
        } else {
            let alpha = 0.05 / Double(targets.count)
            let p = records.map(\.holdoutFractionAtMost).min() ?? 1
            detectable = p <= alpha
            reason = String(format: "fewer than %d records, so each is tested alone against %d holdout records: smallest p-value %.2f%% (detectable at <= %.2f%%)",
                            AuditReport.minimumForAUC, holdout.count, 100 * p, 100 * alpha)
        }
        reason += detectable ? ": the ensemble still tells these records from records it never saw"
                             : ": the ensemble does not tell these records from records it never saw"
        if pooled { reason += " (not every group of \(groups.sorted().joined(separator: ", ")) has holdout records: compared with every group's holdout)" }
        return AuditReport(verdict: detectable ? "detectable" : "not-detectable", verdictReason: reason, records: records,
                           population: holdout.count, populationGroups: Set(holdout.map(\.group)).sorted(),
                           calibratedAUC: cal.auc, calibratedAUCCI: cal.aucCI, calibratedTPR: cal.tpr, calibratedTPRCI: cal.tprCI,
                           lowFPR: cal.fpr, rawAUC: raw.auc, rawAUCCI: raw.aucCI, shards: answering)
    }
}
