import Foundation

extension GPT2Configuration {
    /// From a Hugging Face `config.json` (`model_type: gpt2`).
    public init(json c: ModelConfigJSON) throws {
        if let act = try c.optionalString("activation_function"), act != "gelu_new", act != "gelu_pytorch_tanh" {
            throw c.fail("activation \(act) is not supported (gelu_new only)")
        }
        let dim = try c.int("n_embd")
        if let inner = try c.optionalInt("n_inner"), inner % 4 != 0 || inner / 4 != dim {
            throw c.fail("n_inner \(inner) is not 4 x n_embd")
        }
        if try c.optionalBool("tie_word_embeddings") == false {
            throw c.fail("tie_word_embeddings is false: GPT-2 with a head separate from wte is not supported")
        }
        if try c.optionalBool("scale_attn_by_inverse_layer_idx") == true || c.optionalBool("scale_attn_weights") == false {
            throw c.fail("only GPT-2's 1/sqrt(head size) attention scaling is supported")
        }
        self.init(layers: try c.int("n_layer"), heads: try c.int("n_head"), dim: dim,
                  context: try c.optionalInt("n_positions") ?? c.int("n_ctx"), vocab: try c.int("vocab_size"))
        if let eps = try c.optionalDouble("layer_norm_epsilon"), Float(eps) != 1e-5 { layerNormEpsilon = Float(eps) }
        do { try validate() } catch { throw c.fail("\(error)") }
    }

    /// From a GGUF file's `gpt2.*` metadata.
    public init(gguf g: GGUFFile) throws {
        let p = "gpt2."
        let dim = try g.int(p + "embedding_length")
        if let ff = try g.optionalInt(p + "feed_forward_length"), ff % 4 != 0 || ff / 4 != dim {
            throw g.file.fail("feed_forward_length \(ff) is not 4 x embedding_length")
        }
        let vocab: Int
        if let v = try g.optionalInt(p + "vocab_size") { vocab = v } else {
            guard let emb = g.tensors["token_embd.weight"], emb.dims.count == 2 else { throw g.file.fail("token_embd.weight is missing") }
            vocab = emb.dims[1]
        }
        self.init(layers: try g.int(p + "block_count"), heads: try g.int(p + "attention.head_count"), dim: dim,
                  context: try g.int(p + "context_length"), vocab: vocab)
        if let eps = try g.optionalDouble(p + "attention.layer_norm_epsilon"), Float(eps) != 1e-5 { layerNormEpsilon = Float(eps) }
        do { try validate() } catch { throw g.file.fail("\(error)") }
    }
}

/// Filling a `GPT2Model`'s weights from a Hugging Face checkpoint (the
/// engine's own names and [in, out] layout, with or without transformers'
/// "transformer." prefix) or from a GGUF file (llama.cpp stores the linear
/// weights [out, in]: they are transposed at load).
enum GPT2Weights {
    /// The checkpoint's name for a layout tensor: as is, or under transformers' "transformer." prefix.
    private static func stored(_ name: String, in st: SafetensorsCheckpoint) -> String {
        st.shape(of: name) != nil ? name : "transformer." + name
    }

    static func load(_ model: GPT2Model, from st: SafetensorsCheckpoint) throws {
        let P = model.params.pointer
        for t in model.layout.tensors {
            try st.read(stored(t.name, in: st), shape: t.shape, into: P + t.offset)
        }
        try st.requireTied(head: "lm_head.weight", shape: [model.config.vocab, model.config.dim],
                           equals: P + model.layout.wte, embeddingName: stored("wte.weight", in: st))
    }

    /// Every tensor of the layout is in the checkpoint with its shape, and no other weight
    /// is (SafetensorsCheckpoint.check), before the model is allocated.
    static func check(_ c: GPT2Configuration, in st: SafetensorsCheckpoint) throws {
        // Besides the layout: the tied head's copy (requireTied compares it), and the
        // causal-mask buffers older transformers saved (h.N.attn.bias, h.N.attn.masked_bias).
        try st.check(required: GPT2Layout(c).tensors.map { ($0.name, stored($0.name, in: st), $0.shape) }, alsoRead: ["lm_head.weight"],
                     architecture: "gpt2", isBuffer: { $0.hasSuffix(".attn.bias") || $0.hasSuffix(".attn.masked_bias") })
    }

