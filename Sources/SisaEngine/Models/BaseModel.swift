import Foundation

/// A pretrained model as users have it, with its tokenizer: a Hugging Face
/// folder (`config.json` with `model_type` gpt2 or llama, safetensors, a
/// tokenizer) or a GGUF file (llama.cpp's format, quantized or not). The
/// factory picks the family by `model_type` (or `general.architecture`).
///
/// The engine never reads pickle files (`pytorch_model.bin`, `.pt`): a
/// model file from the internet is data, and pickle is code.
public struct BaseModel {
    public let model: any LanguageModel
    public let tokenizer: BPETokenizer
    public let url: URL
    public let format: Format

    public enum Format: String, Sendable { case gguf, huggingFace = "hugging-face" }

    /// The family of the model at `url`, and its configuration, without reading weights.
    public enum Configuration: Sendable, Equatable {
        case gpt2(GPT2Configuration)
        case llama(LlamaConfiguration)

        public var architecture: ModelArchitecture {
            switch self { case .gpt2: return .gpt2; case .llama: return .llama }
        }
        public var vocab: Int {
            switch self { case .gpt2(let c): return c.vocab; case .llama(let c): return c.vocab }
        }
        public var context: Int {
            switch self { case .gpt2(let c): return c.context; case .llama(let c): return c.context }
        }
        public var layers: Int {
            switch self { case .gpt2(let c): return c.layers; case .llama(let c): return c.layers }
        }
        public var loraTargets: [LoRATarget] {
            switch self {
            case .gpt2(let c): return GPT2Model.loraTargets(c)
            case .llama(let c): return LlamaModel.loraTargets(c)
            }
        }
    }

    public static func isGGUF(_ url: URL) -> Bool {
        var dir: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &dir) && !dir.boolValue && GGUFFile.isGGUF(url)
    }

    /// The configuration at `url` (a GGUF file or a Hugging Face folder).
    public static func configuration(at url: URL) throws -> Configuration {
        var dir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &dir) else { throw EngineError.io("\(url.path): no such file or folder") }
        if dir.boolValue {
            let c = try ModelConfigJSON(url: url.appendingPathComponent("config.json"))
            switch c.modelType {
            case "gpt2": return .gpt2(try GPT2Configuration(json: c))
            case "llama": return .llama(try LlamaConfiguration(json: c))
            case let t: throw c.fail("model_type \(t ?? "(missing)") is not supported (gpt2, llama)")
            }
        }
        return try configuration(of: GGUFFile(url: url))
    }

    static func configuration(of g: GGUFFile) throws -> Configuration {
        let arch = try g.string("general.architecture")
        switch arch {
        case "llama": return .llama(try LlamaConfiguration(gguf: g))
        case "gpt2": return .gpt2(try GPT2Configuration(gguf: g))
        default: throw g.file.fail("general.architecture \(arch) is not supported (gpt2, llama)")
        }
    }

    /// The tokenizer alone (`sisa tokenize`): a folder's tokenizer files need no weights beside them.
    public static func tokenizer(at url: URL) throws -> BPETokenizer {
        var dir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &dir) else { throw EngineError.io("\(url.path): no such file or folder") }
        return dir.boolValue ? try TokenizerFiles.load(folder: url) : try TokenizerFiles.load(gguf: GGUFFile(url: url))
    }

    /// Loads model and tokenizer. `context` caps the working context (llama
    /// defaults to min(model's, 4096)); `trainable` allocates gradients for
    /// the weights (full fine-tuning; otherwise the base is frozen).
    public static func load(_ url: URL, context: Int? = nil, trainable: Bool = false, pool: WorkerPool = .shared,
                            kernels: Kernels? = nil) throws -> BaseModel {
        var dir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &dir) else { throw EngineError.io("\(url.path): no such file or folder") }
        // Configuration, tokenizer, and every tensor checked against the files before the model is allocated.
        let config: Configuration, tokenizer: BPETokenizer, format: Format
        let fill: (any LanguageModel) throws -> Void
        if dir.boolValue {
            config = try configuration(at: url)
            tokenizer = try TokenizerFiles.load(folder: url)
            let st = try SafetensorsCheckpoint(folder: url)
            switch config {
            case .llama(let c): try LlamaWeights.check(c, in: st)
            case .gpt2(let c): try GPT2Weights.check(c, in: st)
            }
            format = .huggingFace
            fill = { model in
                if let m = model as? LlamaModel { try LlamaWeights.load(m, from: st) }
                if let m = model as? GPT2Model { try GPT2Weights.load(m, from: st) }
            }
        } else {
            let g = try GGUFFile(url: url)
            config = try configuration(of: g)
            tokenizer = try TokenizerFiles.load(gguf: g)
            switch config {
            case .llama(let c): try g.check(LlamaWeights.requirements(c), optional: ["rope_freqs.weight"])
            case .gpt2(let c): try g.check(GPT2Weights.requirements(c), optional: ["output.weight"])
            }
            format = .gguf
            fill = { model in
                if let m = model as? LlamaModel { try LlamaWeights.load(m, from: g) }
                if let m = model as? GPT2Model { try GPT2Weights.load(m, from: g) }
            }
        }
        let model = try build(config, context: context, trainable: trainable, pool: pool, kernels: kernels)
        try fill(model)
        guard tokenizer.vocabularySize <= model.vocabularySize else {
            throw EngineError.format("\(tokenizer.source): the tokenizer has \(tokenizer.vocabularySize) ids, the model in \(url.path) \(model.vocabularySize)")
        }
        return BaseModel(model: model, tokenizer: tokenizer, url: url, format: format)
    }

    static func build(_ config: Configuration, context: Int?, trainable: Bool, pool: WorkerPool,
                      kernels: Kernels?) throws -> any LanguageModel {
        switch config {
        case .llama(let c):
            return try LlamaModel(config: c, context: context, trainable: trainable, pool: pool, kernels: kernels)
        case .gpt2(let c):
            return try GPT2Model(config: c, context: context, pool: pool, kernels: kernels, trainable: trainable)
        }
    }
}
