import Foundation

/// Filling a `LlamaModel`'s weights from a Hugging Face checkpoint or a GGUF
/// file: the tensor names each uses, and the one layout difference, llama.cpp's
/// row permutation of attn_q and attn_k (its converter interleaves each
/// head's rotary pairs; the engine, like transformers, keeps them half apart).
enum LlamaWeights {
    /// Reads every tensor of the layout from safetensors (names as in `LlamaLayout`).
    static func load(_ model: LlamaModel, from st: SafetensorsCheckpoint) throws {
        let P = model.weights.values.pointer
        for t in model.layout.tensors {
            try st.read(t.name, shape: t.shape, into: P + t.offset)
        }
        if model.config.tiedEmbeddings {
            try st.requireTied(head: "lm_head.weight", shape: [model.config.vocab, model.config.dim],
                               equals: P + model.layout.embed, embeddingName: "model.embed_tokens.weight")
        }
    }

    /// Every tensor a configuration needs is in the checkpoint with its shape, and
    /// no other weight is (SafetensorsCheckpoint.check), before the model is allocated.
    static func check(_ c: LlamaConfiguration, in st: SafetensorsCheckpoint) throws {
        // Besides the layout: a tied model's copy of its head (requireTied compares it),
        // and the rotary tables older transformers and other trainers saved as buffers.
        try st.check(required: LlamaLayout(c).tensors.map { ($0.name, $0.name, $0.shape) }, alsoRead: ["lm_head.weight"],
                     architecture: "llama",
                     isBuffer: { name in [".rotary_emb.inv_freq", ".rotary_emb.cos_cached", ".rotary_emb.sin_cached"].contains { name.hasSuffix($0) } })
    }

    /// The GGUF tensors (name, extents innermost first) a configuration needs.
    static func requirements(_ c: LlamaConfiguration) -> [(String, [Int])] {
        let C = c.dim
        var r: [(String, [Int])] = [("token_embd.weight", [C, c.vocab])]
        for l in 0..<c.layers {
            let p = "blk.\(l)."
            r += [(p + "attn_norm.weight", [C]), (p + "attn_q.weight", [C, c.qWidth]), (p + "attn_k.weight", [C, c.kvWidth]),
                  (p + "attn_v.weight", [C, c.kvWidth]), (p + "attn_output.weight", [c.qWidth, C]), (p + "ffn_norm.weight", [C]),
                  (p + "ffn_gate.weight", [C, c.ffDim]), (p + "ffn_up.weight", [C, c.ffDim]), (p + "ffn_down.weight", [c.ffDim, C])]
        }
        r.append(("output_norm.weight", [C]))
        if !c.tiedEmbeddings { r.append(("output.weight", [C, c.vocab])) }
        return r
    }

    /// The GGUF names of the layout's tensors (extents innermost first).
    static func load(_ model: LlamaModel, from g: GGUFFile) throws {
        let c = model.config, L = model.layout, C = c.dim, P = model.weights.values.pointer
        try g.read("token_embd.weight", dims: [C, c.vocab], into: P + L.embed)
        for l in 0..<c.layers {
            let b = L.blocks[l], p = "blk.\(l)."
            try g.read(p + "attn_norm.weight", dims: [C], into: P + b.attnNorm)
            let q = P + b.qkv, k = q + c.qWidth * C, v = k + c.kvWidth * C
            try g.read(p + "attn_q.weight", dims: [C, c.qWidth], into: q)
            unpermute(q, heads: c.heads, headDim: c.headDim, columns: C)
            try g.read(p + "attn_k.weight", dims: [C, c.kvWidth], into: k)
            unpermute(k, heads: c.kvHeads, headDim: c.headDim, columns: C)
            try g.read(p + "attn_v.weight", dims: [C, c.kvWidth], into: v)
            try g.read(p + "attn_output.weight", dims: [c.qWidth, C], into: P + b.o)
            try g.read(p + "ffn_norm.weight", dims: [C], into: P + b.mlpNorm)
            try g.read(p + "ffn_gate.weight", dims: [C, c.ffDim], into: P + b.gateUp)
            try g.read(p + "ffn_up.weight", dims: [C, c.ffDim], into: P + b.gateUp + c.ffDim * C)
            try g.read(p + "ffn_down.weight", dims: [c.ffDim, C], into: P + b.down)
        }
        try g.read("output_norm.weight", dims: [C], into: P + L.norm)
        if !c.tiedEmbeddings { try g.read("output.weight", dims: [C, c.vocab], into: P + L.head) }
    }

    /// Undoes llama.cpp's permutation of a [heads·hs, columns] matrix: its row
    /// h·hs + 2i + j holds transformers' row h·hs + j·hs/2 + i.
    static func unpermute(_ w: UnsafeMutablePointer<Float>, heads: Int, headDim hs: Int, columns: Int) {
        let half = hs / 2
        let tmp = FloatBuffer(count: hs * columns)
        for h in 0..<heads {
            let head = w + h * hs * columns
            tmp.pointer.update(from: head, count: hs * columns)
            for i in 0..<half {
                for j in 0..<2 {
                    (head + (j * half + i) * columns).update(from: tmp.pointer + (2 * i + j) * columns, count: columns)
                }
            }
        }
    }
}
