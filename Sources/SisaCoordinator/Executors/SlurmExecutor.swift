import Foundation
import SisaEngine

/// Shards as a Slurm job array, one task per shard (the task id is the shard).
///
/// The coordinator stays the only process that opens the catalog. It writes
/// a work order per shard into `<store>/work/`, submits one array running
/// `sisa worker --order FILE`, polls `squeue` and the workers' progress and
/// result files, resubmits a task that failed, was cancelled or timed out
/// (it resumes from the last checkpoint it wrote) up to `maxRetries` times,
/// then checks every checkpoint (checksum and key) and records them in one
/// transaction. Only the stable client commands are used (sbatch, squeue,
/// scancel), so any Slurm version a site runs will do.
public struct SlurmExecutor: ShardExecutor {
    public struct Options: Sendable {
        /// The `sisa` binary the nodes run (same build as the coordinator's).
        public var worker: URL
        public var partition: String?
        /// Extra sbatch arguments, passed through as given (--time, --account, --mem, ...).
        public var sbatchArgs: [String] = []
        /// Resubmissions per task after a failure, cancellation or timeout.
        public var maxRetries = 2
        /// CPUs (and training threads) per task; nil: Slurm's default, one.
        public var cpusPerTask: Int?
        public var pollSeconds = 0.5
        public init(worker: URL) { self.worker = worker }
    }

    public let options: Options
    /// Submissions, retries and failures, for the user.
    let note: @Sendable (String) -> Void

    public init(options: Options, note: @escaping @Sendable (String) -> Void = { _ in }) {
        self.options = options
        self.note = note
    }

    public func train(_ work: [ShardWork], store: Store, progress: (@Sendable (TrainProgress) -> Void)?) throws -> [ShardTrainReport] {
        let folder = WorkFolder(store: store.url)
        try SlurmExecutor.abandonEarlierRun(folder, note: note)
        guard !work.isEmpty else { return [] }
        let run = UUID().uuidString.lowercased()
        var reports: [Int: ShardTrainReport] = [:]
        var toSubmit: [ShardWork] = []
        // Finished checkpoints (of a killed coordinator's run, say) are found by key.
        for w in work {
            if let last = w.plan.stages.last, try store.checkpoints.adopt(key: last.key, shard: w.plan.shard, stage: last.stage) != nil {
                reports[w.plan.shard] = try store.trainShard(w.plan, previousDigest: w.previousDigest, pool: .shared, progress: nil)
                note("shard \(w.plan.shard): found its finished checkpoint; nothing to submit")
            } else {
                toSubmit.append(w)
            }
        }
        defer {
            // Orders hold record text: they never outlive the run.
            folder.removeData()
        }
        do {
            if !toSubmit.isEmpty {
                for w in toSubmit { try writeOrder(w, run: run, store: store, folder: folder) }
                try writeScript(folder)
                let results = try runArray(toSubmit.map(\.plan.shard), run: run, store: store, folder: folder, progress: progress)
                // Check and record every checkpoint in one transaction.
                try store.catalog.transaction {
                    for w in toSubmit {
                        let r = results[w.plan.shard]!
                        let checksums = Dictionary(r.checkpoints.map { ($0.key, $0.checksum) }, uniquingKeysWith: { a, _ in a })
                        for stage in w.plan.stages {
                            let info = try store.checkpoints.adopt(key: stage.key, shard: w.plan.shard, stage: stage.stage)
                            if let want = checksums[stage.key], info?.checksum != want {
                                throw CoordinatorError.corrupt("shard \(w.plan.shard), stage \(stage.stage): the checkpoint on disk is not the one the worker on \(r.host) wrote (checksum)")
                            }
                        }
                        guard let last = w.plan.stages.last, try store.catalog.checkpoint(key: last.key) != nil else {
                            throw CoordinatorError.corrupt("shard \(w.plan.shard): the worker on \(r.host) reported success but its last checkpoint is missing or unreadable")
                        }
                        let rep = r.report
                        reports[w.plan.shard] = ShardTrainReport(shard: rep.shard, fromStage: rep.fromStage, stagesTrained: rep.stagesTrained,
                                                                 steps: rep.steps, seconds: rep.seconds,
                                                                 previousDigest: w.previousDigest, digest: rep.digest)
                    }
                }
            }
        } catch {
            SlurmClient.cancel(folder.recordedJobs())
            throw error
        }
        try folder.remove()
        return work.map { reports[$0.plan.shard]! }
    }

