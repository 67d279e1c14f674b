import Foundation
import SisaEngine

/// A store on a pretrained base (`sisa init --base`): the base, kept inside
/// the store under `base/` so that cluster nodes see it, its digest, and what
/// every shard trains over it.
public struct BaseStoreConfig: Codable, Equatable, Sendable {
    /// The GGUF file or Hugging Face folder under STORE/base/.
    public var name: String
    /// sha256 of the base (a folder: of its files, see `BaseFiles`).
    public var sha256: String
    public var bytes: Int
    public var architecture: ModelArchitecture
    /// The training and scoring window in tokens, at most the base's context.
    public var context: Int
    /// The adapter each shard trains over the frozen base; nil: every weight (full fine-tuning).
    public var lora: LoRAConfiguration?

    public init(name: String, sha256: String, bytes: Int, architecture: ModelArchitecture, context: Int, lora: LoRAConfiguration?) {
        self.name = name
        self.sha256 = sha256
        self.bytes = bytes
        self.architecture = architecture
        self.context = context
        self.lora = lora
    }

    /// The training window when `--ctx` is not given (a base's own, often
    /// thousands of tokens, would make every step cost that much).
    public static let defaultContext = 256

    /// The default adapter: LoRA of rank 8 (alpha 16) on q and v of every
    /// layer (GPT-2's fused attention projection).
    public static func defaultLoRA(_ architecture: ModelArchitecture) -> LoRAConfiguration {
        LoRAConfiguration(rank: 8, alpha: 16, targets: architecture == .llama ? ["q", "v"] : ["attn"], layers: nil)
    }

    func validate() throws {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw CoordinatorError.invalidInput("base name \(name) is not a file or folder name")
        }
        guard sha256.count == 64 else { throw CoordinatorError.invalidInput("base digest \(sha256) is not a sha256") }
        guard context >= 2 else { throw CoordinatorError.invalidInput("--ctx must be at least 2") }
    }

    /// The optimizer a base store starts from: LoRA learns at 1e-3 (the
    /// base is frozen, the adapter small); full fine-tuning at 5e-5.
    public static func defaultOptimizer(lora: Bool) -> OptimizerConfig {
        var o = StoreConfig.defaultOptimizer
        o.learningRate = lora ? 1e-3 : 5e-5
        return o
    }
}
