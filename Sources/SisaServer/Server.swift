import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import SisaCoordinator
import SisaEngine

/// `sisa serve`: the store's single writer, answering over HTTP/JSON under /v1.
///
/// Three connections to the catalog, one per concern: the worker's (holds
/// the store lock: CLI writers are refused with a message naming the
/// server), the submissions' (short transactions; SQLite serialises them
/// with the worker's), and the readers' (queries, status, tokens: WAL
/// snapshots, never waiting for training).
public final class SisaServer: @unchecked Sendable {
    public struct Options: Sendable {
        public var host = "127.0.0.1"
        public var port = 8080
        /// Seconds to wait after a deletion request so close ones share a retraining.
        public var coalesce = 1.0
        /// Shards retrained in parallel by the deletion worker.
        public var jobs = 1
        /// Where the deletion worker retrains (nil: this machine, `jobs` shards at a time).
        public var executor: ShardExecutor?
        /// Threads that run queries and scores (the inference executor).
        public var inferenceThreads = ProcessInfo.processInfo.activeProcessorCount
        public init() {}
    }

    let url: URL
    let options: Options
    let worker: Store
    let submissions: Store
    let readers: Store
    let deletions: DeletionWorker
    let models: ModelCache
    /// Queries and scores run here, not on Swift's cooperative pool (one
    /// thread per core): a forward pass holds its thread for milliseconds to
    /// seconds, and on the cooperative pool a few of them would stall every
    /// other handler, /v1/health included, and the HTTP event loops' tasks.
    let inference: NIOThreadPool
    let metrics = ServerMetrics()
    let page: StatusPage
    let logger: Logger
    private let submitLock = NSLock()

    public init(store url: URL, options: Options) throws {
        self.url = url
        self.options = options
        worker = try Store.open(at: url, writer: "serve on http://\(options.host):\(options.port)")
        submissions = try Store.open(at: url)
        readers = try Store.open(at: url)
        models = ModelCache(store: readers)
        inference = NIOThreadPool(numberOfThreads: max(1, options.inferenceThreads))
        page = try StatusPage(store: readers)
        let metrics = self.metrics
        let models = self.models
        // Notes only: ids, counts, shards, seconds. Request bodies (record text) are never logged.
        let logger = Logger(label: "sisa.serve")
        self.logger = logger
        deletions = DeletionWorker(store: worker, coalesce: options.coalesce, jobs: options.jobs, executor: options.executor,
                                   retrained: {
                                       metrics.recordRetraining(seconds: $0)
                                       // Swap the new models in now, not in the next query.
                                       do { try models.preload() } catch { logger.warning("preloading models: \(error)") }
                                   }) { note in logger.info("\(note)") }
    }

    /// Runs until SIGTERM or SIGINT (which drain in-flight requests first).
    /// `ready` gets the bound port (useful with port 0).
    public func run(ready: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        // The first queries should not pay for decompressing every shard.
        do { try models.preload() } catch { logger.warning("preloading models: \(error)") }
        deletions.start()
        inference.start()
        defer {
            // A retraining in progress is abandoned, not awaited: the queue is
            // durable, and the next start completes it (as after a crash).
            deletions.stop()
            inference.shutdownGracefully { _ in }
        }
        let app = Application(router: router(),
                              configuration: .init(address: .hostname(options.host, port: options.port), serverName: "sisa"),
                              onServerRunning: { channel in ready(channel.localAddress?.port ?? -1) },
                              logger: logger)
        try await app.runService()
    }

