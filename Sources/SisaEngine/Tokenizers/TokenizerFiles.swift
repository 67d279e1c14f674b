import Foundation

/// Reads a base model's tokenizer from what users have: a Hugging Face
/// folder's `tokenizer.json` (or `vocab.json` + `merges.txt`, or OpenAI's
/// `encoder.json` + `vocab.bpe`), or a GGUF file's `tokenizer.ggml.*`.
/// Every file is checked as it is read; errors name the file and the key.
public enum TokenizerFiles {
    /// Files beyond this are refused before they are parsed.
    static let maxFileBytes = 512 << 20

    public static func load(folder: URL) throws -> BPETokenizer {
        let fm = FileManager.default
        let json = folder.appendingPathComponent("tokenizer.json")
        let special = try specialTokens(folder: folder)
        if fm.fileExists(atPath: json.path) { return try load(tokenizerJSON: json, special: special) }
        for (v, m) in [("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")] {
            let vu = folder.appendingPathComponent(v), mu = folder.appendingPathComponent(m)
            if fm.fileExists(atPath: vu.path) && fm.fileExists(atPath: mu.path) {
                return try load(vocab: vu, merges: mu, special: special)
            }
        }
        throw EngineError.io("\(folder.path): no tokenizer.json, vocab.json + merges.txt, or encoder.json + vocab.bpe")
    }

    private static func readJSON(_ url: URL) throws -> Any {
        let file = try ModelFileBytes(url: url)
        guard file.count <= maxFileBytes else { throw file.fail("larger than \(maxFileBytes >> 20) MB") }
        do { return try JSONSerialization.jsonObject(with: file.data) } catch {
            throw file.fail("not valid JSON")
        }
    }

    // MARK: tokenizer.json

    public static func load(tokenizerJSON url: URL, special given: SpecialTokens = SpecialTokens()) throws -> BPETokenizer {
        let path = url.path
        func fail(_ m: String) -> EngineError { .format("\(path): \(m)") }
        guard let root = try readJSON(url) as? [String: Any] else { throw fail("not a JSON object") }
        guard let model = root["model"] as? [String: Any] else { throw fail("model is missing") }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else { throw fail("model type \(type) is not supported (byte-level BPE only)") }
        if let d = model["dropout"], !(d is NSNull) { throw fail("BPE dropout is not supported (it makes tokenization random)") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = model[key] as? String, !v.isEmpty { throw fail("model.\(key) \(v.debugDescription) is not supported") }
        }
        guard let vocabObj = model["vocab"] as? [String: Any] else { throw fail("model.vocab is missing") }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(vocabObj.count)
        for (token, v) in vocabObj {
            guard let n = v as? NSNumber, let id = n as? Int, id >= 0 else { throw fail("model.vocab[\(token.debugDescription)] is not an id") }
            vocab[token] = id
        }
        var merges: [(String, String)] = []
        if let list = model["merges"] as? [Any] {
            merges.reserveCapacity(list.count)
            for (i, m) in list.enumerated() {
                if let s = m as? String {
                    let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                    guard parts.count == 2 else { throw fail("model.merges[\(i)] \(s.debugDescription) is not two tokens") }
                    merges.append((String(parts[0]), String(parts[1])))
                } else if let pair = m as? [Any], pair.count == 2, let a = pair[0] as? String, let b = pair[1] as? String {
                    merges.append((a, b))
                } else {
                    throw fail("model.merges[\(i)] is not a pair of tokens")
                }
            }
        } else if model["merges"] != nil {
            throw fail("model.merges is not a list")
        }
        var added: [AddedToken] = []
        if let list = root["added_tokens"] as? [[String: Any]] {
            for (i, t) in list.enumerated() {
                guard let content = t["content"] as? String, let n = t["id"] as? NSNumber, let id = n as? Int, id >= 0, id < 1 << 22 else {
                    throw fail("added_tokens[\(i)] needs a content and an id")
                }
                added.append(AddedToken(content: content, id: Int32(id), special: t["special"] as? Bool ?? false,
                                        lstrip: t["lstrip"] as? Bool ?? false, rstrip: t["rstrip"] as? Bool ?? false,
                                        singleWord: t["single_word"] as? Bool ?? false, normalized: t["normalized"] as? Bool ?? false))
            }
        }
        let normalizer = try parseNormalizer(root["normalizer"], fail: fail)
        // No pre-tokenizer: the text between added tokens is one piece (Llama 2's converted SentencePiece).
        let pre = try parsePreTokenizer(root["pre_tokenizer"], fail: fail) ?? .sequence([])
        let alphabet: SymbolAlphabet
        if pre.isByteLevel {
            if model["byte_fallback"] as? Bool == true { throw fail("byte_fallback with a ByteLevel pre-tokenizer is not supported") }
            alphabet = .byteLevel
        } else {
            // A byte-level vocabulary that lost its pre-tokenizer would drop characters, not fail.
            if (root["decoder"] as? [String: Any])?["type"] as? String == "ByteLevel" {
                throw fail("a ByteLevel decoder without a ByteLevel pre-tokenizer is not a tokenizer this engine reads")
            }
            // Characters as symbols (SentencePiece-style): the unknown-character token, and
            // whether decoding drops the space the normalizer or pre-tokenizer put first.
            var unk: Int32?
            if let u = model["unk_token"] as? String {
                guard let id = vocab[u] ?? added.first(where: { $0.content == u }).map({ Int($0.id) }) else {
                    throw fail("model.unk_token \(u.debugDescription) is not in the vocabulary")
                }
                unk = Int32(id)
            }
            alphabet = .characters(byteFallback: model["byte_fallback"] as? Bool ?? false, unk: unk,
                                   fuseUnk: model["fuse_unk"] as? Bool ?? false,
                                   stripsLeadingSpace: decoderStripsLeadingSpace(root["decoder"]))
        }
        var special = given.within(ids: vocab.values, added.map { Int($0.id) })
        func idOf(_ s: String?) -> Int32? {
            guard let s else { return nil }
            if let a = added.first(where: { $0.content == s }) { return a.id }
            return vocab[s].map { Int32($0) }
        }
        if special.eos == nil { special.eos = idOf("<|endoftext|>") }
        return try BPETokenizer(vocab: vocab, merges: merges, added: added, special: special, normalizer: normalizer,
                                preTokenizer: pre, ignoreMerges: model["ignore_merges"] as? Bool ?? false, alphabet: alphabet,
                                source: path)
    }

