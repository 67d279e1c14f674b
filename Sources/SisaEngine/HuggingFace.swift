import Foundation

/// Export to and import from a Hugging Face GPT-2 folder (config.json +
/// model.safetensors) that transformers' GPT2LMHeadModel loads. Tensor names
/// and [in, out] layouts are the engine's own, so both directions are copies.
public enum HuggingFace {
    public static func export(_ model: GPT, to dir: URL) throws {
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
            "bos_token_id": Int(ModelConfig.endOfText),
            "eos_token_id": Int(ModelConfig.endOfText),
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
    public static func load(from dir: URL, pool: WorkerPool = .shared) throws -> GPT {
        let configURL = dir.appendingPathComponent("config.json")
        guard let cdata = FileManager.default.contents(atPath: configURL.path) else {
            throw EngineError.io("\(configURL.path): cannot read")
        }
        guard let cfg = try? JSONSerialization.jsonObject(with: cdata) as? [String: Any] else {
            throw EngineError.format("\(configURL.path): not a JSON object")
        }
        func int(_ key: String) throws -> Int {
            guard let n = cfg[key] as? NSNumber, let v = n as? Int else {
                throw EngineError.format("\(configURL.path): \(key) is missing or not an integer")
            }
            return v
        }
        if let act = cfg["activation_function"] as? String, act != "gelu_new" {
            throw EngineError.format("\(configURL.path): activation \(act) is not supported (gelu_new only)")
        }
        let config = ModelConfig(layers: try int("n_layer"), heads: try int("n_head"), dim: try int("n_embd"),
                                 context: try int("n_positions"), vocab: try int("vocab_size"))
        do { try config.validate() } catch { throw EngineError.format("\(configURL.path): \(error)") }
        let stURL = dir.appendingPathComponent("model.safetensors")
        guard let sdata = FileManager.default.contents(atPath: stURL.path) else {
            throw EngineError.io("\(stURL.path): cannot read")
        }
        let (tensors, _) = try Safetensors.decode(sdata, source: stURL.path)
        // Every tensor is checked before the model is allocated.
        for t in ParameterLayout(config).tensors {
            guard let found = tensors[t.name] ?? tensors["transformer." + t.name], found.shape == t.shape else {
                throw EngineError.format("\(stURL.path): tensor \(t.name) is missing or not of shape \(t.shape)")
            }
        }
        let model = try GPT(config: config, pool: pool)
        for t in model.layout.tensors {
            guard let found = tensors[t.name] ?? tensors["transformer." + t.name] else {
                throw EngineError.format("\(stURL.path): missing tensor \(t.name)")
            }
            guard found.shape == t.shape else {
                throw EngineError.format("\(stURL.path): tensor \(t.name) has shape \(found.shape), expected \(t.shape)")
            }
            found.values.withUnsafeBufferPointer { (model.params.pointer + t.offset).update(from: $0.baseAddress!, count: t.count) }
        }
        return model
    }
}