    func router() -> Router<SisaContext> {
        let router = Router(context: SisaContext.self)
        router.add(middleware: RequestTiming(metrics: metrics))
        router.get("/v1/health") { _, _ in Health(status: "ok") }
        router.get("/") { [page] request, _ -> Response in
            guard let caller = try page.caller(request) else { return html(page.login(error: nil)) }
            return html(try page.page(caller: "\(caller.name) (\(caller.role.rawValue))"))
        }
        router.post("/login") { [page, readers] request, context -> Response in
            var request = request
            let body = String(buffer: try await request.collectBody(upTo: 4096))
            let token = body.split(separator: "&").compactMap { kv -> String? in
                let p = kv.split(separator: "=", maxSplits: 1)
                return p.count == 2 && p[0] == "token" ? String(p[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding : nil
            }.first ?? ""
            guard let caller = try readers.authenticate(token), caller.role.permits(.read) else {
                return html(page.login(error: "Unknown or revoked token."), status: .unauthorized)
            }
            var response = html("<!doctype html><meta http-equiv=\"refresh\" content=\"0; url=/\"><a href=\"/\">Signed in as \(caller.name).</a>")
            response.headers[.setCookie] = "\(StatusPage.cookie)=\(token); Path=/; HttpOnly; SameSite=Strict"
            return response
        }
        let api = router.group("/v1").add(middleware: TokenAuth(tokens: { [readers] in try readers.authenticate($0) }))
        api.get("/status") { [self] _, context -> StatusBody in
            try context.require(.read)
            return StatusBody(status: try readers.status(), deletionWorkerError: deletions.lastError, modelLoads: models.loads)
        }
        api.get("/metrics") { [self] _, context -> Response in
            try context.require(.read)
            var response = Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: try metrics.scrape(readers))))
            response.headers[.contentType] = "text/plain; version=0.0.4"
            return response
        }
        api.post("/query") { [self] request, context -> QueryAnswer in
            try context.require(.read)
            let q = try await request.decode(as: QueryBody.self, context: context)
            return try await inference.runIfActive { try self.query(q) }
        }
        api.post("/score") { [self] request, context -> ScoreAnswer in
            try context.require(.read)
            let q = try await request.decode(as: ScoreBody.self, context: context)
            return try await inference.runIfActive { try self.score(q) }
        }
        api.post("/deletions") { [self] request, context -> Response in
            try context.require(.delete)
            let body = try await request.decode(as: DeletionBody.self, context: context)
            return try submit(body, request: request, context: context)
        }
        api.post("/records") { [self] request, context -> Response in
            try context.require(.administer)
            var request = request
            let body = try await request.collectBody(upTo: context.maxUploadSize)
            let report = try ingest(Array(body.readableBytesView), group: request.uri.queryParameters["group"].map(String.init),
                                    holdout: request.uri.queryParameters["holdout"].map(String.init))
            return try encode(report, status: .created, location: nil, request: request, context: context)
        }
        api.get("/records") { [self] request, context -> RecordPage in
            try context.require(.read)
            let q = request.uri.queryParameters
            let offset = q["offset"].flatMap { Int($0) } ?? 0, limit = q["limit"].flatMap { Int($0) } ?? 100
            guard offset >= 0, (1...10_000).contains(limit) else { throw HTTPError(.badRequest, message: "offset >= 0, limit in 1...10000") }
            let group = q["group"].map(String.init)
            let after = q["after"].map(String.init)
            guard after == nil || offset == 0 else { throw HTTPError(.badRequest, message: "give after or offset, not both") }
            // Paged in SQL, and the total read from the maintained counts. `after`
            // (the last id of the previous page) costs the page's rows wherever it
            // starts; `offset` walks the rows it skips.
            let page: [RecordInfo]
            do {
                page = after != nil ? try readers.catalog.records(group: group, after: after, limit: limit)
                    : try readers.catalog.records(group: group, offset: offset, limit: limit)
            } catch CoordinatorError.unknownIDs(let ids) {
                throw HTTPError(.badRequest, message: "after: unknown record id \(ids.joined())")
            }
            let total = try readers.catalog.liveRecordCount(group: group)
            let rows = page.map {
                RecordPage.Record(id: $0.id, group: $0.group, shard: $0.shard, slice: $0.slice, holdout: $0.holdout)
            }
            return RecordPage(records: rows, total: total, offset: offset, limit: limit,
                              next: rows.count == limit ? rows.last?.id : nil)
        }
        api.post("/train") { [self] request, context -> Response in
            try context.require(.administer)
            deletions.requestTraining()
            return try encode(["state": "training"], status: .accepted, location: "/v1/status", request: request, context: context)
        }
        api.get("/deletions/:id") { [self] _, context -> DeletionRequest in
            try context.require(.delete)
            let id = try context.parameters.require("id", as: Int.self)
            guard let r = try readers.deletionRequest(id: id) else { throw HTTPError(.notFound, message: "no deletion request \(id)") }
            return r
        }
        return router
    }

    func query(_ q: QueryBody) throws -> QueryAnswer {
        guard let agg = Aggregation(rawValue: q.aggregate ?? "mean") else {
            throw HTTPError(.badRequest, message: "aggregate must be mean or vote")
        }
        let maxTokens = q.maxTokens ?? 200
        guard (0...4096).contains(maxTokens) else { throw HTTPError(.badRequest, message: "maxTokens must be in 0...4096") }
        let ensemble: Ensemble
        do { ensemble = try models.ensemble() } catch { throw HTTPError(.serviceUnavailable, message: "\(error)") }
        var sampler = Sampler(temperature: q.temperature ?? 0.8, topK: q.topK, seed: q.seed ?? 0)
        let filter = q.noFilter == true ? nil : try readers.outputFilter()
        var blocked = 0
        let out = ensemble.generate(prompt: Array(q.prompt.utf8), maxTokens: maxTokens, aggregation: agg, sampler: &sampler,
                                    filter: filter, blocked: &blocked)
        return QueryAnswer(text: String(decoding: out, as: UTF8.self), shards: ensemble.models.map(\.shard),
                           excluded: ensemble.excluded.map { .init(shard: $0.shard, reason: $0.reason) }, blockedBytes: blocked)
    }

    func score(_ q: ScoreBody) throws -> ScoreAnswer {
        guard !q.texts.isEmpty, q.texts.count <= 10_000 else { throw HTTPError(.badRequest, message: "texts must hold 1 to 10000 strings") }
        let ensemble: Ensemble
        do { ensemble = try models.ensemble(shard: q.shard) } catch { throw HTTPError(.badRequest, message: "\(error)") }
        let scores = ensemble.score(q.texts.map { Array($0.utf8) })
        let mean = meanNLL(scores)
        return ScoreAnswer(meanNLL: mean, perplexity: Foundation.exp(mean),
                           items: scores.map { .init(tokens: $0.tokens, nll: $0.nll) }, shards: ensemble.models.map(\.shard))
    }

    /// The CLI's all-or-nothing ingest on a request body: a JSON array of
    /// records or JSON lines ({"text", "id"?, "group"?}).
    func ingest(_ body: [UInt8], group: String?, holdout: String?) throws -> IngestAnswer {
        let fraction: Double
        if let holdout {
            guard let f = Double(holdout) else { throw HTTPError(.badRequest, message: "holdout must be a number in [0, 1)") }
            fraction = f
        } else { fraction = 0 }
        var lines = body
        if body.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "[") {
            // A JSON array: one line per element, so errors still name the element's line.
            guard let array = try? JSONSerialization.jsonObject(with: Data(body)) as? [Any] else {
                throw HTTPError(.badRequest, message: "request body: not a JSON array of records")
            }
            lines = try array.flatMap { Array(try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys])) + [0x0A] }
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sisa-ingest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("body.jsonl")
        try Data(lines).write(to: file)
        do {
            let r = try submitLock.withLock {
                try submissions.ingest(paths: [file.path], format: .jsonl, group: group, holdout: fraction)
            }
            return IngestAnswer(ingest: r.ingest, added: r.added, skipped: r.skipped, holdout: r.holdout,
                                appendedSlice: r.appendedSlice, perShard: r.perShard)
        } catch let e as CoordinatorError {
            // The same errors as the CLI, naming the body's line instead of a scratch file.
            throw HTTPError(.badRequest, message: "\(e)".replacingOccurrences(of: file.path, with: "request body"))
        }
    }

    func submit(_ body: DeletionBody, request: Request, context: SisaContext) throws -> Response {
        let result: DeletionSubmission
        do {
            // One submission at a time on this connection (its transaction spans several statements).
            result = try submitLock.withLock { try submissions.submitDeletion(ids: body.ids, reason: body.reason) }
        } catch let CoordinatorError.unknownIDs(ids) {
            throw HTTPError(.notFound, message: "unknown record ids (nothing was changed): \(ids.joined(separator: ", "))")
        } catch let e as CoordinatorError {
            throw HTTPError(.badRequest, message: "\(e)")
        }
        switch result {
        case let .queued(r, already):
            logger.info("deletion request \(r.id) queued: \(r.records.count) records, caller \(context.caller?.name ?? "-")")
            deletions.signal()
            return try encode(SubmittedDeletion(request: r, alreadyDeleted: already), status: .accepted,
                              location: "/v1/deletions/\(r.id)", request: request, context: context)
        case let .alreadyDeleted(receipt):
            return try encode(SubmittedDeletion(request: nil, alreadyDeleted: receipt.alreadyDeleted ?? [], receipt: receipt),
                              status: .ok, location: nil, request: request, context: context)
        }
    }

    private func encode<T: Encodable>(_ value: T, status: HTTPResponse.Status, location: String?, request: Request,
                                      context: SisaContext) throws -> Response {
        var response = try context.responseEncoder.encode(value, from: request, context: context)
        response.status = status
        if let location { response.headers[.location] = location }
        return response
    }
}

