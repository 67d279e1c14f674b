import Foundation

/// Writing a model over a pretrained base as files other tools read:
///
/// - `merged`: a Hugging Face folder (config.json, model.safetensors,
///   tokenizer.json, tokenizer_config.json) with the adapter folded into the
///   weights, which transformers' LlamaForCausalLM / GPT2LMHeadModel and this
///   engine's loader both read;
/// - `adapter`: the adapter alone as a PEFT LoRA folder (adapter_config.json,
///   adapter_model.safetensors) for `PeftModel.from_pretrained(base, dir)`.
///
/// Every file is written to a temporary name, synced, then renamed.
public enum PretrainedExport {
    /// `base`: the Hugging Face folder the model was loaded from (its
    /// config.json and tokenizer files are copied as they are), or nil for a
    /// GGUF base (both are written from the configuration and the tokenizer).
    public static func merged(_ model: any LanguageModel, tokenizer: BPETokenizer, baseFolder: URL?, to dir: URL,
                              metadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let weights = LoRAMerge.mergedWeights(model)
        let tensors = model.weights.tensors.map { t in
            (name: exportName(t.name, model), shape: t.shape, values: UnsafeBufferPointer(start: weights.pointer + t.offset, count: t.count))
        }
        // A tied head is the embedding: llama's layout has no lm_head then, and transformers ties it back.
        try write(try Safetensors.encode(tensors, metadata: metadata.merging(["format": "pt"]) { a, _ in a }),
                  to: dir.appendingPathComponent("model.safetensors"))
        let fm = FileManager.default
        if let baseFolder {
            for name in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                         "vocab.json", "merges.txt", "encoder.json", "vocab.bpe"]
            where fm.fileExists(atPath: baseFolder.appendingPathComponent(name).path) {
                guard let d = fm.contents(atPath: baseFolder.appendingPathComponent(name).path) else {
                    throw EngineError.io("\(baseFolder.path)/\(name): cannot read")
                }
                try write(d, to: dir.appendingPathComponent(name))
            }
            return
        }
        try write(try configJSON(model, tokenizer: tokenizer), to: dir.appendingPathComponent("config.json"))
        try write(try tokenizer.tokenizerJSON(), to: dir.appendingPathComponent("tokenizer.json"))
        var tc: [String: Any] = ["tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": false, "add_eos_token": false,
                                 "model_max_length": model.context, "clean_up_tokenization_spaces": false]
        if let e = tokenizer.special.eos { tc["eos_token"] = String(decoding: tokenizer.bytes(of: e), as: UTF8.self) }
        if let b = tokenizer.special.bos { tc["bos_token"] = String(decoding: tokenizer.bytes(of: b), as: UTF8.self) }
        if let p = tokenizer.special.pad { tc["pad_token"] = String(decoding: tokenizer.bytes(of: p), as: UTF8.self) }
        try write(try JSONSerialization.data(withJSONObject: tc, options: [.sortedKeys, .prettyPrinted]),
                  to: dir.appendingPathComponent("tokenizer_config.json"))
    }

    /// The adapter of `model` as a PEFT LoRA folder. `baseName` goes into
    /// adapter_config.json's base_model_name_or_path.
    public static func adapter(_ model: any LanguageModel, baseName: String, to dir: URL, metadata: [String: String] = [:]) throws {
        guard let a = model.adapter else { throw EngineError.invalidConfig("the model has no adapter to export (full fine-tuning: export the merged model)") }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let P = a.parameters.values.pointer, r = a.config.rank
        let prefix = model.architecture == .llama ? "base_model.model.model.layers." : "base_model.model.transformer.h."
        var arrays: [(name: String, shape: [Int], values: [Float])] = []
        for s in a.slots {
            let t = s.target, name = "\(prefix)\(s.layer).\(t.module)"
            arrays.append((name + ".lora_A.weight", [r, t.inFeatures], Array(UnsafeBufferPointer(start: P + s.a, count: r * t.inFeatures))))
            // PEFT's lora_B is [out, r]; the engine keeps Bᵀ [r, out].
            var b = [Float](repeating: 0, count: t.outFeatures * r)
            for k in 0..<r { for o in 0..<t.outFeatures { b[o * r + k] = P[s.bT + k * t.outFeatures + o] } }
            arrays.append((name + ".lora_B.weight", [t.outFeatures, r], b))
        }
        let data = try withBuffers(arrays) { views in
            try Safetensors.encode(views, metadata: metadata.merging(["format": "pt"]) { a, _ in a })
        }
        try write(data, to: dir.appendingPathComponent("adapter_model.safetensors"))
        let modules = Set(a.slots.map { String($0.target.module.split(separator: ".").last!) })
        var config: [String: Any] = [
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": baseName,
            "r": r, "lora_alpha": Double(a.config.alpha), "lora_dropout": 0.0, "bias": "none",
            "target_modules": modules.sorted(), "fan_in_fan_out": model.architecture == .gpt2,
            "inference_mode": true, "use_rslora": false, "init_lora_weights": true,
        ]
        if a.config.layers != nil { config["layers_to_transform"] = Array(Set(a.slots.map(\.layer))).sorted() }
        try write(try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys, .prettyPrinted]),
                  to: dir.appendingPathComponent("adapter_config.json"))
    }

    /// GPT-2 tensors carry transformers' "transformer." prefix in an export; llama's names are already the checkpoint's.
    static func exportName(_ name: String, _ model: any LanguageModel) -> String {
        model.architecture == .gpt2 ? "transformer." + name : name
    }

    static func configJSON(_ model: any LanguageModel, tokenizer: BPETokenizer) throws -> Data {
        var o: [String: Any]
        switch model {
        case let m as LlamaModel:
            let c = m.config
            guard c.ropeFrequencyFactors == nil || c.ropeScaling != nil else {
                throw EngineError.invalidConfig("this base's rotary frequency factors (GGUF rope_freqs) have no config.json form; export the adapter instead")
            }
            o = ["model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": c.dim,
                 "intermediate_size": c.ffDim, "num_hidden_layers": c.layers, "num_attention_heads": c.heads,
                 "num_key_value_heads": c.kvHeads, "head_dim": c.headDim, "vocab_size": c.vocab,
                 "max_position_embeddings": c.context, "rms_norm_eps": Double("\(c.rmsEpsilon)") ?? Double(c.rmsEpsilon), "rope_theta": c.ropeTheta,
                 "tie_word_embeddings": c.tiedEmbeddings, "hidden_act": "silu", "attention_bias": false, "mlp_bias": false]
            if let s = c.ropeScaling {
                var rs: [String: Any] = ["rope_type": s.type, "factor": s.factor]
                if let v = s.lowFrequencyFactor { rs["low_freq_factor"] = v }
                if let v = s.highFrequencyFactor { rs["high_freq_factor"] = v }
                if let v = s.originalContext { rs["original_max_position_embeddings"] = v }
                o["rope_scaling"] = rs
            }
        case let m as GPT2Model:
            let c = m.config
            o = ["model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": c.vocab, "n_positions": c.context,
                 "n_ctx": c.context, "n_embd": c.dim, "n_layer": c.layers, "n_head": c.heads, "activation_function": "gelu_new",
                 "layer_norm_epsilon": Double("\(c.layerNormEpsilon ?? 1e-5)") ?? 1e-5, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
                 "tie_word_embeddings": true, "scale_attn_weights": true]
        default:
            throw EngineError.invalidConfig("no Hugging Face export for \(model.architecture.rawValue)")
        }
        if let b = tokenizer.special.bos { o["bos_token_id"] = Int(b) }
        if let e = tokenizer.special.eos { o["eos_token_id"] = Int(e) }
        if let p = tokenizer.special.pad { o["pad_token_id"] = Int(p) }
        return try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .prettyPrinted])
    }

    private static func withBuffers<R>(_ arrays: [(name: String, shape: [Int], values: [Float])],
                                       _ body: ([(name: String, shape: [Int], values: UnsafeBufferPointer<Float>)]) throws -> R) throws -> R {
        // Contiguous copies so that every view outlives the encoding.
        let total = arrays.reduce(0) { $0 + $1.values.count }
        let buf = FloatBuffer(count: total)
        var views: [(name: String, shape: [Int], values: UnsafeBufferPointer<Float>)] = []
        var off = 0
        for a in arrays {
            a.values.withUnsafeBufferPointer { (buf.pointer + off).update(from: $0.baseAddress!, count: a.values.count) }
            views.append((a.name, a.shape, UnsafeBufferPointer(start: buf.pointer + off, count: a.values.count)))
            off += a.values.count
        }
        return try body(views)
    }

    /// Temporary file, fsync, rename.
    static func write(_ data: Data, to url: URL) throws {
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial")
        do {
            try data.write(to: tmp)
            let fd = open(tmp.path, O_RDONLY)
            if fd >= 0 { fsync(fd); close(fd) }
            guard rename(tmp.path, url.path) == 0 else { throw EngineError.io("rename failed (errno \(errno))") }
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw EngineError.io("\(url.path): cannot write (\((error as NSError).localizedDescription))")
        }
    }
}
