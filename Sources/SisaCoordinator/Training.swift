import Foundation
import SisaEngine

/// Progress of one shard's training, reported every few steps.
public struct TrainProgress: Sendable {
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
    public func train(jobs: Int = 1, threads: Int? = nil, rebuild: Bool = false,
                      progress: (@Sendable (TrainProgress) -> Void)? = nil) throws -> TrainReport {
        try train(onlyShards: nil, jobs: jobs, threads: threads, rebuild: rebuild, progress: progress)
    }

    /// `onlyShards`: restrict the work to these shards (deletions retrain the
    /// shards with pending deletions and nothing else).
    func train(onlyShards: Set<Int>?, jobs: Int, threads: Int?, rebuild: Bool = false,
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
        try catalog.setMeta("training_started", "1")
        // The deletions these plans reflect: one logged later (a service takes
        // requests while it trains) stays pending and keeps its shard quarantined.
        let pending = try catalog.pendingDeletions()
        let pendingUpTo = pending.last?.seq ?? 0
        let plans = try (0..<config.shards).map { try plan(shard: $0) }
        let states = try catalog.shardStates()
        // Shards whose recorded model is already the end of their current chain need nothing.
        // A shard whose recorded model is the end of its current chain needs
        // nothing, provided that checkpoint still reads back with a valid
        // checksum (a bad one is dropped by `load` and rebuilt here).
        let todo: [ShardPlan] = try plans.filter { p in
            if let onlyShards, !onlyShards.contains(p.shard) { return false }
            let st = states[p.shard]
            guard let lastKey = p.stages.last?.key else { return false }
            let upToDate = try st.currentKey == lastKey && st.digest != nil && !st.quarantined
                && checkpoints.load(key: lastKey) != nil
            return !upToDate
        }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let jobs = max(1, min(jobs, max(1, todo.count)))
        let threadsPerJob = max(1, threads ?? (cores / jobs))
        let queue = ShardQueue(count: todo.count)
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<jobs {
            let worker = Thread { [self] in
                defer { done.signal() }
                let pool = WorkerPool(threads: threadsPerJob)
                while let i = queue.next() {
                    do {
                        let r = try trainShard(todo[i], previousDigest: states[todo[i].shard].digest,
                                               pool: pool, progress: progress)
                        queue.finish(i, r)
                    } catch {
                        queue.fail(error)
                    }
                }
            }
            worker.stackSize = 16 << 20
            worker.start()
        }
        for _ in 0..<jobs { done.wait() }
        let (reports, failure) = queue.results
        if let failure { throw failure }
        let shardReports = reports.compactMap { $0 }
        // Record the new models, close pending deletions, drop stale checkpoints.
        try catalog.transaction {
            if adopting { try catalog.setMeta("config", String(decoding: config.canonicalJSON, as: UTF8.self)) }
            for r in shardReports {
                let p = plans[r.shard]
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
        let removed = try collectGarbage(plans: plans)
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
                           checkpointsRemoved: removed, warnings: checkpoints.warnings)
    }

    /// Trains one shard from its last reusable checkpoint to its last stage.
    func trainShard(_ plan: ShardPlan, previousDigest: String?, pool: WorkerPool,
                    progress: (@Sendable (TrainProgress) -> Void)?) throws -> ShardTrainReport {
        try trainShard(plan, previousDigest: previousDigest, pool: pool, persist: true, progress: progress).report
    }

    /// With `persist: false` no checkpoint is written (a what-if: `compare`);
    /// with `resume: false` none is read either (training from scratch: `verify`).
    func trainShard(_ plan: ShardPlan, previousDigest: String?, pool: WorkerPool, persist: Bool, resume: Bool = true,
                    progress: (@Sendable (TrainProgress) -> Void)?) throws -> (report: ShardTrainReport, trainer: Trainer) {
        let t0 = Date()
        var start = -1
        var trainer: Trainer?
        for r in stride(from: plan.stages.count - 1, through: 0, by: -1) where resume {
            if let data = try checkpoints.load(key: plan.stages[r].key) {
                let restored = try Trainer(restoring: data, pool: pool)
                // Keys carry the version, so this only trips on a damaged or foreign catalog.
                guard restored.numericsVersion == Numerics.version else {
                    throw CoordinatorError.numericsMismatch(store: url.path, stored: restored.numericsVersion, current: Numerics.version)
                }
                trainer = restored
                start = r
                break
            }
        }
        let t = try trainer ?? Trainer(model: config.model, optimizer: config.optimizer,
                                       seed: Schedule.initSeed(config: config, shard: plan.shard), pool: pool)
        let remaining = plan.stages.dropFirst(start + 1)
        let total = remaining.reduce(0) { $0 + $1.steps }
        var done = 0
        var stagesTrained = 0
        let tokensPerStep = Double(config.batch * config.model.context)
        var tokens = 0.0
        let clock0 = Date()
        for stage in remaining {
            var rng = Schedule.stageRNG(stage)
            for step in 0..<stage.steps {
                let loss: Double
                if let dp = config.dp {
                    // Records by Poisson sampling, then the step's noise seed: both from the stage's generator.
                    let records = PrivateSchedule.sample(stage, rng: &rng)
                    let seed = rng.next()
                    loss = t.privateStep(records: records, clip: dp.clip, noise: plan.noise!,
                                         expectedRecords: stage.samplingRate * Double(stage.ids.count), noiseSeed: seed).loss
                    tokens += Double(records.reduce(0) { $0 + $1.count - 1 })
                } else {
                    loss = t.step(Schedule.batch(for: stage, step: step, config: config, rng: &rng)).loss
                    tokens += tokensPerStep
                }
                done += 1
                if let progress, done % 10 == 0 || done == total {
                    let dt = Date().timeIntervalSince(clock0)
                    let tps = tokens / max(dt, 1e-9)
                    progress(TrainProgress(shard: plan.shard, stage: stage.stage, stages: plan.stages.count, step: step + 1,
                                           steps: stage.steps, doneSteps: done, totalSteps: total, loss: loss,
                                           tokensPerSecond: tps, etaSeconds: Double(total - done) * dt / Double(done)))
                }
            }
            if persist {
                try checkpoints.save(key: stage.key, shard: plan.shard, stage: stage.stage, state: t.serialize())
            }
            stagesTrained += 1
        }
        let report = ShardTrainReport(shard: plan.shard, fromStage: start + 1, stagesTrained: stagesTrained, steps: total,
                                      seconds: Date().timeIntervalSince(t0), previousDigest: previousDigest,
                                      digest: t.model.digest)
        return (report, t)
    }

    /// Removes every checkpoint that is not on a shard's current chain (those
    /// trained on deleted records among them) and stray files. Returns the count.
    @discardableResult
    func collectGarbage(plans: [ShardPlan]) throws -> Int {
        // A shard's recorded model is never removed, even off the plans.
        let live = Set(plans.flatMap { $0.stages.map(\.key) }).union(try catalog.shardStates().compactMap(\.currentKey))
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
    /// already zeroes freed cells; VACUUM rewrites the database and the WAL is
    /// checkpointed and truncated so no old page copy survives there.
    func purge() throws {
        guard try catalog.vacuumAndTruncateLog() else {
            throw CoordinatorError.io("\(catalog.path): another process is reading the store, so the write-ahead log could not be truncated; deleted text may remain in catalog.sqlite-wal until the next `sisa train` or `sisa delete`")
        }
    }

    /// The current model of a shard, loaded from its last checkpoint. A
    /// quarantined shard (pending deletion) is refused unless `allowQuarantined`.
    public func model(shard: Int, pool: WorkerPool = .shared, allowQuarantined: Bool = false) throws -> GPT {
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
        return try Trainer(restoring: data, pool: pool).model
    }

    /// The model of a recorded checkpoint (a shard's `currentKey`): what a
    /// server caches per key, since a key's checkpoint never changes.
    public func model(checkpointKey key: String, pool: WorkerPool = .shared) throws -> GPT {
        guard let data = try checkpoints.load(key: key) else {
            throw CoordinatorError.corrupt("checkpoint \(key.prefix(16)) is missing or corrupt; run `sisa train` to rebuild it")
        }
        return try Trainer(restoring: data, pool: pool).model
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
        let report = try trainShard(p, previousDigest: nil, pool: pool, persist: false, resume: false,
                                    progress: progress).report
        let stored = try model(shard: shard, pool: pool, allowQuarantined: true).digest
        let recorded = try catalog.shardStates()[shard].digest
        return VerifyResult(shard: shard, storedDigest: stored == recorded ? stored : "\(recorded ?? "none") (catalog) / \(stored) (checkpoint)",
                            retrainedDigest: report.digest, seconds: Date().timeIntervalSince(t0))
    }
}

/// Work queue shared by the shard-training threads: hands out shard indices,
/// collects reports, and stops handing out work after the first failure.
private final class ShardQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var cursor = 0
    private var reports: [ShardTrainReport?]
    private var failure: Error?

    init(count: Int) { reports = [ShardTrainReport?](repeating: nil, count: count) }

    func next() -> Int? {
        lock.withLock {
            guard failure == nil, cursor < reports.count else { return nil }
            defer { cursor += 1 }
            return cursor
        }
    }

    func finish(_ i: Int, _ r: ShardTrainReport) { lock.withLock { reports[i] = r } }
    func fail(_ e: Error) { lock.withLock { if failure == nil { failure = e } } }
    var results: ([ShardTrainReport?], Error?) { lock.withLock { (reports, failure) } }
}
