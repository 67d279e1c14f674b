import Foundation
import SisaCoordinator
import XCTest

/// Runs the real `sisa` binary (built next to the test bundle by scripts/test).
final class CLITests: XCTestCase {
    var sisa: URL!

    override func setUpWithError() throws {
        let dir = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).deletingLastPathComponent()
        let candidates = [dir.appendingPathComponent("sisa"), dir.deletingLastPathComponent().appendingPathComponent("sisa")]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            XCTFail("the sisa binary is not built next to the tests (run scripts/test, which builds it first)")
            throw XCTSkip("no sisa binary")
        }
        sisa = found
    }

    @discardableResult
    func run(_ args: [String], store: URL, expectSuccess: Bool = true) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = sisa
        p.arguments = args + ["--store", store.path]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let result = (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
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

    func testSigkillDuringTrainThenResumeIsBitwiseEqual() throws {
        let tmp = TempDir()
        // About 2 s of training, so kills land at many different points.
        let reference = try makeStore(tmp, "ref", records: 400, epochs: 12)
        try run(["train"], store: reference)
        let refDigests = (try statusJSON(reference)["shards"] as! [[String: Any]]).map { $0["digest"] as! String }

        let victim = try makeStore(tmp, "victim", records: 400, epochs: 12)
        var rng = SystemRandomNumberGenerator()
        var kills = 0
        for _ in 0..<5 {
            let p = Process()
            p.executableURL = sisa
            p.arguments = ["train", "--store", victim.path]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            usleep(UInt32.random(in: 30_000...350_000, using: &rng))
            if p.isRunning { kill(p.processIdentifier, SIGKILL); kills += 1 }
            p.waitUntilExit()
        }
        XCTAssertGreaterThanOrEqual(kills, 2, "the kills must interrupt training")
        try run(["train"], store: victim)
        let status = try statusJSON(victim)
        let digests = (status["shards"] as! [[String: Any]]).map { $0["digest"] as! String }
        XCTAssertEqual(digests, refDigests, "after \(kills) SIGKILLs")
        // No temp files left behind.
        let files = try FileManager.default.contentsOfDirectory(atPath: victim.appendingPathComponent("checkpoints").path)
        XCTAssertFalse(files.contains { $0.contains(".tmp-") }, "\(files)")
    }

    func testSecondWriterFailsClearlyWhileTrainRuns() throws {
        let tmp = TempDir()
        let store = try makeStore(tmp, "s", records: 400, epochs: 12)
        let p = Process()
        p.executableURL = sisa
        p.arguments = ["train", "--store", store.path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait until train holds the lock.
        let lockPath = store.appendingPathComponent("lock").path
        for _ in 0..<200 {
            if (try? String(contentsOfFile: lockPath, encoding: .utf8))?.contains("sisa train") == true { break }
            usleep(10_000)
        }
        let r = try run(["ingest", tmp.jsonl("more.jsonl", syntheticRecords(3, prefix: "more"))], store: store, expectSuccess: false)
        XCTAssertTrue(p.isRunning, "train should still be running (make the store bigger)")
        p.waitUntilExit()
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("in use by another sisa process"), r.err)
        XCTAssertNil(try Store.open(at: store).catalog.record(id: "more-0"), "the refused ingest must change nothing")
        XCTAssertEqual(p.terminationStatus, 0)
        // Readers are never blocked, and the store is consistent afterwards.
        XCTAssertEqual((try statusJSON(store)["pendingDeletions"] as? Int), 0)
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
}