    /// The GGUF tensors (name, extents innermost first) a configuration needs.
    static func requirements(_ c: GPT2Configuration) -> [(String, [Int])] {
        let C = c.dim
        var r: [(String, [Int])] = [("token_embd.weight", [C, c.vocab]), ("position_embd.weight", [C, c.context])]
        for l in 0..<c.layers {
            let p = "blk.\(l)."
            r += [(p + "attn_norm.weight", [C]), (p + "attn_norm.bias", [C]), (p + "attn_qkv.weight", [C, 3 * C]),
                  (p + "attn_qkv.bias", [3 * C]), (p + "attn_output.weight", [C, C]), (p + "attn_output.bias", [C]),
                  (p + "ffn_norm.weight", [C]), (p + "ffn_norm.bias", [C]), (p + "ffn_up.weight", [C, 4 * C]),
                  (p + "ffn_up.bias", [4 * C]), (p + "ffn_down.weight", [4 * C, C]), (p + "ffn_down.bias", [C])]
        }
        return r + [("output_norm.weight", [C]), ("output_norm.bias", [C])]
    }

    static func load(_ model: GPT2Model, from g: GGUFFile) throws {
        let c = model.config, L = model.layout, C = c.dim, P = model.params.pointer
        try g.read("token_embd.weight", dims: [C, c.vocab], into: P + L.wte)
        try g.read("position_embd.weight", dims: [C, c.context], into: P + L.wpe)
        func transposed(_ name: String, rows: Int, cols: Int, into dst: UnsafeMutablePointer<Float>) throws {
            // The file holds [cols, rows] ([out, in]); the engine wants [rows, cols] ([in, out]).
            let tmp = FloatBuffer(count: rows * cols)
            try g.read(name, dims: [rows, cols], into: tmp.pointer)
            for o in 0..<cols { for i in 0..<rows { dst[i * cols + o] = tmp[o * rows + i] } }
        }
        for l in 0..<c.layers {
            let b = L.blocks[l], p = "blk.\(l)."
            try g.read(p + "attn_norm.weight", dims: [C], into: P + b.ln1w)
            try g.read(p + "attn_norm.bias", dims: [C], into: P + b.ln1b)
            try transposed(p + "attn_qkv.weight", rows: C, cols: 3 * C, into: P + b.qkvw)
            try g.read(p + "attn_qkv.bias", dims: [3 * C], into: P + b.qkvb)
            try transposed(p + "attn_output.weight", rows: C, cols: C, into: P + b.projw)
            try g.read(p + "attn_output.bias", dims: [C], into: P + b.projb)
            try g.read(p + "ffn_norm.weight", dims: [C], into: P + b.ln2w)
            try g.read(p + "ffn_norm.bias", dims: [C], into: P + b.ln2b)
            try transposed(p + "ffn_up.weight", rows: C, cols: 4 * C, into: P + b.fcw)
            try g.read(p + "ffn_up.bias", dims: [4 * C], into: P + b.fcb)
            try transposed(p + "ffn_down.weight", rows: 4 * C, cols: C, into: P + b.fc2w)
            try g.read(p + "ffn_down.bias", dims: [C], into: P + b.fc2b)
        }
        try g.read("output_norm.weight", dims: [C], into: P + L.lnfw)
        try g.read("output_norm.bias", dims: [C], into: P + L.lnfb)
        if g.tensors["output.weight"] != nil {
            // GPT-2's head is the embedding; a file with a different head is not GPT-2.
            let head = FloatBuffer(count: c.vocab * C)
            try g.read("output.weight", dims: [C, c.vocab], into: head.pointer)
            guard memcmp(head.pointer, P + L.wte, c.vocab * C * 4) == 0 else {
                throw g.file.fail("output.weight differs from token_embd.weight (GPT-2's head is tied)")
            }
        }
    }
}
