/// NLL of one record: `<end> b1 ... bn <end>`, predicting b1 ... bn, <end>.
public struct RecordScore: Equatable, Sendable {
    /// Predicted tokens: n + 1 for a record of n bytes.
    public let tokens: Int
    /// Mean NLL over those tokens, in nats.
    public let nll: Double
    /// Per-token NLL (when asked for).
    public let tokenNLL: [Float]?

    public init(tokens: Int, nll: Double, tokenNLL: [Float]?) {
        self.tokens = tokens
        self.nll = nll
        self.tokenNLL = tokenNLL
    }
}

/// The token sequence the model sees for a record.
public func recordTokens(_ bytes: [UInt8]) -> [Int32] {
    var t: [Int32] = [ByteTokenizer.endOfText]
    t.reserveCapacity(bytes.count + 2)
    for b in bytes { t.append(Int32(b)) }
    t.append(ByteTokenizer.endOfText)
    return t
}

/// One scoring window: tokens s[start...end], scoring targets with index in (from, end].
struct ScoreWindow {
    let record: Int
    let start: Int
    let end: Int
    let from: Int
}

/// Cuts a sequence of N tokens into windows of at most context+1 tokens.
/// Each target is scored exactly once; after the first window, every target
/// sees at least context/2 tokens of left context (the usual sliding window).
func scoringWindows(record: Int, tokenCount N: Int, context T: Int) -> [ScoreWindow] {
    var windows: [ScoreWindow] = []
    var scored = 0
    let stride = max(1, T / 2)
    while scored < N - 1 {
        let end = scored == 0 ? min(N - 1, T) : min(N - 1, scored + stride)
        let start = max(0, end - T)
        windows.append(ScoreWindow(record: record, start: start, end: end, from: scored))
        scored = end
    }
    return windows
}

extension LanguageModel {
    /// Scores token sequences: each token after the first, given those before
    /// it (in sliding windows of the model's context), in batches of at most
    /// `batchSize` windows and about 64 M logits. A sequence of fewer than two
    /// tokens has nothing to score: 0 tokens, NLL NaN.
    public func score(sequences seqs: [[Int32]], perToken: Bool = false, batchSize: Int = 16,
                      pad: Int32 = 0) -> [RecordScore] {
        let nll = scoreWindows(seqs, context: context, vocab: vocabularySize, batchSize: batchSize, pad: pad, groups: 1,
                               maxLogits: scoringLogitCap) { batch in
            forward(batch)
            return lastTokenLosses
        }
        return recordScores(nll[0], perToken: perToken)
    }
}

/// A model whose forward can run several adapters over its frozen base at
/// once, each on its own group of rows (`forward(_:adapters:)`).
public protocol LockstepForward: LanguageModel {
    @discardableResult
    func forward(_ batch: Batch, adapters: [LoRAAdapter?]) -> Double
}

extension LlamaModel: LockstepForward {}
extension GPT2Model: LockstepForward {}

extension LockstepForward {
    /// Scores token sequences under each of `adapters` over this frozen base
    /// (nil: the base alone), in lock-step: each batch of windows runs once
    /// for all of them (`forward(_:adapters:)`), so the base is read once per
    /// batch, not once per adapter. Result i is, bit for bit, `score` by a
    /// model with adapter i.
    /// `maxLogits` bounds the logits of one forward (its default, 64 M, is 256 MB).
    public func score(sequences seqs: [[Int32]], adapters: [LoRAAdapter?], perToken: Bool = false, batchSize: Int = 16,
                      pad: Int32 = 0, maxLogits: Int = scoringLogitCap) -> [[RecordScore]] {
        precondition(!adapters.isEmpty, "scoring needs at least one adapter (or nil for the base)")
        // Adapters in passes of at most as many as one widest window's logits
        // fit the 64 M cap for (one window of a long text, many shards).
        let widest = seqs.map { min(context, max(0, $0.count - 1)) }.max() ?? 1
        let perPass = max(1, maxLogits / max(1, widest * vocabularySize))
        if adapters.count > perPass {
            return stride(from: 0, to: adapters.count, by: perPass).flatMap { i in
                score(sequences: seqs, adapters: Array(adapters[i..<min(adapters.count, i + perPass)]), perToken: perToken,
                      batchSize: batchSize, pad: pad, maxLogits: maxLogits)
            }
        }
        let S = adapters.count
        let nll = scoreWindows(seqs, context: context, vocab: vocabularySize, batchSize: batchSize, pad: pad, groups: S,
                               maxLogits: maxLogits) { batch in
            // The chunk once per adapter: group i is rows [i·B, (i+1)·B).
            let b = Batch(B: S * batch.B, T: batch.T, tokens: Array([[Int32]](repeating: batch.tokens, count: S).joined()),
                          targets: Array([[Int32]](repeating: batch.targets, count: S).joined()))
            forward(b, adapters: adapters)
            return lastTokenLosses
        }
        return nll.map { recordScores($0, perToken: perToken) }
    }
}

