import Foundation
import SisaEngine

public enum Aggregation: String, CaseIterable, Sendable {
    /// Average the shards' next-token probabilities.
    case mean
    /// Each shard votes for its most likely token; the next token is drawn
    /// from the vote shares (temperature and seed applied), or, greedy, is
    /// the plurality with ties broken by the mean probability.
    case vote
}

/// The shard models that answer queries: every trained shard that is not
/// quarantined by a pending deletion.
public final class Ensemble {
    public let models: [(shard: Int, model: ShardModel)]
    /// Shards left out (quarantined or untrained), with the reason.
    public let excluded: [(shard: Int, reason: String)]
    /// Splits generation's base products by columns (see `EnsembleDecoder`).
    public let pool: WorkerPool

    public init(store: Store, shard: Int? = nil, pool: WorkerPool = .shared) throws {
        var models: [(Int, ShardModel)] = []
        var excluded: [(Int, String)] = []
        for st in try store.catalog.shardStates() where shard == nil || st.index == shard {
            if st.quarantined {
                excluded.append((st.index, "quarantined by a pending deletion"))
            } else if st.currentKey == nil || st.digest == nil {
                excluded.append((st.index, "not trained"))
            } else {
                models.append((st.index, try store.model(shard: st.index, pool: pool)))
            }
        }
        if let shard, shard < 0 || shard >= store.config.shards {
            throw CoordinatorError.invalidInput("no shard \(shard) (the store has \(store.config.shards))")
        }
        guard !models.isEmpty else {
            let why = excluded.map { "shard \($0.0): \($0.1)" }.joined(separator: "; ")
            throw CoordinatorError.notTrained("no shard can answer (\(why)); run `sisa train`")
        }
        self.models = models
        self.excluded = excluded
        self.pool = pool
    }

    /// An ensemble of given models (for example exactly retrained or
    /// approximately unlearned copies, or a server request's inference
    /// copies), not read from a store. Generation runs on `pool`.
    public init(models: [(shard: Int, model: ShardModel)], excluded: [(shard: Int, reason: String)] = [],
                pool: WorkerPool = WorkerPool(threads: 1)) {
        precondition(!models.isEmpty)
        self.models = models
        self.excluded = excluded
        self.pool = pool
    }

    /// Aggregates the shards' next-token probability vectors: their mean, or
    /// the vote shares (the fraction of shards whose most likely token each is).
    public static func aggregate(_ probs: [[Double]], _ how: Aggregation) -> [Double] {
        let V = probs[0].count
        guard how == .vote else {
            var mean = [Double](repeating: 0, count: V)
            for p in probs { for v in 0..<V { mean[v] += p[v] / Double(probs.count) } }
            return mean
        }
        var shares = [Double](repeating: 0, count: V)
        for p in probs {
            // Each shard's top token; its own ties go to the lower id.
            let top = p.indices.max { p[$0] != p[$1] ? p[$0] < p[$1] : $0 > $1 }!
            shares[top] += 1 / Double(probs.count)
        }
        return shares
    }

    /// Greedy choice from an aggregated distribution: the most likely token;
    /// for votes, ties between equally voted tokens go to the higher mean probability.
    public static func greedy(_ dist: [Double], mean: [Double]?) -> Int32 {
        Int32(dist.indices.max { a, b in
            if dist[a] != dist[b] { return dist[a] < dist[b] }
            if let mean, mean[a] != mean[b] { return mean[a] < mean[b] }
            return a > b
        }!)
    }

    /// The shards' record codec (one per store).
    public var codec: RecordCodec { models[0].model.codec }

    /// Generates text after `prompt` with the aggregated next-token distribution.
    /// With a `filter`, a token whose bytes would complete a fingerprinted
    /// window is taken out of the distribution and the sampler picks again
    /// (the next-best token when greedy); `blocked` counts those refusals.
    /// `maxBytes` also ends the text once that many bytes are out.
    public func generate(prompt: [UInt8], maxTokens: Int, aggregation: Aggregation, sampler: inout Sampler,
                         filter: OutputFilter? = nil, blocked: UnsafeMutablePointer<Int>? = nil, maxBytes: Int? = nil) -> [UInt8] {
        let codec = self.codec
        // The shards of a base store decode in lock-step, reading the base once per token.
        let decoder = EnsembleDecoder(models: models.map { $0.model.model }, pool: pool)
        func feed(_ t: Int32) -> [[Double]] { decoder.feed(t).map { Sampler.probabilities($0) } }
        var probs = feed(codec.separator)
        for t in codec.encode(prompt) { probs = feed(t) }
        var out: [UInt8] = []
        for _ in 0..<maxTokens {
            var dist = Ensemble.aggregate(probs, aggregation)
            let greedy = sampler.temperature <= 0
            let mean = aggregation == .vote && greedy ? Ensemble.aggregate(probs, .mean) : nil
            var next: Int32
            while true {
                next = greedy ? Ensemble.greedy(dist, mean: mean) : sampler.pick(dist)
                guard let filter, !codec.stops(next), dist[Int(next)] > 0,
                      filter.blocks(context: prompt + out, next: codec.bytes(of: next)) else { break }
                dist[Int(next)] = 0
                blocked?.pointee += 1
            }
            // Only blocked tokens had any probability left: stop rather than emit one.
            if codec.stops(next) || (filter != nil && dist[Int(next)] == 0) { break }
            out += codec.bytes(of: next)
            if let maxBytes, out.count >= maxBytes { break }
            probs = feed(next)
        }
        return out
    }

