import Foundation
import SisaEngine

/// How a store turns a record's text into the token sequence a shard trains
/// on and is scored on, and tokens back into text.
///
/// A record is `<sep> tokens <sep>`: byte-level stores use the bytes and
/// end-of-text (256); base stores use the base's tokenizer (no special
/// tokens added) and its end-of-sequence token. The training stream of a
/// stage is the records in training order, separated the same way, so a
/// model learns where records begin and end.
public struct RecordCodec: Sendable {
    public let separator: Int32
    public let vocabularySize: Int
    private let tokenizer: any Tokenizer

    /// Special tokens (end of sequence, chat markers): never part of a text.
    private let specials: Set<Int32>

    public init(tokenizer: any Tokenizer, separator: Int32, specials: Set<Int32> = []) {
        self.tokenizer = tokenizer
        self.separator = separator
        self.specials = specials
        vocabularySize = tokenizer.vocabularySize
    }

    /// The byte-level stores' codec: each byte its id, 256 between records.
    public static let bytes = RecordCodec(tokenizer: ByteTokenizer(), separator: ByteTokenizer.endOfText)

    /// A base's codec: its tokenizer, its end-of-sequence token as the separator.
    public init(base tokenizer: BPETokenizer) {
        self.init(tokenizer: tokenizer, separator: tokenizer.special.eos ?? tokenizer.special.bos ?? 0,
                  specials: Set(tokenizer.added.filter(\.special).map(\.id) + [tokenizer.special.bos, tokenizer.special.eos].compactMap { $0 }))
    }

    public var isBytes: Bool { tokenizer is ByteTokenizer }

    /// The tokens of a text, without separators.
    public func encode(_ text: [UInt8]) -> [Int32] {
        if isBytes { return text.map { Int32($0) } }
        return tokenizer.encode(bytes: text)
    }

    /// `<sep> tokens <sep>`: what a record is trained and scored as.
    public func sequence(_ text: [UInt8]) -> [Int32] { [separator] + encode(text) + [separator] }

    /// The bytes of generated tokens (a separator ends a text and is not among them): a
    /// continuation, token after token, so a SentencePiece token's leading "▁" stays a space.
    public func decode(_ ids: [Int32]) -> [UInt8] { ids.flatMap { tokenizer.bytes(of: $0) } }

    /// Whether generation ends at `id`: the separator, or another of the tokenizer's specials (a chat marker).
    public func stops(_ id: Int32) -> Bool { id == separator || specials.contains(id) }

    /// The bytes one token stands for.
    public func bytes(of id: Int32) -> [UInt8] { tokenizer.bytes(of: id) }
}
