import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

final class IngestTests: XCTestCase {
    private func store(_ tmp: TempDir) throws -> Store {
        try Store.create(at: tmp.url.appendingPathComponent("s"), config: microConfig())
    }

    private func write(_ tmp: TempDir, _ name: String, _ bytes: [UInt8]) -> String {
        let p = tmp.path(name)
        FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }

    /// Every bad input fails with a message naming the file (and line), and the
    /// catalog is left exactly as it was.
    func testBadInputIsRejectedAndChangesNothing() throws {
        let tmp = TempDir()
        let s = try store(tmp)
        let good = tmp.jsonl("good.jsonl", syntheticRecords(5))
        _ = try s.ingest(paths: [good])
        let snapshot = try s.catalog.records(includeDeleted: true)
        let ingests = try s.catalog.ingestCount()

        let cases: [(String, [UInt8], InputFormat, String)] = [
            ("bad.jsonl", Array("{\"text\": \"ok\"}\n{\"text\": broken\n".utf8), .jsonl, "bad.jsonl:2: malformed JSON"),
            ("notext.jsonl", Array("{\"id\": \"x\"}\n".utf8), .jsonl, "notext.jsonl:1: missing string field \"text\""),
            ("fragment.jsonl", Array("{\"text\": \"ok\"}\n\"just a string\"\n".utf8), .jsonl,
             "fragment.jsonl:2: expected a JSON object with a \"text\" field"),
            ("boolid.jsonl", Array("{\"id\": 3, \"text\": \"a\"}\n{\"id\": true, \"text\": \"b\"}\n".utf8), .jsonl,
             "boolid.jsonl:2: \"id\" must be a string or a number"),
            ("latin1.txt", Array("fine\ncaf".utf8) + [0xE9] + Array("\n".utf8), .lines, "latin1.txt:2: invalid UTF-8"),
            ("empty.txt", [], .lines, "no records found"),
            ("dup.jsonl", Array("{\"id\": \"a\", \"text\": \"one\"}\n{\"id\": \"a\", \"text\": \"two\"}\n".utf8), .jsonl,
             "dup.jsonl:2: duplicate id a"),
            ("again.jsonl", Array("{\"id\": \"rec-1\", \"text\": \"x\"}\n".utf8), .jsonl, "id rec-1 is already in the store"),
        ]
        for (name, bytes, format, expected) in cases {
            let path = write(tmp, name, bytes)
            XCTAssertThrowsError(try s.ingest(paths: [path], format: format)) { e in
                XCTAssertTrue("\(e)".contains(expected), "\(name): got \(e)")
            }
            XCTAssertEqual(try s.catalog.records(includeDeleted: true), snapshot, "\(name) changed the catalog")
            XCTAssertEqual(try s.catalog.ingestCount(), ingests)
        }
        // A bad file after a good one in the same call: nothing from either is kept.
        let fresh = tmp.jsonl("fresh.jsonl", syntheticRecords(3, prefix: "fresh"))
        XCTAssertThrowsError(try s.ingest(paths: [fresh, tmp.path("bad.jsonl")]))
        XCTAssertNil(try s.catalog.record(id: "fresh-0"))
        XCTAssertThrowsError(try s.ingest(paths: [tmp.path("missing.txt")])) { e in
            XCTAssertTrue("\(e)".contains("missing.txt: no such file"))
        }
    }

    /// Inputs are read a megabyte at a time: lines that straddle a chunk,
    /// a line longer than a chunk, CRLF endings and a last line without a
    /// newline all come out as a whole-file split gives them.
    func testLinesAcrossReadChunks() throws {
        let tmp = TempDir()
        var rng = Xoshiro256(seed: 11)
        var expected: [String] = []
        var bytes: [UInt8] = []
        while bytes.count < 3_500_000 {
            let n = expected.count == 500 ? 2_500_000 : 1 + Int(rng.next() % 3000)
            let line = String(repeating: Character(UnicodeScalar(UInt8(97 + expected.count % 26))), count: n)
            expected.append(line)
            bytes += Array(line.utf8) + (rng.next() % 4 == 0 ? [0x0D, 0x0A] : [0x0A])
        }
        expected.append("last line, no newline")
        bytes += Array("last line, no newline".utf8)
        let path = write(tmp, "big.txt", bytes)
        let recs = try RecordParser.parse(path: path, format: .lines)
        XCTAssertEqual(recs.count, expected.count)
        XCTAssertEqual(recs.map { String(decoding: $0.text, as: UTF8.self) }, expected)
        XCTAssertEqual(recs.last?.origin, "\(path):\(expected.count)")
    }

