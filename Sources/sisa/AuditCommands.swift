import ArgumentParser
import Foundation
import SisaCoordinator
import SisaEngine

/// Reads a JSON-lines file of records (fields text, optional id and group).
/// Without an id, the id is derived from the text, as ingest does.
func readRecordFile(_ path: String) throws -> [(id: String, text: [UInt8])] {
    try RecordParser.parse(path: path, format: .jsonl).map { ($0.id ?? RecordParser.derivedID($0.text), $0.text) }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Is membership of these records detectable in the current ensemble? (calibrated membership inference)",
        discussion: """
        Each record is scored by its NLL under the model of its own shard minus its mean NLL under the \
        other shards' models, which never saw it (difficulty calibration, Watson et al. 2022). Holdout \
        records of the same group(s), scored the same way, are the non-members. The verdict is \
        "detectable" when the AUC's 95% interval (percentile bootstrap, 1,000 resamples, records and \
        holdout resampled separately) lies above 0.5. With fewer than 5 records, each is tested alone: \
        detectable when its score is below all but 5%/n of the holdout's. After `sisa delete`, a deleted record's text is gone \
        from the store: give it back with --file (JSON lines with id and text) to audit it.
        """)
    @OptionGroup var storeOptions: StoreOptions
    @Option(name: .customLong("ids"), parsing: .upToNextOption, help: "Record ids.") var ids: [String] = []
    @Option(help: "Every live training record of this group.") var group: String?
    @Option(help: "JSON lines (id, text): records to audit, deleted ones included.") var file: String?
    @Option(help: "Seed of the bootstrap.") var seed: UInt64 = 0
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        var o = AuditOptions()
        o.ids = ids
        o.group = group
        o.seed = seed
        if let file {
            for r in try readRecordFile(file) {
                o.texts[r.id] = r.text
                o.ids.append(r.id)
            }
        }
        guard !o.ids.isEmpty || group != nil else { throw ValidationError("give --ids ID..., --group G or --file FILE.jsonl") }
        let store = try storeOptions.open()
        let r = try store.audit(o)
        if json { try printJSON(r); return }
        print("verdict: \(r.verdict): \(r.verdictReason)")
        func f(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "-" }
        print("calibrated AUC \(f(r.calibratedAUC)) \(r.calibratedAUCCI?.description ?? ""), TPR at FPR \(f(r.lowFPR)): \(f(r.calibratedTPR)) \(r.calibratedTPRCI?.description ?? ""); raw LOSS AUC \(f(r.rawAUC)) \(r.rawAUCCI?.description ?? "")")
        print("id".padding(toLength: 24, withPad: " ", startingAt: 0) + "shard  status   ownNLL  refNLL  calibrated  holdout<=")
        for x in r.records {
            print(x.id.prefix(23).padding(toLength: 24, withPad: " ", startingAt: 0)
                  + String(format: "%5d  %-7@ %7.4f %7.4f  %+10.4f  %8.3f", x.shard, x.status.rawValue as NSString, x.ownNLL, x.referenceNLL,
                           x.calibratedScore, x.holdoutFractionAtMost))
        }
    }
}

struct Canaries: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write canary records (secret-bearing sentences, Carlini et al. 2019) to ingest.",
        discussion: """
        Each canary is "The secret code of <name> (<i>) is <digits>." with a random secret, repeated \
        --repeats times as distinct records (ids canary-<seed>-<i>-<r>) in a group of their own. Ingest \
        the file without --holdout. `sisa exposure` and `sisa compare` rank each true secret against \
        random secrets of the same format.
        """)
    @Option(help: "Distinct canaries.") var count: Int
    @Option(help: "Records per canary.") var repeats: Int = 1
    @Option(help: "Group of the canary records.") var group: String = "canary"
    @Option(help: "Digits of each secret.") var digits: Int = 8
    @Option(help: "Seed of the secrets.") var seed: UInt64 = 0
    @Option(help: "Output file (JSON lines).") var out: String

    func run() throws {
        guard count >= 1, repeats >= 1, (4...18).contains(digits), !group.isEmpty else {
            throw ValidationError("--count >= 1, --repeats >= 1, --digits between 4 and 18, non-empty --group")
        }
        // Secrets are distinct: leave the generator room to find them.
        guard Double(count) <= pow(10, Double(digits)) / 10 else {
            throw ValidationError("--count \(count) is too many distinct \(digits)-digit secrets (at most 10^\(digits - 1))")
        }
        let canaries = Canary.generate(count: count, digits: digits, seed: seed)
        let text = try Canary.jsonLines(canaries, repeats: repeats, group: group, seed: seed)
        try Data(text.utf8).write(to: URL(fileURLWithPath: out), options: .atomic)
        print("wrote \(count * repeats) records (\(count) canaries x \(repeats)) in group \(group) to \(out)")
    }
}

