import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

/// Runs the real `sisa` binary (built next to the test bundle by scripts/test).
final class CLITests: XCTestCase {
    var sisa: URL!

    override func setUpWithError() throws { sisa = try sisaBinary() }

    @discardableResult
    func run(_ args: [String], store: URL?, environment: [String: String] = [:],
             expectSuccess: Bool = true) throws -> (status: Int32, out: String, err: String) {
        let result = try runSisa(sisa, args + (store.map { ["--store", $0.path] } ?? []), environment: environment)
        if expectSuccess { XCTAssertEqual(result.0, 0, "sisa \(args.joined(separator: " ")) failed: \(result.2)") }
        return result
    }

    private func makeStore(_ tmp: TempDir, _ name: String, records: Int, epochs: Int = 3) throws -> URL {
        let url = tmp.url.appendingPathComponent(name)
        try run(["init", "--shards", "2", "--slices", "4", "--layers", "1", "--heads", "2", "--dim", "32", "--ctx", "32",
                 "--batch", "4", "--epochs", "\(epochs)", "--seed", "9"], store: url)
        try run(["ingest", tmp.jsonl("r.jsonl", syntheticRecords(records)), "--holdout", "0.1"], store: url)
        return url
    }

    func statusJSON(_ store: URL) throws -> [String: Any] {
        let out = try run(["status", "--json"], store: store).out
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
    }

    /// Starts `sisa ARGS --store STORE` with extra environment (the fault injection of `FaultInjection`).
    private func start(_ args: [String], store: URL, environment: [String: String] = [:]) throws -> Process {
        let p = Process()
        p.executableURL = sisa
        p.arguments = args + ["--store", store.path]
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    private func assertKilled(_ p: Process, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(p.terminationReason, .uncaughtSignal, "\(what) was not killed", file: file, line: line)
        XCTAssertEqual(p.terminationStatus, SIGKILL, what, file: file, line: line)
    }

    func testSigkillDuringTrainThenResumeIsBitwiseEqual() throws {
        let tmp = TempDir()
        let reference = try makeStore(tmp, "ref", records: 200, epochs: 4)
        try run(["train"], store: reference)
        let refDigests = (try statusJSON(reference)["shards"] as! [[String: Any]]).map { $0["digest"] as! String }

        // 2 shards x 4 slices: 8 checkpoints. Each run is killed at a chosen
        // point: right after its k-th checkpoint is recorded, or between the
        // k-th file's rename and its catalog row (an orphan file). The runs
        // record at most 1+1+2+1+2 = 7 checkpoints, so every one of them is killed.
        let victim = try makeStore(tmp, "victim", records: 200, epochs: 4)
        let kills: [(String, Int)] = [("SISA_TEST_KILL_BEFORE_RECORDING_CHECKPOINT", 1), ("SISA_TEST_KILL_AFTER_CHECKPOINTS", 1),
                                      ("SISA_TEST_KILL_BEFORE_RECORDING_CHECKPOINT", 2), ("SISA_TEST_KILL_AFTER_CHECKPOINTS", 1),
                                      ("SISA_TEST_KILL_AFTER_CHECKPOINTS", 2)]
        var recorded: [Int] = []
        for (fault, k) in kills {
            let p = try start(["train"], store: victim, environment: [fault: "\(k)"])
            p.waitUntilExit()
            assertKilled(p, "train with \(fault)=\(k)")
            recorded.append(try statusJSON(victim)["checkpoints"] as? Int ?? -1)
        }
        XCTAssertEqual(recorded, recorded.sorted(), "progress is kept across kills: \(recorded)")
        XCTAssertLessThan(recorded.last!, 8, "the last run was killed before the end")
        try run(["train"], store: victim)
        let status = try statusJSON(victim)
        let digests = (status["shards"] as! [[String: Any]]).map { $0["digest"] as! String }
        XCTAssertEqual(digests, refDigests, "after \(kills.count) SIGKILLs")
        try run(["verify"], store: victim)
        // No temp files left behind, and the orphans were replaced by recorded checkpoints.
        let files = try FileManager.default.contentsOfDirectory(atPath: victim.appendingPathComponent("checkpoints").path)
        XCTAssertFalse(files.contains { $0.contains(".tmp-") }, "\(files)")
        XCTAssertEqual(files.filter { $0.hasSuffix(".ckpt") }.count, status["checkpoints"] as? Int, "\(files)")
    }

    /// An ingest killed once every record is inserted: just before its
    /// transaction commits nothing of it remains; just after, all of it does.
    func testIngestKilledAroundItsCommitIsAllOrNothing() throws {
        let tmp = TempDir()
        let store = try makeStore(tmp, "s", records: 20)
        let more = tmp.jsonl("more.jsonl", syntheticRecords(500, prefix: "more"))
        for (point, expected) in [("before-commit", 20), ("after-commit", 520)] {
            let p = try start(["ingest", more], store: store, environment: ["SISA_TEST_KILL_DURING_INGEST": point])
            p.waitUntilExit()
            assertKilled(p, "ingest killed \(point)")
            XCTAssertEqual(try statusJSON(store)["records"] as? Int, expected, point)
        }
        // verify names a shard behind its records rather than calling it a mismatch;
        // what the kept ingest holds then trains and verifies like any other.
        let behind = try run(["verify"], store: store, expectSuccess: false)
        XCTAssertNotEqual(behind.status, 0)
        XCTAssertTrue(behind.err.contains("shard 0 has not been trained yet") && behind.err.contains("sisa train"), behind.err)
        XCTAssertTrue(behind.out.contains("shard 1: BEHIND"), "every shard is still reported: \(behind.out)")
        try run(["train"], store: store)
        try run(["verify"], store: store)
        try run(["ingest", tmp.jsonl("late.jsonl", syntheticRecords(40, prefix: "late"))], store: store)
        let late = try run(["verify"], store: store, expectSuccess: false)
        XCTAssertTrue(late.err.contains("is not trained up to its records (records were ingested since the last train)"), late.err)
    }

    func testSecondWriterFailsClearlyWhileTrainRuns() throws {
        let tmp = TempDir()
        let store = try makeStore(tmp, "s", records: 100)
        // Train holds the store's lock, held in flight at its first checkpoint by the gate.
        let gate = tmp.url.appendingPathComponent("gate").path
        let p = try start(["train"], store: store, environment: ["SISA_TEST_CHECKPOINT_GATE": gate])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, !(try FileManager.default.contentsOfDirectory(atPath: tmp.url.path)).contains(where: { $0.hasPrefix("gate.waiting-") }) {
            usleep(5_000)
        }
        XCTAssertTrue(p.isRunning, "train waits at the gate")
        let r = try run(["ingest", tmp.jsonl("more.jsonl", syntheticRecords(3, prefix: "more"))], store: store, expectSuccess: false)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("in use by another sisa process"), r.err)
        XCTAssertNil(try Store.open(at: store).catalog.record(id: "more-0"), "the refused ingest must change nothing")
        // Readers are never blocked.
        XCTAssertEqual((try statusJSON(store)["pendingDeletions"] as? Int), 0)
        FileManager.default.createFile(atPath: gate, contents: nil)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        try run(["verify"], store: store)
    }

