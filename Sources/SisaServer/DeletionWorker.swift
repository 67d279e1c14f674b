import Foundation
import ServiceLifecycle
import SisaCoordinator
import Synchronization

/// Applies queued deletions (and trains pending stages when asked) in the
/// background: a service of the application (swift-service-lifecycle),
/// started and stopped with it. Retraining blocks for seconds to minutes,
/// so the work runs on a thread of its own, not on Swift's cooperative pool;
/// `run()` owns that thread's lifetime. Requests arriving within `coalesce`
/// seconds of each other share one retraining per shard. Work left by a
/// killed server (queued or retraining requests) is picked up at start.
///
/// `@unchecked Sendable`: the immutable fields are set in `init`; the
/// flags are read and written only with `condition` locked, and
/// `lastError` lives in a Mutex.
final class DeletionWorker: Service, @unchecked Sendable {
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
    /// `run()` waiting for `stop()`.
    private var stopped: CheckedContinuation<Void, Never>?
    /// A retraining is in progress (the thread is not between requests).
    private var busy = false
    /// The thread has returned; `run()` waiting for that.
    private var threadDone = false
    private var exited: CheckedContinuation<Void, Never>?
    private let error = Mutex<String?>(nil)

    /// The last retraining's error, nil once one succeeds.
    var lastError: String? { error.withLock { $0 } }

    init(store: Store, coalesce: Double, jobs: Int, executor: ShardExecutor?, retrained: @escaping @Sendable (Double) -> Void,
         log: @escaping @Sendable (String) -> Void) {
        self.retrained = retrained
        self.store = store
        self.coalesce = coalesce
        self.jobs = jobs
        self.executor = executor
        self.log = log
    }

    /// Runs the worker's thread until graceful shutdown (or cancellation).
    /// Once `stop()` has been called it joins the thread when that is between
    /// requests (waiting or coalescing: it returns at once). A retraining in
    /// progress, which may take minutes, is abandoned instead: the process
    /// ends under it as under a crash, and the request, still recorded as
    /// queued or retraining, is picked up at the next start.
    func run() async throws {
        let t = Thread { [self] in
            loop()
            condition.withLock { () -> CheckedContinuation<Void, Never>? in
                threadDone = true
                defer { exited = nil }
                return exited
            }?.resume()
        }
        t.stackSize = 16 << 20
        t.name = "sisa-deletion-worker"
        t.start()
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let resumeNow = condition.withLock { () -> Bool in
                        if stopping { return true }
                        stopped = c
                        return false
                    }
                    if resumeNow { c.resume() }
                }
            } onCancel: { [self] in stop() }
        } onGracefulShutdown: { [self] in stop() }
        if condition.withLock({ busy && !threadDone }) {
            log("stopping during a retraining: the request resumes at the next start")
            return
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = condition.withLock { () -> Bool in
                if threadDone { return true }
                exited = c
                return false
            }
            if now { c.resume() }
        }
    }

    /// A request became durable: retrain after the coalescing window.
    func signal() {
        condition.withLock {
            signalled = true
            condition.signal()
        }
    }

    /// Train every pending stage (new records), completing deletions on the way.
    func requestTraining() {
        condition.withLock {
            trainRequested = true
            signalled = true
            condition.signal()
        }
    }

    func stop() {
        let waiting = condition.withLock { () -> CheckedContinuation<Void, Never>? in
            stopping = true
            condition.broadcast()
            defer { stopped = nil }
            return stopped
        }
        waiting?.resume()
    }

    private func loop() {
        while true {
            condition.lock()
            while !signalled && !stopping { condition.wait() }
            if stopping { condition.unlock(); return }
            signalled = false
            let training = trainRequested
            trainRequested = false
            // Let requests that arrive close together share the retraining.
            if coalesce > 0 {
                let deadline = Date(timeIntervalSinceNow: coalesce)
                while !stopping && Date() < deadline { _ = condition.wait(until: deadline) }
                if stopping { condition.unlock(); return }
            }
            // Busy from here, decided under the same lock as `stopping`: a stop
            // either came first (and the thread returned) or sees the retraining.
            busy = true
            condition.unlock()
            defer { condition.withLock { busy = false } }
            do {
                if training {
                    let report = try store.train(jobs: jobs, executor: executor)
                    retrained(report.seconds)
                    log("trained \(report.shards.count) shards in \(String(format: "%.1f", report.seconds)) s")
                } else if let report = try store.processDeletions(jobs: jobs, executor: executor) {
                    retrained(report.seconds)
                    log("deletions applied: \(report.completedDeletions.count) records, shards \(report.shards.map(\.shard)), \(String(format: "%.1f", report.seconds)) s")
                }
                error.withLock { $0 = nil }
            } catch let e {
                error.withLock { $0 = "\(e)" }
                log("deletion retraining failed, will retry: \(e)")
                condition.lock()
                _ = condition.wait(until: Date(timeIntervalSinceNow: 1))
                condition.unlock()
                if training { requestTraining() } else { signal() }
            }
        }
    }
}
