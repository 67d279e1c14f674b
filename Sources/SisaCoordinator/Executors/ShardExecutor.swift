import Foundation
import SisaEngine

/// One shard's work in a training run: its plan, and the digest of the model
/// it replaces (for the report).
public struct ShardWork: Sendable {
    public let plan: ShardPlan
    public let previousDigest: String?
}

/// Where shards train. The coordinator (`Store.train`) plans, hands the
/// shards with work to an executor, and records what comes back in one
/// transaction. An executor trains every shard it is given, each from its
/// last reusable checkpoint, and returns a report per shard, or throws:
/// never a partial answer, since the caller completes deletions on it.
/// Every checkpoint it produces is recorded in the catalog before it returns.
public protocol ShardExecutor: Sendable {
    func train(_ work: [ShardWork], store: Store, progress: (@Sendable (TrainProgress) -> Void)?) throws -> [ShardTrainReport]
}

/// This machine: `jobs` shards at a time, `threads` threads each (default:
/// the cores shared out).
public struct LocalExecutor: ShardExecutor {
    public let jobs: Int
    public let threads: Int?

    public init(jobs: Int = 1, threads: Int? = nil) {
        self.jobs = jobs
        self.threads = threads
    }

    public func train(_ work: [ShardWork], store: Store, progress: (@Sendable (TrainProgress) -> Void)?) throws -> [ShardTrainReport] {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let jobs = max(1, min(self.jobs, max(1, work.count)))
        let threadsPerJob = max(1, threads ?? (cores / jobs))
        let queue = ShardQueue(count: work.count)
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<jobs {
            let worker = Thread {
                defer { done.signal() }
                let pool = WorkerPool(threads: threadsPerJob)
                while let i = queue.next() {
                    do {
                        queue.finish(i, try store.trainShard(work[i].plan, previousDigest: work[i].previousDigest,
                                                             pool: pool, progress: progress))
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
        return reports.compactMap { $0 }
    }
}

/// Work queue shared by the shard-training threads: hands out shard indices,
/// collects reports, and stops handing out work after the first failure.
/// `@unchecked Sendable`: every field is read and written with `lock` held.
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
