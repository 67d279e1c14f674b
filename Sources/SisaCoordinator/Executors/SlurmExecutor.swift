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
        /// How long a task may be gone from the queue before its result shows
        /// (shared file systems cache "no such file" for a few seconds).
        public var resultGraceSeconds = 10.0
        /// How long squeue may keep failing before the run gives up.
        public var controllerOutageSeconds = 300.0
        public init(worker: URL) { self.worker = worker }

        /// Splits on unquoted whitespace; single and double quotes group, a
        /// backslash escapes the next character (outside single quotes).
        public static func splitArguments(_ s: String) throws -> [String] {
            var out: [String] = [], word = "", inWord = false
            var quote: Character?
            var escaped = false
            for c in s {
                if escaped { word.append(c); escaped = false; inWord = true; continue }
                if let q = quote {
                    if c == q { quote = nil } else if c == "\\" && q == "\"" { escaped = true } else { word.append(c) }
                    continue
                }
                switch c {
                case "'", "\"": quote = c; inWord = true
                case "\\": escaped = true
                case " ", "\t", "\n":
                    if inWord { out.append(word); word = ""; inWord = false }
                default: word.append(c); inWord = true
                }
            }
            guard quote == nil, !escaped else { throw CoordinatorError.invalidInput("--slurm-args: unbalanced quote or trailing backslash in \(s)") }
            if inWord { out.append(word) }
            return out
        }
    }

    public let options: Options
    /// Submissions, retries and failures, for the user.
    let note: @Sendable (String) -> Void

    public init(options: Options, note: @escaping @Sendable (String) -> Void = { _ in }) {
        self.options = options
        self.note = note
    }

    public func train(_ work: [ShardWork], store: Store, progress: (@Sendable (TrainProgress) -> Void)?) throws -> [ShardTrainReport] {
        // `Store.train` has already stopped what a killed run left and recorded
        // every checkpoint file it finds by key.
        let folder = WorkFolder(store: store.url)
        guard !work.isEmpty else { return [] }
        let run = UUID().uuidString.lowercased()
        let t0 = Date()
        var reports: [Int: ShardTrainReport] = [:]
        var toSubmit: [ShardWork] = []
        for w in work {
            if let last = w.plan.stages.last, let state = try store.checkpoints.load(key: last.key) {
                // Finished already: its model's digest is the report, read once.
                let digest = try Trainer(restoring: state, pool: .shared).model.digest
                reports[w.plan.shard] = ShardTrainReport(shard: w.plan.shard, fromStage: w.plan.stages.count, stagesTrained: 0, steps: 0,
                                                         seconds: 0, previousDigest: w.previousDigest, digest: digest)
                note("shard \(w.plan.shard): found its finished checkpoint; nothing to submit")
            } else {
                toSubmit.append(w)
            }
        }
        guard !toSubmit.isEmpty else { return work.map { reports[$0.plan.shard]! } }
        var firstStage: [Int: Int] = [:]
        var results: [Int: (result: WorkResult, seconds: Double)] = [:]
        // Orders hold record text: they never outlive the run.
        defer { folder.removeData() }
        do {
            for w in toSubmit { firstStage[w.plan.shard] = try writeOrder(w, run: run, store: store, folder: folder) }
            try checkOrdersStillLive(toSubmit, store: store, folder: folder)
            try writeScript(folder)
            try runArray(toSubmit.map(\.plan.shard), run: run, started: t0, folder: folder, results: &results, progress: progress)
            try record(toSubmit, results: results, store: store)
        } catch {
            // Keep what finished (its checkpoints are checked and recorded);
            // stop the rest. The task logs stay for diagnosis.
            try? record(toSubmit.filter { results[$0.plan.shard] != nil }, results: results, store: store)
            if SlurmExecutor.stop(folder.recordedJobs()) { try? FileManager.default.removeItem(at: folder.jobs) }
            throw error
        }
        for w in toSubmit {
            // The run's whole work on the shard, whatever attempt finished it.
            let from = firstStage[w.plan.shard]!
            let r = results[w.plan.shard]!
            reports[w.plan.shard] = ShardTrainReport(shard: w.plan.shard, fromStage: from, stagesTrained: w.plan.stages.count - from,
                                                     steps: w.plan.stages.dropFirst(from).reduce(0) { $0 + $1.steps },
                                                     seconds: r.seconds, previousDigest: w.previousDigest, digest: r.result.report.digest)
        }
        // A task resubmitted after a result was late to show may still run.
        _ = SlurmExecutor.stop(folder.recordedJobs())
        try folder.remove()
        return work.map { reports[$0.plan.shard]! }
    }

    /// Checks the checkpoints the workers wrote and records them, in one
    /// transaction: each file reads back whole, its checksum is the one its
    /// worker reported, and the last stage's model has the reported digest.
    private func record(_ work: [ShardWork], results: [Int: (result: WorkResult, seconds: Double)], store: Store) throws {
        try store.catalog.transaction {
            for w in work {
                let r = results[w.plan.shard]!.result
                let checksums = Dictionary(r.checkpoints.map { ($0.key, $0.checksum) }, uniquingKeysWith: { a, _ in a })
                for stage in w.plan.stages {
                    let info = try store.checkpoints.adopt(key: stage.key, shard: w.plan.shard, stage: stage.stage)
                    if let want = checksums[stage.key], info?.checksum != want {
                        throw CoordinatorError.corrupt("shard \(w.plan.shard), stage \(stage.stage): the checkpoint on disk is not the one the worker on \(r.host) wrote (checksum)")
                    }
                }
                guard let last = w.plan.stages.last, let digest = try? store.model(checkpointKey: last.key).digest else {
                    throw CoordinatorError.corrupt("shard \(w.plan.shard): the worker on \(r.host) reported success but its last checkpoint is missing or unreadable")
                }
                guard digest == r.report.digest else {
                    throw CoordinatorError.corrupt("shard \(w.plan.shard): the last checkpoint's model has digest \(digest.prefix(16)), the worker on \(r.host) reported \(r.report.digest.prefix(16))")
                }
            }
        }
    }

    /// A coordinator killed mid-run leaves its jobs and orders: cancel the
    /// jobs (their finished checkpoints are then found by key) and clear the
    /// folder. Returns what it did, for the report's warnings.
    @discardableResult
    static func abandonEarlierRun(_ folder: WorkFolder) throws -> String? {
        let jobs = folder.recordedJobs()
        guard !jobs.isEmpty else {
            try folder.remove()
            return nil
        }
        if stop(jobs) {
            try folder.remove()
            return "cancelled Slurm jobs \(jobs.joined(separator: ", ")) of an earlier run that did not finish (its finished checkpoints are reused)"
        }
        // Their orders (record text) go now; the job ids stay, for the next run to cancel.
        folder.removeData()
        return "could not confirm that Slurm jobs \(jobs.joined(separator: ", ")) of an earlier run have stopped (is the controller reachable?); their work orders are removed and the next run cancels them again"
    }

    /// Cancels the jobs and waits (up to a minute) until none of their tasks
    /// is queued or running. True when that is confirmed.
    static func stop(_ jobs: [String]) -> Bool {
        guard !jobs.isEmpty else { return true }
        SlurmClient.cancel(jobs)
        let deadline = Date().addingTimeInterval(60)
        while true {
            if let live = try? SlurmClient.liveTasks(jobs: jobs), live.isEmpty { return true }
            if Date() > deadline { return false }
            Thread.sleep(forTimeInterval: 0.5)
        }
    }

    /// Writes the shard's order; returns the first stage it trains (after the
    /// latest recorded checkpoint).
    private func writeOrder(_ w: ShardWork, run: String, store: Store, folder: WorkFolder) throws -> Int {
        var start: (stage: Int, info: CheckpointInfo)?
        for stage in w.plan.stages.reversed() {
            if let info = try store.catalog.checkpoint(key: stage.key) { start = (stage.stage, info); break }
        }
        let texts = Dictionary(try store.catalog.trainingRecords(shard: w.plan.shard).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let records = try (w.plan.stages.last?.ids ?? []).map { id -> WorkOrder.Record in
            guard let r = texts[id] else { throw CoordinatorError.io(SlurmExecutor.deletedMeanwhile(w.plan.shard, id)) }
            return WorkOrder.Record(id: id, slice: r.slice, text: String(decoding: r.text, as: UTF8.self))
        }
        let order = WorkOrder(run: run, shard: w.plan.shard, config: String(decoding: store.config.canonicalJSON, as: UTF8.self),
                              stageCount: w.plan.stages.count, stageKeys: w.plan.stages.map(\.key),
                              startKey: start?.info.key, startChecksum: start?.info.checksum, records: records,
                              base: store.config.base.map { WorkOrder.Base(path: BaseFiles.relativePath($0), sha256: $0.sha256) })
        try folder.write(order, to: folder.order(w.plan.shard))
        return (start?.stage ?? -1) + 1
    }

    /// A deletion committed while the orders were being written may have
    /// missed an order not yet on disk when it purged: every order is
    /// checked against the live records after it is written, so whichever
    /// comes second, the deletion's purge or this check, removes it.
    private func checkOrdersStillLive(_ work: [ShardWork], store: Store, folder: WorkFolder) throws {
        for w in work {
            let live = Set(try store.catalog.trainingRecords(shard: w.plan.shard).map(\.id))
            if let gone = w.plan.stages.last?.ids.first(where: { !live.contains($0) }) {
                try? FileManager.default.removeItem(at: folder.order(w.plan.shard))
                throw CoordinatorError.io(SlurmExecutor.deletedMeanwhile(w.plan.shard, gone))
            }
        }
    }

    static func deletedMeanwhile(_ shard: Int, _ id: String) -> String {
        "shard \(shard): record \(id) was deleted while this run was being prepared; run again (the next run retrains the shard without it)"
    }

    private func writeScript(_ folder: WorkFolder) throws {
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let script = """
            #!/bin/sh
            # Written by sisa: one array task per shard; the task id is the shard.
            # sbatch exports the submitting shell's environment; a kernel path
            # forced there may not exist on the node (the bits are the same on all).
            unset SISA_KERNELS
            exec \(quoted(options.worker.path)) worker --order \(quoted(folder.dir.path))/order-"$SLURM_ARRAY_TASK_ID".json

            """
        try FileIO.writeAtomically(Data(script.utf8), to: folder.script.path)
        chmod(folder.script.path, 0o755)
    }

    /// Submits the shards and waits for every result (with the seconds from
    /// `started` to when it was seen), resubmitting tasks that ended without one.
    private func runArray(_ shards: [Int], run: String, started: Date, folder: WorkFolder,
                          results: inout [Int: (result: WorkResult, seconds: Double)],
                          progress: (@Sendable (TrainProgress) -> Void)?) throws {
        let name = "sisa-\(run.prefix(8))"
        var attempts = Dictionary(shards.map { ($0, 1) }, uniquingKeysWith: { a, _ in a })
        var jobs = [try submit(shards, name: name, folder: folder)]
        var lastProgress: [Int: Data] = [:]
        var goneSince: [Int: Date] = [:]
        var squeueFailingSince: Date?
        var lastQueueNote = Date()
        while results.count < shards.count {
            Thread.sleep(forTimeInterval: options.pollSeconds)
            // squeue first, then the files: a task gone from the queue has exited, so its result was written.
            let live: [Int: String]
            do {
                live = try SlurmClient.taskStates(jobs: jobs)
                squeueFailingSince = nil
            } catch {
                // A busy or restarting controller is waited out; one gone for minutes is an error.
                let since = squeueFailingSince ?? Date()
                squeueFailingSince = since
                if Date().timeIntervalSince(since) > options.controllerOutageSeconds { throw error }
                continue
            }
            var failed: [Int] = []
            for s in shards where results[s] == nil {
                if let progress, let d = FileManager.default.contents(atPath: folder.progress(s).path), d != lastProgress[s],
                   let p = try? JSONDecoder().decode(WorkProgress.self, from: d), p.run == run {
                    lastProgress[s] = d
                    progress(p.progress)
                }
                if let r = try? WorkFolder.read(WorkResult.self, from: folder.result(s)), r.run == run {
                    results[s] = (r, Date().timeIntervalSince(started))
                    continue
                }
                guard live[s] == nil else { goneSince[s] = nil; continue }
                // On shared storage a new file can take a moment to show on this node.
                let since = goneSince[s] ?? Date()
                goneSince[s] = since
                if Date().timeIntervalSince(since) >= options.resultGraceSeconds { failed.append(s) }
            }
            // Say so when the queue, not training, is what the run waits for.
            let pending = live.filter { $0.value == "PENDING" && results[$0.key] == nil }.keys.sorted()
            if !pending.isEmpty, Date().timeIntervalSince(lastQueueNote) > 60 {
                lastQueueNote = Date()
                note("shards \(pending.map(String.init).joined(separator: ", ")) still waiting in Slurm's queue (`squeue --me` says why)")
            }
            guard !failed.isEmpty else { continue }
            for s in failed {
                goneSince[s] = nil
                let tail = SlurmExecutor.tail(of: folder.log(s))
                guard attempts[s]! <= options.maxRetries else {
                    throw CoordinatorError.io("shard \(s): its Slurm task ended without a result \(attempts[s]!) times (--max-retries \(options.maxRetries)); last log lines (\(folder.log(s).path)):\n\(tail)")
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
        Set(try taskStates(jobs: jobs).keys)
    }

    /// State (PENDING, RUNNING, ...) of each shard of these jobs still queued or running.
    static func taskStates(jobs: [String]) throws -> [Int: String] {
        guard !jobs.isEmpty else { return [:] }
        // The user's jobs, filtered here: `squeue -j` fails on a job it has already forgotten.
        let (status, out, err) = try command("squeue", ["--me", "-h", "-r", "-o", "%F %K %T"])
        guard status == 0 else { throw CoordinatorError.io("squeue failed (\(status)): \(err)") }
        let wanted = Set(jobs)
        var live: [Int: String] = [:]
        for line in out.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 3, wanted.contains(String(f[0])), let task = Int(f[1]) else { continue }
            if !["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE"]
                .contains(String(f[2])) {
                live[task] = String(f[2])
            }
        }
        return live
    }

    /// Best effort: the jobs may be gone already (`stop` confirms with squeue).
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
