import Foundation
import SisaEngine

/// The methods `sisa benchmark challenge` runs.
public enum ChallengeMethod: String, CaseIterable, Codable, Sendable {
    case exact, ga, graddiff, npo, filter
}

public struct ChallengeOptions: Sendable {
    /// N: stores trained, one per seed (the template's seed + 0 ..< N).
    public var seeds = 32
    public var methods: [ChallengeMethod] = ChallengeMethod.allCases
    /// Forget records, drawn from the template's training records (of `forgetGroup` if set).
    public var forgetCount = 32
    public var forgetGroup: String?
    /// Retained and test records on which the accuracies are measured.
    public var sample = 64
    /// Seed of the forget draw, the samples and the data orders.
    public var seed: UInt64 = 0
    public var unlearning = UnlearningOptions()
    /// Also train N stores without the forget set: the metric's ceiling.
    public var ceiling = true
    /// Keep the seed stores under the work folder (default: removed once measured).
    public var keepStores = false
    public init() {}
}

/// F and the final score of one method under one protocol.
public struct ChallengeMethodResult: Codable, Sendable {
    public let method: ChallengeMethod
    /// `challenge`: N runs from the first seed's original model, differing in
    /// data order (the challenge's protocol). `per-seed`: one run from each
    /// seed's original model.
    public let `protocol`: String
    public let forgetScore: Double
    public let finalScore: Double
    public let epsilonMedian: Double
    public let retainAccuracy: Double
    public let testAccuracy: Double
    /// Mean seconds of one unlearning run (exact: retraining the affected shards).
    public let seconds: Double
    public let note: String?
    /// The unlearned population, [model][forget record]: input for `sisa benchmark challenge-score`.
    public let confidences: [[Double]]
}

public struct ChallengeReport: Codable, Sendable {
    public let seeds: Int
    public let forgetRecords: Int
    public let retainRecords: Int
    public let testRecords: Int
    public let affectedShards: Int
    public let retrainedRetainAccuracy: Double
    public let retrainedTestAccuracy: Double
    /// F between the exact retrains and N further stores trained without the
    /// forget set: two populations of one distribution. No method can be
    /// expected to score above it at this N.
    public let ceiling: Double?
    /// Forget record ids, in the order of every confidence row.
    public let forgetIDs: [String]
    /// The retrain population R, [seed][forget record].
    public let retrainedConfidences: [[Double]]
    /// The independent retrains of the ceiling, [seed][forget record].
    public let ceilingConfidences: [[Double]]?
    public let results: [ChallengeMethodResult]
    public let confidence: String
    public let accuracy: String
    public let seconds: Double
}

/// The NeurIPS 2023 unlearning challenge's protocol on SISA stores. The
/// template store (any configuration, byte-level or on a base, trained or
/// not) gives the records and the configuration; N stores are trained from
/// them under N seeds. Each store's exact deletion of the forget set, which
/// is bit for bit the store trained without it, is a member of the retrain
/// population.
public enum Challenge {
    public static let confidenceDefinition =
        "mean over the record's predicted tokens of log p - log(1 - p), p the ensemble's probability of the true next token"
    public static let accuracyDefinition = "next-token top-1 accuracy of the ensemble, pooled over the records' tokens"

    struct Population {
        var confidences: [[Double]] = []
        var correctRetain = 0, tokensRetain = 0, correctTest = 0, tokensTest = 0
        var seconds = 0.0
        /// Adds another population's models (and their counts and seconds).
        mutating func append(_ p: Population) {
            confidences += p.confidences
            correctRetain += p.correctRetain; tokensRetain += p.tokensRetain
            correctTest += p.correctTest; tokensTest += p.tokensTest
            seconds += p.seconds
        }
        var retainAccuracy: Double { Double(correctRetain) / Double(max(1, tokensRetain)) }
        var testAccuracy: Double { Double(correctTest) / Double(max(1, tokensTest)) }
    }

