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
    /// Records are read and scored `pageSize` at a time (keyset pages), so a
    /// group of a million records costs a few numbers per record in memory,
    /// never all of their texts.
    public func audit(_ o: AuditOptions, pool: WorkerPool = .shared, pageSize: Int = 4096) throws -> AuditReport {
        precondition(pageSize > 0)
        // The records named by --ids (their texts may come from the caller).
        var named: [(id: String, group: String, shard: Int, status: RecordStatus, text: [UInt8])] = []
        var unknown: [String] = []
        var seenIDs = Set<String>()
        for id in o.ids where seenIDs.insert(id).inserted {
            guard let r = try catalog.record(id: id) else { unknown.append(id); continue }
            guard let text = try o.texts[id] ?? catalog.text(id: id) else {
                throw CoordinatorError.invalidInput("record \(id) is deleted and its text is gone: give it with --file FILE.jsonl (fields id, text)")
            }
            if r.holdout { throw CoordinatorError.invalidInput("record \(id) is a holdout record: it was never trained on") }
            // A record named twice (by --group and --ids) counts once, where --group puts it.
            if let g = o.group, r.group == g, r.status == .live { continue }
            named.append((r.id, r.group, r.shard, r.status, text))
        }
        guard unknown.isEmpty else { throw CoordinatorError.unknownIDs(unknown) }
        if let g = o.group, try catalog.textsPage(holdout: false, group: g, afterSeq: 0, limit: 1).isEmpty {
            throw CoordinatorError.invalidInput("group \(g) has no live training records")
        }
        guard o.group != nil || !named.isEmpty else { throw CoordinatorError.invalidInput("nothing to audit: give --ids, --group or --file") }
        let ensemble = try Ensemble(store: self, pool: pool)
        let answering = ensemble.models.map(\.shard)
        /// A record with its NLL under its own shard and the mean of the others'.
        struct Scored {
            let id: String, group: String, shard: Int, status: RecordStatus
            let own: Double, reference: Double
        }
        func score(_ page: [(id: String, group: String, shard: Int, status: RecordStatus, text: [UInt8])]) -> [Scored] {
            guard !page.isEmpty else { return [] }
            let texts = page.map(\.text)
            let perShard = Dictionary(uniqueKeysWithValues: ensemble.models.map { ($0.shard, $0.model.score(texts)) })
            return page.enumerated().map { i, r in
                let refs = answering.filter { $0 != r.shard }.map { perShard[$0]![i].nll }
                return Scored(id: r.id, group: r.group, shard: r.shard, status: r.status,
                              own: perShard[r.shard]![i].nll, reference: refs.reduce(0, +) / Double(refs.count))
            }
        }
        func checkAnswering(_ id: String, _ shard: Int) throws {
            guard answering.count >= 2 else {
                throw CoordinatorError.invalidInput("the calibrated attack needs at least two answering shards (reference models that never saw a record)")
            }
            guard answering.contains(shard) else {
                throw CoordinatorError.invalidInput("record \(id): its shard \(shard) cannot answer (quarantined or untrained); run `sisa train`")
            }
        }

        for r in named { try checkAnswering(r.id, r.shard) }
        // --group's records, a page at a time, then the others named.
        var targets: [Scored] = []
        if let g = o.group {
            var after = 0
            while true {
                let page = try catalog.textsPage(holdout: false, group: g, afterSeq: after, limit: pageSize)
                guard let last = page.last else { break }
                after = last.seq
                for r in page { try checkAnswering(r.id, r.shard) }
                targets += score(page.map { ($0.id, $0.group, $0.shard, RecordStatus.live, o.texts[$0.id] ?? $0.text) })
            }
        }
        targets += score(named)
        guard !targets.isEmpty else { throw CoordinatorError.invalidInput("nothing to audit: give --ids, --group or --file") }

        let groups = Set(targets.map(\.group))
        var holdout: [Scored] = []
        var after = 0
        while true {
            let page = try catalog.textsPage(holdout: true, afterSeq: after, limit: pageSize)
            guard let last = page.last else { break }
            after = last.seq
            holdout += score(page.filter { answering.contains($0.shard) }.map { ($0.id, $0.group, $0.shard, RecordStatus.live, $0.text) })
        }
        let sameGroup = holdout.filter { groups.contains($0.group) }
        // Groups are matched only if every audited group has holdout records.
        let holdoutGroups = Set(sameGroup.map(\.group))
        let pooled = !groups.allSatisfy { holdoutGroups.contains($0) }
        if !pooled { holdout = sameGroup }
        guard !holdout.isEmpty else {
            throw CoordinatorError.invalidInput("the store has no holdout records to compare with: ingest some with --holdout FRACTION")
        }

        // With no holdout in the records' groups, every holdout record is the population and groups are not matched.
        func group(_ r: Scored) -> String { pooled ? "" : r.group }
        let members = targets.map { MembershipInference.Scored($0.own - $0.reference, group: group($0)) }
        let nonMembers = holdout.map { MembershipInference.Scored($0.own - $0.reference, group: group($0)) }
        let cal = MembershipInference.attack(members: members, nonMembers: nonMembers, seed: o.seed)
        let raw = MembershipInference.attack(members: targets.map { .init($0.own, group: group($0)) },
                                             nonMembers: holdout.map { .init($0.own, group: group($0)) },
                                             seed: o.seed &+ 1)
        // Each group's holdout scores, sorted: a record's p-value is a binary search, not a pass over the holdout.
        let population = Dictionary(grouping: nonMembers, by: \.group).mapValues { $0.map(\.score).sorted() }
        let records = targets.enumerated().map { i, t -> AuditRecord in
            let pop = population[members[i].group] ?? []
            // How many of the sorted population are <= the score (binary search).
            var (lo, hi) = (0, pop.count)
            while lo < hi {
                let mid = (lo + hi) / 2
                if pop[mid] <= members[i].score { lo = mid + 1 } else { hi = mid }
            }
            let atMost = lo
            return AuditRecord(id: t.id, group: t.group, shard: t.shard, status: t.status,
                               ownNLL: t.own, referenceNLL: t.reference, calibratedScore: members[i].score,
                               holdoutFractionAtMost: Double(atMost + 1) / Double(pop.count + 1))
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
