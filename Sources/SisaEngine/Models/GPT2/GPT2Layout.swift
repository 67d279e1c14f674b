import Foundation

/// The fixed order of the parameter tensors in one flat buffer.
///
/// Layouts follow Hugging Face GPT-2 (linear weights stored [in, out]), so an
/// export is a straight copy and the digest is over the same bytes a user
/// would find in the exported `model.safetensors`.
public struct GPT2Layout: Sendable {
    public let tensors: [ParameterTensor]
    public let count: Int

    /// Offsets of one transformer block's tensors.
    public struct Block: Sendable {
        public let ln1w, ln1b, qkvw, qkvb, projw, projb, ln2w, ln2b, fcw, fcb, fc2w, fc2b: Int
    }
    public let wte: Int
    public let wpe: Int
    public let blocks: [Block]
    public let lnfw: Int
    public let lnfb: Int

    public init(_ c: GPT2Configuration) {
        var b = TensorLayoutBuilder()
        func add(_ name: String, _ shape: [Int]) -> Int { b.add(name, shape) }
        let C = c.dim
        wte = add("wte.weight", [c.vocab, C])
        wpe = add("wpe.weight", [c.context, C])
        var blocks: [Block] = []
        for l in 0..<c.layers {
            let p = "h.\(l)."
            blocks.append(Block(
                ln1w: add(p + "ln_1.weight", [C]), ln1b: add(p + "ln_1.bias", [C]),
                qkvw: add(p + "attn.c_attn.weight", [C, 3 * C]), qkvb: add(p + "attn.c_attn.bias", [3 * C]),
                projw: add(p + "attn.c_proj.weight", [C, C]), projb: add(p + "attn.c_proj.bias", [C]),
                ln2w: add(p + "ln_2.weight", [C]), ln2b: add(p + "ln_2.bias", [C]),
                fcw: add(p + "mlp.c_fc.weight", [C, 4 * C]), fcb: add(p + "mlp.c_fc.bias", [4 * C]),
                fc2w: add(p + "mlp.c_proj.weight", [4 * C, C]), fc2b: add(p + "mlp.c_proj.bias", [C])))
        }
        self.blocks = blocks
        lnfw = add("ln_f.weight", [C])
        lnfb = add("ln_f.bias", [C])
        tensors = b.tensors
        count = b.count
    }

    public func tensor(named name: String) -> ParameterTensor? { tensors.first { $0.name == name } }
}