    public static func run(template: Store, options o: ChallengeOptions, work: URL,
                           log: ((String) -> Void)? = nil) throws -> ChallengeReport {
        let t0 = Date()
        guard o.seeds >= 2 else { throw CoordinatorError.invalidInput("--seeds must be at least 2 (the score compares populations of models)") }
        guard o.forgetCount >= 1, o.sample >= 1 else { throw CoordinatorError.invalidInput("--forget-count and --sample must be at least 1") }
        guard !o.methods.isEmpty else { throw CoordinatorError.invalidInput("--methods is empty") }
        guard o.unlearning.steps >= 0 else { throw CoordinatorError.invalidInput("--steps must be at least 0") }

        // The records: training ones go into every seed's store, holdout ones are the test set.
        let live = try template.catalog.records()
        func text(_ r: RecordInfo) throws -> [UInt8] {
            guard let t = try template.catalog.text(id: r.id) else { throw CoordinatorError.corrupt("record \(r.id) has no text") }
            return t
        }
        let training = live.filter { !$0.holdout }
        let held = live.filter(\.holdout)
        guard !held.isEmpty else {
            throw CoordinatorError.invalidInput("\(template.url.path) has no holdout records: ingest some with --holdout FRACTION (test accuracy is measured on them)")
        }
        let pool = training.filter { o.forgetGroup == nil || $0.group == o.forgetGroup }
        guard o.forgetCount < training.count, o.forgetCount <= pool.count else {
            throw CoordinatorError.invalidInput("--forget-count must be at most \(min(pool.count, training.count - 1)) (training records\(o.forgetGroup.map { " in group \($0)" } ?? ""))")
        }
        func ordered(_ rs: [RecordInfo], _ purpose: String) -> [RecordInfo] {
            rs.sorted { Placement.hash64(o.seed, $0.id, purpose) < Placement.hash64(o.seed, $1.id, purpose) }
        }
        let forget = Array(ordered(pool, "challenge-forget").prefix(o.forgetCount))
        let forgetIDs = Set(forget.map(\.id))
        let retained = training.filter { !forgetIDs.contains($0.id) }
        let forgetTexts = try forget.map(text)
        let retainTexts = try ordered(retained, "challenge-retain").prefix(o.sample).map(text)
        let testTexts = try ordered(held, "challenge-test").prefix(o.sample).map(text)

        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let allFile = work.appendingPathComponent("training.jsonl"), retainedFile = work.appendingPathComponent("retained.jsonl")
        try writeJSONL(training, text: text, to: allFile)
        try writeJSONL(retained, text: text, to: retainedFile)
        let baseSource = template.config.base.map {
            template.url.appendingPathComponent(BaseFiles.folder).appendingPathComponent($0.name)
        }

        /// Trains the store of one seed on `file`.
        func seedStore(_ k: Int, _ file: URL, _ name: String) throws -> Store {
            let dir = work.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: dir.path) { try FileManager.default.removeItem(at: dir) }
            var c = template.config
            c.seed = template.config.seed &+ UInt64(k)
            let s = try Store.create(at: dir, config: c, base: baseSource)
            _ = try s.ingest(paths: [file.path], format: .jsonl)
            let report = try s.train()
            log?(String(format: "%@: trained %d shards in %.1f s", name, report.shards.count, report.seconds))
            return s
        }
        func remove(_ s: Store) {
            if !o.keepStores { try? FileManager.default.removeItem(at: s.url) }
        }
        func measure(_ e: Ensemble, into p: inout Population) {
            p.confidences.append(e.challengeMeasures(forgetTexts).confidences)
            let r = e.challengeMeasures(retainTexts), t = e.challengeMeasures(testTexts)
            p.correctRetain += r.correct; p.tokensRetain += r.tokens
            p.correctTest += t.correct; p.tokensTest += t.tokens
        }