    func testStatusJSONContractAndErrors() throws {
        let tmp = TempDir()
        let store = try makeStore(tmp, "s", records: 50)
        try run(["train"], store: store)
        let s = try statusJSON(store)
        XCTAssertEqual(s["records"] as? Int, 50)
        let shards = try XCTUnwrap(s["shards"] as? [[String: Any]])
        XCTAssertEqual(shards.count, 2)
        for (i, sh) in shards.enumerated() {
            XCTAssertEqual(sh["index"] as? Int, i)
            XCTAssertNotNil(sh["records"] as? Int)
            XCTAssertEqual(sh["stages"] as? Int, 4)
            XCTAssertEqual(sh["stagesTrained"] as? Int, 4)
            XCTAssertEqual(sh["quarantined"] as? Bool, false)
            XCTAssertEqual((sh["digest"] as? String)?.count, 64)
        }
        let recs = try run(["records", "--json"], store: store).out
        let ids = (try JSONSerialization.jsonObject(with: Data(recs.utf8)) as! [[String: Any]]).map { $0["id"] as! String }
        XCTAssertEqual(ids.count, 50)
        let score = try run(["score", "--text", "alpha bravo", "--json"], store: store).out
        let sj = try JSONSerialization.jsonObject(with: Data(score.utf8)) as! [String: Any]
        XCTAssertGreaterThan(sj["meanNLL"] as! Double, 0)
        XCTAssertEqual((sj["items"] as! [[String: Any]]).first?["tokens"] as? Int, 12)
        let del = try run(["delete", ids[0], "--json"], store: store)
        let receipt = try JSONSerialization.jsonObject(with: Data(del.out.utf8)) as! [String: Any]
        XCTAssertEqual(receipt["records"] as? [String], [ids[0]])
        let unknown = try run(["delete", "nope"], store: store, expectSuccess: false)
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.err.contains("unknown record id: nope"), unknown.err)
        let missing = try run(["status"], store: tmp.url.appendingPathComponent("absent"), expectSuccess: false)
        XCTAssertTrue(missing.err.contains("no sisa store"), missing.err)
        let q = try run(["query", "rec", "--max-tokens", "10", "--seed", "1"], store: store)
        XCTAssertTrue(q.out.hasPrefix("rec"))
    }

    /// The issue's check, as a user would run it: a nano store trained under
    /// each kernel path this machine runs has the same digests.
    func testNanoStoreDigestsAreTheSameUnderEveryKernelPath() throws {
        let tmp = TempDir()
        let data = tmp.jsonl("r.jsonl", syntheticRecords(30))
        var byPath: [String: [String]] = [:]
        for path in Kernels.availablePaths {
            let store = tmp.url.appendingPathComponent(path.rawValue)
            try run(["init", "--shards", "2", "--slices", "2", "--preset", "nano", "--batch", "4", "--epochs", "1",
                     "--seed", "3"], store: store)
            try run(["ingest", data], store: store)
            try run(["train"], store: store, environment: ["SISA_KERNELS": path.rawValue])
            byPath[path.rawValue] = (try statusJSON(store)["shards"] as! [[String: Any]]).map { $0["digest"] as! String }
            // Verification retrains from scratch, here on the fastest path.
            let verify = try run(["verify"], store: store)
            XCTAssertEqual(verify.out.components(separatedBy: " OK ").count - 1, 2, verify.out)
        }
        let reference = try XCTUnwrap(byPath["portable"])
        for (path, digests) in byPath {
            XCTAssertEqual(digests, reference, "\(path) trains other bits than portable")
            print("nano store digests under SISA_KERNELS=\(path): \(digests.map { String($0.prefix(16)) }.joined(separator: " "))")
        }
        for command in ["status", "train"] {
            let refused = try run([command], store: tmp.url.appendingPathComponent("portable"),
                                  environment: ["SISA_KERNELS": "mmx"], expectSuccess: false)
            XCTAssertNotEqual(refused.status, 0)
            XCTAssertTrue(refused.err.contains("SISA_KERNELS=mmx is not a kernel path"), refused.err)
        }
    }

    func testBenchTrainReportsItsKernels() throws {
        for path in Kernels.availablePaths where path != .portable {
            let r = try run(["bench", "train", "--preset", "nano", "--batch", "2", "--steps", "2", "--json"], store: nil,
                            environment: ["SISA_KERNELS": path.rawValue])
            let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
            XCTAssertEqual(j["kernels"] as? String, path.rawValue)
            XCTAssertGreaterThan(j["tokensPerSecond"] as? Double ?? 0, 0)
        }
    }

    func testTrainRefusesOtherNumericsAndRebuildMovesTheStore() throws {
        let tmp = TempDir()
        let store = try makeStore(tmp, "s", records: 30)
        try run(["train"], store: store)
        try makeItLookOld(store)
        let status = try run(["status"], store: store).out
        XCTAssertTrue(status.contains("numerics: version 1"), status)
        XCTAssertTrue(status.contains("sisa train --rebuild"), status)
        XCTAssertEqual(try statusJSON(store)["numericsIsCurrent"] as? Bool, false)
        let refused = try run(["train"], store: store, expectSuccess: false)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.err.contains("numerics version 1") && refused.err.contains("sisa train --rebuild"), refused.err)
        let verify = try run(["verify"], store: store, expectSuccess: false)
        XCTAssertTrue(verify.err.contains("sisa train --rebuild"), verify.err)
        let rebuilt = try run(["train", "--rebuild"], store: store)
        XCTAssertTrue(rebuilt.err.contains("numerics version 1 -> \(Numerics.version)"), rebuilt.err)
        let after = try statusJSON(store)
        XCTAssertEqual((after["config"] as? [String: Any])?["numerics"] as? Int, Numerics.version)
        XCTAssertEqual(after["numericsIsCurrent"] as? Bool, true)
        try run(["verify"], store: store)
    }

    /// Pretends the store is from the OpenBLAS era (see `makeStoreLookOld`).
    private func makeItLookOld(_ store: URL) throws { try makeStoreLookOld(store) }

    func testRebuildKilledHalfWayKeepsTheOldVersionUntilItCompletes() throws {
        let tmp = TempDir()
        let reference = try makeStore(tmp, "ref", records: 200)
        try run(["train"], store: reference)
        let refDigests = (try statusJSON(reference)["shards"] as! [[String: Any]]).map { $0["digest"] as! String }

        let store = try makeStore(tmp, "s", records: 200)
        try run(["train"], store: store)
        try makeItLookOld(store)
        let dir = store.appendingPathComponent("checkpoints").path
        let oldFiles = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        // Killed right after the first checkpoint of the new version is recorded.
        let p = try start(["train", "--rebuild"], store: store, environment: ["SISA_TEST_KILL_AFTER_CHECKPOINTS": "1"])
        p.waitUntilExit()
        assertKilled(p, "the rebuild")
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        XCTAssertTrue(files.contains(where: { $0.hasSuffix(".ckpt") && !oldFiles.contains($0) }), "a checkpoint of the new version is on disk")

        // Still the old version: every command that trains refuses, and every
        // shard's recorded model is still there to answer queries.
        XCTAssertEqual(try statusJSON(store)["numericsIsCurrent"] as? Bool, false)
        let victim = syntheticRecords(400)[7].id
        let refused = try run(["delete", victim], store: store, expectSuccess: false)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.err.contains("sisa train --rebuild"), refused.err)
        let verify = try run(["verify"], store: store, expectSuccess: false)
        XCTAssertTrue(verify.err.contains("sisa train --rebuild"), verify.err)
        try run(["query", "a", "--max-tokens", "4"], store: store)

        try run(["train", "--rebuild"], store: store)
        let digests = (try statusJSON(store)["shards"] as! [[String: Any]]).map { $0["digest"] as! String }
        XCTAssertEqual(digests, refDigests, "the resumed rebuild equals a store trained under this version")
        try run(["verify"], store: store)
    }

    func testMeasurementCommandsAndTheirJSON() throws {
        let tmp = TempDir()
        let store = try makeStore(tmp, "m", records: 60)
        let canaries = tmp.url.appendingPathComponent("c.jsonl").path
        try run(["canaries", "--count", "2", "--repeats", "3", "--seed", "4", "--out", canaries], store: nil)
        XCTAssertEqual(try String(contentsOfFile: canaries, encoding: .utf8).split(separator: "\n").count, 6)
        try run(["ingest", canaries], store: store)
        try run(["train"], store: store)
        XCTAssertNotEqual(try run(["canaries", "--count", "0", "--out", canaries], store: nil, expectSuccess: false).status, 0)

        // exposure: one entry per distinct canary.
        let exposure = try JSONSerialization.jsonObject(with: Data(try run(["exposure", "--group", "canary", "--candidates", "50", "--json"], store: store).out.utf8)) as? [String: Any]
        let list = try XCTUnwrap(exposure?["canaries"] as? [[String: Any]])
        XCTAssertEqual(list.count, 2)
        XCTAssertTrue(list.allSatisfy { ($0["exposure"] as? Double)?.isFinite == true && ($0["secret"] as? String)?.count == 8 })
        let one = try run(["exposure", "--file", canaries, "--shard", "0", "--candidates", "50", "--json"], store: store).out
        let oneJSON = try JSONSerialization.jsonObject(with: Data(one.utf8)) as? [String: Any]
        XCTAssertEqual(oneJSON?["shards"] as? [Int], [0])

        // score reads JSON lines: a multi-line record is one item.
        let multi = tmp.jsonl("multi.jsonl", [(id: "x", text: "first line\nsecond line")])
        let scored = try JSONSerialization.jsonObject(with: Data(try run(["score", multi, "--json"], store: store).out.utf8)) as? [String: Any]
        let items = try XCTUnwrap(scored?["items"] as? [[String: Any]])
        XCTAssertEqual(items.count, 1)
        XCTAssertEqual(items[0]["tokens"] as? Int, "first line\nsecond line".utf8.count + 1)
        // A file of lines skips blank ones for a store's byte models, as ingest does.
        let lines = tmp.url.appendingPathComponent("lines.txt").path
        try "alpha\n\n  \nbravo\n".write(toFile: lines, atomically: true, encoding: .utf8)
        let linesJSON = try JSONSerialization.jsonObject(with: Data(try run(["score", lines, "--json"], store: store).out.utf8)) as? [String: Any]
        XCTAssertEqual((linesJSON?["items"] as? [[String: Any]])?.count, 2)

        // compare: intervals, calibrated attack and verdict in the JSON.
        let report = tmp.url.appendingPathComponent("r.json").path
        try run(["compare", "--forget-group", "default", "--count", "3", "--steps", "2", "--eval-every", "1", "--json", report], store: store)
        let r = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any])
        XCTAssertTrue(["measurable", "not-measurable"].contains(r["verdict"] as? String ?? ""))
        XCTAssertNotNil(r["verdictReason"] as? String)
        let curve = try XCTUnwrap((r["approximate"] as? [String: Any])?["curve"] as? [[String: Any]])
        for m in [r["original"], r["exact"]].compactMap({ $0 as? [String: Any] }) + curve {
            for key in ["forgetCalibratedAUC", "forgetCalibratedAUCCI", "forgetMIAAUCCI", "forgetNLLCI", "meanLikelihoodGapCI", "holdoutPPLCI"] {
                XCTAssertNotNil(m[key], "\(key) missing")
            }
            XCTAssertEqual((m["forgetNLLCI"] as? [Double])?.count, 2)
        }
        let audit = try JSONSerialization.jsonObject(with: Data(try run(["audit", "--group", "default", "--json"], store: store).out.utf8)) as? [String: Any]
        XCTAssertTrue(["detectable", "not-detectable"].contains(audit?["verdict"] as? String ?? ""))
    }

    func testDPInitStatusAndPrivacyPlanning() throws {
        let tmp = TempDir()
        let url = tmp.url.appendingPathComponent("dp")
        let base = ["init", "--shards", "2", "--slices", "2", "--layers", "1", "--heads", "2", "--dim", "32", "--ctx", "32",
                    "--batch", "4", "--epochs", "1"]
        let noClip = try run(base + ["--dp-noise", "1"], store: url, expectSuccess: false)
        XCTAssertNotEqual(noClip.status, 0)
        XCTAssertTrue(noClip.err.contains("--dp-clip"), noClip.err)
        let both = try run(base + ["--dp-noise", "1", "--dp-epsilon", "3", "--dp-clip", "1"], store: url, expectSuccess: false)
        XCTAssertTrue(both.err.contains("exactly one"), both.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.appendingPathComponent("catalog.sqlite").path))
        try run(base + ["--dp-epsilon", "4", "--dp-clip", "1", "--dp-delta", "1e-4"], store: url)
        try run(["ingest", tmp.jsonl("r.jsonl", syntheticRecords(60))], store: url)
        try run(["train"], store: url)
        let shards = try XCTUnwrap(try statusJSON(url)["shards"] as? [[String: Any]])
        for sh in shards {
            let eps = try XCTUnwrap(sh["epsilon"] as? Double)
            XCTAssertLessThanOrEqual(eps, 4)
            XCTAssertGreaterThan(eps, 3.5)
        }
        XCTAssertTrue(try run(["status"], store: url).out.contains("epsilon"))
        // Planning: the accountant alone.
        let plan = try run(["privacy", "--sampling-rate", "0.01", "--noise", "1.0", "--steps", "1000", "--delta", "1e-5", "--json"],
                           store: nil).out
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(plan.utf8)) as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(obj["epsilon"] as? Double), 2.101365272, accuracy: 1e-3 * 2.1)
    }


    func testTokenCreateListRevoke() throws {
        let tmp = TempDir()
        let url = tmp.url.appendingPathComponent("t")
        try run(["init", "--shards", "1", "--slices", "1", "--layers", "1", "--heads", "2", "--dim", "32", "--ctx", "32"], store: url)
        let out = try run(["token", "create", "--role", "deleter", "--name", "privacy-portal", "--json"], store: url).out
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        XCTAssertEqual(obj["role"] as? String, "deleter")
        XCTAssertEqual(obj["name"] as? String, "privacy-portal")
        let token = try XCTUnwrap(obj["token"] as? String)
        XCTAssertEqual(try Store.open(at: url).authenticate(token)?.role, .deleter)
        let list = try run(["token", "list"], store: url).out
        XCTAssertTrue(list.contains("privacy-portal") && list.contains("deleter") && !list.contains(token))
        let bad = try run(["token", "create", "--role", "root", "--name", "x"], store: url, expectSuccess: false)
        XCTAssertTrue(bad.err.contains("reader, deleter or admin"), bad.err)
        try run(["token", "revoke", "privacy-portal"], store: url)
        XCTAssertNil(try Store.open(at: url).authenticate(token))
    }

}
