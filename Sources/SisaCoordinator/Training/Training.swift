import Foundation
import SisaEngine

/// Progress of one shard's training, reported every few steps.
public struct TrainProgress: Codable, Sendable {
    public let shard: Int
    public let stage: Int
    public let stages: Int
    public let step: Int           // within the stage
    public let steps: Int          // of the stage
    public let doneSteps: Int      // of this shard's work in this run
    public let totalSteps: Int
    public let loss: Double
    public let tokensPerSecond: Double
    public let etaSeconds: Double
}

public struct ShardTrainReport: Codable, Sendable {
    public let shard: Int
    /// First stage trained in this run (the one after the last reusable checkpoint).
    public let fromStage: Int
    public let stagesTrained: Int
    public let steps: Int
    public let seconds: Double
    public let previousDigest: String?
    public let digest: String
}

public struct TrainReport: Sendable {
    public let shards: [ShardTrainReport]
    public let seconds: Double
    public let completedDeletions: [String]
    public let checkpointsRemoved: Int
    public let warnings: [String]
}

extension Store {
    /// Trains every stage not yet trained, reusing every checkpoint whose key
    /// still matches; completes pending deletions. Resumable after any crash.
    ///
    /// `rebuild`: a store trained under another numerics version is moved to
    /// this build's, retraining every stage from scratch. The new version is
    /// recorded in the same transaction as the rebuilt models, so a rebuild
    /// that fails half-way leaves the store on its old version (every other
    /// command still refuses it) and `train --rebuild` resumes from the new
    /// checkpoints already written.
    ///
    /// `executor`: where shards train (nil: this machine, `jobs` shards at a
    /// time with `threads` threads each).
    public func train(jobs: Int = 1, threads: Int? = nil, rebuild: Bool = false, executor: ShardExecutor? = nil,
                      progress: (@Sendable (TrainProgress) -> Void)? = nil) throws -> TrainReport {
        try train(onlyShards: nil, jobs: jobs, threads: threads, rebuild: rebuild, executor: executor, progress: progress)
    }

    /// `onlyShards`: restrict the work to these shards (deletions retrain the
    /// shards with pending deletions and nothing else).
    func train(onlyShards: Set<Int>?, jobs: Int, threads: Int?, rebuild: Bool = false, executor: ShardExecutor? = nil,
               progress: (@Sendable (TrainProgress) -> Void)?) throws -> TrainReport {
        let t0 = Date()
        // A rebuild plans and trains under the new version in memory; the
        // catalog learns of it only when the rebuilt models are recorded.
        let storedConfig = config
        let adopting = rebuild && !numericsIsCurrent
        if adopting { config.numerics = Numerics.version }
        var committed = false
        defer { if adopting && !committed { config = storedConfig } }
        try requireCurrentNumerics()
        // A cluster run whose coordinator was killed left jobs and work orders (record text).
        let abandoned = try SlurmExecutor.abandonEarlierRun(WorkFolder(store: url))
        try catalog.setMeta("training_started", "1")
        // The deletions these plans reflect: one logged later (a service takes
        // requests while it trains) stays pending and keeps its shard quarantined.
        let pending = try catalog.pendingDeletions()
        let pendingUpTo = pending.last?.seq ?? 0
        let fingerprints = try (0..<config.shards).map { try chainFingerprint(shard: $0) }
        // Full plans (token streams) only for the shards this run may train; the
        // others need only their stage keys, read from their recorded chains
        // (a deletion retrains one shard without loading the other shards' text).
        let mayTrain = (0..<config.shards).filter { onlyShards?.contains($0) ?? true }
        let planned = try mayTrain.map { try plan(shard: $0) }
        let plans = Dictionary(uniqueKeysWithValues: planned.map { ($0.shard, $0) })
        var otherChains: [Int: (stages: [StageSummary], noise: Double?)] = [:]
        for s in 0..<config.shards where plans[s] == nil { otherChains[s] = try stageSummaries(shard: s) }
        // The chains `status` reads, for the records these plans were made from,
        // recorded now rather than after training: a chain is a function of the
        // records alone, so `status` during a deletion's retraining reads the
        // affected shard's new chain instead of recomputing it. (A fingerprint
        // taken before planning: if the records changed since, it is ignored.)
        // Under a rebuild the chains belong to the new version: recorded with the models.
        if !adopting {
            try catalog.transaction {
                for p in planned { try recordChain(p, fingerprint: fingerprints[p.shard]) }
                for (s, c) in otherChains { try recordChain(shard: s, stages: c.stages, noise: c.noise, fingerprint: fingerprints[s]) }
            }
        }
        // Checkpoints a cluster worker wrote but no coordinator recorded (it
        // was killed) are found by key and recorded, once, after a check.
        try checkpoints.adoptFiles(planned)
        let states = try catalog.shardStates()
        // A shard whose recorded model is the end of its current chain needs
        // nothing, provided that checkpoint still reads back with a valid
        // checksum (a bad one is dropped by `load` and rebuilt here).
        let todo: [ShardPlan] = try planned.filter { p in
            let st = states[p.shard]
            guard let lastKey = p.stages.last?.key else { return false }
            let upToDate = try st.currentKey == lastKey && st.digest != nil && !st.quarantined
                && checkpoints.load(key: lastKey) != nil
            return !upToDate
        }
        let runner = executor ?? LocalExecutor(jobs: jobs, threads: threads)
        let shardReports = try runner.train(todo.map { ShardWork(plan: $0, previousDigest: states[$0.shard].digest) },
                                            store: self, progress: progress)
        // Record the new models, close pending deletions, drop stale checkpoints.
        try catalog.transaction {
            if adopting { try catalog.setMeta("config", String(decoding: config.canonicalJSON, as: UTF8.self)) }
            // The chains `status` reads, for the records these plans were made from.
            for p in planned { try recordChain(p, fingerprint: fingerprints[p.shard]) }
            for (s, c) in otherChains { try recordChain(shard: s, stages: c.stages, noise: c.noise, fingerprint: fingerprints[s]) }
            for r in shardReports {
                let p = plans[r.shard]!
                try catalog.setShard(ShardState(index: r.shard, quarantined: try catalog.hasPendingDeletion(shard: r.shard, after: pendingUpTo),
                                                digest: r.digest, stagesTrained: p.stages.count, currentKey: p.stages.last?.key))
            }
            for s in Set(pending.map(\.shard)) where !shardReports.contains(where: { $0.shard == s }) {
                // A pending deletion whose shard needed no retraining (e.g. a holdout record).
                let st = try catalog.shardStates()[s]
                try catalog.setShard(ShardState(index: s, quarantined: try catalog.hasPendingDeletion(shard: s, after: pendingUpTo),
                                                digest: st.digest, stagesTrained: st.stagesTrained, currentKey: st.currentKey))
            }
        }
        committed = true
        let removed = try collectGarbage(liveKeys: Set(planned.flatMap { $0.stages.map(\.key) })
            .union(otherChains.values.flatMap { $0.stages.map(\.key) }))
        var completed: [String] = []
        if !pending.isEmpty {
            let receipt = DeletionReceipt(records: pending.map(\.record), shards: shardReports,
                                          seconds: Date().timeIntervalSince(t0), checkpointsRemoved: removed, pending: false)
            let json = String(decoding: try receipt.jsonData(), as: UTF8.self)
            try catalog.transaction { try catalog.completePendingDeletions(upTo: pendingUpTo, receipt: json) }
            completed = pending.map(\.record)
            try purge()
        }
        return TrainReport(shards: shardReports, seconds: Date().timeIntervalSince(t0), completedDeletions: completed,
                           checkpointsRemoved: removed, warnings: (abandoned.map { [$0] } ?? []) + checkpoints.warnings)
    }

