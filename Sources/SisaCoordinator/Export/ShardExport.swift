import Foundation
import SisaEngine

/// What `sisa export` writes for a shard.
public enum ExportKind: String, CaseIterable, Sendable {
    /// A Hugging Face folder of the whole model (on a base store, the adapter merged into the base's weights).
    case merged
    /// The adapter alone, as a PEFT LoRA folder (base stores with LoRA only).
    case adapter
}

public struct ExportReport: Sendable {
    public let shard: Int
    public let kind: ExportKind
    public let digest: String
    public let description: String
}

extension Store {
    /// Writes shard `shard`'s current model to `dir`. A quarantined shard is
    /// refused: its model still holds a record whose deletion is pending.
    public func export(shard: Int, to dir: URL, kind: ExportKind = .merged) throws -> ExportReport {
        let m = try model(shard: shard)
        let meta = ["sisa.digest": m.digest, "sisa.shard": String(shard)]
        guard let base = config.base else {
            guard kind == .merged, let g = m.model as? GPT2Model else {
                throw CoordinatorError.invalidInput("a byte-level store's shards have no adapter: export the model itself (--kind merged)")
            }
            do { try HuggingFace.export(g, to: dir) } catch let e as EngineError { throw CoordinatorError.io("\(e)") }
            return ExportReport(shard: shard, kind: .merged, digest: m.digest, description: "\(g.config)")
        }
        let b = try models.base()
        do {
            switch kind {
            case .merged:
                try PretrainedExport.merged(m.model, tokenizer: b.tokenizer, baseFolder: b.format == .huggingFace ? b.url : nil,
                                            to: dir, metadata: meta.merging(["sisa.base.sha256": base.sha256]) { a, _ in a })
                return ExportReport(shard: shard, kind: kind, digest: m.digest,
                                    description: "\(base.name) with shard \(shard)'s \(base.lora == nil ? "weights" : "adapter merged in")")
            case .adapter:
                guard base.lora != nil else {
                    throw CoordinatorError.invalidInput("this store fine-tunes every weight: there is no adapter alone; export --kind merged")
                }
                try PretrainedExport.adapter(m.model, baseName: base.name, to: dir,
                                             metadata: meta.merging(["sisa.base.sha256": base.sha256]) { a, _ in a })
                return ExportReport(shard: shard, kind: kind, digest: m.digest, description: "\(base.lora!) over \(base.name)")
            }
        } catch let e as EngineError { throw CoordinatorError.io("\(e)") }
    }
}