    /// A coordinator killed mid-run leaves its jobs and orders: cancel the
    /// jobs (their finished checkpoints are found by key) and clear the folder.
    /// Returns what it did, for the report's warnings.
    @discardableResult
    static func abandonEarlierRun(_ folder: WorkFolder, note: (String) -> Void) throws -> String? {
        let jobs = folder.recordedJobs()
        var done: String?
        if !jobs.isEmpty {
            done = "cancelled Slurm jobs \(jobs.joined(separator: ", ")) of an earlier run that did not finish (its finished checkpoints are reused)"
            note(done!)
            SlurmClient.cancel(jobs)
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, (try? SlurmClient.liveTasks(jobs: jobs))?.isEmpty == false {
                Thread.sleep(forTimeInterval: 0.5)
            }
        }
        try folder.remove()
        return done
    }

    private func writeOrder(_ w: ShardWork, run: String, store: Store, folder: WorkFolder) throws {
        let recorded = try w.plan.stages.last(where: { try store.catalog.checkpoint(key: $0.key) != nil })
        let start = try recorded.flatMap { try store.catalog.checkpoint(key: $0.key) }
        let texts = Dictionary(try store.catalog.trainingRecords(shard: w.plan.shard).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let records = try (w.plan.stages.last?.ids ?? []).map { id -> WorkOrder.Record in
            guard let r = texts[id] else { throw CoordinatorError.corrupt("shard \(w.plan.shard): record \(id) is planned but not live") }
            return WorkOrder.Record(id: id, slice: r.slice, text: String(decoding: r.text, as: UTF8.self))
        }
        let order = WorkOrder(run: run, shard: w.plan.shard, config: String(decoding: store.config.canonicalJSON, as: UTF8.self),
                              stageCount: w.plan.stages.count, stageKeys: w.plan.stages.map(\.key),
                              startKey: start?.key, startChecksum: start?.checksum, records: records)
        try folder.write(order, to: folder.order(w.plan.shard))
    }

    private func writeScript(_ folder: WorkFolder) throws {
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let script = """
            #!/bin/sh
            # Written by sisa: one array task per shard; the task id is the shard.
            exec \(quoted(options.worker.path)) worker --order \(quoted(folder.dir.path))/order-"$SLURM_ARRAY_TASK_ID".json

            """
        try FileIO.writeAtomically(Data(script.utf8), to: folder.script.path)
        chmod(folder.script.path, 0o755)
    }

    /// Submits the shards, waits for every result, resubmitting failed tasks.
    private func runArray(_ shards: [Int], run: String, store: Store, folder: WorkFolder,
                          progress: (@Sendable (TrainProgress) -> Void)?) throws -> [Int: WorkResult] {
        let name = "sisa-\(run.prefix(8))"
        var attempts = Dictionary(shards.map { ($0, 1) }, uniquingKeysWith: { a, _ in a })
        var jobs = [try submit(shards, name: name, folder: folder)]
        var results: [Int: WorkResult] = [:]
        var lastProgress: [Int: Data] = [:]
        var squeueFailures = 0
        while results.count < shards.count {
            Thread.sleep(forTimeInterval: options.pollSeconds)
            // squeue first, then the files: a task gone from the queue has exited, so its result is on disk.
            let live: Set<Int>
            do {
                live = try SlurmClient.liveTasks(jobs: jobs)
                squeueFailures = 0
            } catch {
                squeueFailures += 1
                if squeueFailures >= 20 { throw error }   // the controller is gone, not busy
                continue
            }
            var failed: [Int] = []
            for s in shards where results[s] == nil {
                if let progress, let d = FileManager.default.contents(atPath: folder.progress(s).path), d != lastProgress[s],
                   let p = try? JSONDecoder().decode(TrainProgress.self, from: d) {
                    lastProgress[s] = d
                    progress(p)
                }
                if let r = try? WorkFolder.read(WorkResult.self, from: folder.result(s)), r.run == run {
                    results[s] = r
                    continue
                }
                if !live.contains(s) { failed.append(s) }
            }
            guard !failed.isEmpty else { continue }
            for s in failed {
                let tail = SlurmExecutor.tail(of: folder.log(s))
                guard attempts[s]! <= options.maxRetries else {
                    throw CoordinatorError.io("shard \(s): its Slurm task failed \(attempts[s]!) times (--max-retries \(options.maxRetries)); last log lines (\(folder.log(s).path)):\n\(tail)")
                }
                // A deletion purged this order (its text must not be written again): stop; the next pass retrains.
                guard FileManager.default.fileExists(atPath: folder.order(s).path) else {
                    throw CoordinatorError.io("shard \(s): its work order was purged by a deletion request; this run stops and the next one retrains the shard")
                }
                attempts[s]! += 1
                note("shard \(s): task ended without a result (cancelled, failed or timed out); resubmitting, attempt \(attempts[s]!) of \(options.maxRetries + 1)" + (tail.isEmpty ? "" : "; log: \(tail.split(separator: "\n").last ?? "")"))
            }
            jobs.append(try submit(failed, name: name, folder: folder))
        }
        return results
    }

    private func submit(_ shards: [Int], name: String, folder: WorkFolder) throws -> String {
        var args = ["--parsable", "--array=\(shards.map(String.init).joined(separator: ","))", "--job-name=\(name)",
                    "--output=\(folder.dir.path)/task-%a.log", "--open-mode=append"]
        if let p = options.partition { args.append("--partition=\(p)") }
        if let c = options.cpusPerTask { args.append("--cpus-per-task=\(c)") }
        args += options.sbatchArgs
        args.append(folder.script.path)
        let id = try SlurmClient.sbatch(args)
        try folder.recordJob(id)
        note("submitted Slurm job \(id): shards \(shards.map(String.init).joined(separator: ", "))")
        return id
    }

    static func tail(of url: URL, lines: Int = 5) -> String {
        guard let d = FileManager.default.contents(atPath: url.path) else { return "" }
        return String(decoding: d, as: UTF8.self).split(separator: "\n").suffix(lines).joined(separator: "\n")
    }
}

/// The Slurm client commands, run as processes.
public enum SlurmClient {
    /// `sbatch --parsable ...`: the job id.
    static func sbatch(_ args: [String]) throws -> String {
        let (status, out, err) = try command("sbatch", args)
        guard status == 0 else {
            throw CoordinatorError.io("sbatch \(args.joined(separator: " ")) failed (\(status)): \(err.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        // --parsable prints "jobid" or "jobid;cluster".
        guard let id = out.split(separator: "\n").first?.split(separator: ";").first, !id.isEmpty else {
            throw CoordinatorError.io("sbatch printed no job id: \(out)")
        }
        return String(id)
    }

    /// The shards (array task ids) of these jobs still queued or running.
    static func liveTasks(jobs: [String]) throws -> Set<Int> {
        guard !jobs.isEmpty else { return [] }
        // The user's jobs, filtered here: `squeue -j` fails on a job it has already forgotten.
        let (status, out, err) = try command("squeue", ["--me", "-h", "-r", "-o", "%F %K %T"])
        guard status == 0 else { throw CoordinatorError.io("squeue failed (\(status)): \(err)") }
        let wanted = Set(jobs)
        var live: Set<Int> = []
        for line in out.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 3, wanted.contains(String(f[0])), let task = Int(f[1]) else { continue }
            if !["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE"]
                .contains(String(f[2])) {
                live.insert(task)
            }
        }
        return live
    }

    /// Best effort: the jobs may be gone already.
    static func cancel(_ jobs: [String]) {
        guard !jobs.isEmpty else { return }
        _ = try? command("scancel", jobs)
    }

    /// Whether the Slurm clients are installed and a controller answers.
    public static func available() -> Bool {
        (try? command("squeue", ["--me", "-h", "-o", "%i"]).status) == 0
    }

    static func command(_ name: String, _ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [name] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch {
            throw CoordinatorError.io("cannot run \(name) (is Slurm installed and on PATH?): \(error)")
        }
        // Both pipes drained at once: a full stderr pipe would block the child.
        nonisolated(unsafe) var e = Data()
        let errDone = DispatchSemaphore(value: 0)
        Thread { e = err.fileHandleForReading.readDataToEndOfFile(); errDone.signal() }.start()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        errDone.wait()
        p.waitUntilExit()
        if p.terminationStatus == 127 { throw CoordinatorError.io("\(name): not found (is Slurm installed and on PATH?)") }
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}
