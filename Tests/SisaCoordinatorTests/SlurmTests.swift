import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

/// The Slurm executor against a real single-node Slurm (`scripts/slurm-local
/// start`, which `scripts/test` runs): sbatch, squeue and scancel for real.
/// Skipped when no controller answers, unless SISA_REQUIRE_SLURM=1 (CI).
final class SlurmTests: XCTestCase {
    var sisa: URL!

    override func setUpWithError() throws {
        guard SlurmClient.available() else {
            if ProcessInfo.processInfo.environment["SISA_REQUIRE_SLURM"] == "1" {
                // An error, not a skip: CI must not pass with these tests unrun.
                throw CoordinatorError.io("SISA_REQUIRE_SLURM=1 but no Slurm controller answers (SLURM_CONF=\(ProcessInfo.processInfo.environment["SLURM_CONF"] ?? "unset"))")
            }
            throw XCTSkip("no Slurm controller answers: run `scripts/slurm-local start` and export SLURM_CONF")
        }
        sisa = try sisaBinary()
    }

    func slurm(_ notes: Notes, retries: Int = 2) -> SlurmExecutor {
        var o = SlurmExecutor.Options(worker: sisa)
        o.maxRetries = retries
        o.pollSeconds = 0.2
        o.resultGraceSeconds = 0.5   // one node, local disk: results show at once
        return SlurmExecutor(options: o, note: { notes.add($0) })
    }

    /// Training through Slurm gives the digests of a local `train`, records
    /// every checkpoint, reports progress and leaves no work order.
    func testSlurmTrainingEqualsLocal() throws {
        let tmp = TempDir()
        let records = syntheticRecords(60)
        let config = microConfig(shards: 3, slices: 2)
        let local = try Store.create(at: tmp.url.appendingPathComponent("local"), config: config)
        _ = try local.ingest(paths: [tmp.jsonl("r.jsonl", records)])
        _ = try local.train(jobs: 2)
        let cluster = try Store.create(at: tmp.url.appendingPathComponent("cluster"), config: config)
        _ = try cluster.ingest(paths: [tmp.jsonl("r.jsonl", records)])
        let notes = Notes()
        let progress = Notes()
        let report = try cluster.train(executor: slurm(notes), progress: { progress.add("\($0.shard) \($0.doneSteps)/\($0.totalSteps)") })
        XCTAssertEqual(report.shards.map(\.shard), [0, 1, 2])
        XCTAssertEqual(try digests(cluster), try digests(local))
        XCTAssertTrue(try digests(cluster).allSatisfy { $0 != nil })
        XCTAssertEqual(Set(try cluster.catalog.checkpoints().map(\.key)), Set(try local.catalog.checkpoints().map(\.key)))
        XCTAssertEqual(notes.all.filter { $0.hasPrefix("submitted Slurm job") }.count, 1, "one array for all shards: \(notes.all)")
        XCTAssertFalse(progress.all.isEmpty, "progress from the workers' files")
        XCTAssertFalse(FileManager.default.fileExists(atPath: cluster.url.appendingPathComponent("work").path), "the work folder is removed")
        // Nothing left to do: no job is submitted.
        let again = Notes()
        XCTAssertTrue(try cluster.train(executor: slurm(again)).shards.isEmpty)
        XCTAssertTrue(again.all.isEmpty)
    }

