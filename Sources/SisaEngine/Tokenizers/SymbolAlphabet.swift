import Foundation

/// What BPE's first symbols are, before any merge.
///
/// GPT-2, Llama 3 and SmolLM merge bytes (`byteLevel`): every UTF-8 byte of a
/// piece is a symbol, spelled in GPT-2's byte-to-unicode alphabet in the
/// vocabulary. Llama 2 and TinyLlama ship SentencePiece models converted to
/// tokenizers' BPE (`characters`): every character of the normalized text is
/// a symbol, spaces are spelled "▁" (U+2581) by the normalizer or a
/// `Metaspace` pre-tokenizer, and a character outside the vocabulary becomes
/// the `<0xXX>` tokens of its UTF-8 bytes (`byte_fallback`), or `unk`.
public enum SymbolAlphabet: Sendable, Equatable {
    case byteLevel
    /// `unk`: the id of a character with no token (nil: such a character is
    /// dropped, as tokenizers drops it without an unk token); `fuseUnk`: a run
    /// of them is one `unk`. `stripsLeadingSpace`: decoding drops one leading
    /// space (the "▁" the normalizer put before the text; the decoder's `Strip`).
    case characters(byteFallback: Bool, unk: Int32?, fuseUnk: Bool, stripsLeadingSpace: Bool)

    /// SentencePiece's word boundary: what a space is spelled as in the vocabulary.
    static let metaspace: Unicode.Scalar = "\u{2581}"

    /// The byte a `<0xXX>` byte-fallback token stands for (uppercase hex, as SentencePiece writes it).
    static func fallbackByte(_ token: String) -> UInt8? {
        let u = Array(token.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            default: return nil
            }
        }
        guard let hi = hex(u[3]), let lo = hex(u[4]) else { return nil }
        return hi << 4 | lo
    }

    /// The bytes a character-alphabet token decodes to: a fallback token's
    /// byte, else its text with "▁" read as a space (tokenizers' Replace,
    /// ByteFallback and Fuse decoders).
    static func decodedBytes(ofCharacterToken token: String) -> [UInt8] {
        if let b = fallbackByte(token) { return [b] }
        var s = ""
        s.unicodeScalars.append(contentsOf: token.unicodeScalars.map { $0 == metaspace ? " " : $0 })
        return Array(s.utf8)
    }
}

extension BPETokenizer {
    /// The first symbols of a piece in the character alphabet: one token per
    /// character, else its bytes' fallback tokens (all of them must exist),
    /// else `unk` (one per run when fused), else nothing.
    func characterSymbols(_ piece: [Unicode.Scalar], byteFallback: Bool, unk: Int32?, fuseUnk: Bool) -> [Int32] {
        var out: [Int32] = []
        var lastWasUnk = false
        var bytes: [UInt8] = []
        for sc in piece {
            if let id = characterToken[sc.value] {
                out.append(id)
                lastWasUnk = false
                continue
            }
            if byteFallback {
                bytes.removeAll(keepingCapacity: true)
                UTF8.encode(sc) { bytes.append($0) }
                let ids = bytes.compactMap { fallbackToken[Int($0)] }
                if ids.count == bytes.count {
                    out += ids
                    lastWasUnk = false
                    continue
                }
            }
            guard let unk else { continue }
            if !(fuseUnk && lastWasUnk) { out.append(unk) }
            lastWasUnk = true
        }
        return out
    }
}