    /// Whether the decoder drops one leading space: a `Strip` of " " from the start (Llama 2's
    /// converted SentencePiece), or a `Metaspace` decoder that prepends (it strips what it put).
    static func decoderStripsLeadingSpace(_ v: Any?) -> Bool {
        guard let o = v as? [String: Any], let type = o["type"] as? String else { return false }
        switch type {
        case "Sequence": return (o["decoders"] as? [Any] ?? []).contains { decoderStripsLeadingSpace($0) }
        case "Strip": return o["content"] as? String == " " && ((o["start"] as? NSNumber)?.intValue ?? 0) >= 1
        case "Metaspace":
            // An unknown scheme (refused by the pre-tokenizer) strips, as any scheme but never does.
            return metaspacePrepend(o).map { $0 != .never } ?? true
        default: return false
        }
    }

    /// A Metaspace's prepend scheme (pre-tokenizer or decoder): `prepend_scheme`, or the older
    /// `add_prefix_space` (true: always); nil for a scheme that is not known.
    static func metaspacePrepend(_ o: [String: Any]) -> PreTokenizer.MetaspacePrepend? {
        if let scheme = o["prepend_scheme"] as? String { return PreTokenizer.MetaspacePrepend(rawValue: scheme) }
        return o["add_prefix_space"] as? Bool ?? true ? .always : .never
    }