    /// Trains one shard from its last reusable checkpoint to its last stage.
    func trainShard(_ plan: ShardPlan, previousDigest: String?, pool: WorkerPool,
                    progress: (@Sendable (TrainProgress) -> Void)?) throws -> ShardTrainReport {
        try trainShard(plan, previousDigest: previousDigest, pool: pool, persist: true, progress: progress).report
    }

    /// A shard retrained in memory without the records `forget` (a what-if:
    /// nothing is written), from the stored checkpoint before the earliest
    /// stage that held one of them: what exact deletion would give.
    func retrainedWithout(_ forget: Set<String>, shard: Int, pool: WorkerPool) throws -> (report: ShardTrainReport, model: ShardModel) {
        let records = try catalog.trainingRecords(shard: shard).filter { !forget.contains($0.id) }
        let p = Schedule.plan(shard: shard, config: config, stageCount: try stageCount(), records: records, codec: try models.codec())
        return try trainShard(p, previousDigest: nil, pool: pool, persist: false, progress: nil)
    }

    /// With `persist: false` no checkpoint is written (a what-if: `compare`);
    /// with `resume: false` none is read either (training from scratch: `verify`).
    func trainShard(_ plan: ShardPlan, previousDigest: String?, pool: WorkerPool, persist: Bool, resume: Bool = true,
                    progress: (@Sendable (TrainProgress) -> Void)?) throws -> (report: ShardTrainReport, model: ShardModel) {
        let start = resume ? try ShardTraining.latestStart(plan) { try checkpoints.load(key: $0.key) } : nil
        var last: Data?
        let report = try ShardTraining.run(plan, config: config, from: start, previousDigest: previousDigest, models: models,
                                           pool: pool, storeURL: url, progress: progress) { stage, state in
            if persist { try checkpoints.save(key: stage.key, shard: plan.shard, stage: stage.stage, state: state) }
            last = state
        }
        guard let state = last ?? start?.state else {
            throw CoordinatorError.notTrained("shard \(plan.shard) has no stages to train (no records)")
        }
        return (report, try models.model(from: state, pool: pool))
    }