        let approximate = o.methods.filter { $0 != .exact }
        var retrained = Population(), exactChallenge = Population()
        var perSeed: [ChallengeMethod: Population] = [:], challenge: [ChallengeMethod: Population] = [:]
        var affectedCount = 0
        var exactDeterministic = true
        for k in 0..<o.seeds {
            let store = try seedStore(k, allFile, "seed-\(k)")
            let original = try Ensemble(store: store)
            // Exact: the affected shards retrained without the forget set, from the checkpoint before it.
            let (exact, seconds, digests) = try exactDeletion(store, original: original, forget: forgetIDs)
            affectedCount = digests.count
            measure(exact, into: &retrained)
            retrained.seconds += seconds
            if k == 0 && o.methods.contains(.exact) {
                // Deterministic: every run gives the same bits. One more run checks it; the
                // challenge's N runs are then N copies of one model.
                let again = try exactDeletion(store, original: original, forget: forgetIDs)
                exactDeterministic = again.digests == digests
                var once = Population()
                measure(exact, into: &once)
                for _ in 0..<o.seeds { exactChallenge.append(once) }
                exactChallenge.seconds = (seconds + again.seconds) / 2 * Double(o.seeds)
            }
            let data = try UnlearningData(store: store, forget: forget.map(\.id))
            for m in approximate {
                if m == .filter {
                    // The filter changes no weight: its runs are the original, measured once.
                    var once = Population()
                    measure(original, into: &once)
                    perSeed[m, default: Population()].append(once)
                    if k == 0 { for _ in 0..<o.seeds { challenge[m, default: Population()].append(once) } }
                    continue
                }
                let run = try unlearn(m, data: data, original: original, options: o.unlearning, orderSeed: nil)
                measure(run.ensemble, into: &perSeed[m, default: Population()])
                perSeed[m]!.seconds += run.seconds
                if k == 0 {
                    for r in 0..<o.seeds {
                        let run = try unlearn(m, data: data, original: original, options: o.unlearning,
                                              orderSeed: o.seed &+ UInt64(r) &+ 1)
                        measure(run.ensemble, into: &challenge[m, default: Population()])
                        challenge[m]!.seconds += run.seconds
                    }
                    log?("seed 0: \(o.seeds) \(m.rawValue) runs from the original")
                }
            }
            log?("seed \(k + 1) of \(o.seeds) measured")
            remove(store)
        }
        var ceilingPopulation: Population?
        if o.ceiling {
            var c = Population()
            for k in o.seeds..<(2 * o.seeds) {
                let store = try seedStore(k, retainedFile, "retrain-\(k)")
                measure(try Ensemble(store: store), into: &c)
                remove(store)
            }
            ceilingPopulation = c
        }

