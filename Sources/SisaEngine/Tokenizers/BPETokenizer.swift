import Foundation

/// A token the tokenizer matches in raw text before anything else (special
/// tokens such as bos, eos and chat markers, and user-added tokens).
public struct AddedToken: Sendable, Equatable {
    public let content: String
    public let id: Int32
    public let special: Bool
    /// Absorb the whitespace before (lstrip) or after (rstrip) a match.
    public let lstrip: Bool, rstrip: Bool
    /// Match only where the token is not inside a word.
    public let singleWord: Bool
    /// Matched in the normalized text, after the tokens matched in the raw text
    /// (tokenizer.json's "normalized"), rather than in the raw text.
    public let normalized: Bool

    public init(content: String, id: Int32, special: Bool, lstrip: Bool = false, rstrip: Bool = false, singleWord: Bool = false,
                normalized: Bool = false) {
        self.content = content
        self.id = id
        self.special = special
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.singleWord = singleWord
        self.normalized = normalized
    }
}

/// BPE as Hugging Face tokenizers' `BPE` model runs it: byte-level as GPT-2,
/// Llama 3 and SmolLM use it (behind a `ByteLevel` pre-tokenizer), or over
/// characters with byte fallback as Llama 2 and TinyLlama ship it (`SymbolAlphabet`):
///
///  1. added tokens are matched in the raw text (leftmost, then longest), those
///     marked `normalized` then in each stretch between matches once normalized
///     (if the model says so), as tokenizers' added vocabulary does;
///  2. the text between them is cut by the pre-tokenizer (the split pattern the
///     model declares);
///  3. each piece starts as one symbol per UTF-8 byte (byte-level) or per
///     character (else), and adjacent symbols are merged by merge rank,
///     lowest first (leftmost on ties), until no merge applies; with
///     `ignoreMerges` a piece that is itself in the vocabulary is taken whole
///     (Llama 3).
///
/// Merges work on token ids; the vocabulary's strings (GPT-2's
/// byte-to-unicode alphabet, or "▁" for a space) are decoded to bytes once at load.
///
/// `@unchecked Sendable`: immutable after load, but for the merge cache,
/// which is only touched with `cacheLock` held.
public final class BPETokenizer: Tokenizer, @unchecked Sendable {
    public let vocabularySize: Int
    public let special: SpecialTokens
    public let added: [AddedToken]
    /// The file(s) it was read from, for messages.
    public let source: String
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer
    let ignoreMerges: Bool
    /// Bytes or characters as BPE's first symbols.
    public let alphabet: SymbolAlphabet
    /// Character alphabet: the token of each one-character token string, and of each `<0xXX>` byte.
    let characterToken: [UInt32: Int32]
    let fallbackToken: [Int32?]
    /// The token of each single byte (nil when the vocabulary lacks it: that byte is skipped, as tokenizers does without unk).
    private let byteToken: [Int32?]
    /// (left id << 32 | right id) -> (rank, merged id).
    let merges: [UInt64: (rank: Int32, id: Int32)]
    private let tokenOfBytes: [[UInt8]: Int32]
    /// Each id's token string as the vocabulary spells it (for writing tokenizer.json back).
    let tokenStrings: [String]
    private let bytesOfToken: [[UInt8]]
    /// Added tokens matched in the raw text, then those matched in normalized text
    /// (content normalized), each by first scalar, longest first.
    private let rawAdded: AddedTokenMatcher, normalizedAdded: AddedTokenMatcher

    private let cacheLock = NSLock()
    private var cache: [[UInt8]: [Int32]] = [:]
    static let cacheLimit = 200_000
    /// Pieces up to this long are cached (tokenizers caches words under 256 characters).
    static let cachedPieceBytes = 256

