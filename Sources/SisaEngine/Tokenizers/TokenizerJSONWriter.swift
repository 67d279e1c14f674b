import Foundation

/// Writes a BPE tokenizer (byte-level, or characters with byte fallback) as a Hugging Face `tokenizer.json`
/// (the `tokenizers` library's format), so that a model exported from a
/// GGUF base (whose tokenizer lives in GGUF metadata) comes with a tokenizer
/// transformers loads. Reading the file back with `TokenizerFiles` gives a
/// tokenizer that encodes every text as this one does (tested).
///
/// No post-processor is written: the engine adds no special tokens when it
/// encodes, and neither will the written tokenizer.
extension BPETokenizer {
    public func tokenizerJSON() throws -> Data {
        var vocab: [String: Int] = [:]
        let addedIDs = Set(added.map(\.id))
        for (id, s) in tokenStrings.enumerated() where !s.isEmpty || !addedIDs.contains(Int32(id)) {
            guard !s.isEmpty else { continue }
            vocab[s] = id
        }
        // Merges by rank (duplicates were dropped at load; relative order is what counts).
        let ranked = merges.sorted { $0.value.rank < $1.value.rank }
        let mergeList: [[String]] = ranked.map { key, _ in
            [tokenStrings[Int(key >> 32)], tokenStrings[Int(key & 0xFFFF_FFFF)]]
        }
        let addedJSON: [[String: Any]] = added.map {
            ["id": Int($0.id), "content": $0.content, "special": $0.special, "lstrip": $0.lstrip, "rstrip": $0.rstrip,
             "single_word": $0.singleWord, "normalized": $0.normalized]
        }
        // The model's and decoder's entries for the alphabet.
        var unkToken: Any = NSNull()
        var byteFallback = false, fuseUnk = false
        var decoder: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        if case .characters(let fallback, let unk, let fuse, let strips) = alphabet {
            byteFallback = fallback
            fuseUnk = fuse
            if let unk { unkToken = tokenStrings[Int(unk)].isEmpty ? added.first { $0.id == unk }?.content ?? "" : tokenStrings[Int(unk)] }
            var steps: [[String: Any]] = [["type": "Replace", "pattern": ["String": "\u{2581}"], "content": " "],
                                          ["type": "ByteFallback"], ["type": "Fuse"]]
            if strips { steps.append(["type": "Strip", "content": " ", "start": 1, "stop": 0]) }
            decoder = ["type": "Sequence", "decoders": steps]
        }
        let root: [String: Any] = [
            "version": "1.0",
            "truncation": NSNull(),
            "padding": NSNull(),
            "added_tokens": addedJSON,
            "normalizer": normalizer.map(Self.json) ?? NSNull(),
            "pre_tokenizer": Self.json(preTokenizer),
            "post_processor": NSNull(),
            "decoder": decoder,
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": unkToken, "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": fuseUnk, "byte_fallback": byteFallback, "ignore_merges": ignoreMerges,
                "vocab": vocab, "merges": mergeList,
            ] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys])
    }

    static func json(_ p: PreTokenizer) -> [String: Any] {
        switch p {
        case .sequence(let steps): return ["type": "Sequence", "pretokenizers": steps.map(json)]
        case .byteLevel(let prefix, let regex):
            return ["type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": true, "use_regex": regex]
        case .digits(let individual): return ["type": "Digits", "individual_digits": individual]
        case .metaspace(let prepend, let split):
            return ["type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": prepend.rawValue, "split": split]
        case .split(let pattern, let behavior, let invert):
            return ["type": "Split", "pattern": ["Regex": pattern.source], "behavior": behavior.rawValue, "invert": invert]
        }
    }

    static func json(_ n: Normalizer) -> [String: Any] {
        switch n {
        case .nfc: return ["type": "NFC"]
        case .nfd: return ["type": "NFD"]
        case .nfkc: return ["type": "NFKC"]
        case .nfkd: return ["type": "NFKD"]
        case .lowercase: return ["type": "Lowercase"]
        case .prepend(let s): return ["type": "Prepend", "prepend": s]
        case .replace(let a, let b): return ["type": "Replace", "pattern": ["String": a], "content": b]
        case .sequence(let steps): return ["type": "Sequence", "normalizers": steps.map(json)]
        }
    }
}