// MARK: bodies (docs/openapi.yaml)

struct Health: ResponseEncodable { let status: String }

struct StatusBody: ResponseEncodable {
    let status: StoreStatus
    let deletionWorkerError: String?
    /// Checkpoints loaded into memory so far (one per shard and key).
    let modelLoads: Int
}

struct QueryBody: Decodable {
    let prompt: String
    let maxTokens: Int?
    let aggregate: String?
    let temperature: Double?
    let topK: Int?
    let seed: UInt64?
    let noFilter: Bool?
}

struct QueryAnswer: ResponseEncodable, Sendable {
    struct Excluded: Codable, Sendable { let shard: Int; let reason: String }
    let text: String
    /// Shards that answered.
    let shards: [Int]
    /// Shards left out, and why (quarantined by a pending deletion, not trained).
    let excluded: [Excluded]
    let blockedBytes: Int
}

struct ScoreBody: Decodable {
    let texts: [String]
    let shard: Int?
}

struct ScoreAnswer: ResponseEncodable, Sendable {
    struct Item: Codable, Sendable { let tokens: Int; let nll: Double }
    let meanNLL: Double
    let perplexity: Double
    let items: [Item]
    let shards: [Int]
}

struct DeletionBody: Decodable {
    let ids: [String]
    let reason: String?
}

struct SubmittedDeletion: Encodable {
    /// The new request (state queued), absent when every id was deleted before.
    let request: DeletionRequest?
    let alreadyDeleted: [String]
    /// For ids deleted before: the receipt of the request that deleted them.
    var receipt: DeletionReceipt? = nil
}

extension DeletionRequest: ResponseEncodable {}

struct IngestAnswer: Encodable {
    let ingest: Int
    let added: Int
    let skipped: Int
    let holdout: Int
    let appendedSlice: Int?
    let perShard: [Int]
}

struct RecordPage: ResponseEncodable {
    struct Record: Codable { let id: String; let group: String; let shard: Int; let slice: Int; let holdout: Bool }
    let records: [Record]
    let total: Int
    let offset: Int
    let limit: Int
    /// The id to pass as `after` for the next page (absent on the last page).
    let next: String?
}

func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
    var r = Response(status: status, body: .init(byteBuffer: ByteBuffer(string: text)))
    r.headers[.contentType] = "text/html; charset=utf-8"
    return r
}
