import Foundation
import Hummingbird
import SisaCoordinator
import SisaEngine

/// `POST /v1/query` and `POST /v1/score` (readers). Both run on the
/// inference executor, never on the cooperative pool.
struct QueryController {
    let server: SisaServer

    func addRoutes(to group: RouterGroup<SisaContext>) {
        group.post("/query") { [server] request, context -> QueryAnswer in
            let q = try await request.decode(as: QueryBody.self, context: context)
            return try await server.inference.runIfActive {
                FaultInjection.passInferenceGate()
                return try QueryController.query(q, server: server)
            }
        }
        group.post("/score") { [server] request, context -> ScoreAnswer in
            let q = try await request.decode(as: ScoreBody.self, context: context)
            return try await server.inference.runIfActive {
                FaultInjection.passInferenceGate()
                return try QueryController.score(q, server: server)
            }
        }
    }

    static func query(_ q: QueryBody, server: SisaServer) throws -> QueryAnswer {
        guard let agg = Aggregation(rawValue: q.aggregate ?? "mean") else {
            throw HTTPError(.badRequest, message: "aggregate must be mean or vote")
        }
        let maxTokens = q.maxTokens ?? 200
        guard (0...4096).contains(maxTokens) else { throw HTTPError(.badRequest, message: "maxTokens must be in 0...4096") }
        if let k = q.topK, k < 1 { throw HTTPError(.badRequest, message: "topK must be at least 1") }
        if let t = q.temperature, !(t >= 0 && t.isFinite) { throw HTTPError(.badRequest, message: "temperature must be a finite number >= 0") }
        let ensemble: Ensemble
        do { ensemble = try server.models.ensemble() } catch { throw HTTPError(.serviceUnavailable, message: "\(error)") }
        var sampler = Sampler(temperature: q.temperature ?? 0.8, topK: q.topK, seed: q.seed ?? 0)
        let filter = q.noFilter == true ? nil : try server.readers.outputFilter()
        var blocked = 0
        let out = ensemble.generate(prompt: Array(q.prompt.utf8), maxTokens: maxTokens, aggregation: agg, sampler: &sampler,
                                    filter: filter, blocked: &blocked)
        return QueryAnswer(text: String(decoding: out, as: UTF8.self), shards: ensemble.models.map(\.shard),
                           excluded: ensemble.excluded.map { .init(shard: $0.shard, reason: $0.reason) }, blockedBytes: blocked)
    }

    static func score(_ q: ScoreBody, server: SisaServer) throws -> ScoreAnswer {
        guard !q.texts.isEmpty, q.texts.count <= 10_000 else { throw HTTPError(.badRequest, message: "texts must hold 1 to 10000 strings") }
        let ensemble: Ensemble
        if let shard = q.shard, !(0..<server.readers.config.shards).contains(shard) {
            throw HTTPError(.notFound, message: "no shard \(shard) (the store has \(server.readers.config.shards))")
        }
        do { ensemble = try server.models.ensemble(shard: q.shard) } catch { throw HTTPError(.badRequest, message: "\(error)") }
        let scores = ensemble.score(q.texts.map { Array($0.utf8) })
        let mean = meanNLL(scores)
        return ScoreAnswer(meanNLL: mean, perplexity: Foundation.exp(mean),
                           items: scores.map { .init(tokens: $0.tokens, nll: $0.nll) }, shards: ensemble.models.map(\.shard))
    }
}

struct QueryBody: Decodable {
    let prompt: String
    let maxTokens: Int?
    let aggregate: String?
    let temperature: Double?
    let topK: Int?
    let seed: UInt64?
    let noFilter: Bool?

    enum CodingKeys: String, CodingKey { case prompt, maxTokens, aggregate, temperature, topK, seed, noFilter }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try c.decode(String.self, forKey: .prompt)
        maxTokens = try c.decodeAbsentOrValue(Int.self, forKey: .maxTokens)
        aggregate = try c.decodeAbsentOrValue(String.self, forKey: .aggregate)
        temperature = try c.decodeAbsentOrValue(Double.self, forKey: .temperature)
        topK = try c.decodeAbsentOrValue(Int.self, forKey: .topK)
        seed = try c.decodeAbsentOrValue(UInt64.self, forKey: .seed)
        noFilter = try c.decodeAbsentOrValue(Bool.self, forKey: .noFilter)
    }
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

    enum CodingKeys: String, CodingKey { case texts, shard }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        texts = try c.decode([String].self, forKey: .texts)
        shard = try c.decodeAbsentOrValue(Int.self, forKey: .shard)
    }
}

struct ScoreAnswer: ResponseEncodable, Sendable {
    struct Item: Codable, Sendable { let tokens: Int; let nll: Double }
    let meanNLL: Double
    let perplexity: Double
    let items: [Item]
    let shards: [Int]
}
