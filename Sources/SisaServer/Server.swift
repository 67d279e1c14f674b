import Foundation
import Hummingbird
import NIOCore
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
        public init() {}
    }

    let url: URL
    let options: Options
    let worker: Store
    let submissions: Store
    let readers: Store
    let deletions: DeletionWorker
    let models: ModelCache
    private let submitLock = NSLock()

    public init(store url: URL, options: Options) throws {
        self.url = url
        self.options = options
        worker = try Store.open(at: url, writer: "serve on http://\(options.host):\(options.port)")
        submissions = try Store.open(at: url)
        readers = try Store.open(at: url)
        models = ModelCache(store: readers)
        deletions = DeletionWorker(store: worker, coalesce: options.coalesce, jobs: options.jobs) { note in
            FileHandle.standardError.write(Data("sisa serve: \(note)\n".utf8))
        }
    }

    /// Runs until SIGTERM or SIGINT (which drain in-flight requests first).
    /// `ready` gets the bound port (useful with port 0).
    public func run(ready: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        deletions.start()
        defer { deletions.stop() }
        let app = Application(router: router(),
                              configuration: .init(address: .hostname(options.host, port: options.port), serverName: "sisa"),
                              onServerRunning: { channel in ready(channel.localAddress?.port ?? -1) })
        try await app.runService()
    }

    func router() -> Router<SisaContext> {
        let router = Router(context: SisaContext.self)
        router.get("/v1/health") { _, _ in Health(status: "ok") }
        let api = router.group("/v1").add(middleware: TokenAuth(tokens: { [readers] in try readers.authenticate($0) }))
        api.get("/status") { [self] _, context -> StatusBody in
            try context.require(.read)
            return StatusBody(status: try readers.status(), deletionWorkerError: deletions.lastError, modelLoads: models.loads)
        }
        api.post("/query") { [self] request, context -> QueryAnswer in
            try context.require(.read)
            let q = try await request.decode(as: QueryBody.self, context: context)
            return try query(q)
        }
        api.post("/score") { [self] request, context -> ScoreAnswer in
            try context.require(.read)
            let q = try await request.decode(as: ScoreBody.self, context: context)
            return try score(q)
        }
        api.post("/deletions") { [self] request, context -> Response in
            try context.require(.delete)
            let body = try await request.decode(as: DeletionBody.self, context: context)
            return try submit(body, request: request, context: context)
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

struct QueryAnswer: ResponseEncodable {
    struct Excluded: Codable { let shard: Int; let reason: String }
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

struct ScoreAnswer: ResponseEncodable {
    struct Item: Codable { let tokens: Int; let nll: Double }
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