    /// A UTF-8 byte order mark opens a file; it is not text of the first record, in any format.
    func testAByteOrderMarkIsNotPartOfTheFirstRecord() throws {
        let tmp = TempDir()
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        let lines = write(tmp, "bom.txt", bom + Array("Hello world\r\nsecond\n".utf8))
        XCTAssertEqual(try RecordParser.parse(path: lines, format: .lines).map { String(decoding: $0.text, as: UTF8.self) },
                       ["Hello world", "second"])
        let jsonl = write(tmp, "bom.jsonl", bom + Array(#"{"text": "ok"}"#.utf8))
        XCTAssertEqual(try RecordParser.parse(path: jsonl, format: .jsonl).map(\.text), [Array("ok".utf8)])
        let dir = tmp.url.appendingPathComponent("docs")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        _ = write(tmp, "docs/a.txt", bom + Array("a document".utf8))
        XCTAssertEqual(try RecordParser.parse(path: dir.path, format: .dir).map(\.text), [Array("a document".utf8)])
        // Only at the start of the file: the same bytes later are the text's.
        let inner = write(tmp, "inner.txt", Array("a\n".utf8) + bom + Array("b\n".utf8))
        XCTAssertEqual(try RecordParser.parse(path: inner, format: .lines).map(\.text), [Array("a".utf8), bom + Array("b".utf8)])
    }

    /// A line over 64 MiB (a file without newlines, say) is refused naming the
    /// file and line, and the store is unchanged.
    func testOverlongLineIsRefusedByNameAndKeepsNothing() throws {
        let tmp = TempDir()
        var bytes = Array(#"{"id": "ok", "text": "a fine record"}"#.utf8) + [0x0A]
        bytes += Array(#"{"id": "huge", "text": ""#.utf8) + [UInt8](repeating: 0x61, count: (64 << 20) + 1)
        let path = write(tmp, "huge.jsonl", bytes)
        XCTAssertThrowsError(try RecordParser.parse(path: path, format: .jsonl)) {
            XCTAssertTrue("\($0)".contains("huge.jsonl:2: line longer than 64 MiB"), "\($0)")
        }
        let store = try Store.create(at: tmp.url.appendingPathComponent("s"), config: microConfig(shards: 1, slices: 1))
        XCTAssertThrowsError(try store.ingest(paths: [path]))
        XCTAssertEqual(try store.catalog.recordCounts().live, 0)
    }

    /// An error deep in a large input (the reader thread's) or from the insert
    /// (an id already in the store) leaves the catalog as it was.
    func testLateErrorsInALargeIngestKeepNothing() throws {
        let tmp = TempDir()
        let s = try store(tmp)
        _ = try s.ingest(paths: [tmp.jsonl("a.jsonl", syntheticRecords(5))])
        let snapshot = try s.catalog.records(includeDeleted: true)
        var lines = (0..<30_000).map { "{\"id\": \"big-\($0)\", \"text\": \"record number \($0)\"}" }
        lines[25_000] = "{\"id\": \"big-25000\", \"text\": "
        let bad = write(tmp, "bad.jsonl", Array(lines.joined(separator: "\n").utf8))
        XCTAssertThrowsError(try s.ingest(paths: [bad])) { XCTAssertTrue("\($0)".contains("bad.jsonl:25001: malformed JSON"), "\($0)") }
        XCTAssertEqual(try s.catalog.records(includeDeleted: true), snapshot)
        lines[25_000] = "{\"id\": \"rec-2\", \"text\": \"taken\"}"
        let taken = write(tmp, "taken.jsonl", Array(lines.joined(separator: "\n").utf8))
        XCTAssertThrowsError(try s.ingest(paths: [taken])) {
            XCTAssertTrue("\($0)".contains("taken.jsonl:25001: id rec-2 is already in the store"), "\($0)")
        }
        XCTAssertEqual(try s.catalog.records(includeDeleted: true), snapshot)
        lines[25_000] = "{\"id\": \"big-7\", \"text\": \"again\"}"
        let twice = write(tmp, "twice.jsonl", Array(lines.joined(separator: "\n").utf8))
        XCTAssertThrowsError(try s.ingest(paths: [twice])) {
            XCTAssertTrue("\($0)".contains("twice.jsonl:25001: duplicate id big-7 (first at \(tmp.path("twice.jsonl")):8)"), "\($0)")
        }
        XCTAssertEqual(try s.catalog.records(includeDeleted: true), snapshot)
        // The same input with --skip-duplicates keeps the first of each id.
        let r = try s.ingest(paths: [twice], skipDuplicates: true)
        XCTAssertEqual(r.added, 29_999)
        XCTAssertEqual(r.skipped, 1)
        XCTAssertEqual(try s.catalog.text(id: "big-7").map { String(decoding: $0, as: UTF8.self) }, "record number 7")
    }

    func testSkipDuplicates() throws {
        let tmp = TempDir()
        let s = try store(tmp)
        _ = try s.ingest(paths: [tmp.jsonl("a.jsonl", syntheticRecords(5))])
        let r = try s.ingest(paths: [tmp.jsonl("b.jsonl", syntheticRecords(8))], skipDuplicates: true)
        XCTAssertEqual(r.added, 3)
        XCTAssertEqual(r.skipped, 5)
    }

    func testFormats() throws {
        let tmp = TempDir()
        let fortune = write(tmp, "f", Array("first\nfortune\n%\nsecond one\n%\n\n%\nthird\n".utf8))
        let recs = try RecordParser.parse(path: fortune, format: .auto)
        XCTAssertEqual(recs.map { String(decoding: $0.text, as: UTF8.self) }, ["first\nfortune", "second one", "third"])
        XCTAssertEqual(recs.map(\.origin), ["\(fortune):1", "\(fortune):4", "\(fortune):8"])
        let lines = write(tmp, "l.txt", Array("one\n\ntwo\r\nthree".utf8))
        XCTAssertEqual(try RecordParser.parse(path: lines, format: .auto).map { String(decoding: $0.text, as: UTF8.self) },
                       ["one", "two", "three"])
        let dir = tmp.url.appendingPathComponent("docs")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try "doc b".write(to: dir.appendingPathComponent("b.txt"), atomically: true, encoding: .utf8)
        try "doc a".write(to: dir.appendingPathComponent("a.txt"), atomically: true, encoding: .utf8)
        let docs = try RecordParser.parse(path: dir.path, format: .auto)
        XCTAssertEqual(docs.map(\.id), ["a.txt", "b.txt"])
        let jl = write(tmp, "g.jsonl", Array("{\"text\": \"t\", \"id\": 5, \"group\": \"g1\"}\n".utf8))
        let j = try RecordParser.parse(path: jl, format: .auto)
        XCTAssertEqual(j.first?.id, "5")
        XCTAssertEqual(j.first?.group, "g1")
        // Ids derived from text are stable.
        XCTAssertEqual(RecordParser.derivedID(Array("x".utf8)), RecordParser.derivedID(Array("x".utf8)))
    }

    func testPlacementDependsOnlyOnSeedIDAndIngestCall() {
        let p1 = Placement.place(id: "r", seed: 3, shards: 4, slices: 4, appendedSlice: nil, holdoutFraction: 0.2)
        XCTAssertEqual(p1, Placement.place(id: "r", seed: 3, shards: 4, slices: 4, appendedSlice: nil, holdoutFraction: 0.2))
        XCTAssertEqual(Placement.place(id: "r", seed: 3, shards: 4, slices: 4, appendedSlice: 6, holdoutFraction: 0.2).slice, 6)
        // Roughly uniform over shards and slices.
        var shards = [Int](repeating: 0, count: 4), holdout = 0
        for i in 0..<4000 {
            let p = Placement.place(id: "id\(i)", seed: 1, shards: 4, slices: 4, appendedSlice: nil, holdoutFraction: 0.25)
            shards[p.shard] += 1
            if p.holdout { holdout += 1 }
        }
        XCTAssertTrue(shards.allSatisfy { $0 > 850 && $0 < 1150 }, "\(shards)")
        XCTAssertTrue(holdout > 850 && holdout < 1150, "\(holdout)")
    }

    func testConfigIsFrozenAndStoresAreNotOverwritten() throws {
        let tmp = TempDir()
        let url = tmp.url.appendingPathComponent("s")
        _ = try Store.create(at: url, config: microConfig())
        XCTAssertThrowsError(try Store.create(at: url, config: microConfig(shards: 5))) { e in
            XCTAssertEqual(e as? CoordinatorError, .storeExists(url.path))
        }
        XCTAssertThrowsError(try Store.open(at: tmp.url.appendingPathComponent("nope"))) { e in
            XCTAssertTrue("\(e)".contains("no sisa store"))
        }
        var bad = microConfig()
        bad.optimizer.schedule = .cosine
        XCTAssertThrowsError(try Store.create(at: tmp.url.appendingPathComponent("c"), config: bad))
    }
}

final class CheckpointTests: XCTestCase {
    func testScheduleFollowsSISACostModel() throws {
        let config = StoreConfig(shards: 1, slices: 4, model: microModel, batch: 4, epochs: 2, seed: 1)
        let records = (0..<200).map { i in (id: "r\(i)", slice: i % 4, text: Array(String(repeating: "x", count: 40).utf8)) }
        let plan = Schedule.plan(shard: 0, config: config, stageCount: 4, records: records)
        let tokens = plan.stages.last!.stream.count
        let full = Double(tokens) * config.epochs / Double(4 * 32)
        XCTAssertEqual(Double(plan.totalSteps), full, accuracy: full * 0.05, "stages sum to `epochs` passes")
        // Stage r's steps grow with r: about (r+1) * a * tokens/R.
        XCTAssertTrue(zip(plan.stages, plan.stages.dropFirst()).allSatisfy { $0.steps < $1.steps })
        // Removing a record of slice 2 keeps the keys of stages 0 and 1 only.
        let fewer = Schedule.plan(shard: 0, config: config, stageCount: 4, records: records.filter { $0.id != "r2" })
        XCTAssertEqual(plan.stages[0].key, fewer.stages[0].key)
        XCTAssertEqual(plan.stages[1].key, fewer.stages[1].key)
        XCTAssertNotEqual(plan.stages[2].key, fewer.stages[2].key)
        XCTAssertNotEqual(plan.stages[3].key, fewer.stages[3].key)
    }

    func testCorruptOrMissingCheckpointsAreRebuiltNotLoaded() throws {
        let tmp = TempDir()
        let s = try Store.create(at: tmp.url.appendingPathComponent("s"), config: microConfig())
        _ = try s.ingest(paths: [tmp.jsonl("r.jsonl", syntheticRecords(30))])
        _ = try s.train()
        let reference = try digests(s)
        let ckpts = try s.catalog.checkpoints()
        XCTAssertTrue(ckpts.allSatisfy { $0.storedBytes < $0.rawBytes }, "checkpoints are compressed")
        // Flip one byte in the last stage of shard 0, delete the last stage of shard 1.
        let last0 = ckpts.filter { $0.shard == 0 }.max { $0.stage < $1.stage }!
        let p0 = s.checkpoints.dir.appendingPathComponent(last0.file).path
        var bytes = [UInt8](FileManager.default.contents(atPath: p0)!)
        bytes[bytes.count / 2] ^= 0x40
        FileManager.default.createFile(atPath: p0, contents: Data(bytes))
        let last1 = ckpts.filter { $0.shard == 1 }.max { $0.stage < $1.stage }!
        try FileManager.default.removeItem(at: s.checkpoints.dir.appendingPathComponent(last1.file))
        let report = try s.train()
        XCTAssertEqual(report.warnings.count, 2, "\(report.warnings)")
        XCTAssertTrue(report.shards.allSatisfy { $0.stagesTrained == 1 }, "only the broken last stages are rebuilt")
        XCTAssertEqual(try digests(s), reference)
        XCTAssertEqual(try s.model(shard: 0).digest, reference[0])
    }

    /// Checkpoint files and catalog rows may be damaged or come from elsewhere:
    /// seeded truncations, bit flips and absurd sizes end in a clear error
    /// (the model is reported unusable), never in a crash.
    func testDamagedCheckpointsAndCatalogRowsNeverCrashTheReader() throws {
        let tmp = TempDir()
        let url = tmp.url.appendingPathComponent("s")
        do {
            let s = try Store.create(at: url, config: microConfig())
            _ = try s.ingest(paths: [tmp.jsonl("r.jsonl", syntheticRecords(30))])
            _ = try s.train()
        }
        let reader = try Store.open(at: url)
        let current = try XCTUnwrap(reader.catalog.shardStates()[0].currentKey)
        let info = try XCTUnwrap(reader.catalog.checkpoint(key: current))
        let path = reader.checkpoints.dir.appendingPathComponent(info.file)
        let valid = try Data(contentsOf: path)
        var rng = Xoshiro256(seed: 21)
        var failures = 0
        for i in 0..<1200 {
            var d = valid
            switch i % 4 {
            case 0: d = d.prefix(rng.nextInt(below: d.count))
            case 1: d[rng.nextInt(below: 56)] ^= UInt8(1) << UInt8(rng.nextInt(below: 8))
            case 2: d[rng.nextInt(below: d.count)] ^= UInt8(1) << UInt8(rng.nextInt(below: 8))
            default:
                // Absurd sizes in the header: raw size and float-section offset.
                let field = 8 + 8 * rng.nextInt(below: 2)
                for b in 0..<8 { d[field + b] = UInt8(truncatingIfNeeded: rng.next()) }
            }
            try d.write(to: path)
            XCTAssertThrowsError(try reader.model(shard: 0, allowQuarantined: true), "mutation \(i)") { e in
                XCTAssertTrue("\(e)".contains("missing or corrupt"), "\(e)")
            }
            failures += 1
        }
        XCTAssertEqual(failures, 1200)
        XCTAssertFalse(reader.checkpoints.warnings.isEmpty, "each unusable checkpoint is reported")
        // A catalog row that claims an absurd size is refused before anything is allocated.
        try valid.write(to: path)
        XCTAssertNoThrow(try reader.model(shard: 0))
        // Damage the row from outside, as a broken disk or another program would.
        let outside = try SQLiteDatabase(path: reader.catalog.path)
        for raw in [Int64.max, 1 << 40, -1] {
            try outside.run("UPDATE checkpoints SET raw_bytes = ? WHERE key = ?", raw, current)
            XCTAssertThrowsError(try reader.model(shard: 0), "raw_bytes \(raw)")
        }
        // So is an impossible configuration.
        try reader.catalog.setMeta("config", #"{"batch":4,"epochs":1,"model":{"context":32,"dim":4000000000,"heads":2,"layers":1,"vocab":257},"numerics":2,"optimizer":{"beta1":0.9,"beta2":0.95,"clipNorm":1,"epsilon":1e-08,"learningRate":0.002,"minLRFraction":0.1,"schedule":"constant","totalSteps":0,"warmupSteps":20,"weightDecay":0.1},"seed":7,"shards":2,"slices":3}"#)
        XCTAssertThrowsError(try Store.open(at: url)) { e in XCTAssertTrue("\(e)".contains("invalid configuration"), "\(e)") }
    }

    func testCompressionRoundTrip() throws {
        var rng = Xoshiro256(seed: 4)
        let raw = (0..<1003).map { _ in UInt8(truncatingIfNeeded: rng.next() % 7) }
        XCTAssertEqual(Compression.unshuffle4(Compression.shuffle4(raw)), raw)
        let z = try Compression.compress(raw)
        XCTAssertEqual(try Compression.decompress(z, rawSize: raw.count), raw)
        XCTAssertThrowsError(try Compression.decompress(Array(z.dropLast(3)), rawSize: raw.count))
    }
}

final class EnsembleTests: XCTestCase {
    func testAggregation() {
        let a = [0.6, 0.3, 0.1], b = [0.1, 0.5, 0.4], c = [0.2, 0.45, 0.35]
        let mean = Ensemble.aggregate([a, b, c], .mean)
        XCTAssertEqual(mean[0], 0.3, accuracy: 1e-12)
        XCTAssertEqual(mean[1], 1.25 / 3, accuracy: 1e-12)
        XCTAssertEqual(mean.reduce(0, +), 1, accuracy: 1e-12)
        // Votes: a -> 0, b -> 1, c -> 1: the shares are 1/3, 2/3, 0.
        let shares = Ensemble.aggregate([a, b, c], .vote)
        XCTAssertEqual(shares[0], 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(shares[1], 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(shares[2], 0)
    }

    /// Vote aggregation samples from the vote shares (it used to always take
    /// the plurality, so sampling could never leave it); greedy takes the
    /// plurality, ties to the mean probability.
    func testVoteSamplesFromTheShares() throws {
        let tmp = TempDir()
        let s = try Store.create(at: tmp.url.appendingPathComponent("v"), config: microConfig(shards: 3, slices: 1))
        _ = try s.ingest(paths: [tmp.jsonl("r.jsonl", syntheticRecords(45))])
        _ = try s.train()
        let ens = try Ensemble(store: s)
        var outs = Set<[UInt8]>()
        for seed in 0..<12 {
            var sampler = Sampler(temperature: 1, seed: UInt64(seed))
            outs.insert(ens.generate(prompt: Array("rec".utf8), maxTokens: 24, aggregation: .vote, sampler: &sampler))
        }
        XCTAssertGreaterThan(outs.count, 1, "sampling from vote shares must vary with the seed")
        var a = Sampler(temperature: 1, seed: 3), b = Sampler(temperature: 1, seed: 3)
        XCTAssertEqual(ens.generate(prompt: Array("rec".utf8), maxTokens: 24, aggregation: .vote, sampler: &a),
                       ens.generate(prompt: Array("rec".utf8), maxTokens: 24, aggregation: .vote, sampler: &b))
        // Greedy: one vote each for 0 and 1 is a tie, broken by the mean (0.35 vs 0.4) -> token 1.
        let p = [[0.6, 0.3, 0.1], [0.1, 0.5, 0.4]]
        XCTAssertEqual(Ensemble.greedy(Ensemble.aggregate(p, .vote), mean: Ensemble.aggregate(p, .mean)), 1)
    }

    func testEnsembleScoreIsTheMixture() throws {
        let tmp = TempDir()
        let s = try Store.create(at: tmp.url.appendingPathComponent("s"), config: microConfig())
        _ = try s.ingest(paths: [tmp.jsonl("r.jsonl", syntheticRecords(30))])
        _ = try s.train()
        let ens = try Ensemble(store: s)
        let text = [Array("alpha bravo".utf8)]
        let mix = ens.score(text)[0]
        let per = ens.models.map { $0.model.score(text, perToken: true)[0] }
        for t in 0..<mix.tokens {
            let p = per.map { exp(-Double($0.tokenNLL![t])) }.reduce(0, +) / Double(per.count)
            XCTAssertEqual(Double(mix.tokenNLL![t]), -log(p), accuracy: 1e-4)
        }
        var sampler = Sampler(temperature: 0)
        let out = ens.generate(prompt: Array("rec".utf8), maxTokens: 8, aggregation: .vote, sampler: &sampler)
        var again = Sampler(temperature: 0)
        XCTAssertEqual(out, ens.generate(prompt: Array("rec".utf8), maxTokens: 8, aggregation: .vote, sampler: &again))
    }
}

/// SQL errors say which statement failed.
final class SQLiteErrorTests: XCTestCase {
    func testErrorsNameTheirStatement() throws {
        let tmp = TempDir()
        let db = try SQLiteDatabase(path: tmp.path("x.sqlite"))
        try db.execute("CREATE TABLE t (id TEXT PRIMARY KEY)")
        try db.run("INSERT INTO t(id) VALUES(?)", "a")
        XCTAssertThrowsError(try db.run("INSERT INTO t(id)\n   VALUES(?)", "a")) { e in
            let s = "\(e)"
            XCTAssertTrue(s.contains("UNIQUE constraint failed") && s.contains("in `INSERT INTO t(id) VALUES(?)`"), s)
        }
        XCTAssertThrowsError(try db.query("SELECT nope FROM t") { $0.int(0) }) { e in
            XCTAssertTrue("\(e)".contains("SELECT nope FROM t"), "\(e)")
        }
        XCTAssertThrowsError(try db.execute("DROP TABLE missing")) { e in
            XCTAssertTrue("\(e)".contains("DROP TABLE missing"), "\(e)")
        }
    }
}