struct ExposureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exposure",
        abstract: "Each canary's exposure under the current models (Carlini et al. 2019).",
        discussion: """
        exposure = log2 |R| - log2 rank: the rank of the true secret among all |R| = 10^digits secrets by \
        the likelihood of the whole canary text (the ensemble's mixture, or one shard). The rank is \
        estimated from --candidates random secrets; when none is as likely as the true one, from a \
        skew-normal fit to their NLLs. The maximum is log2 |R| (26.6 bits for 8 digits); a secret the \
        model never saw scores about 1 bit. Canaries come from the live records of --group, or from \
        --file (the file given to ingest: deleted canaries keep their exposure measurable).
        """)
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Canaries among the live records of this group.") var group: String?
    @Option(help: "Canaries from this file (JSON lines with text).") var file: String?
    @Option(help: "This shard alone instead of the ensemble.") var shard: Int?
    @Option(help: "Random secrets each canary is ranked against.") var candidates: Int = 1000
    @Option(help: "Seed of the candidates.") var seed: UInt64 = 0
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        guard candidates >= 10 else { throw ValidationError("--candidates must be at least 10") }
        guard (group == nil) != (file == nil) else { throw ValidationError("give --group G or --file FILE.jsonl") }
        let store = try storeOptions.open()
        var texts: [[UInt8]] = []
        if let group { texts = try store.catalog.texts(holdout: false, group: group).map(\.text) }
        if let file { texts = try readRecordFile(file).map(\.text) }
        let found = CanaryExposure.find(texts.map { (0, $0) }).map(\.canary)
        guard !found.isEmpty else {
            throw ValidationError(group != nil
                ? "no live canary records in group \(group!) (deleted ones: give the canary file with --file)"
                : "no canary records in \(file!) (texts like \"\(Canary.lead)... is 12345678.\", as `sisa canaries` writes)")
        }
        let ens = try Ensemble(store: store, shard: shard)
        for e in ens.excluded where shard == nil { note("note: shard \(e.shard) left out: \(e.reason)") }
        note("scoring \(found.count) canaries x \(candidates + 1) secrets under \(ens.models.count) model(s)")
        let ce = CanaryExposure(canaries: found, candidates: candidates, seed: seed)
        let estimates = ce.estimates(ens.models.map { ce.score($0.model) })
        let mean = estimates.reduce(0) { $0 + $1.exposure } / Double(estimates.count)
        if json {
            try printJSONObject(["shards": ens.models.map(\.shard), "candidates": candidates, "meanExposure": mean,
                                 "canaries": zip(found, estimates).map { c, e in
                                     ["text": c.text, "secret": c.secret, "secretSpaceBits": c.secretSpaceBits,
                                      "exposure": e.exposure, "rank": e.rank, "method": e.method] as [String: Any]
                                 }])
            return
        }
        for (c, e) in zip(found, estimates) {
            print(String(format: "%6.2f bits (of %.1f)  rank ~%.3g  %@  %@", e.exposure, c.secretSpaceBits, e.rank,
                         e.method as NSString, c.text as NSString))
        }
        print(String(format: "mean exposure %.2f bits under %@", mean,
                     (shard.map { "shard \($0)" } ?? "the ensemble of \(ens.models.count) shards") as NSString))
    }
}
