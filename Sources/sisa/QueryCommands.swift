import ArgumentParser
import Foundation
import SisaCoordinator
import SisaEngine

struct Query: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text with the ensemble (quarantined shards are left out), or with a base model alone (--base).",
        discussion: """
        With --base PATH (a GGUF file or a Hugging Face folder) no store is opened: the base model \
        continues the prompt, tokenized with its own tokenizer (special tokens such as <|im_start|> \
        written in the prompt are recognised), until its end-of-sequence token or --max-tokens.
        """)
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Generate with this base model alone (a GGUF file or a Hugging Face folder), without a store.") var base: String?
    @Argument(help: "Prompt text.") var prompt: String
    @Option(help: "Tokens to generate at most (bytes for byte-level stores).") var maxTokens: Int = 200
    @Option(help: "mean (average the shards' probabilities) or vote (each shard votes for its top byte; the next byte is drawn from the vote shares with --temperature and --seed, or is the plurality when greedy).") var aggregate: String = "mean"
    @Option(help: "Sampling temperature (0 = greedy).") var temperature: Double = 0.8
    @Option(help: "Sample among the k most likely tokens only.") var topK: Int?
    @Option(help: "Sampler seed.") var seed: UInt64 = 0
    @Flag(help: "Bypass the store's output filter (`sisa filter enable`), which otherwise applies to every query.") var noFilter = false

    func validate() throws {
        guard maxTokens >= 0, maxTokens <= 1_000_000 else { throw ValidationError("--max-tokens must be between 0 and 1000000") }
        guard temperature >= 0, temperature.isFinite else { throw ValidationError("--temperature must be >= 0") }
        if let k = topK, k < 1 { throw ValidationError("--top-k must be >= 1") }
        if base != nil, storeOptions.store != nil { throw ValidationError("--store and --base exclude each other (--base runs without a store)") }
    }

    func run() throws {
        guard let agg = Aggregation(rawValue: aggregate) else { throw ValidationError("--aggregate must be mean or vote") }
        var sampler = Sampler(temperature: temperature, topK: topK, seed: seed)
        if let base {
            let b = try loadBase(base)
            var ids = b.tokenizer.encode(prompt)
            if ids.isEmpty {
                guard let start = b.tokenizer.special.bos ?? b.tokenizer.special.eos else {
                    throw ValidationError("the prompt is empty and the model has no bos token to start from")
                }
                ids = [start]
            }
            if ids.count >= b.model.context { ids = Array(ids.suffix(b.model.context - 1)) }
            let stop: Set<Int32> = b.tokenizer.special.eos.map { [$0] } ?? []
            // The text is written as it is generated, a whole character at a time.
            let stream = UTF8Stream()
            stream.write(Array(prompt.utf8))
            _ = b.model.generate(tokens: ids, maxTokens: maxTokens, stop: stop, sampler: &sampler) { stream.write(b.tokenizer.bytes(of: $0)) }
            stream.finish()
            return
        }
        let store = try storeOptions.open()
        let ens = try Ensemble(store: store)
        for e in ens.excluded { note("note: shard \(e.shard) left out: \(e.reason)") }
        let filter = noFilter ? nil : try store.outputFilter()
        var blocked = 0
        let out = ens.generate(prompt: Array(prompt.utf8), maxTokens: maxTokens, aggregation: agg, sampler: &sampler,
                               filter: filter, blocked: &blocked)
        print(prompt + String(decoding: out, as: UTF8.self))
        if blocked > 0 { note("note: the output filter blocked \(blocked) byte(s) that would have reproduced deleted text") }
    }
}

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "NLL and perplexity of texts under the ensemble (mixture of the shards), one shard, or a base model alone (--base).",
        discussion: """
        FILE holds one text per line, or JSON lines with a "text" field (--format jsonl, the default for \
        .jsonl files), so multi-line records can be scored. JSON: meanNLL (over all scored tokens), \
        perplexity, items[{tokens, nll}].

        With --base PATH (a GGUF file or a Hugging Face folder) no store is opened. A text is tokenized \
        by the base's tokenizer with no special tokens added, and its NLL is the mean over every token \
        after the first, given the tokens before it: what transformers' model(ids, labels=ids).loss \
        gives for those ids. A text longer than --ctx tokens is scored in sliding windows (each token \
        once, with at least ctx/2 tokens of left context after the first window). A text of fewer than \
        two tokens has nothing to score: tokens 0, nll "nan".
        """)
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Score with this base model alone (a GGUF file or a Hugging Face folder), without a store.") var base: String?
    @Option(help: "With --base: the longest window in tokens (default: the model's context, at most 2048).") var ctx: Int?
    @OptionGroup var input: TextInputOptions
    @Option(help: "Score with this shard alone.") var shard: Int?
    @Flag(help: "Print JSON (meanNLL, perplexity, items).") var json = false

    func validate() throws {
        if base != nil, shard != nil { throw ValidationError("--shard applies to a store, not to --base") }
        if base != nil, storeOptions.store != nil { throw ValidationError("--store and --base exclude each other (--base runs without a store)") }
        if ctx != nil, base == nil { throw ValidationError("--ctx applies to --base") }
        if let ctx, ctx < 2 { throw ValidationError("--ctx must be >= 2") }
    }

    func run() throws {
        let texts = try input.texts(blankLines: base != nil)
        if let base {
            let config: BaseModel.Configuration
            do { config = try BaseModel.configuration(at: URL(fileURLWithPath: base)) } catch let e as EngineError {
                throw ValidationError("\(e)")
            }
            let window = ctx ?? min(config.context, 2048)
            guard window <= config.context else { throw ValidationError("--ctx \(window) exceeds the model's context \(config.context)") }
            let b = try loadBase(base, context: window)
            let scores = b.model.score(sequences: texts.map { b.tokenizer.encode(bytes: $0) }, pad: b.tokenizer.special.pad ?? 0)
            report(texts: texts, scores: scores, shards: nil, what: "base \((base as NSString).lastPathComponent)")
            return
        }
        let store = try storeOptions.open()
        let ens = try Ensemble(store: store, shard: shard)
        for e in ens.excluded where shard == nil { note("note: shard \(e.shard) left out: \(e.reason)") }
        report(texts: texts, scores: ens.score(texts), shards: ens.models.map(\.shard),
               what: shard.map { "shard \($0)" } ?? "ensemble of \(ens.models.count) shards")
    }

    struct ScoreReport: Codable {
        struct Item: Codable { let tokens: Int; let nll: Double }
        let meanNLL: Double
        let perplexity: Double
        let shards: [Int]?
        let items: [Item]
    }

    private func report(texts: [[UInt8]], scores: [RecordScore], shards: [Int]?, what: String) {
        let mean = meanNLL(scores)
        if json {
            let r = ScoreReport(meanNLL: mean, perplexity: exp(mean), shards: shards,
                                items: scores.map { .init(tokens: $0.tokens, nll: $0.nll) })
            try? printJSON(r)
        } else {
            for (t, s) in zip(texts, scores) {
                print(String(format: "%.4f nats/token  %4d tokens  ", s.nll, s.tokens) + String(decoding: t.prefix(60), as: UTF8.self))
            }
            print(String(format: "mean NLL %.4f nats/token, perplexity %.3f (%@)", mean, exp(mean), what as NSString))
        }
    }
}
