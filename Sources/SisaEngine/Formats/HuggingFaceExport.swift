import Foundation

/// Export to and import from a Hugging Face GPT-2 folder (config.json +
/// model.safetensors) that transformers' GPT2LMHeadModel loads. Tensor names
/// and [in, out] layouts are the engine's own, so both directions are copies.
public enum HuggingFace {
    public static func export(_ model: GPT2Model, to dir: URL) throws {
        let c = model.config
        let fm = FileManager.default
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        let config: [String: Any] = [
            "model_type": "gpt2",
            "architectures": ["GPT2LMHeadModel"],
            "vocab_size": c.vocab,
            "n_positions": c.context,
            "n_ctx": c.context,
            "n_embd": c.dim,
            "n_layer": c.layers,
            "n_head": c.heads,
            "activation_function": "gelu_new",
            "layer_norm_epsilon": 1e-5,
            "bos_token_id": Int(ByteTokenizer.endOfText),
            "eos_token_id": Int(ByteTokenizer.endOfText),
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
            "tie_word_embeddings": true,
            "scale_attn_weights": true,
        ]
        let json = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys, .prettyPrinted])
        let tensors = model.layout.tensors.map { t in
            (name: t.name, shape: t.shape, values: UnsafeBufferPointer(start: model.params.pointer + t.offset, count: t.count))
        }
        let st = try Safetensors.encode(tensors, metadata: ["format": "pt", "sisa.digest": model.digest])
        try json.write(to: dir.appendingPathComponent("config.json"), options: .atomic)
        try st.write(to: dir.appendingPathComponent("model.safetensors"), options: .atomic)
    }

    /// Loads a GPT-2 folder written by `export` or by transformers (names with
    /// or without the "transformer." prefix; lm_head is ignored, being tied).
    public static func load(from dir: URL, pool: WorkerPool = .shared) throws -> GPT2Model {
        let config = try GPT2Configuration(json: ModelConfigJSON(url: dir.appendingPathComponent("config.json")))
        let st = try SafetensorsCheckpoint(folder: dir)
        let model = try GPT2Model(config: config, pool: pool)
        try GPT2Weights.load(model, from: st)
        return model
    }
}
