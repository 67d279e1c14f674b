import ArgumentParser
import Foundation
import SisaEngine

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Token ids of texts under a base model's tokenizer (no special tokens added).",
        discussion: """
        PATH is a GGUF file or a Hugging Face folder (tokenizer.json, or vocab.json + merges.txt); \
        a folder needs no weights, and a vocabulary-only GGUF will do. Byte-level BPE (GPT-2, Llama 3, \
        SmolLM) and SentencePiece-style BPE with byte fallback (Llama 2, TinyLlama) are read. \
        Special tokens written in a text (such as <|im_start|>) are recognised as such; no bos or eos \
        is added. JSON: {"items": [{"ids": [...]}]}, one item per text, in input order.
        """)

    @Option(help: "The base model: a GGUF file or a Hugging Face folder.") var base: String
    @OptionGroup var input: TextInputOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let texts = try input.texts(blankLines: true)
        let tokenizer: BPETokenizer
        do { tokenizer = try BaseModel.tokenizer(at: URL(fileURLWithPath: base)) } catch let e as EngineError {
            throw ValidationError("\(e)")
        }
        let ids = texts.map { tokenizer.encode(bytes: $0) }
        if json {
            try printCompactJSON(TokenizeReport(items: ids.map { .init(ids: $0.map(Int.init)) }))
        } else {
            for i in ids { print(i.map(String.init).joined(separator: " ")) }
        }
    }

    struct TokenizeReport: Codable {
        struct Item: Codable { let ids: [Int] }
        let items: [Item]
    }
}