/// Logits of one scoring forward at most (about 256 MB), unless one window needs more.
public let scoringLogitCap = 64 << 20

private func recordScores(_ nll: [[Float]], perToken: Bool) -> [RecordScore] {
    nll.map { v in
        let mean = v.isEmpty ? .nan : v.reduce(0.0) { $0 + Double($1) } / Double(v.count)
        return RecordScore(tokens: v.count, nll: mean, tokenNLL: perToken ? v : nil)
    }
}

/// The window batching behind `score`: cuts `seqs` into windows, batches
/// windows of similar length (at most `batchSize`, and about 64 M logits for
/// all `groups` copies of a batch), calls `run` with each batch, which
/// returns the token losses of `groups` copies of it (group g's rows after
/// the previous groups'), and returns per group, per sequence, the NLL of
/// each token after the first. A window's scores do not depend on its
/// companions, so the batching changes no result.
private func scoreWindows(_ seqs: [[Int32]], context: Int, vocab: Int, batchSize: Int, pad: Int32, groups: Int,
                          maxLogits: Int, run: (Batch) -> [Float]) -> [[[Float]]] {
    var windows: [ScoreWindow] = []
    for (i, s) in seqs.enumerated() {
        windows += scoringWindows(record: i, tokenCount: s.count, context: context)
    }
    windows.sort { ($0.end - $0.start, $1.record, $1.start) > ($1.end - $1.start, $0.record, $0.start) }
    let empty = seqs.map { [Float](repeating: 0, count: max(0, $0.count - 1)) }
    var nll = [[[Float]]](repeating: empty, count: groups)
    var i = 0
    while i < windows.count {
        let widest = windows[i..<min(windows.count, i + batchSize)].map { $0.end - $0.start }.max()!
        let rows = max(1, min(batchSize, maxLogits / max(1, widest * vocab * groups)))
        let chunk = windows[i..<min(windows.count, i + rows)]
        let T = chunk.map { $0.end - $0.start }.max()!
        var tokens = [Int32](repeating: pad, count: chunk.count * T)
        var targets = [Int32](repeating: -1, count: chunk.count * T)
        for (r, w) in chunk.enumerated() {
            let s = seqs[w.record]
            for t in 0..<(w.end - w.start) {
                tokens[r * T + t] = s[w.start + t]
                if w.start + t + 1 > w.from { targets[r * T + t] = s[w.start + t + 1] }
            }
        }
        let losses = run(Batch(B: chunk.count, T: T, tokens: tokens, targets: targets))
        for g in 0..<groups {
            let base = g * chunk.count * T
            for (r, w) in chunk.enumerated() {
                for t in 0..<(w.end - w.start) where w.start + t + 1 > w.from {
                    nll[g][w.record][w.start + t] = losses[base + r * T + t]
                }
            }
        }
        i += chunk.count
    }
    return nll
}

extension GPT2Model {
    /// Scores byte records (`<end> bytes <end>`, every byte and the closing end predicted).
    public func score(_ records: [[UInt8]], perToken: Bool = false, batchSize: Int = 16) -> [RecordScore] {
        score(sequences: records.map(recordTokens), perToken: perToken, batchSize: batchSize, pad: ByteTokenizer.endOfText)
    }
}