    /// A deletion retrained through Slurm equals a store that never ingested
    /// the record, and the record's bytes are in no file.
    func testSlurmDeletionEqualsNeverIngested() throws {
        let tmp = TempDir()
        var records = syntheticRecords(50)
        records[9].text = "SECRET-PAYLOAD-slurm-0451 \(records[9].text)"
        let config = microConfig(shards: 2, slices: 3)
        let store = try Store.create(at: tmp.url.appendingPathComponent("s"), config: config)
        _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records)])
        _ = try store.train(executor: slurm(Notes()))
        let notes = Notes()
        let receipt = try store.delete(ids: [records[9].id], executor: slurm(notes))
        XCTAssertEqual(receipt.shards.count, 1)
        XCTAssertTrue(notes.all.contains { $0.contains("submitted Slurm job") })
        let never = try Store.create(at: tmp.url.appendingPathComponent("n"), config: config)
        _ = try never.ingest(paths: [tmp.jsonl("rest.jsonl", records.filter { $0.id != records[9].id })])
        _ = try never.train()
        XCTAssertEqual(try digests(store), try digests(never))
        for (name, bytes) in allFileBytes(store.url) {
            XCTAssertNil(bytes.range(of: Data("SECRET-PAYLOAD-slurm-0451".utf8)), "deleted text still present in \(name)")
        }
    }

    /// A base store through Slurm: the work orders name the base by path and
    /// digest, workers train adapters over the store's copy, and a deletion
    /// equals a store that never saw the record.
    func testSlurmOnABaseStore() throws {
        let tmp = TempDir()
        var records = syntheticRecords(40)
        records[5].text = "SECRET-PAYLOAD-slurm-base-77 \(records[5].text)"
        let config = try baseConfig(TinyBase.gguf, shards: 2, slices: 2)
        let store = try createBaseStore(tmp.url.appendingPathComponent("s"), TinyBase.gguf, config: config)
        _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records)])
        let notes = Notes()
        _ = try store.train(executor: slurm(notes))
        let local = try createBaseStore(tmp.url.appendingPathComponent("l"), TinyBase.gguf, config: config)
        _ = try local.ingest(paths: [tmp.jsonl("r.jsonl", records)])
        _ = try local.train()
        XCTAssertEqual(try digests(store), try digests(local))
        _ = try store.delete(ids: [records[5].id], executor: slurm(Notes()))
        let never = try createBaseStore(tmp.url.appendingPathComponent("n"), TinyBase.gguf, config: config)
        _ = try never.ingest(paths: [tmp.jsonl("rest.jsonl", records.filter { $0.id != records[5].id })])
        _ = try never.train()
        XCTAssertEqual(try digests(store), try digests(never))
        for (name, bytes) in allFileBytes(store.url) {
            XCTAssertNil(bytes.range(of: Data("SECRET-PAYLOAD-slurm-base-77".utf8)), "deleted text still present in \(name)")
        }
    }

    /// A task cancelled with scancel mid-stage is resubmitted, resumes from
    /// its last checkpoint, and the end result is still bit-exact.
    func testCancelledTaskIsResubmittedAndBitExact() throws {
        let tmp = TempDir()
        let records = syntheticRecords(60)
        var config = microConfig(shards: 2, slices: 3)
        config.epochs = 20
        let local = try Store.create(at: tmp.url.appendingPathComponent("local"), config: config)
        _ = try local.ingest(paths: [tmp.jsonl("r.jsonl", records)])
        _ = try local.train(jobs: 2)
        let cluster = try Store.create(at: tmp.url.appendingPathComponent("cluster"), config: config)
        _ = try cluster.ingest(paths: [tmp.jsonl("r.jsonl", records)])
        let notes = Notes()
        let progress = Notes()
        let executor = slurm(notes)
        let cancelled = Notes()
        // Cancel shard 1's task while it is held at the checkpoint gate right
        // after its stage-0 checkpoint (mid-run at a known point, on any
        // machine), then open the gate for every task. The gate reaches the
        // tasks through sbatch's exported environment; this process read the
        // variable (unset) when `local` trained, so it is not gated itself.
        let gate = tmp.url.appendingPathComponent("gate").path
        setenv("SISA_TEST_CHECKPOINT_GATE", gate, 1)
        defer { unsetenv("SISA_TEST_CHECKPOINT_GATE"); FileManager.default.createFile(atPath: gate, contents: nil) }
        let stage0 = cluster.checkpoints.dir.appendingPathComponent("\(try cluster.plan(shard: 1).stages[0].key).ckpt").path
        let canceller = Thread {
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline {
                if let job = notes.all.first(where: { $0.hasPrefix("submitted Slurm job") })?.split(separator: " ")[3].dropLast(),
                   FileManager.default.fileExists(atPath: gate + ".waiting-s1-0") {
                    let scancel = Process()
                    scancel.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                    scancel.arguments = ["scancel", "\(job)_1"]
                    try? scancel.run()
                    scancel.waitUntilExit()
                    cancelled.add("\(job)_1 \(scancel.terminationStatus)")
                    cancelled.add(inode(stage0))
                    // Slurm delivers the cancel on its own time: open the gate once the task has left the queue.
                    while Date() < deadline {
                        let squeue = Process(), out = Pipe()
                        squeue.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                        squeue.arguments = ["squeue", "-h", "-j", "\(job)_1", "-t", "PD,R,CG"]
                        squeue.standardOutput = out
                        squeue.standardError = FileHandle.nullDevice
                        try? squeue.run()
                        squeue.waitUntilExit()
                        if out.fileHandleForReading.readDataToEndOfFile().isEmpty { break }
                        Thread.sleep(forTimeInterval: 0.02)
                    }
                    break
                }
                Thread.sleep(forTimeInterval: 0.005)
            }
            FileManager.default.createFile(atPath: gate, contents: nil)
        }
        canceller.start()
        let report = try cluster.train(executor: executor, progress: { progress.add("\($0.shard) stage \($0.stage) \($0.doneSteps)/\($0.totalSteps)") })
        XCTAssertEqual(cancelled.all.count, 2, "the canceller fired: \(notes.all)")
        XCTAssertTrue(cancelled.all.first?.hasSuffix(" 0") ?? false, "scancel succeeded: \(cancelled.all)")
        XCTAssertTrue(notes.all.contains { $0.hasPrefix("shard 1: task ended without a result") }, "resubmitted: \(notes.all)")
        XCTAssertEqual(notes.all.filter { $0.hasPrefix("submitted Slurm job") }.count, 2, "\(notes.all)")
        // The second attempt resumed from the checkpoint the first one wrote:
        // that file was not written again (a rewrite renames a new file in).
        XCTAssertEqual(cancelled.all.last, inode(stage0))
        XCTAssertEqual(report.shards.map(\.fromStage), [0, 0], "the run's work on each shard")
        XCTAssertEqual(try digests(cluster), try digests(local))
        XCTAssertFalse(FileManager.default.fileExists(atPath: cluster.url.appendingPathComponent("work").path))
    }

    /// A coordinator killed mid-run leaves jobs and work orders (record
    /// text). A deletion then purges the orders holding the record; the next
    /// run cancels the old jobs, finds finished checkpoints by key, resubmits
    /// only what is missing, and equals a store that never saw the record.
    func testKilledCoordinatorPurgedOrdersAndResume() throws {
        let tmp = TempDir()
        var records = syntheticRecords(60)
        records[4].text = "SECRET-PAYLOAD-order-8812 \(records[4].text)"
        let storeURL = tmp.url.appendingPathComponent("s")
        // Three shards: on a small node some wait while others run.
        var config = microConfig(shards: 3, slices: 3)
        config.epochs = 150
        let victimShard = try { () throws -> Int in
            let store = try Store.create(at: storeURL, config: config)
            _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records)])
            return try XCTUnwrap(store.catalog.record(id: records[4].id)).shard
        }()
        let p = Process()
        p.executableURL = sisa
        p.arguments = ["train", "--store", storeURL.path, "--executor", "slurm", "--slurm-sisa", sisa.path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Kill the coordinator once another shard has finished (its checkpoints are written, not recorded).
        let work = WorkFolder(store: storeURL)
        let others = (0..<3).filter { $0 != victimShard }
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && !others.contains(where: { FileManager.default.fileExists(atPath: work.result($0).path) }) {
            Thread.sleep(forTimeInterval: 0.02)
        }
        let finished = try XCTUnwrap(others.first { FileManager.default.fileExists(atPath: work.result($0).path) })
        XCTAssertTrue(FileManager.default.fileExists(atPath: work.order(victimShard).path), "the order is on disk mid-run")
        XCTAssertNotNil(FileManager.default.contents(atPath: work.order(victimShard).path)?.range(of: Data("SECRET-PAYLOAD-order-8812".utf8)),
                        "an order holds the records' text")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertFalse(work.recordedJobs().isEmpty, "the killed run's jobs are on record")

        // The deletion (queued) purges the order holding the record at once.
        let store = try Store.open(at: storeURL, writer: "test")
        _ = try store.delete(ids: [records[4].id], deferRetrain: true)
        XCTAssertFalse(FileManager.default.fileExists(atPath: work.order(victimShard).path), "the order holding the record is purged")
        XCTAssertTrue(FileManager.default.fileExists(atPath: work.order(finished).path), "the others are not")

        let notes = Notes()
        let report = try store.train(executor: slurm(notes))
        XCTAssertTrue(report.warnings.contains { $0.hasPrefix("cancelled Slurm jobs") }, "\(report.warnings)")
        XCTAssertTrue(notes.all.contains("shard \(finished): found its finished checkpoint; nothing to submit"), "\(notes.all)")
        let submitted = notes.all.filter { $0.hasPrefix("submitted Slurm job") }
            .flatMap { $0.components(separatedBy: "shards ").last!.components(separatedBy: ", ") }
        XCTAssertTrue(submitted.contains(String(victimShard)) && !submitted.contains(String(finished)),
                      "only what is missing is submitted: \(notes.all)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: work.dir.path), "no work order is left behind")
        let never = try Store.create(at: tmp.url.appendingPathComponent("n"), config: config)
        _ = try never.ingest(paths: [tmp.jsonl("rest.jsonl", records.filter { $0.id != records[4].id })])
        _ = try never.train(jobs: 2)
        XCTAssertEqual(try digests(store), try digests(never))
        for (name, bytes) in allFileBytes(storeURL) {
            XCTAssertNil(bytes.range(of: Data("SECRET-PAYLOAD-order-8812".utf8)), "deleted text still present in \(name)")
        }
        // Every recorded checkpoint reads back whole.
        for k in try store.catalog.checkpoints().map(\.key) { XCTAssertNoThrow(try store.model(checkpointKey: k)) }
    }

    /// `sisa serve --executor slurm`: the deletion worker retrains through
    /// Slurm, and the store ends equal to one that never saw the record.
    func testServerRetrainsThroughSlurm() throws {
        let tmp = TempDir()
        let records = syntheticRecords(40)
        let storeURL = tmp.url.appendingPathComponent("s")
        let config = microConfig(shards: 2, slices: 2)
        let deleter = try { () throws -> String in
            let store = try Store.create(at: storeURL, config: config)
            _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records)])
            _ = try store.train()
            return try store.createToken(role: .deleter, name: "portal")
        }()
        let err = Pipe()
        let (p, base) = try startServe(sisa, store: storeURL, arguments: ["--coalesce", "0", "--executor", "slurm", "--slurm-sisa", sisa.path],
                                       stderr: err)
        defer { if p.isRunning { p.terminate() } }
        let victim = records[11].id
        let (_, submitted) = try call("POST", base.appendingPathComponent("deletions"), token: deleter, body: ["ids": [victim]])
        let id = try XCTUnwrap((submitted?["request"] as? [String: Any])?["id"] as? Int)
        var state = ""
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && state != "done" {
            Thread.sleep(forTimeInterval: 0.2)
            state = try call("GET", base.appendingPathComponent("deletions/\(id)"), token: deleter).1?["state"] as? String ?? ""
        }
        XCTAssertEqual(state, "done")
        p.terminate()
        p.waitUntilExit()
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(log.contains("submitted Slurm job"), log)
        let never = try Store.create(at: tmp.url.appendingPathComponent("n"), config: config)
        _ = try never.ingest(paths: [tmp.jsonl("rest.jsonl", records.filter { $0.id != victim })])
        _ = try never.train()
        XCTAssertEqual(try digests(Store.open(at: storeURL)), try digests(never))
    }

    /// A task that keeps failing exhausts --max-retries: the run fails naming
    /// the task's log, nothing is recorded, no order or job list is left.
    func testRetriesRunOut() throws {
        let tmp = TempDir()
        let store = try Store.create(at: tmp.url.appendingPathComponent("s"), config: microConfig())
        _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", syntheticRecords(20))])
        let failing = tmp.url.appendingPathComponent("failing-sisa")
        try "#!/bin/sh\necho 'worker: no luck' >&2\nexit 3\n".write(to: failing, atomically: true, encoding: .utf8)
        chmod(failing.path, 0o755)
        var o = SlurmExecutor.Options(worker: failing)
        o.maxRetries = 1
        o.pollSeconds = 0.2
        o.resultGraceSeconds = 0.5
        let notes = Notes()
        XCTAssertThrowsError(try store.train(executor: SlurmExecutor(options: o, note: { notes.add($0) }))) { e in
            XCTAssertTrue("\(e)".contains("ended without a result 2 times") && "\(e)".contains("worker: no luck"), "\(e)")
        }
        // Each shard's task ran at most twice (one try, one retry); the first to run out ends the run.
        let submissions = notes.all.filter { $0.hasPrefix("submitted Slurm job") }
            .flatMap { $0.components(separatedBy: "shards ").last!.components(separatedBy: ", ") }
        XCTAssertTrue(submissions.filter { $0 == "0" }.count <= 2 && submissions.filter { $0 == "1" }.count <= 2, "\(notes.all)")
        XCTAssertTrue(submissions.filter { $0 == "0" }.count == 2 || submissions.filter { $0 == "1" }.count == 2, "\(notes.all)")
        XCTAssertEqual(try digests(store), [nil, nil])
        XCTAssertTrue(try store.catalog.checkpoints().isEmpty)
        let work = WorkFolder(store: store.url)
        let left = (try? FileManager.default.contentsOfDirectory(atPath: work.dir.path)) ?? []
        XCTAssertFalse(left.contains { $0.hasPrefix("order-") || $0 == "jobs" }, "\(left)")
    }
}

