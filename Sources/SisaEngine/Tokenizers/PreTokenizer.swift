import Foundation

/// How text is cut into pieces before BPE, as a model declares it
/// (tokenizer.json's `pre_tokenizer`, or a GGUF file's `tokenizer.ggml.pre`):
/// each step cuts every piece the previous steps left.
public indirect enum PreTokenizer: Sendable {
    /// What happens to the matches of a split (Hugging Face's SplitDelimiterBehavior).
    public enum Behavior: String, Sendable {
        case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious",
             mergedWithNext = "MergedWithNext", contiguous = "Contiguous"
    }

    case split(SplitPattern, Behavior, invert: Bool)
    /// Every numeric scalar (Nd, Nl, No) its own piece, or runs of them one piece.
    case digits(individual: Bool)
    /// GPT-2's byte-level step: an optional leading space, then GPT-2's split pattern.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case sequence([PreTokenizer])
    /// SentencePiece's word boundary (tokenizers' `Metaspace`): spaces become
    /// "▁", a "▁" is put before a piece that lacks one (`always`, or `first`:
    /// only where the text starts, not after an added token), and with `split`
    /// the piece is cut before each "▁".
    case metaspace(prepend: MetaspacePrepend, split: Bool)

    public enum MetaspacePrepend: String, Sendable { case always, first, never }

    /// GPT-2's pattern (tokenizers' ByteLevel pre-tokenizer).
    public static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    /// Llama 3's (and tiktoken's cl100k) pattern.
    public static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// Qwen2's: Llama 3's with digits one by one.
    public static let qwen2Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    static let gpt2Split = try! SplitPattern(gpt2Pattern)

    /// Whether the pipeline maps bytes to GPT-2's alphabet (byte-level BPE).
    var isByteLevel: Bool {
        switch self {
        case .byteLevel: return true
        case .sequence(let steps): return steps.contains { $0.isByteLevel }
        default: return false
        }
    }

    /// Cuts `pieces` (scalar arrays) further; `atTextStart`: they begin the text
    /// (no added token before them).
    func apply(_ pieces: [[Unicode.Scalar]], atTextStart: Bool = true) -> [[Unicode.Scalar]] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(pieces) { $1.apply($0, atTextStart: atTextStart) }
        case .metaspace(let prepend, let split):
            let bar = SymbolAlphabet.metaspace
            return pieces.enumerated().flatMap { (i, piece) -> [[Unicode.Scalar]] in
                var p = piece.map { $0 == " " ? bar : $0 }
                let first = atTextStart && i == 0
                if !p.isEmpty, p.first != bar, prepend == .always || (prepend == .first && first) { p.insert(bar, at: 0) }
                guard split else { return [p] }
                let spans = p.indices.filter { p[$0] == bar }.map { $0..<($0 + 1) }
                return PreTokenizer.cut(p, spans: spans, behavior: .mergedWithNext, invert: false)
            }
        case .split(let pattern, let behavior, let invert):
            return pieces.flatMap { p in PreTokenizer.cut(p, spans: pattern.matches(in: p), behavior: behavior, invert: invert) }
        case .digits(let individual):
            return pieces.flatMap { p -> [[Unicode.Scalar]] in
                var spans: [Range<Int>] = []
                for (i, s) in p.enumerated() where PreTokenizer.isNumeric(s) { spans.append(i..<(i + 1)) }
                return PreTokenizer.cut(p, spans: spans, behavior: individual ? .isolated : .contiguous, invert: false)
            }
        case .byteLevel(let addPrefixSpace, let useRegex):
            return pieces.flatMap { piece -> [[Unicode.Scalar]] in
                var p = piece
                if addPrefixSpace && p.first != " " { p.insert(" ", at: 0) }
                guard useRegex else { return [p] }
                return PreTokenizer.cut(p, spans: PreTokenizer.gpt2Split.matches(in: p), behavior: .isolated, invert: false)
            }
        }
    }

    /// Rust's char::is_numeric: general categories Nd, Nl and No.
    static func isNumeric(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// Splits `p` at the match `spans` (sorted, disjoint) by `behavior`; empty pieces are dropped.
    static func cut(_ p: [Unicode.Scalar], spans matches: [Range<Int>], behavior: Behavior, invert: Bool) -> [[Unicode.Scalar]] {
        // The whole piece as alternating (range, isMatch) spans.
        var spans: [(Range<Int>, Bool)] = []
        var at = 0
        for m in matches {
            if m.lowerBound > at { spans.append((at..<m.lowerBound, false)) }
            if !m.isEmpty { spans.append((m, true)) }
            at = max(at, m.upperBound)
        }
        if at < p.count { spans.append((at..<p.count, false)) }
        if invert { spans = spans.map { ($0.0, !$0.1) } }
        var out: [[Unicode.Scalar]] = []
        switch behavior {
        case .removed:
            for (r, m) in spans where !m { out.append(Array(p[r])) }
        case .isolated:
            for (r, _) in spans { out.append(Array(p[r])) }
        case .contiguous:
            var current: [Unicode.Scalar] = []
            var currentIsMatch: Bool?
            for (r, m) in spans {
                if currentIsMatch == m && m {
                    current += p[r]
                } else {
                    if !current.isEmpty { out.append(current) }
                    current = Array(p[r])
                    currentIsMatch = m
                }
            }
            if !current.isEmpty { out.append(current) }
        case .mergedWithPrevious:
            var current: [Unicode.Scalar] = []
            for (r, m) in spans {
                current += p[r]
                if m { out.append(current); current = [] }
            }
            if !current.isEmpty { out.append(current) }
        case .mergedWithNext:
            var current: [Unicode.Scalar] = []
            for (r, m) in spans {
                if m && !current.isEmpty { out.append(current); current = [] }
                current += p[r]
            }
            if !current.isEmpty { out.append(current) }
        }
        return out.filter { !$0.isEmpty }
    }

    /// The pre-tokenizer a GGUF file names in `tokenizer.ggml.pre` (llama.cpp's
    /// names), as the matching tokenizer.json declares it. A GGUF file carries no
    /// normalizer: a model whose tokenizer.json also normalizes (Qwen2's NFC) is
    /// tokenized here as llama.cpp and transformers' GGUF loader tokenize it, without.
    static func named(_ name: String) -> (PreTokenizer, ignoreMerges: Bool)? {
        let byteLevel = PreTokenizer.byteLevel(addPrefixSpace: false, useRegex: true)
        switch name {
        case "default", "gpt2", "gpt-2", "mpt", "olmo", "jais", "phi-2":
            return (byteLevel, false)
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone":
            return (.sequence([.digits(individual: true), byteLevel]), false)
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "dbrx", "smaug-bpe":
            return (.sequence([.split(try! SplitPattern(llama3Pattern), .isolated, invert: false),
                               .byteLevel(addPrefixSpace: false, useRegex: false)]), true)
        case "qwen2", "stablelm2":
            return (.sequence([.split(try! SplitPattern(qwen2Pattern), .isolated, invert: false),
                               .byteLevel(addPrefixSpace: false, useRegex: false)]), false)
        default:
            return nil
        }
    }
}

/// What is done to text before it is cut (tokenizer.json's `normalizer`).
public indirect enum Normalizer: Sendable {
    case nfc, nfd, nfkc, nfkd, lowercase
    case prepend(String)
    case replace(String, with: String)
    case sequence([Normalizer])

    func apply(_ s: String) -> String {
        switch self {
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        case .lowercase: return s.lowercased()
        case .prepend(let p): return s.isEmpty ? s : p + s
        case .replace(let a, let b): return a.isEmpty ? s : s.replacingOccurrences(of: a, with: b, options: .literal)
        case .sequence(let steps): return steps.reduce(s) { $1.apply($0) }
        }
    }
}
