/// The fixed order of a Llama model's tensors in one flat buffer, with
/// Hugging Face's names and layouts: every projection is an nn.Linear weight
/// stored [out, in]. A layer's q, k and v weights are adjacent, so together
/// they are one [q + 2kv, C] matrix and the three projections are one
/// product; gate and up likewise form one [2F, C] matrix.
public struct LlamaLayout: Sendable {
    public let tensors: [ParameterTensor]
    public let count: Int

    public struct Block: Sendable {
        /// input_layernorm [C]; q|k|v [qkv, C]; o [C, q]; post_attention_layernorm [C];
        /// gate|up [2F, C]; down [C, F].
        public let attnNorm, qkv, o, mlpNorm, gateUp, down: Int
    }
    public let embed: Int
    public let blocks: [Block]
    public let norm: Int
    /// The output head [V, C]: the embedding itself when tied.
    public let head: Int

    public init(_ c: LlamaConfiguration) {
        var b = TensorLayoutBuilder()
        func add(_ name: String, _ shape: [Int]) -> Int { b.add(name, shape) }
        let C = c.dim
        embed = add("model.embed_tokens.weight", [c.vocab, C])
        var blocks: [Block] = []
        for l in 0..<c.layers {
            let p = "model.layers.\(l)."
            let attnNorm = add(p + "input_layernorm.weight", [C])
            let qkv = add(p + "self_attn.q_proj.weight", [c.qWidth, C])
            _ = add(p + "self_attn.k_proj.weight", [c.kvWidth, C])
            _ = add(p + "self_attn.v_proj.weight", [c.kvWidth, C])
            let o = add(p + "self_attn.o_proj.weight", [C, c.qWidth])
            let mlpNorm = add(p + "post_attention_layernorm.weight", [C])
            let gateUp = add(p + "mlp.gate_proj.weight", [c.ffDim, C])
            _ = add(p + "mlp.up_proj.weight", [c.ffDim, C])
            let down = add(p + "mlp.down_proj.weight", [C, c.ffDim])
            blocks.append(Block(attnNorm: attnNorm, qkv: qkv, o: o, mlpNorm: mlpNorm, gateUp: gateUp, down: down))
        }
        self.blocks = blocks
        norm = add("model.norm.weight", [C])
        head = c.tiedEmbeddings ? embed : add("lm_head.weight", [c.vocab, C])
        tensors = b.tensors
        count = b.count
    }
}