    /// Per-record scores under the ensemble: the NLL of the mixture of the
    /// shards' probabilities, token by token.
    public func score(_ records: [[UInt8]]) -> [RecordScore] {
        Ensemble.mixture(scoresByShard(records))
    }

    /// Each shard's per-token scores of `records`, in shard order: the
    /// shards of a base store in lock-step (`EnsembleScoring`), the same bits
    /// as `models[i].model.score(records, perToken: true)`.
    public func scoresByShard(_ records: [[UInt8]]) -> [[RecordScore]] {
        let codec = self.codec
        return EnsembleScoring.score(models.map { $0.model.model }, sequences: records.map(codec.sequence), perToken: true,
                                     pad: codec.separator)
    }

    /// Mixture of per-shard token scores: -log(mean_s exp(-nll_s)) per token,
    /// with the project's own exp and log, so ensemble NLLs (and every metric
    /// built on them) have the same bits on every platform.
    public static func mixture(_ perShard: [[RecordScore]]) -> [RecordScore] {
        let logS = Numerics.log(Double(perShard.count))
        return perShard[0].indices.map { i in
            let n = perShard[0][i].tokens
            var total = 0.0
            var tokenNLL = [Float](repeating: 0, count: n)
            for t in 0..<n {
                let neg = perShard.map { -Double($0[i].tokenNLL![t]) }
                let m = neg.max()!
                let nll = logS - (m + Numerics.log(neg.reduce(0) { $0 + Numerics.exp($1 - m) }))
                tokenNLL[t] = Float(nll)
                total += nll
            }
            return RecordScore(tokens: n, nll: total / Double(n), tokenNLL: tokenNLL)
        }
    }
}

/// Token-weighted mean NLL of scored records, and its perplexity.
public func meanNLL(_ scores: [RecordScore]) -> Double {
    let tokens = scores.reduce(0) { $0 + $1.tokens }
    guard tokens > 0 else { return .nan }
    return scores.reduce(0.0) { $0 + ($1.tokens > 0 ? $1.nll * Double($1.tokens) : 0) } / Double(tokens)
}

public struct GroupEvaluation: Codable, Sendable {
    public let group: String
    public let records: Int
    public let tokens: Int
    public let ensembleNLL: Double
    public let ensemblePerplexity: Double
    /// Per shard: NLL and perplexity of that shard alone.
    public let shards: [ShardEvaluation]
    /// A base store: the base alone, zero-shot (what sharding is priced against).
    public let baseNLL: Double?
    public let basePerplexity: Double?
}

public struct ShardEvaluation: Codable, Sendable {
    public let shard: Int
    public let nll: Double
    public let perplexity: Double
}

extension Ensemble {
    /// Holdout perplexity per group, for the ensemble and for each shard alone.
    /// The holdout is read `pageSize` records at a time, so memory is bounded
    /// by a page; the sums run in ingest order, so the figures do not depend
    /// on the page size (EvaluationPagingTests).
    public func evaluate(store: Store, pageSize: Int = 2048) throws -> [GroupEvaluation] {
        precondition(pageSize >= 1)
        /// Token-weighted NLL sums, accumulated as `meanNLL` does.
        struct Sum {
            var weighted = 0.0, tokens = 0
            mutating func add(_ scores: [RecordScore]) {
                for s in scores {
                    if s.tokens > 0 { weighted += s.nll * Double(s.tokens) }
                    tokens += s.tokens
                }
            }
            var mean: Double { tokens > 0 ? weighted / Double(tokens) : .nan }
        }
        struct Group { var records = 0; var ensemble = Sum(); var shards: [Sum]; var base = Sum() }
        let base = try store.models.baseAlone(pool: .shared)
        var groups: [String: Group] = [:]
        var after = 0
        while true {
            let page = try store.catalog.textsPage(holdout: true, afterSeq: after, limit: pageSize)
            guard let last = page.last else { break }
            after = last.seq
            for name in Set(page.map(\.group)).sorted() {
                let texts = page.filter { $0.group == name }.map(\.text)
                // Each shard scores once; the ensemble's mixture is made from those scores.
                let perShard = scoresByShard(texts)
                var g = groups[name] ?? Group(shards: [Sum](repeating: Sum(), count: models.count))
                g.records += texts.count
                g.ensemble.add(Ensemble.mixture(perShard))
                for (i, scores) in perShard.enumerated() { g.shards[i].add(scores) }
                if let base { g.base.add(base.score(texts)) }
                groups[name] = g
            }
        }
        guard !groups.isEmpty else {
            throw CoordinatorError.invalidInput("the store has no holdout records (ingest with --holdout FRACTION)")
        }
        return groups.keys.sorted().map { name in
            let g = groups[name]!
            let ensNLL = g.ensemble.mean
            let shardEvals = models.indices.map { i in
                ShardEvaluation(shard: models[i].shard, nll: g.shards[i].mean, perplexity: exp(g.shards[i].mean))
            }
            let baseNLL: Double? = base == nil ? nil : g.base.mean
            return GroupEvaluation(group: name, records: g.records, tokens: g.ensemble.tokens, ensembleNLL: ensNLL,
                                   ensemblePerplexity: exp(ensNLL), shards: shardEvals, baseNLL: baseNLL,
                                   basePerplexity: baseNLL.map { exp($0) })
        }
    }
}
