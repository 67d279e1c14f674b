import Foundation

/// A GGUF file's SentencePiece tokenizer (`tokenizer.ggml.model` `llama`:
/// Llama 2, TinyLlama, Mistral): tokens with scores and types, no merges.
///
/// llama.cpp merges the adjacent pair whose joined text is a token with the
/// highest score, leftmost first; a character with no token becomes its
/// bytes' `<0xXX>` tokens. That is BPE over characters with byte fallback,
/// with the merges a vocabulary and its scores imply: every cut of a token
/// into two tokens, ranked by the joined token's score (higher first), as
/// transformers derives them for such a file (longer left part first, then
/// longer right part, then vocabulary order). Spaces are "▁" and, with
/// `tokenizer.ggml.add_space_prefix` (the default), every text segment gets
/// a leading "▁", after special tokens too, as llama.cpp prefixes it.
extension TokenizerFiles {
    /// SentencePiece token types in `tokenizer.ggml.token_type` (llama.cpp's llama_token_type).
    enum PieceType: Int { case normal = 1, unknown, control, userDefined, unused, byte }

    static func loadSentencePiece(gguf g: GGUFFile) throws -> BPETokenizer {
        let tokens = try g.strings("tokenizer.ggml.tokens")
        guard let scoreValues = g.metadata["tokenizer.ggml.scores"]?.array, scoreValues.count == tokens.count else {
            throw g.file.fail("tokenizer.ggml.scores must give one score per token (\(tokens.count))")
        }
        let scores = try scoreValues.map { v -> Double in
            guard let d = v.double, d.isFinite else { throw g.file.fail("tokenizer.ggml.scores holds a non-number") }
            return d
        }
        let types = try g.ints("tokenizer.ggml.token_type") ?? [Int](repeating: PieceType.normal.rawValue, count: tokens.count)
        guard types.count == tokens.count else {
            throw g.file.fail("tokenizer.ggml.token_type has \(types.count) entries for \(tokens.count) tokens")
        }
        var vocab: [String: Int] = [:]
        var added: [AddedToken] = []
        var unk: Int32?
        for (i, t) in tokens.enumerated() {
            let type = PieceType(rawValue: types[i])
            if type == .unknown, unk == nil { unk = Int32(i) }
            if type == .control || type == .userDefined || type == .unknown, !t.isEmpty {
                added.append(AddedToken(content: t, id: Int32(i), special: type != .userDefined))
            }
            if vocab[t] == nil { vocab[t] = i }
        }
        func id(_ key: String) throws -> Int32? {
            guard let v = try g.optionalInt(key) else { return nil }
            guard v >= 0, v < tokens.count else { throw g.file.fail("\(key) \(v) is outside the vocabulary") }
            return Int32(v)
        }
        if let u = try id("tokenizer.ggml.unknown_token_id") { unk = u }
        // The merges the scores imply, among normal tokens only (a control token such as
        // <s> is matched in the text, never built).
        var normal = Set<Int>()
        for (i, type) in types.enumerated() where type == PieceType.normal.rawValue { normal.insert(i) }
        var candidates: [(left: String, right: String, score: Double, leftLength: Int, rightLength: Int)] = []
        for (i, t) in tokens.enumerated() where normal.contains(i) {
            let scalars = Array(t.unicodeScalars)
            guard scalars.count > 1 else { continue }
            var local: [(left: String, right: String, l: Int, r: Int)] = []
            for cut in 1..<scalars.count {
                var left = "", right = ""
                left.unicodeScalars.append(contentsOf: scalars[..<cut])
                right.unicodeScalars.append(contentsOf: scalars[cut...])
                guard let l = vocab[left], let r = vocab[right], normal.contains(l), normal.contains(r) else { continue }
                local.append((left, right, l, r))
            }
            local.sort { ($0.l, $0.r) < ($1.l, $1.r) }
            for m in local { candidates.append((m.left, m.right, scores[i], m.left.unicodeScalars.count, m.right.unicodeScalars.count)) }
        }
        // Stable: equal keys keep vocabulary order.
        let ranked = candidates.enumerated().sorted { a, b in
            let x = a.element, y = b.element
            if x.score != y.score { return x.score > y.score }
            if x.leftLength != y.leftLength { return x.leftLength > y.leftLength }
            if x.rightLength != y.rightLength { return x.rightLength > y.rightLength }
            return a.offset < b.offset
        }
        let merges = ranked.map { ($0.element.left, $0.element.right) }
        let prefix = g.metadata["tokenizer.ggml.add_space_prefix"]?.bool ?? true
        let bar = String(SymbolAlphabet.metaspace)
        let normalizer: Normalizer = prefix ? .sequence([.prepend(bar), .replace(" ", with: bar)]) : .replace(" ", with: bar)
        let special = SpecialTokens(bos: try id("tokenizer.ggml.bos_token_id"), eos: try id("tokenizer.ggml.eos_token_id"),
                                    pad: try id("tokenizer.ggml.padding_token_id"))
        return try BPETokenizer(vocab: vocab, merges: merges, added: added, special: special, normalizer: normalizer,
                                preTokenizer: .sequence([]),
                                alphabet: .characters(byteFallback: true, unk: unk, fuseUnk: true, stripsLeadingSpace: prefix),
                                source: g.file.path)
    }
}
