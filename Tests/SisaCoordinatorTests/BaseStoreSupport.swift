import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

/// The engine's tiny pretrained-format fixtures (random weights written by
/// transformers and gguf-py: see Tests/SisaEngineTests/Fixtures/generate).
enum TinyBase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("SisaEngineTests/Fixtures")
    /// llama, GQA, untied head, as a GGUF file (vocab 384, 2 layers, width 64, context 64).
    static var gguf: URL { fixtures.appendingPathComponent("tiny-llama.gguf") }
    /// llama, GQA, as a Hugging Face folder with one safetensors file.
    static var llamaFolder: URL { fixtures.appendingPathComponent("tiny-llama-gqa") }
    /// llama, tied head, llama3 rope scaling, sharded safetensors.
    static var tiedFolder: URL { fixtures.appendingPathComponent("tiny-llama-tied") }
    /// GPT-2 with vocab.json + merges.txt.
    static var gpt2Folder: URL { fixtures.appendingPathComponent("tiny-gpt2") }
}

/// A store configuration on a base: LoRA by default (nil `lora`: full fine-tuning).
func baseConfig(_ base: URL, shards: Int = 2, slices: Int = 3, seed: UInt64 = 7, context: Int = 32,
                lora: LoRAConfiguration? = LoRAConfiguration(rank: 4, alpha: 8, targets: ["q", "v"]),
                epochs: Double = 1, learningRate: Float? = nil) throws -> StoreConfig {
    let b = try BaseFiles.inspect(base, context: context, lora: lora)
    var opt = BaseStoreConfig.defaultOptimizer(lora: lora != nil)
    if let learningRate { opt.learningRate = learningRate }
    opt.warmupSteps = 2
    return StoreConfig(shards: shards, slices: slices, model: nil, optimizer: opt, batch: 4, epochs: epochs, seed: seed, base: b)
}

func createBaseStore(_ url: URL, _ base: URL, config: StoreConfig) throws -> Store {
    try Store.create(at: url, config: config, base: base)
}
