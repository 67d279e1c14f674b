import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SisaCoordinator
import SisaEngine
import XCTest

/// `sisa serve` for real, on loopback: a child process, HTTP calls, SIGTERM.
final class ServerTests: XCTestCase {
    var sisa: URL!

    override func setUpWithError() throws { sisa = try sisaBinary() }

    func metricsText(_ url: URL, token: String) throws -> String {
        try raw("GET", url, token: token).1.map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    func serve(_ storeURL: URL) throws -> (Process, URL) { try startServe(sisa, store: storeURL) }

    /// SIGKILL while the acknowledged deletion is being retrained; the next
    /// server completes it, and the store equals one that never saw the record.
    func testKilledServerCompletesAcknowledgedDeletions() throws {
        let tmp = TempDir()
        let records = syntheticRecords(80)
        let storeURL = tmp.url.appendingPathComponent("s")
        var config = microConfig()
        config.epochs = 20
        let deleter = try { () throws -> String in
            let store = try Store.create(at: storeURL, config: config)
            _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records)])
            _ = try store.train()
            return try store.createToken(role: .deleter, name: "portal")
        }()
        let victims = [records[5].id, records[50].id]
        // The server kills itself right after the retraining's first checkpoint:
        // a crash at a known point mid-retraining, not after a guessed sleep.
        var (p, base) = try startServe(sisa, store: storeURL, environment: ["SISA_TEST_KILL_AFTER_CHECKPOINTS": "1"])
        var ids: [Int] = []
        for v in victims {
            let (status, body) = try call("POST", base.appendingPathComponent("deletions"), token: deleter, body: ["ids": [v]])
            XCTAssertEqual(status, 202)
            ids.append(try XCTUnwrap((body?["request"] as? [String: Any])?["id"] as? Int))
        }
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal)
        XCTAssertNotEqual(try Store.open(at: storeURL).deletionRequest(id: ids[0])?.state, .done, "the kill should land before the end")

        (p, base) = try serve(storeURL)
        defer { if p.isRunning { p.terminate() } }
        var states: [String] = []
        _ = try eventually(within: 120) {
            states = try ids.map { try call("GET", base.appendingPathComponent("deletions/\($0)"), token: deleter).1?["state"] as? String ?? "" }
            return states.allSatisfy { $0 == "done" }
        }
        XCTAssertEqual(states, ["done", "done"])
        p.terminate()
        p.waitUntilExit()
        let never = try Store.create(at: tmp.url.appendingPathComponent("n"), config: config)
        _ = try never.ingest(paths: [tmp.jsonl("rest.jsonl", records.filter { !victims.contains($0.id) })])
        _ = try never.train()
        XCTAssertEqual(try digests(Store.open(at: storeURL)), try digests(never))
    }

    /// Ingest, list and train through the service, with the CLI's errors.
    func testIngestListAndTrainThroughTheService() throws {
        let tmp = TempDir()
        let storeURL = tmp.url.appendingPathComponent("s")
        let (admin, reader) = try { () throws -> (String, String) in
            let store = try Store.create(at: storeURL, config: microConfig())
            return (try store.createToken(role: .admin, name: "admin"), try store.createToken(role: .reader, name: "reader"))
        }()
        let (p, base) = try serve(storeURL)
        defer { if p.isRunning { p.terminate() } }
        var records = base.appendingPathComponent("records")
        let array = syntheticRecords(30).map { ["id": $0.id, "text": $0.text] }
        XCTAssertEqual(try call("POST", records, token: reader, body: array).0, 403)
        // A bad record anywhere: 400 naming its line, and nothing ingested.
        var bad = array
        bad[4] = ["id": "x"]
        let (badStatus, badBody) = try call("POST", records, token: admin, body: bad)
        XCTAssertEqual(badStatus, 400)
        XCTAssertTrue("\(badBody ?? [:])".contains("request body:5"), "\(badBody ?? [:])")
        XCTAssertEqual(try call("GET", records, token: reader).1?["total"] as? Int, 0)

        var c = URLComponents(url: records, resolvingAgainstBaseURL: false)!
        c.queryItems = [URLQueryItem(name: "group", value: "web"), URLQueryItem(name: "holdout", value: "0.1")]
        let (created, report) = try call("POST", c.url!, token: admin, body: array)
        XCTAssertEqual(created, 201)
        XCTAssertEqual(report?["added"] as? Int, 30)
        c = URLComponents(url: records, resolvingAgainstBaseURL: false)!
        c.queryItems = [URLQueryItem(name: "offset", value: "25"), URLQueryItem(name: "limit", value: "10")]
        records = c.url!
        let (_, page) = try call("GET", records, token: reader)
        XCTAssertEqual(page?["total"] as? Int, 30)
        XCTAssertEqual((page?["records"] as? [[String: Any]])?.count, 5)
        XCTAssertEqual(((page?["records"] as? [[String: Any]])?.first?["group"]) as? String, "web")
        XCTAssertNil(((page?["records"] as? [[String: Any]])?.first?["text"]), "listing never returns text")

        XCTAssertEqual(try call("POST", base.appendingPathComponent("train"), token: reader).0, 403)
        XCTAssertEqual(try call("POST", base.appendingPathComponent("train"), token: admin).0, 202)
        let deadline = Date().addingTimeInterval(60)
        var trained = false
        while Date() < deadline && !trained {
            let shards = (try call("GET", base.appendingPathComponent("status"), token: reader).1?["status"] as? [String: Any])?["shards"] as? [[String: Any]] ?? []
            trained = !shards.isEmpty && shards.allSatisfy { ($0["digest"] as? String) != nil }
            if !trained { Thread.sleep(forTimeInterval: 0.2) }
        }
        XCTAssertTrue(trained)
        XCTAssertEqual(try call("POST", base.appendingPathComponent("query"), token: reader, body: ["prompt": "rec", "maxTokens": 4]).0, 200)
    }

    func testServeDeletionsQueriesRolesAndShutdown() throws {
        let tmp = TempDir()
        let records = syntheticRecords(40)
        let storeURL = tmp.url.appendingPathComponent("s")
        // The creating Store holds the writer lock: let it go before serving.
        let (reader, deleter) = try { () throws -> (String, String) in
            let store = try Store.create(at: storeURL, config: microConfig())
            _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records)])
            _ = try store.train()
            return (try store.createToken(role: .reader, name: "reader"), try store.createToken(role: .deleter, name: "portal"))
        }()

        let (p, base) = try serve(storeURL)
        defer { if p.isRunning { p.terminate() } }

        XCTAssertEqual(try call("GET", base.appendingPathComponent("health")).0, 200)
        XCTAssertEqual(try call("GET", base.appendingPathComponent("status")).0, 401)
        XCTAssertEqual(try call("GET", base.appendingPathComponent("status"), token: "sisa_nope").0, 401)
        let (st, status) = try call("GET", base.appendingPathComponent("status"), token: reader)
        XCTAssertEqual(st, 200)
        XCTAssertNotNil((status?["status"] as? [String: Any])?["shards"])

        // While the server runs, CLI writers are refused with a message naming it.
        let ingest = Process()
        ingest.executableURL = sisa
        ingest.arguments = ["ingest", "--store", storeURL.path, tmp.jsonl("more.jsonl", syntheticRecords(3, prefix: "more"))]
        let err = Pipe()
        ingest.standardError = err
        ingest.standardOutput = FileHandle.nullDevice
        try ingest.run()
        ingest.waitUntilExit()
        XCTAssertNotEqual(ingest.terminationStatus, 0)
        XCTAssertTrue(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).contains("serve on http://"))

        // Models stay in memory: a second query loads nothing.
        let query = base.appendingPathComponent("query")
        // Immutable once made; shared with the concurrent callers below.
        nonisolated(unsafe) let greedy: [String: Any] = ["prompt": "rec", "maxTokens": 12, "temperature": 0]
        let before = try call("POST", query, token: reader, body: greedy).1?["text"] as? String
        XCTAssertNotNil(before)
        _ = try call("POST", query, token: reader, body: greedy)
        XCTAssertEqual(try call("GET", base.appendingPathComponent("status"), token: reader).1?["modelLoads"] as? Int, 2)
        // Concurrent queries on the shared weights answer as one alone does.
        let answers = Answers()
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            answers.add((try? call("POST", query, token: reader, body: greedy))?.1?["text"] as? String)
        }
        XCTAssertEqual(answers.all, [String?](repeating: before, count: 6))

        let deletions = base.appendingPathComponent("deletions")
        let victim = records[7].id
        XCTAssertEqual(try call("POST", deletions, token: reader, body: ["ids": [victim]]).0, 403, "a reader may not delete")
        let (unknownStatus, unknownBody) = try call("POST", deletions, token: deleter, body: ["ids": [victim, "nope"]])
        XCTAssertEqual(unknownStatus, 404)
        XCTAssertTrue("\(unknownBody ?? [:])".contains("nope"))
        XCTAssertEqual(try Store.open(at: storeURL).catalog.record(id: victim)?.status, .live, "a mixed request changes nothing")

        let (accepted, body) = try call("POST", deletions, token: deleter, body: ["ids": [victim], "reason": "ticket 42"])
        XCTAssertEqual(accepted, 202)
        let requestID = try XCTUnwrap((body?["request"] as? [String: Any])?["id"] as? Int)
        // The very next query leaves the victim's shard out, and says why.
        let victimShard = try XCTUnwrap(try Store.open(at: storeURL).catalog.record(id: victim)).shard
        let (_, during) = try call("POST", query, token: reader, body: greedy)
        XCTAssertEqual(during?["shards"] as? [Int], [1 - victimShard])
        let excluded = during?["excluded"] as? [[String: Any]]
        XCTAssertEqual(excluded?.first?["shard"] as? Int, victimShard)
        XCTAssertTrue((excluded?.first?["reason"] as? String ?? "").contains("quarantined"))
        // Durable at once: the text is gone.
        XCTAssertNil(try Store.open(at: storeURL).catalog.text(id: victim))
        var state = ""
        let deadline = Date().addingTimeInterval(60)
        var receipt: [String: Any]?
        while Date() < deadline {
            let (_, r) = try call("GET", deletions.appendingPathComponent(String(requestID)), token: deleter)
            state = r?["state"] as? String ?? ""
            receipt = r?["receipt"] as? [String: Any]
            if state == "done" { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTAssertEqual(state, "done")
        XCTAssertEqual(receipt?["records"] as? [String], [victim])
        XCTAssertEqual(try call("GET", deletions.appendingPathComponent("9999"), token: deleter).0, 404)
        // Metrics: the queue is empty again, one retraining was timed, requests are timed by route.
        let metrics = try metricsText(base.appendingPathComponent("metrics"), token: reader)
        XCTAssertTrue(metrics.contains("sisa_deletion_queue_depth 0"), metrics)
        XCTAssertTrue(metrics.contains("sisa_quarantined_shards 0"), metrics)
        XCTAssertTrue(metrics.contains("sisa_retraining_seconds_count 1"), metrics)
        XCTAssertTrue(metrics.contains(#"sisa_http_request_duration_seconds_count{route="/v1/deletions/{id}",method="GET"}"#)
                      || metrics.contains(#"route="/v1/deletions/:id""#), metrics)
        let (again, againBody) = try call("POST", deletions, token: deleter, body: ["ids": [victim]])
        XCTAssertEqual(again, 200, "an id deleted before answers with its receipt")
        XCTAssertNotNil(againBody?["receipt"])

        let (qs, answer) = try call("POST", query, token: reader, body: greedy)
        XCTAssertEqual(qs, 200)
        XCTAssertEqual((answer?["shards"] as? [Int])?.sorted(), [0, 1])
        // The retrained shard was swapped in: one more load, and the answer is the new ensemble's.
        XCTAssertEqual(try call("GET", base.appendingPathComponent("status"), token: reader).1?["modelLoads"] as? Int, 3)
        var sampler = Sampler(temperature: 0)
        let expected = try Ensemble(store: Store.open(at: storeURL)).generate(prompt: Array("rec".utf8), maxTokens: 12,
                                                                               aggregation: .mean, sampler: &sampler)
        XCTAssertEqual(answer?["text"] as? String, String(decoding: expected, as: UTF8.self))
        let (ss, scored) = try call("POST", base.appendingPathComponent("score"), token: reader, body: ["texts": ["alpha bravo"]])
        XCTAssertEqual(ss, 200)
        XCTAssertEqual((scored?["items"] as? [[String: Any]])?.count, 1)

        p.terminate()   // SIGTERM: drain and stop
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 0)

        let never = try Store.create(at: tmp.url.appendingPathComponent("n"), config: microConfig())
        _ = try never.ingest(paths: [tmp.jsonl("rest.jsonl", records.filter { $0.id != victim })])
        _ = try never.train()
        XCTAssertEqual(try digests(Store.open(at: storeURL)), try digests(never))
    }

    /// A base store behind the service: text answers from base + adapters,
    /// queries answered while a deletion retrains, and the retrained adapter
    /// swapped in; the result equals a store that never saw the record.
    func testServeABaseStore() throws {
        let tmp = TempDir()
        let records = syntheticRecords(40)
        let storeURL = tmp.url.appendingPathComponent("s")
        let config = try baseConfig(TinyBase.gguf, epochs: 40)
        let (reader, deleter) = try { () throws -> (String, String) in
            let store = try createBaseStore(storeURL, TinyBase.gguf, config: config)
            _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records)])
            _ = try store.train()
            return (try store.createToken(role: .reader, name: "reader"), try store.createToken(role: .deleter, name: "portal"))
        }()
        let (p, base) = try serve(storeURL)
        defer { if p.isRunning { p.terminate() } }
        let query = base.appendingPathComponent("query")
        let greedy: [String: Any] = ["prompt": "rec 1", "maxTokens": 8, "temperature": 0]
        let (s0, first) = try call("POST", query, token: reader, body: greedy)
        XCTAssertEqual(s0, 200)
        var sampler = Sampler(temperature: 0)
        let expected = try Ensemble(store: Store.open(at: storeURL)).generate(prompt: Array("rec 1".utf8), maxTokens: 8,
                                                                               aggregation: .mean, sampler: &sampler)
        XCTAssertEqual(first?["text"] as? String, String(decoding: expected, as: UTF8.self))

        let victim = records[9].id
        let victimShard = try XCTUnwrap(try Store.open(at: storeURL).catalog.record(id: victim)).shard
        let (accepted, body) = try call("POST", base.appendingPathComponent("deletions"), token: deleter, body: ["ids": [victim]])
        XCTAssertEqual(accepted, 202)
        let requestID = try XCTUnwrap((body?["request"] as? [String: Any])?["id"] as? Int)
        // While the shard retrains, queries are answered by the others.
        let (during, duringBody) = try call("POST", query, token: reader, body: greedy)
        XCTAssertEqual(during, 200)
        XCTAssertEqual(duringBody?["shards"] as? [Int], [1 - victimShard])
        var state = ""
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            state = try call("GET", base.appendingPathComponent("deletions/\(requestID)"), token: deleter).1?["state"] as? String ?? ""
            if state == "done" { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTAssertEqual(state, "done")
        let (_, after) = try call("POST", query, token: reader, body: greedy)
        XCTAssertEqual((after?["shards"] as? [Int])?.sorted(), [0, 1])
        sampler = Sampler(temperature: 0)
        let expectedAfter = try Ensemble(store: Store.open(at: storeURL)).generate(prompt: Array("rec 1".utf8), maxTokens: 8,
                                                                                    aggregation: .mean, sampler: &sampler)
        XCTAssertEqual(after?["text"] as? String, String(decoding: expectedAfter, as: UTF8.self))
        p.terminate()
        p.waitUntilExit()
        let never = try createBaseStore(tmp.url.appendingPathComponent("n"), TinyBase.gguf, config: config)
        _ = try never.ingest(paths: [tmp.jsonl("rest.jsonl", records.filter { $0.id != victim })])
        _ = try never.train()
        XCTAssertEqual(try digests(Store.open(at: storeURL)), try digests(never))
    }

    /// Inference runs on its own threads: /v1/health answers while every
    /// inference thread is busy. SIGTERM lets in-flight requests finish with
    /// their full answers, then the server exits 0.
    func testInferenceExecutorAndSIGTERMDrain() throws {
        let tmp = TempDir()
        let storeURL = tmp.url.appendingPathComponent("s")
        let records = syntheticRecords(30)
        let reader = try { () throws -> String in
            let store = try Store.create(at: storeURL, config: microConfig())
            _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records)])
            _ = try store.train()
            return try store.createToken(role: .reader, name: "reader")
        }()
        // Every query and score waits at a gate the test opens (SISA_TEST_INFERENCE_GATE).
        let gate = tmp.path("gate")
        FileManager.default.createFile(atPath: gate, contents: nil)   // open while the reference is computed
        func waiting() -> Int {
            ((try? FileManager.default.contentsOfDirectory(atPath: tmp.url.path)) ?? []).filter { $0.hasPrefix("gate.waiting-") }.count
        }
        let (p, base) = try startServe(sisa, store: storeURL, environment: ["SISA_TEST_INFERENCE_GATE": gate])
        defer { if p.isRunning { p.terminate() } }
        // Seconds of forward passes per request on the micro model.
        // Immutable once made; shared with the background callers below.
        nonisolated(unsafe) let long: [String: Any] = ["texts": [String](repeating: String(repeating: "alpha bravo charlie delta ", count: 40), count: 300)]
        let expected = try call("POST", base.appendingPathComponent("score"), token: reader, body: long)
        XCTAssertEqual(expected.0, 200)
        let mean = try XCTUnwrap(expected.1?["meanNLL"] as? Double)

        // More requests held on the inference threads than there are cores; health still answers.
        try FileManager.default.removeItem(atPath: gate)
        let before = waiting()
        let finished = Answers()
        let group = DispatchGroup()
        for _ in 0..<4 {
            background(group) {
                let r = try? call("POST", base.appendingPathComponent("score"), token: reader, body: long)
                finished.add(r.map { "\($0.0) \($0.1?["meanNLL"] as? Double ?? -1)" })
            }
        }
        // Two inference threads (the default on this 2-core machine) both hold a request at the gate.
        XCTAssertTrue(eventually { waiting() - before >= min(4, ProcessInfo.processInfo.activeProcessorCount) }, "requests reached the gate")
        XCTAssertEqual(try call("GET", base.appendingPathComponent("health")).0, 200)
        XCTAssertTrue(finished.all.isEmpty, "health answered while every inference thread was held")
        FileManager.default.createFile(atPath: gate, contents: nil)
        group.wait()
        XCTAssertEqual(finished.all, [String?](repeating: "200 \(mean)", count: 4))

        // SIGTERM while a request is in flight (held at the gate): it is answered in full, then the server exits cleanly.
        try FileManager.default.removeItem(atPath: gate)
        let held = waiting()
        let answered = Answers()
        background(group) {
            let r = try? call("POST", base.appendingPathComponent("score"), token: reader, body: long)
            answered.add(r.map { "\($0.0) \($0.1?["meanNLL"] as? Double ?? -1)" })
        }
        XCTAssertTrue(eventually { waiting() > held }, "the request reached the gate")
        kill(p.processIdentifier, SIGTERM)
        XCTAssertTrue(answered.all.isEmpty, "the request is still in flight after the signal")
        FileManager.default.createFile(atPath: gate, contents: nil)
        group.wait()
        XCTAssertEqual(answered.all, ["200 \(mean)"])
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 0)
    }

    /// The committed OpenAPI document and the server agree: every documented
    /// operation exists, and what it answers is among its documented codes.
    func testServerMatchesTheOpenAPIDocument() throws {
        let doc = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/openapi.yaml")
        let yaml = try String(contentsOf: doc, encoding: .utf8)
        // paths: "  /v1/x:" then "    get:" then "        'NNN':" (and "security: []" for open ones).
        var ops: [(path: String, method: String, codes: Set<Int>, open: Bool)] = []
        var inPaths = false, path = ""
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line == "paths:" { inPaths = true; continue }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":") { path = String(line.dropFirst(2).dropLast()) }
            else if !path.hasPrefix("/v1/") { continue }   // the status page's HTML routes: testStatusPageLoginCookieAndContent
            else if ["    get:", "    post:"].contains(line) { ops.append((path, String(line.dropFirst(4).dropLast()).uppercased(), [], false)) }
            else if line.hasPrefix("        '"), let code = Int(line.dropFirst(9).prefix(3)) { ops[ops.count - 1].codes.insert(code) }
            else if line.trimmingCharacters(in: .whitespaces) == "security: []" { ops[ops.count - 1].open = true }
        }
        XCTAssertEqual(ops.count, 10, "\(ops.map { "\($0.method) \($0.path)" })")

        let tmp = TempDir()
        let storeURL = tmp.url.appendingPathComponent("s")
        let records = syntheticRecords(30)
        let (admin, reader) = try { () throws -> (String, String) in
            let store = try Store.create(at: storeURL, config: microConfig())
            _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records)])
            _ = try store.train()
            return (try store.createToken(role: .admin, name: "admin"), try store.createToken(role: .reader, name: "reader"))
        }()
        let (p, base) = try serve(storeURL)
        defer { if p.isRunning { p.terminate() } }
        let root = base.deletingLastPathComponent()
        let bodies: [String: Any] = ["POST /v1/query": ["prompt": "rec", "maxTokens": 4], "POST /v1/score": ["texts": ["alpha"]],
                                     "POST /v1/deletions": ["ids": [records[2].id]],
                                     "POST /v1/records": [["id": "new-1", "text": "a new record"]]]
        for op in ops {
            let url = root.appendingPathComponent(op.path.replacingOccurrences(of: "{id}", with: "1"))
            let body = bodies["\(op.method) \(op.path)"]
            let anonymous = try call(op.method, url, body: body).0
            XCTAssertEqual(anonymous, op.open ? 200 : 401, "\(op.method) \(op.path) without a token")
            XCTAssertTrue(op.codes.contains(anonymous), "\(op.method) \(op.path): \(anonymous) is not documented")
            let answered = try call(op.method, url, token: admin, body: body).0
            XCTAssertTrue(op.codes.contains(answered) && answered < 300, "\(op.method) \(op.path) as admin: \(answered)")
            if op.path.hasPrefix("/v1/deletions") || op.path == "/v1/train" {
                let forbidden = try call(op.method, url, token: reader, body: body).0
                XCTAssertEqual(forbidden, 403)
                XCTAssertTrue(op.codes.contains(403))
            }
        }
    }

    /// The status page: a login form, a session id in an HttpOnly SameSite=Strict cookie, then the store.
    func testStatusPageLoginCookieAndContent() throws {
        let tmp = TempDir()
        let storeURL = tmp.url.appendingPathComponent("s")
        let records = syntheticRecords(30)
        let (reader, deleter) = try { () throws -> (String, String) in
            let store = try Store.create(at: storeURL, config: microConfig())
            _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records)])
            _ = try store.train()
            _ = try store.delete(ids: [records[3].id])
            return (try store.createToken(role: .reader, name: "ops-dashboard"), try store.createToken(role: .deleter, name: "portal"))
        }()
        _ = deleter
        // A compare plot saved where the page looks for one.
        try FileManager.default.createDirectory(at: storeURL.appendingPathComponent("reports"), withIntermediateDirectories: true)
        try #"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>plot-marker</text></svg>"#
            .write(to: storeURL.appendingPathComponent("reports/ga.svg"), atomically: true, encoding: .utf8)
        let (p, base) = try serve(storeURL)
        defer { if p.isRunning { p.terminate() } }
        let root = base.deletingLastPathComponent()

        // A session that keeps no cookies: each call sends exactly the Cookie header given.
        let config = URLSessionConfiguration.ephemeral
        config.httpCookieAcceptPolicy = .never
        config.httpShouldSetCookies = false
        config.httpCookieStorage = nil
        let session = URLSession(configuration: config)
        func fetch(_ method: String, _ url: URL, cookie: String? = nil, form: String? = nil) -> (Int, String, String?) {
            var req = URLRequest(url: url)
            req.httpMethod = method
            req.httpShouldHandleCookies = false
            if let cookie { req.setValue(cookie, forHTTPHeaderField: "Cookie") }
            if let form {
                req.httpBody = Data(form.utf8)
                req.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
            }
            let done = DispatchSemaphore(value: 0)
            nonisolated(unsafe) var out: (Int, String, String?) = (0, "", nil)
            session.dataTask(with: req) { data, response, _ in
                let http = response as? HTTPURLResponse
                out = (http?.statusCode ?? 0, data.map { String(decoding: $0, as: UTF8.self) } ?? "",
                       http?.value(forHTTPHeaderField: "Set-Cookie"))
                done.signal()
            }.resume()
            _ = done.wait(timeout: .now() + 30)
            return out
        }
        let (s0, login, _) = fetch("GET", root)
        XCTAssertEqual(s0, 200)
        XCTAssertTrue(login.contains("<form") && login.contains("name=\"token\"") && !login.contains("<script"))
        XCTAssertFalse(login.contains("nil"), "no error shown before a failed attempt")
        XCTAssertTrue(fetch("POST", root.appendingPathComponent("login"), form: "token=sisa_wrong").1.contains("Unknown or revoked token"))
        XCTAssertEqual(fetch("POST", root.appendingPathComponent("login"), form: "token=sisa_wrong").0, 401)
        let (s1, _, setCookie) = fetch("POST", root.appendingPathComponent("login"), form: "token=\(reader)")
        XCTAssertEqual(s1, 200)
        let cookie = setCookie ?? ""
        XCTAssertTrue(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.hasPrefix("sisa_session="), cookie)
        XCTAssertFalse(cookie.contains(reader), "the cookie holds a session id, never the token")
        XCTAssertFalse(cookie.contains("Secure"), "plain HTTP without --behind-tls-proxy")
        let sessionCookie = String(cookie.split(separator: ";")[0])
        XCTAssertTrue(fetch("GET", root, cookie: "sisa_session=\(reader)").1.contains("<form"), "a token is not a session")
        let (s2, page, _) = fetch("GET", root, cookie: sessionCookie)
        XCTAssertEqual(s2, 200)
        XCTAssertTrue(page.contains("ops-dashboard (reader)"))
        XCTAssertTrue(page.contains("serving"), "shard states are shown")
        XCTAssertTrue(page.contains(records[3].id) && page.contains(">done<"), "the deletion queue with its state")
        XCTAssertTrue(page.contains("plot-marker"), "the saved comparison plot is inline")
        XCTAssertFalse(page.contains(reader), "the page never shows the token")
        XCTAssertTrue(fetch("GET", root, cookie: "sisa_session=sisa_wrong").1.contains("<form"), "a bad cookie gets the login form")
        // Signing out ends the session.
        XCTAssertEqual(fetch("POST", root.appendingPathComponent("logout"), cookie: sessionCookie).0, 200)
        XCTAssertTrue(fetch("GET", root, cookie: sessionCookie).1.contains("<form"), "a closed session gets the login form")
    }
}

/// Runs `work` on a thread of its own: blocking calls parked on Dispatch's
/// global queue would starve URLSession's own queues of threads.
private func background(_ group: DispatchGroup, _ work: @escaping @Sendable () -> Void) {
    group.enter()
    Thread { work(); group.leave() }.start()
}

private final class Answers: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var all: [String?] = []
    func add(_ s: String?) { lock.withLock { all.append(s) } }
}
