import Foundation
import SisaEngine

/// One shard's training from a checkpoint to its last stage: the loop the
/// local executor and cluster workers share, so both give the same bits.
/// It touches no catalog: where states come from and go is the caller's.
enum ShardTraining {
    /// The latest stage whose saved state `read` returns (nil: none; train
    /// from the shard's initial parameters).
    static func latestStart(_ plan: ShardPlan, read: (StagePlan) throws -> Data?) rethrows -> (stage: Int, state: Data)? {
        for stage in plan.stages.reversed() {
            if let data = try read(stage) { return (stage.stage, data) }
        }
        return nil
    }

    /// `from`: the last reusable stage and its saved state (nil: from the
    /// shard's initial parameters). `checkpoint` is called after each stage.
    static func run(_ plan: ShardPlan, config: StoreConfig, from start: (stage: Int, state: Data)?, previousDigest: String?,
                    models: ShardModels, pool: WorkerPool, storeURL: URL, progress: (@Sendable (TrainProgress) -> Void)?,
                    checkpoint: (StagePlan, Data) throws -> Void) throws -> ShardTrainReport {
        let t0 = Date()
        let t: ShardLearner
        if let start {
            t = try models.restore(start.state, pool: pool)
            // Keys carry the version, so this only trips on a damaged or foreign catalog.
            guard t.numericsVersion == Numerics.version else {
                throw CoordinatorError.numericsMismatch(store: storeURL.path, stored: t.numericsVersion, current: Numerics.version)
            }
        } else {
            t = try models.initial(shard: plan.shard, pool: pool)
        }
        // DP-SGD's per-record clipping exists for byte models (`StoreConfig.validate` refuses it on a base).
        let privateTrainer = config.dp == nil ? nil : t as? ByteTrainer
        let first = (start?.stage ?? -1) + 1
        let remaining = plan.stages.dropFirst(first)
        let total = remaining.reduce(0) { $0 + $1.steps }
        var done = 0
        var stagesTrained = 0
        let tokensPerStep = Double(config.batch * config.context)
        var tokens = 0.0
        let clock0 = Date()
        for stage in remaining {
            var rng = Schedule.stageRNG(stage)
            for step in 0..<stage.steps {
                let loss: Double
                if let dp = config.dp, let privateTrainer {
                    // Records by Poisson sampling, then the step's noise seed: both from the stage's generator.
                    let records = PrivateSchedule.sample(stage, rng: &rng)
                    let seed = rng.next()
                    loss = privateTrainer.privateStep(records: records, clip: dp.clip, noise: plan.noise!,
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
            try checkpoint(stage, models.serialize(t))
            stagesTrained += 1
        }
        let report = ShardTrainReport(shard: plan.shard, fromStage: first, stagesTrained: stagesTrained, steps: total,
                                      seconds: Date().timeIntervalSince(t0), previousDigest: previousDigest,
                                      digest: t.languageModel.digest)
        return report
    }
}
