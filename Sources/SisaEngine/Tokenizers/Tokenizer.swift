/// Text to token ids and back: the byte tokenizer of the byte-level models,
/// or a base model's byte-level BPE.
public protocol Tokenizer: Sendable {
    var vocabularySize: Int { get }
    /// Ids of `text`, with no special tokens added (no bos, no eos). Special
    /// tokens written in the text itself are recognised as such.
    func encode(_ text: String) -> [Int32]
    /// The bytes ids stand for (special tokens as their text), as a whole text
    /// from its start (a SentencePiece tokenizer drops the space it put first).
    func decode(_ ids: [Int32]) -> [UInt8]
    /// The bytes of one token inside a text: what a generated token appends.
    func bytes(of id: Int32) -> [UInt8]
    var special: SpecialTokens { get }
}

extension Tokenizer {
    public func bytes(of id: Int32) -> [UInt8] { decode([id]) }

    /// Ids of UTF-8 bytes (invalid sequences read as U+FFFD, as Hugging Face's tokenizers require valid text).
    public func encode(bytes: [UInt8]) -> [Int32] { encode(String(decoding: bytes, as: UTF8.self)) }
}

/// The ids a model gives a role: beginning and end of a sequence, padding.
public struct SpecialTokens: Sendable, Equatable, Codable {
    public var bos: Int32?
    public var eos: Int32?
    public var pad: Int32?

    public init(bos: Int32? = nil, eos: Int32? = nil, pad: Int32? = nil) {
        self.bos = bos
        self.eos = eos
        self.pad = pad
    }

    /// These ids with any the tokenizer lacks (not among `vocab` or `added`)
    /// left out, so that the tokenizer's own apply. config.json's ids are
    /// advice: GPT2Config's default 50256 outlives a smaller vocabulary, and
    /// transformers scores such a model (its eos just never comes).
    func within<V: Collection>(ids vocab: V, _ added: [Int]) -> SpecialTokens where V.Element == Int {
        let bound = max(vocab.max() ?? -1, added.max() ?? -1)
        func keep(_ t: Int32?) -> Int32? { t.flatMap { $0 >= 0 && Int($0) <= bound ? $0 : nil } }
        return SpecialTokens(bos: keep(bos), eos: keep(eos), pad: keep(pad))
    }
}

/// The byte-level models' tokenizer: each byte its own id, 256 ends a text.
public struct ByteTokenizer: Tokenizer {
    public static let endOfText: Int32 = 256
    public static let vocabularySize = 257

    public init() {}

    public var vocabularySize: Int { Self.vocabularySize }
    public var special: SpecialTokens { SpecialTokens(bos: Self.endOfText, eos: Self.endOfText, pad: Self.endOfText) }
    public func encode(_ text: String) -> [Int32] { text.utf8.map { Int32($0) } }
    public func decode(_ ids: [Int32]) -> [UInt8] { ids.compactMap { $0 >= 0 && $0 < 256 ? UInt8($0) : nil } }
}