/// Work orders, the worker and the executor's options without a cluster.
final class WorkOrderTests: XCTestCase {
    /// A worker refuses an order its build plans differently.
    func testWorkerRefusesAnOrderItPlansDifferently() throws {
        let tmp = TempDir()
        let store = try Store.create(at: tmp.url.appendingPathComponent("s"), config: microConfig())
        _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", syntheticRecords(20))])
        let plan = try store.plan(shard: 0)
        let records = try store.catalog.trainingRecords(shard: 0)
        let order = WorkOrder(run: "r", shard: 0, config: String(decoding: store.config.canonicalJSON, as: UTF8.self),
                              stageCount: plan.stages.count, stageKeys: plan.stages.map { _ in "not-a-key" },
                              startKey: nil, startChecksum: nil,
                              records: records.map { .init(id: $0.id, slice: $0.slice, text: String(decoding: $0.text, as: UTF8.self)) })
        let folder = WorkFolder(store: store.url)
        try folder.write(order, to: folder.order(0))
        XCTAssertThrowsError(try Worker.run(order: folder.order(0))) { e in
            XCTAssertTrue("\(e)".contains("plans shard 0 differently"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.result(0).path))
    }

    /// A worker checks the base before training: an order naming another
    /// digest, or a base changed on the shared storage, is refused.
    func testWorkerChecksTheBaseDigest() throws {
        let tmp = TempDir()
        let store = try createBaseStore(tmp.url.appendingPathComponent("s"), TinyBase.gguf, config: try baseConfig(TinyBase.gguf))
        _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", syntheticRecords(20))])
        let plan = try store.plan(shard: 0)
        let records = try store.catalog.trainingRecords(shard: 0)
        let b = try XCTUnwrap(store.config.base)
        func order(_ base: WorkOrder.Base?) -> WorkOrder {
            WorkOrder(run: "r", shard: 0, config: String(decoding: store.config.canonicalJSON, as: UTF8.self),
                      stageCount: plan.stages.count, stageKeys: plan.stages.map(\.key), startKey: nil, startChecksum: nil,
                      records: records.map { .init(id: $0.id, slice: $0.slice, text: String(decoding: $0.text, as: UTF8.self)) },
                      base: base)
        }
        let folder = WorkFolder(store: store.url)
        try folder.write(order(WorkOrder.Base(path: "base/tiny-llama.gguf", sha256: String(repeating: "a", count: 64))), to: folder.order(0))
        XCTAssertThrowsError(try Worker.run(order: folder.order(0))) { XCTAssertTrue("\($0)".contains("does not name the store's base"), "\($0)") }
        try folder.write(order(WorkOrder.Base(path: "base/tiny-llama.gguf", sha256: b.sha256)), to: folder.order(0))
        let file = store.url.appendingPathComponent("base/tiny-llama.gguf")
        var bytes = try Data(contentsOf: file)
        bytes[1000] ^= 1
        try bytes.write(to: file)
        XCTAssertThrowsError(try Worker.run(order: folder.order(0))) { XCTAssertTrue("\($0)".contains("the base changed"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.result(0).path))
        XCTAssertTrue(try store.catalog.checkpoints().isEmpty)
    }

    /// A deletion purges every order holding the record, temp files of an
    /// order being written included, and no other.
    func testDeletionPurgesOrdersHoldingTheRecord() throws {
        let tmp = TempDir()
        let records = syntheticRecords(20)
        let store = try Store.create(at: tmp.url.appendingPathComponent("s"), config: microConfig())
        _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records)])
        let folder = WorkFolder(store: store.url)
        func order(_ shard: Int) throws -> WorkOrder {
            let rs = try store.catalog.trainingRecords(shard: shard)
            return WorkOrder(run: "r", shard: shard, config: "{}", stageCount: 1, stageKeys: ["k"], startKey: nil, startChecksum: nil,
                             records: rs.map { .init(id: $0.id, slice: $0.slice, text: String(decoding: $0.text, as: UTF8.self)) })
        }
        try folder.write(try order(0), to: folder.order(0))
        try folder.write(try order(1), to: folder.order(1))
        let victim = try XCTUnwrap(store.catalog.trainingRecords(shard: 0).first)
        // A half-written order (a coordinator killed mid-write).
        try Data(String(decoding: try JSONEncoder().encode(try order(0)), as: UTF8.self).prefix(200).utf8)
            .write(to: folder.dir.appendingPathComponent("order-0.json.tmp-host-1-2"))
        _ = try store.delete(ids: [victim.id], deferRetrain: true)
        let left = try FileManager.default.contentsOfDirectory(atPath: folder.dir.path).sorted()
        XCTAssertEqual(left, ["order-1.json"])
        for (name, bytes) in allFileBytes(store.url) {
            XCTAssertNil(bytes.range(of: Data(victim.text)), "deleted text still present in \(name)")
        }
    }

    func testSlurmArgsSplitLikeAShell() throws {
        XCTAssertEqual(try SlurmExecutor.Options.splitArguments(#"--time=2:00:00  --comment="two words" --x='a "b"' c\ d"#),
                       ["--time=2:00:00", "--comment=two words", #"--x=a "b""#, "c d"])
        XCTAssertEqual(try SlurmExecutor.Options.splitArguments(""), [])
        XCTAssertThrowsError(try SlurmExecutor.Options.splitArguments(#"--comment="open"#))
    }
}

/// The file's inode number, to tell a file from one renamed over it.
private func inode(_ path: String) -> String {
    "\((try? FileManager.default.attributesOfItem(atPath: path))?[.systemFileNumber] ?? "none")"
}

final class Notes: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.withLock { items.append(s) } }
    var all: [String] { lock.withLock { items } }
}