    /// `vocab` maps token strings (in the alphabet's spelling) to ids, `merges`
    /// lists pairs of token strings by rank (`ranks`: explicit ranks, equal for
    /// merges that tie; default: list order). `source` names the file in errors.
    public init(vocab: [String: Int], merges: [(String, String)], added: [AddedToken], special: SpecialTokens,
                normalizer: Normalizer? = nil, preTokenizer: PreTokenizer, ignoreMerges: Bool = false,
                alphabet: SymbolAlphabet = .byteLevel, ranks: [Int]? = nil, source: String) throws {
        func fail(_ m: String) -> EngineError { .format("\(source): \(m)") }
        guard preTokenizer.isByteLevel == (alphabet == .byteLevel) else {
            throw fail(alphabet == .byteLevel ? "byte-level BPE needs a ByteLevel pre-tokenizer step"
                       : "a ByteLevel pre-tokenizer step with a character alphabet (byte_fallback) is not a tokenizer this engine reads")
        }
        let maxId = max(vocab.values.max() ?? -1, added.map { Int($0.id) }.max() ?? -1)
        guard maxId >= 0, maxId < 1 << 22 else { throw fail("vocabulary ids run to \(maxId)") }
        let size = maxId + 1
        var bytesOfToken = [[UInt8]](repeating: [], count: size)
        var seen = [Bool](repeating: false, count: size)
        var strings = [String](repeating: "", count: size)
        var tokenOfBytes: [[UInt8]: Int32] = [:]
        var characterToken: [UInt32: Int32] = [:]
        var fallbackToken = [Int32?](repeating: nil, count: 256)
        for (token, id) in vocab {
            guard id >= 0 else { throw fail("token \(token.debugDescription) has a negative id") }
            guard !seen[id] else { throw fail("id \(id) is given to two tokens") }
            seen[id] = true
            strings[id] = token
            if alphabet == .byteLevel {
                let bytes = ByteLevel.bytes(of: token)
                bytesOfToken[id] = bytes ?? ByteLevel.decode(token)
                if let bytes, tokenOfBytes[bytes] == nil { tokenOfBytes[bytes] = Int32(id) }
            } else {
                // A piece reaches BPE as the UTF-8 of its normalized text, spaces already "▁".
                bytesOfToken[id] = SymbolAlphabet.decodedBytes(ofCharacterToken: token)
                if tokenOfBytes[Array(token.utf8)] == nil { tokenOfBytes[Array(token.utf8)] = Int32(id) }
                let scalars = token.unicodeScalars
                if scalars.count == 1, characterToken[scalars.first!.value] == nil { characterToken[scalars.first!.value] = Int32(id) }
                if let b = SymbolAlphabet.fallbackByte(token), fallbackToken[Int(b)] == nil { fallbackToken[Int(b)] = Int32(id) }
            }
        }
        if case .characters(_, let unk?, _, _) = alphabet, unk < 0 || Int(unk) >= size {
            throw fail("unk token id \(unk) is outside the vocabulary")
        }
        var addedTokens: [AddedToken] = []
        for a in added {
            guard !a.content.isEmpty else { throw fail("added token \(a.id) is empty") }
            if !seen[Int(a.id)] { seen[Int(a.id)] = true }
            bytesOfToken[Int(a.id)] = Array(a.content.utf8)
            addedTokens.append(a)
        }
        var byteToken = [Int32?](repeating: nil, count: 256)
        if alphabet == .byteLevel { for b in 0..<256 { byteToken[b] = tokenOfBytes[[UInt8(b)]] } }
        var table: [UInt64: (rank: Int32, id: Int32)] = [:]
        table.reserveCapacity(merges.count)
        if let ranks, ranks.count != merges.count || ranks.contains(where: { $0 < 0 || $0 > Int(Int32.max) }) {
            throw fail("\(ranks.count) merge ranks for \(merges.count) merges")
        }
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocab[a], let ib = vocab[b] else {
                throw fail("merge \(rank) (\(a.debugDescription) \(b.debugDescription)) names a token outside the vocabulary")
            }
            guard let merged = vocab[a + b] else {
                throw fail("merge \(rank): \((a + b).debugDescription) is not in the vocabulary")
            }
            let key = UInt64(ia) << 32 | UInt64(ib)
            if table[key] == nil { table[key] = (Int32(ranks?[rank] ?? rank), Int32(merged)) }
        }
        for t in [special.bos, special.eos, special.pad] {
            if let t, t < 0 || Int(t) >= size { throw fail("special token id \(t) is outside the vocabulary") }
        }
        vocabularySize = size
        self.source = source
        self.special = special
        self.added = addedTokens
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.ignoreMerges = ignoreMerges
        self.alphabet = alphabet
        self.characterToken = characterToken
        self.fallbackToken = fallbackToken
        self.byteToken = byteToken
        self.merges = table
        self.tokenOfBytes = tokenOfBytes
        self.bytesOfToken = bytesOfToken
        self.tokenStrings = strings
        rawAdded = AddedTokenMatcher(addedTokens.filter { !$0.normalized }.map { ($0, Array($0.content.unicodeScalars)) })
        normalizedAdded = AddedTokenMatcher(addedTokens.filter(\.normalized).map { a in
            (a, normalizer.map { Array($0.apply(a.content).unicodeScalars) } ?? Array(a.content.unicodeScalars))
        })
    }

    // MARK: encoding

    public func encode(_ text: String) -> [Int32] {
        var out: [Int32] = []
        var bytes: [UInt8] = []
        for (n, segment) in rawAdded.split(Array(text.unicodeScalars)).enumerated() {
            switch segment {
            case .added(let id): out.append(id)
            case .text(let scalars):
                var s = scalars
                if let normalizer {
                    var str = ""
                    str.unicodeScalars.append(contentsOf: scalars)
                    s = Array(normalizer.apply(str).unicodeScalars)
                }
                for (m, part) in normalizedAdded.split(s).enumerated() {
                    switch part {
                    case .added(let id): out.append(id)
                    case .text(let p):
                        // Only the stretch at the very start of the text starts it (Metaspace's prepend_scheme "first").
                        for piece in preTokenizer.apply([p], atTextStart: n == 0 && m == 0) {
                            bytes.removeAll(keepingCapacity: true)
                            for sc in piece { UTF8.encode(sc) { bytes.append($0) } }
                            out += encodePiece(bytes, piece)
                        }
                    }
                }
            }
        }
        return out
    }

    /// BPE over one piece (its UTF-8 bytes, and its characters for the character alphabet).
    func encodePiece(_ bytes: [UInt8], _ scalars: [Unicode.Scalar]) -> [Int32] {
        if bytes.isEmpty { return [] }
        if ignoreMerges, let id = tokenOfBytes[bytes] { return [id] }
        // Words are cached; a whole segment (SentencePiece layouts have no pre-tokenizer) is not.
        let cacheable = bytes.count > 1 && bytes.count <= BPETokenizer.cachedPieceBytes
        if cacheable {
            cacheLock.lock()
            let cached = cache[bytes]
            cacheLock.unlock()
            if let cached { return cached }
        }
        var symbols: [Int32]
        switch alphabet {
        case .byteLevel: symbols = bytes.compactMap { byteToken[Int($0)] }
        case .characters(let byteFallback, let unk, let fuseUnk, _):
            symbols = characterSymbols(scalars, byteFallback: byteFallback, unk: unk, fuseUnk: fuseUnk)
        }
        if symbols.count > 1 {
            symbols = symbols.count <= 48 ? mergeByScanning(symbols) : mergeWithHeap(symbols)
        }
        if cacheable {
            cacheLock.lock()
            if cache.count >= BPETokenizer.cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[bytes] = symbols
            cacheLock.unlock()
        }
        return symbols
    }

    @inline(__always)
    private func merge(_ a: Int32, _ b: Int32) -> (rank: Int32, id: Int32)? { merges[UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))] }

    /// Short pieces: repeatedly merge the lowest-ranked adjacent pair (leftmost on ties).
    private func mergeByScanning(_ start: [Int32]) -> [Int32] {
        var s = start
        while s.count > 1 {
            var best: (rank: Int32, id: Int32, at: Int)?
            for i in 0..<(s.count - 1) {
                if let m = merge(s[i], s[i + 1]), best == nil || m.rank < best!.rank { best = (m.rank, m.id, i) }
            }
            guard let b = best else { break }
            s[b.at] = b.id
            s.remove(at: b.at + 1)
        }
        return s
    }

    /// Long pieces: the same merges in O(n log n) with a heap of (rank, position)
    /// over a linked list of symbols, stale entries skipped as tokenizers does.
    private func mergeWithHeap(_ start: [Int32]) -> [Int32] {
        var sym = start
        var next = Array(1...start.count).map { $0 < start.count ? $0 : -1 }
        var prev = Array(-1..<(start.count - 1))
        var alive = [Bool](repeating: true, count: start.count)
        var heap = MinHeap()
        for i in 0..<(start.count - 1) {
            if let m = merge(sym[i], sym[i + 1]) { heap.push(rank: m.rank, pos: i, id: m.id) }
        }
        while let top = heap.pop() {
            let i = top.pos
            guard alive[i] else { continue }
            let j = next[i]
            guard j >= 0, let m = merge(sym[i], sym[j]), m.rank == top.rank, m.id == top.id else { continue }
            sym[i] = m.id
            alive[j] = false
            next[i] = next[j]
            if next[j] >= 0 { prev[next[j]] = i }
            if prev[i] >= 0, let m = merge(sym[prev[i]], sym[i]) { heap.push(rank: m.rank, pos: prev[i], id: m.id) }
            if next[i] >= 0, let m = merge(sym[i], sym[next[i]]) { heap.push(rank: m.rank, pos: i, id: m.id) }
        }
        var out: [Int32] = []
        var i = 0
        while i >= 0 {
            out.append(sym[i])
            i = next[i]
        }
        return out
    }

    // MARK: decoding

    public func decode(_ ids: [Int32]) -> [UInt8] {
        var out: [UInt8] = []
        for id in ids where id >= 0 && Int(id) < vocabularySize { out += bytesOfToken[Int(id)] }
        if case .characters(_, _, _, true) = alphabet, out.first == 0x20 { out.removeFirst() }
        return out
    }

    /// The bytes of one token (an added token's text for special tokens).
    public func bytes(of id: Int32) -> [UInt8] { id >= 0 && Int(id) < vocabularySize ? bytesOfToken[Int(id)] : [] }
}

/// A binary min-heap of (rank, position) merge candidates.
private struct MinHeap {
    private var items: [(rank: Int32, pos: Int, id: Int32)] = []

    private func less(_ a: (rank: Int32, pos: Int, id: Int32), _ b: (rank: Int32, pos: Int, id: Int32)) -> Bool {
        a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos
    }

    mutating func push(rank: Int32, pos: Int, id: Int32) {
        items.append((rank, pos, id))
        var c = items.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            guard less(items[c], items[p]) else { break }
            items.swapAt(c, p)
            c = p
        }
    }

    mutating func pop() -> (rank: Int32, pos: Int, id: Int32)? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var p = 0
            while true {
                let l = 2 * p + 1, r = l + 1
                var m = p
                if l < items.count && less(items[l], items[m]) { m = l }
                if r < items.count && less(items[r], items[m]) { m = r }
                if m == p { break }
                items.swapAt(p, m)
                p = m
            }
        }
        return top
    }
}
