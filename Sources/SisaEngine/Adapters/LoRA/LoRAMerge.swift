import Foundation

/// Folding an adapter into its model's weights: W' = W + (alpha / r) · B A
/// for every adapted projection, so that the merged model, with no adapter,
/// computes what the base with the adapter computes (up to rounding).
public enum LoRAMerge {
    /// The model's weights with `model.adapter` merged in, as a new buffer
    /// (the model's own weights, possibly shared with other shards, are untouched).
    public static func mergedWeights(_ model: any LanguageModel) -> FloatBuffer {
        let out = FloatBuffer(count: model.weights.count)
        out.copy(from: model.weights.values)
        guard let adapter = model.adapter else { return out }
        let W = out.pointer, P = adapter.parameters.values.pointer
        let r = adapter.config.rank, s = Double(adapter.config.scale)
        for slot in adapter.slots {
            let t = slot.target, at = model.placement(layer: slot.layer, target: t)
            // A [r, in], Bᵀ [r, out]: (B A)[o, i] = sum_k Bᵀ[k, o] A[k, i], accumulated in double.
            for o in 0..<t.outFeatures {
                for i in 0..<t.inFeatures {
                    var acc = 0.0
                    for k in 0..<r { acc += Double(P[slot.bT + k * t.outFeatures + o]) * Double(P[slot.a + k * t.inFeatures + i]) }
                    let w = at.offset + o * at.outStride + i * at.inStride
                    W[w] = Float(Double(W[w]) + s * acc)
                }
            }
        }
        return out
    }
}
