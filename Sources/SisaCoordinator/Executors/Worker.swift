import Foundation
import SisaEngine

/// `sisa worker --order FILE`: one cluster task. Trains one shard from its
/// work order, writing each stage's checkpoint atomically into the store's
/// `checkpoints/` and, at the end, a result file. It never opens the catalog
/// (SQLite on shared storage must have one process using it: the coordinator).
public enum Worker {
    /// `threads`: nil takes SLURM_CPUS_PER_TASK, else 1.
    public static func run(order url: URL, threads: Int? = nil,
                           note: (String) -> Void = { _ in }) throws -> WorkResult {
        let order = try WorkFolder.read(WorkOrder.self, from: url)
        guard order.format == WorkOrder.format else {
            throw CoordinatorError.invalidInput("\(url.path): work order format \(order.format); this sisa reads format \(WorkOrder.format) (use the same sisa build on every node)")
        }
        let config: StoreConfig
        do { config = try JSONDecoder().decode(StoreConfig.self, from: Data(order.config.utf8)) } catch {
            throw CoordinatorError.corrupt("\(url.path): unreadable configuration: \(error)")
        }
        let storeURL = WorkFolder.store(ofOrder: url)
        // The base this node sees must be the one the coordinator planned on: checked before any training.
        if let b = config.base {
            guard let named = order.base, named.sha256 == b.sha256, named.path == BaseFiles.relativePath(b) else {
                throw CoordinatorError.invalidInput("\(url.path): the work order does not name the store's base (\(BaseFiles.relativePath(b)), sha256 \(b.sha256.prefix(16))...)")
            }
            _ = try BaseFiles.checked(b, store: storeURL)
            note("shard \(order.shard): base \(named.path) matches sha256 \(b.sha256.prefix(16))...")
        }
        let folder = WorkFolder(store: storeURL)
        let checkpoints = storeURL.appendingPathComponent("checkpoints")
        let models = ShardModels(config: config, storeURL: storeURL)
        let plan = Schedule.plan(shard: order.shard, config: config, stageCount: order.stageCount,
                                 records: order.records.map { ($0.id, $0.slice, Array($0.text.utf8)) }, codec: try models.codec())
        guard plan.stages.map(\.key) == order.stageKeys else {
            throw CoordinatorError.invalidInput("\(url.path): this sisa plans shard \(order.shard) differently from the coordinator (a different build or numerics version on this node?)")
        }
        let floatBytes = try models.stateFloatBytes()
        // The latest stage with a readable checkpoint: the recorded start, or
        // one an earlier attempt of this task wrote.
        let start = ShardTraining.latestStart(plan) { stage in
            FileManager.default.contents(atPath: checkpoints.appendingPathComponent(CheckpointFile.name(key: stage.key)).path)
                .flatMap { try? CheckpointFile.decode([UInt8]($0), floatBytes: floatBytes,
                                                      expectedChecksum: stage.key == order.startKey ? order.startChecksum : nil).state }
        }
        note("shard \(order.shard): \(plan.stages.count - ((start?.stage ?? -1) + 1)) stages to train from stage \((start?.stage ?? -1) + 1)")
        let threads = threads ?? ProcessInfo.processInfo.environment["SLURM_CPUS_PER_TASK"].flatMap { Int($0) } ?? 1
        var written: [WorkResult.Checkpoint] = []
        let progressURL = folder.progress(order.shard)
        let report = try ShardTraining.run(plan, config: config, from: start, previousDigest: nil, models: models,
                                                pool: WorkerPool(threads: max(1, threads)), storeURL: storeURL,
                                                progress: { p in try? folder.write(WorkProgress(run: order.run, progress: p), to: progressURL) }) { stage, state in
            let w = try CheckpointFile.write(state, floatBytes: floatBytes, key: stage.key, dir: checkpoints)
            written.append(.init(key: stage.key, stage: stage.stage, checksum: w.checksum))
            note("shard \(order.shard): stage \(stage.stage) done")
            FaultInjection.checkpointWritten(shard: order.shard, stage: stage.stage)
        }
        let result = WorkResult(run: order.run, shard: order.shard, report: report, checkpoints: written,
                                host: ProcessInfo.processInfo.hostName)
        try folder.write(result, to: folder.result(order.shard))
        return result
    }
}
