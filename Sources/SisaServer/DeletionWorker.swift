import Foundation
import SisaCoordinator

/// Applies queued deletions (and trains pending stages when asked) in the
/// background, on its own thread (training
/// blocks for seconds to minutes). Requests arriving within `coalesce`
/// seconds of each other share one retraining per shard. Work left by a
/// killed server (queued or retraining requests) is picked up at start.
final class DeletionWorker: @unchecked Sendable {
    private let store: Store
    private let coalesce: Double
    private let jobs: Int
    private let executor: ShardExecutor?
    private let log: @Sendable (String) -> Void
    private let retrained: @Sendable (Double) -> Void
    private let condition = NSCondition()
    private var signalled = true   // look at the queue once at start
    private var trainRequested = false
    private var stopping = false
    private var thread: Thread?
    private(set) var lastError: String?

    init(store: Store, coalesce: Double, jobs: Int, executor: ShardExecutor?, retrained: @escaping @Sendable (Double) -> Void,
         log: @escaping @Sendable (String) -> Void) {
        self.retrained = retrained
        self.store = store
        self.coalesce = coalesce
        self.jobs = jobs
        self.executor = executor
        self.log = log
    }

    func start() {
        let t = Thread { [self] in loop() }
        t.stackSize = 16 << 20
        t.name = "sisa-deletion-worker"
        thread = t
        t.start()
    }

    /// A request became durable: retrain after the coalescing window.
    func signal() {
        condition.lock()
        signalled = true
        condition.signal()
        condition.unlock()
    }

    /// Train every pending stage (new records), completing deletions on the way.
    func requestTraining() {
        condition.lock()
        trainRequested = true
        signalled = true
        condition.signal()
        condition.unlock()
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while !signalled && !stopping { condition.wait() }
            if stopping { condition.unlock(); return }
            signalled = false
            let training = trainRequested
            trainRequested = false
            condition.unlock()
            // Let requests that arrive close together share the retraining.
            if coalesce > 0 { Thread.sleep(forTimeInterval: coalesce) }
            do {
                if training {
                    let report = try store.train(jobs: jobs, executor: executor)
                    retrained(report.seconds)
                    log("trained \(report.shards.count) shards in \(String(format: "%.1f", report.seconds)) s")
                } else if let report = try store.processDeletions(jobs: jobs, executor: executor) {
                    retrained(report.seconds)
                    log("deletions applied: \(report.completedDeletions.count) records, shards \(report.shards.map(\.shard)), \(String(format: "%.1f", report.seconds)) s")
                }
                lastError = nil
            } catch {
                lastError = "\(error)"
                log("deletion retraining failed, will retry: \(error)")
                Thread.sleep(forTimeInterval: 1)
                if training { requestTraining() } else { signal() }
            }
        }
    }
}