    static func parsePreTokenizer(_ v: Any?, fail: (String) -> EngineError) throws -> PreTokenizer? {
        guard let v, !(v is NSNull) else { return nil }
        guard let o = v as? [String: Any], let type = o["type"] as? String else { throw fail("pre_tokenizer is not an object with a type") }
        switch type {
        case "Sequence":
            guard let steps = o["pretokenizers"] as? [Any] else { throw fail("pre_tokenizer Sequence has no pretokenizers") }
            return .sequence(try steps.compactMap { try parsePreTokenizer($0, fail: fail) })
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: o["add_prefix_space"] as? Bool ?? true, useRegex: o["use_regex"] as? Bool ?? true)
        case "Digits":
            return .digits(individual: o["individual_digits"] as? Bool ?? false)
        case "Split":
            guard let p = o["pattern"] as? [String: Any] else { throw fail("Split has no pattern") }
            let pattern: SplitPattern
            if let r = p["Regex"] as? String {
                do { pattern = try SplitPattern(r) } catch { throw fail("\(error)") }
            } else if let s = p["String"] as? String {
                pattern = try SplitPattern(s.unicodeScalars.map { "\\x{" + String($0.value, radix: 16) + "}" }.joined())
            } else {
                throw fail("Split pattern is neither Regex nor String")
            }
            let b = o["behavior"] as? String ?? "Isolated"
            guard let behavior = PreTokenizer.Behavior(rawValue: b) else { throw fail("Split behavior \(b) is not known") }
            return .split(pattern, behavior, invert: o["invert"] as? Bool ?? false)
        case "Metaspace":
            let replacement = o["replacement"] as? String ?? "\u{2581}"
            guard replacement == "\u{2581}" else { throw fail("Metaspace replacement \(replacement.debugDescription) is not supported (▁ only)") }
            guard let prepend = metaspacePrepend(o) else {
                throw fail("Metaspace prepend_scheme \(o["prepend_scheme"] ?? "") is not known")
            }
            return .metaspace(prepend: prepend, split: o["split"] as? Bool ?? true)
        default:
            throw fail("pre_tokenizer \(type) is not supported (Sequence, ByteLevel, Split, Digits, Metaspace)")
        }
    }

    static func parseNormalizer(_ v: Any?, fail: (String) -> EngineError) throws -> Normalizer? {
        guard let v, !(v is NSNull) else { return nil }
        guard let o = v as? [String: Any], let type = o["type"] as? String else { throw fail("normalizer is not an object with a type") }
        switch type {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Prepend":
            guard let p = o["prepend"] as? String else { throw fail("Prepend normalizer has no prepend") }
            return .prepend(p)
        case "Replace":
            guard let p = o["pattern"] as? [String: Any], let s = p["String"] as? String, let c = o["content"] as? String else {
                throw fail("Replace normalizer: only String patterns are supported")
            }
            return .replace(s, with: c)
        case "Sequence":
            guard let steps = o["normalizers"] as? [Any] else { throw fail("normalizer Sequence has no normalizers") }
            return .sequence(try steps.compactMap { try parseNormalizer($0, fail: fail) })
        default:
            throw fail("normalizer \(type) is not supported (NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Sequence)")
        }
    }

    // MARK: vocab.json + merges.txt

    public static func load(vocab vu: URL, merges mu: URL, special given: SpecialTokens = SpecialTokens()) throws -> BPETokenizer {
        guard let obj = try readJSON(vu) as? [String: Any] else { throw EngineError.format("\(vu.path): not a JSON object") }
        var vocab: [String: Int] = [:]
        for (token, v) in obj {
            guard let n = v as? NSNumber, let id = n as? Int, id >= 0 else {
                throw EngineError.format("\(vu.path): \(token.debugDescription) has no integer id")
            }
            vocab[token] = id
        }
        let file = try ModelFileBytes(url: mu)
        guard file.count <= maxFileBytes else { throw file.fail("larger than \(maxFileBytes >> 20) MB") }
        guard let text = String(validating: file.data, as: UTF8.self) else { throw file.fail("not valid UTF-8") }
        var merges: [(String, String)] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let l = line.hasSuffix("\r") ? line.dropLast() : line[...]
            if l.isEmpty || (n == 0 && l.hasPrefix("#version")) { continue }
            let parts = l.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw file.fail("line \(n + 1) is not two tokens") }
            merges.append((String(parts[0]), String(parts[1])))
        }
        var special = given.within(ids: vocab.values, [])
        var added: [AddedToken] = []
        if let eot = vocab["<|endoftext|>"] {
            added.append(AddedToken(content: "<|endoftext|>", id: Int32(eot), special: true))
            if special.eos == nil { special.eos = Int32(eot) }
            if special.bos == nil { special.bos = Int32(eot) }
        }
        return try BPETokenizer(vocab: vocab, merges: merges, added: added, special: special,
                                preTokenizer: .byteLevel(addPrefixSpace: false, useRegex: true),
                                source: "\(vu.path) + \(mu.lastPathComponent)")
    }

    /// bos, eos and pad ids from `config.json` (ids) of the folder, when present.
    /// The loaders keep only those the tokenizer has (`SpecialTokens.within`).
    static func specialTokens(folder: URL) throws -> SpecialTokens {
        let url = folder.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return SpecialTokens() }
        let c = try ModelConfigJSON(url: url)
        func id(_ key: String) throws -> Int32? {
            guard let list = try c.optionalIntList(key), let first = list.first, first >= 0, first < 1 << 22 else { return nil }
            return Int32(first)
        }
        return SpecialTokens(bos: try id("bos_token_id"), eos: try id("eos_token_id"), pad: try id("pad_token_id"))
    }

    // MARK: GGUF

    /// `tokenizer.ggml.model` gpt2 (byte-level BPE): tokens, merges, the
    /// pre-tokenizer named by `tokenizer.ggml.pre`; control and user-defined
    /// tokens (token types 3 and 4) are matched as added tokens.
    public static func load(gguf g: GGUFFile) throws -> BPETokenizer {
        let model = try g.string("tokenizer.ggml.model")
        if model == "llama" { return try loadSentencePiece(gguf: g) }
        guard model == "gpt2" else {
            throw g.file.fail("tokenizer.ggml.model \(model) is not supported (gpt2: byte-level BPE; llama: SentencePiece BPE)")
        }
        let preName = g.metadata["tokenizer.ggml.pre"]?.string ?? "default"
        guard let (pre, ignoreMerges) = PreTokenizer.named(preName) else {
            throw g.file.fail("tokenizer.ggml.pre \(preName) is not a known pre-tokenizer")
        }
        let tokens = try g.strings("tokenizer.ggml.tokens")
        let types = try ggufTokenTypes(g, count: tokens.count)
        var vocab: [String: Int] = [:]
        var added: [AddedToken] = []
        for (i, t) in tokens.enumerated() {
            let type = types?[i] ?? PieceType.normal.rawValue
            if type == PieceType.control.rawValue || type == PieceType.userDefined.rawValue {
                guard !t.isEmpty else { continue }
                added.append(AddedToken(content: t, id: Int32(i), special: type == PieceType.control.rawValue))
            }
            if vocab[t] == nil { vocab[t] = i }
        }
        var merges: [(String, String)] = []
        // A byte-level BPE without merges would split every text into bytes: llama.cpp refuses it too.
        guard g.metadata["tokenizer.ggml.merges"] != nil else { throw g.file.fail("tokenizer.ggml.merges is missing") }
        for (i, m) in try g.strings("tokenizer.ggml.merges").enumerated() {
            let parts = m.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw g.file.fail("tokenizer.ggml.merges[\(i)] is not two tokens") }
            merges.append((String(parts[0]), String(parts[1])))
        }
        return try BPETokenizer(vocab: vocab, merges: merges, added: added, special: try ggufSpecialTokens(g, count: tokens.count),
                                preTokenizer: pre, ignoreMerges: ignoreMerges, source: g.file.path)
    }

    /// `tokenizer.ggml.token_type`, one per token (nil when the file gives none).
    static func ggufTokenTypes(_ g: GGUFFile, count: Int) throws -> [Int]? {
        let types = try g.ints("tokenizer.ggml.token_type")
        if let types, types.count != count {
            throw g.file.fail("tokenizer.ggml.token_type has \(types.count) entries for \(count) tokens")
        }
        return types
    }

    /// The token id a GGUF file gives under `key`, checked against its `count` tokens.
    static func ggufTokenID(_ g: GGUFFile, _ key: String, count: Int) throws -> Int32? {
        guard let v = try g.optionalInt(key) else { return nil }
        guard v >= 0, v < count else { throw g.file.fail("\(key) \(v) is outside the vocabulary") }
        return Int32(v)
    }

    /// bos, eos and pad as a GGUF file names them.
    static func ggufSpecialTokens(_ g: GGUFFile, count: Int) throws -> SpecialTokens {
        SpecialTokens(bos: try ggufTokenID(g, "tokenizer.ggml.bos_token_id", count: count),
                      eos: try ggufTokenID(g, "tokenizer.ggml.eos_token_id", count: count),
                      pad: try ggufTokenID(g, "tokenizer.ggml.padding_token_id", count: count))
    }
}