        func result(_ m: ChallengeMethod, _ proto: String, _ u: Population, note: String? = nil) throws -> ChallengeMethodResult {
            let s = try ChallengeScore.score(unlearned: u.confidences, retrained: retrained.confidences)
            let final = ChallengeScore.finalScore(forgetScore: s.forgetScore,
                                                  retainAccuracy: (u.retainAccuracy, retrained.retainAccuracy),
                                                  testAccuracy: (u.testAccuracy, retrained.testAccuracy))
            return ChallengeMethodResult(method: m, protocol: proto, forgetScore: s.forgetScore, finalScore: final,
                                         epsilonMedian: ChallengeScore.median(s.epsilons), retainAccuracy: u.retainAccuracy,
                                         testAccuracy: u.testAccuracy, seconds: u.seconds / Double(o.seeds), note: note,
                                         confidences: u.confidences)
        }
        var results: [ChallengeMethodResult] = []
        if o.methods.contains(.exact) {
            results.append(try result(.exact, "challenge", exactChallenge, note: exactDeterministic
                ? "deterministic: the N runs are one model N times (checked: a second run has the same digests), so every example's ε is 50"
                : "two runs of the exact deletion differed: a defect"))
            if let c = ceilingPopulation {
                results.append(try result(.exact, "per-seed", c, note: "N further stores trained without the forget set: the ceiling"))
            }
        }
        for m in approximate {
            let note = m == .filter ? "the filter changes no weight: confidences are the original model's" : nil
            results.append(try result(m, "challenge", challenge[m]!, note: note))
            results.append(try result(m, "per-seed", perSeed[m]!, note: note))
        }
        let ceilingScore = try ceilingPopulation.map { try ChallengeScore.score(unlearned: $0.confidences, retrained: retrained.confidences).forgetScore }
        return ChallengeReport(seeds: o.seeds, forgetRecords: forget.count, retainRecords: retainTexts.count, testRecords: testTexts.count,
                               affectedShards: affectedCount, retrainedRetainAccuracy: retrained.retainAccuracy,
                               retrainedTestAccuracy: retrained.testAccuracy, ceiling: ceilingScore, forgetIDs: forget.map(\.id),
                               retrainedConfidences: retrained.confidences, ceilingConfidences: ceilingPopulation?.confidences,
                               results: results,
                               confidence: confidenceDefinition, accuracy: accuracyDefinition, seconds: Date().timeIntervalSince(t0))
    }

    /// The affected shards of `store` retrained in memory without `forget`.
    static func exactDeletion(_ store: Store, original: Ensemble, forget: Set<String>) throws
        -> (ensemble: Ensemble, seconds: Double, digests: [Int: String]) {
        let affected = Set(try forget.map { id -> Int in
            guard let r = try store.catalog.record(id: id) else { throw CoordinatorError.unknownIDs([id]) }
            return r.shard
        })
        var replaced: [Int: ShardModel] = [:], digests: [Int: String] = [:]
        var seconds = 0.0
        for s in affected.sorted() {
            let (report, model) = try store.retrainedWithout(forget, shard: s, pool: .shared)
            replaced[s] = model
            digests[s] = model.digest
            seconds += report.seconds
        }
        return (Ensemble(models: original.models.map { ($0.shard, replaced[$0.shard] ?? $0.model) }, pool: original.pool), seconds, digests)
    }

    /// What the approximate methods see of one store, read once: each affected
    /// shard's forget texts and a bounded sample of its retained texts.
    struct UnlearningData {
        /// shard -> (forget texts, retained texts)
        let shards: [Int: (forget: [[UInt8]], retain: [[UInt8]])]

        init(store: Store, forget: [String]) throws {
            var byShard: [Int: [[UInt8]]] = [:]
            for id in forget {
                guard let r = try store.catalog.record(id: id), let t = try store.catalog.text(id: id) else { throw CoordinatorError.unknownIDs([id]) }
                byShard[r.shard, default: []].append(t)
            }
            let forgetSet = Set(forget)
            var shards: [Int: (forget: [[UInt8]], retain: [[UInt8]])] = [:]
            for (s, texts) in byShard {
                // graddiff's retained sequences: a bounded sample of the shard, in a seeded order.
                let retain = try store.catalog.trainingRecords(shard: s).filter { !forgetSet.contains($0.id) }
                    .sorted { Placement.hash64(0, $0.id, "challenge-retain") < Placement.hash64(0, $1.id, "challenge-retain") }
                    .prefix(256).map(\.text)
                shards[s] = (texts, Array(retain))
            }
            self.shards = shards
        }
    }

    /// One approximate method on copies of the affected shards' models.
    static func unlearn(_ m: ChallengeMethod, data: UnlearningData, original: Ensemble,
                        options: UnlearningOptions, orderSeed: UInt64?) throws -> (ensemble: Ensemble, seconds: Double) {
        guard m != .filter, let method = UnlearningMethod(rawValue: m.rawValue) else { return (original, 0) }
        var opt = options
        opt.method = method
        opt.orderSeed = orderSeed
        let t0 = Date()
        var replaced: [Int: ShardModel] = [:]
        for (s, d) in data.shards {
            let u = try ApproximateUnlearner(shard: s, original: original.models.first { $0.shard == s }!.model,
                                             forget: d.forget, retain: d.retain, options: opt)
            for step in 0..<opt.steps { u.step(step) }
            replaced[s] = u.model
        }
        return (Ensemble(models: original.models.map { ($0.shard, replaced[$0.shard] ?? $0.model) }, pool: original.pool), Date().timeIntervalSince(t0))
    }

    private static func writeJSONL(_ records: [RecordInfo], text: (RecordInfo) throws -> [UInt8], to url: URL) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var out = Data()
        for r in records {
            out.append(try e.encode(["id": r.id, "text": String(decoding: try text(r), as: UTF8.self), "group": r.group]))
            out.append(0x0A)
        }
        try out.write(to: url, options: .atomic)
    }
}
