import Foundation

/// A GGUF file's SentencePiece tokenizer (`tokenizer.ggml.model` `llama`:
/// Llama 2, TinyLlama, Mistral): tokens with scores and types, no merges.
///
/// llama.cpp merges the adjacent pair whose joined text is a token with the
/// highest score, leftmost first; a character with no token becomes its
/// bytes' `<0xXX>` tokens. That is BPE over characters with byte fallback,
/// with the merges a vocabulary and its scores imply: every cut of a token
/// into two tokens, ranked by the joined token's score, higher first, and
/// merges of equal score tied (so the leftmost applies first, as in
/// llama.cpp; transformers orders ties by the parts' lengths instead, which
/// differs only where distinct tokens share a score). Spaces are "▁" and, with
/// `tokenizer.ggml.add_space_prefix` (the default), every text segment gets
/// a leading "▁", after special tokens too, as llama.cpp prefixes it.
extension TokenizerFiles {
    /// SentencePiece token types in `tokenizer.ggml.token_type` (llama.cpp's llama_token_type).
    enum PieceType: Int { case normal = 1, unknown, control, userDefined, unused, byte }

    /// Deriving merges costs the sum of the squared token lengths (every cut of
    /// every token); Llama 2's 32,000 tokens cost about 2 million. Beyond this a
    /// file is refused rather than loaded for minutes.
    static let maxCutWork = 1 << 27

    static func loadSentencePiece(gguf g: GGUFFile) throws -> BPETokenizer {
        let tokens = try g.strings("tokenizer.ggml.tokens")
        guard tokens.count < 1 << 22 else { throw g.file.fail("tokenizer.ggml.tokens lists \(tokens.count) tokens") }
        guard let scoreValues = g.metadata["tokenizer.ggml.scores"]?.array, scoreValues.count == tokens.count else {
            throw g.file.fail("tokenizer.ggml.scores must give one score per token (\(tokens.count))")
        }
        let scores = try scoreValues.map { v -> Double in
            guard let d = v.double, d.isFinite else { throw g.file.fail("tokenizer.ggml.scores holds a non-number") }
            return d
        }
        let types = try ggufTokenTypes(g, count: tokens.count) ?? [Int](repeating: PieceType.normal.rawValue, count: tokens.count)
        var vocab: [String: Int] = [:]
        var added: [AddedToken] = []
        var unk: Int32?
        for (i, t) in tokens.enumerated() {
            let type = PieceType(rawValue: types[i])
            if type == .unknown, unk == nil { unk = Int32(i) }
            if type == .control || type == .userDefined || type == .unknown, !t.isEmpty {
                added.append(AddedToken(content: t, id: Int32(i), special: type != .userDefined))
            }
            vocab[t] = i  // a repeated string names its last id, as llama.cpp reads it
        }
        if let u = try ggufTokenID(g, "tokenizer.ggml.unknown_token_id", count: tokens.count) { unk = u }
        // The merges the scores imply. Parts and results are normal tokens only, unlike
        // transformers' generate_merges: a control token such as <s> is matched in the
        // text and never built, and a byte token only stands in for a missing character.
        var normal = [Bool](repeating: false, count: tokens.count)
        var work = 0
        for (i, type) in types.enumerated() where type == PieceType.normal.rawValue {
            normal[i] = true
            let n = tokens[i].unicodeScalars.count
            work += n * n
            guard work <= maxCutWork else {
                throw g.file.fail("tokenizer.ggml.tokens are too long to derive merges from (more than \(maxCutWork) cuts)")
            }
        }
        var candidates: [(left: String, right: String, score: Double)] = []
        for (i, t) in tokens.enumerated() where normal[i] && vocab[t] == i {
            let scalars = Array(t.unicodeScalars)
            guard scalars.count > 1 else { continue }
            for cut in 1..<scalars.count {
                var left = "", right = ""
                left.unicodeScalars.append(contentsOf: scalars[..<cut])
                right.unicodeScalars.append(contentsOf: scalars[cut...])
                guard let l = vocab[left], let r = vocab[right], normal[l], normal[r] else { continue }
                candidates.append((left, right, scores[i]))
            }
        }
        // Higher score first; equal scores share a rank.
        candidates.sort { $0.score > $1.score }
        var ranks: [Int] = []
        ranks.reserveCapacity(candidates.count)
        for (k, c) in candidates.enumerated() { ranks.append(k > 0 && c.score == candidates[k - 1].score ? ranks[k - 1] : k) }
        let merges = candidates.map { ($0.left, $0.right) }
        let prefix = g.metadata["tokenizer.ggml.add_space_prefix"]?.bool ?? true
        let bar = String(SymbolAlphabet.metaspace)
        let normalizer: Normalizer = prefix ? .sequence([.prepend(bar), .replace(" ", with: bar)]) : .replace(" ", with: bar)
        return try BPETokenizer(vocab: vocab, merges: merges, added: added, special: try ggufSpecialTokens(g, count: tokens.count),
                                normalizer: normalizer,
                                preTokenizer: .sequence([]),
                                alphabet: .characters(byteFallback: true, unk: unk, fuseUnk: true, stripsLeadingSpace: prefix),
                                ranks: ranks, source: g.file.path)
    }
}