    /// Removes every checkpoint that is not on a shard's current chain (those
    /// trained on deleted records among them) and stray files. Returns the count.
    @discardableResult
    /// Removes every checkpoint whose key is on no shard's current chain (`liveKeys`).
    func collectGarbage(liveKeys: Set<String>) throws -> Int {
        // A shard's recorded model is never removed, even off the chains.
        let live = liveKeys.union(try catalog.shardStates().compactMap(\.currentKey))
        var removed = 0
        for c in try catalog.checkpoints() where !live.contains(c.key) {
            try checkpoints.remove(c)
            removed += 1
        }
        for f in try checkpoints.orphanFiles() {
            try? FileManager.default.removeItem(atPath: checkpoints.path(f))
        }
        return removed
    }

    /// Makes deleted text unrecoverable from the catalog files: secure_delete
    /// zeroes freed cells and pages in place, and the WAL is checkpointed and
    /// truncated so no old page copy survives there.
    func purge() throws {
        guard try catalog.truncateLog() else {
            throw CoordinatorError.io("\(catalog.path): another process is reading the store, so the write-ahead log could not be truncated; deleted text may remain in catalog.sqlite-wal until the next `sisa train` or `sisa delete`")
        }
    }

    /// The current model of a shard, loaded from its last checkpoint. A
    /// quarantined shard (pending deletion) is refused unless `allowQuarantined`.
    public func model(shard: Int, pool: WorkerPool = .shared, allowQuarantined: Bool = false) throws -> ShardModel {
        guard let st = try catalog.shardStates().first(where: { $0.index == shard }) else {
            throw CoordinatorError.invalidInput("no shard \(shard) (the store has \(config.shards))")
        }
        guard allowQuarantined || !st.quarantined else {
            throw CoordinatorError.notTrained("shard \(shard) is quarantined by a pending deletion: its model still holds the deleted records; run `sisa train` first")
        }
        guard let key = st.currentKey, st.digest != nil else {
            throw CoordinatorError.notTrained("shard \(shard) has no trained model yet (run `sisa train`)")
        }
        guard let data = try checkpoints.load(key: key) else {
            throw CoordinatorError.corrupt("shard \(shard): its checkpoint is missing or corrupt; run `sisa train` to rebuild it")
        }
        return try models.model(from: data, pool: pool)
    }

    /// The model of a recorded checkpoint (a shard's `currentKey`): what a
    /// server caches per key, since a key's checkpoint never changes.
    public func model(checkpointKey key: String, pool: WorkerPool = .shared) throws -> ShardModel {
        guard let data = try checkpoints.load(key: key) else {
            throw CoordinatorError.corrupt("checkpoint \(key.prefix(16)) is missing or corrupt; run `sisa train` to rebuild it")
        }
        return try models.model(from: data, pool: pool)
    }

    public struct VerifyResult: Sendable {
        public let shard: Int
        public let storedDigest: String?
        public let retrainedDigest: String
        public let seconds: Double
        public var matches: Bool { storedDigest == retrainedDigest }
    }

    /// Retrains a shard from scratch on its live records, without reading or
    /// writing any checkpoint, and compares digests with the stored model.
    public func verify(shard: Int, pool: WorkerPool = .shared,
                       progress: (@Sendable (TrainProgress) -> Void)? = nil) throws -> VerifyResult {
        guard shard >= 0, shard < config.shards else {
            throw CoordinatorError.invalidInput("no shard \(shard) (the store has \(config.shards))")
        }
        let t0 = Date()
        try requireCurrentNumerics(adopt: false)
        let p = try plan(shard: shard)
        if let behind = try behind(shard: shard, plan: p) { throw CoordinatorError.invalidInput(behind) }
        let report = try trainShard(p, previousDigest: nil, pool: pool, persist: false, resume: false,
                                    progress: progress).report
        let stored = try model(shard: shard, pool: pool, allowQuarantined: true).digest
        let recorded = try catalog.shardStates()[shard].digest
        return VerifyResult(shard: shard, storedDigest: stored == recorded ? stored : "\(recorded ?? "none") (catalog) / \(stored) (checkpoint)",
                            retrainedDigest: report.digest, seconds: Date().timeIntervalSince(t0))
    }

    /// Why `verify(shard:)` would have nothing to compare, or nil: a shard
    /// never trained, or trained before an ingest that added to it, would
    /// "mismatch" for that reason alone. (A shard with a deletion pending is
    /// quarantined; verify still compares it, and it mismatches until the
    /// retraining completes.)
    public func behind(shard: Int) throws -> String? {
        try requireCurrentNumerics(adopt: false)  // a store to rebuild says so first
        return try behind(shard: shard, plan: plan(shard: shard))
    }

    func behind(shard: Int, plan p: ShardPlan) throws -> String? {
        let state = try catalog.shardStates()[shard]
        guard let last = p.stages.last?.key, state.currentKey != last, !state.quarantined else { return nil }
        return state.currentKey == nil
            ? "shard \(shard) has not been trained yet: run `sisa train` first (verify compares a trained shard's model with a retrain from scratch)"
            : "shard \(shard) is not trained up to its records (records were ingested since the last train): run `sisa train` first (verify compares a trained shard's model with a retrain from scratch)"
    }
}
