import Foundation

/// The parameters of a LoRA adapter over one model: for every adapted
/// (layer, target) an A [rank, in] and a Bᵀ [rank, out] in one flat buffer
/// (B is kept transposed so that every product of the adapter has `rank`
/// rows or a long side, which fills the kernel's register tile).
///
/// The adapter holds no activations: several model instances (serving
/// threads) can share one adapter's values, each with its own
/// `LoRAActivations`.
public final class LoRAAdapter: @unchecked Sendable {
    public struct Slot: Sendable {
        public let layer: Int
        public let target: LoRATarget
        /// Offsets of A [rank, in] and Bᵀ [rank, out] in `parameters`.
        public let a: Int, bT: Int
        /// Position among all slots (for activation storage).
        public let index: Int
    }

    public let config: LoRAConfiguration
    public let parameters: ParameterSet
    public let layerCount: Int
    /// Every slot, layer by layer, targets in the family's order.
    public let slots: [Slot]
    private let byProduct: [[Int: [Slot]]]

    /// An adapter of `config` (already resolved against `targets`) over a
    /// model of `layers` blocks. Values start at zero; `initialize` draws A.
    public init(config: LoRAConfiguration, targets available: [LoRATarget], layers: Int, gradients: Bool) {
        self.config = config
        layerCount = layers
        let first = layers - (config.layers ?? layers)
        var tensors: [ParameterTensor] = []
        var slots: [Slot] = []
        var offset = 0
        let r = config.rank
        for l in first..<layers {
            for t in available where config.targets.contains(t.name) {
                let p = "model.layers.\(l).\(t.module)."
                let a = ParameterTensor(name: p + "lora_A.weight", shape: [r, t.inFeatures], offset: offset)
                offset += a.count
                let b = ParameterTensor(name: p + "lora_B_t.weight", shape: [r, t.outFeatures], offset: offset)
                offset += b.count
                tensors += [a, b]
                slots.append(Slot(layer: l, target: t, a: a.offset, bT: b.offset, index: slots.count))
            }
        }
        self.slots = slots
        var map = [[Int: [Slot]]](repeating: [:], count: layers)
        for s in slots { map[s.layer][s.target.product, default: []].append(s) }
        byProduct = map
        parameters = ParameterSet(values: FloatBuffer(count: offset), gradients: gradients ? FloatBuffer(count: offset) : nil,
                                  tensors: tensors)
    }

    /// The initialisation rule every shard's adapter shares: A uniform in
    /// ±1/sqrt(in) (PEFT's Kaiming-uniform default) from `rng`, slot by slot
    /// in order; B zero.
    public func initialize(rng: inout Xoshiro256) {
        let p = parameters.values.pointer
        for s in slots {
            let bound = 1 / Double(s.target.inFeatures).squareRoot()
            for i in 0..<(config.rank * s.target.inFeatures) { p[s.a + i] = Float((2 * rng.nextDouble() - 1) * bound) }
            (p + s.bT).update(repeating: 0, count: config.rank * s.target.outFeatures)
        }
    }

    /// The slots adding to product `product` of layer `layer`, in target order.
    public func slots(layer: Int, product: Int) -> [Slot] { byProduct[layer][product] ?? [] }

    /// An adapter over the same values without gradients (inference copies).
    public func sharingValues() -> LoRAAdapter { LoRAAdapter(sharing: self) }

    private init(sharing other: LoRAAdapter) {
        config = other.config
        layerCount = other.layerCount
        slots = other.slots
        byProduct = other.byProduct
        parameters = ParameterSet(values: other.parameters.values, gradients: nil, tensors: other.parameters.tensors)
    }
}

/// What an adapter keeps from a forward pass for its backward: each slot's
/// scaled uᵀ = s · A xᵀ [rank, rows], sized for `capacity` rows.
final class LoRAActivations {
    let capacity: Int
    let u: [FloatBuffer]
    let du: FloatBuffer

    init(adapter: LoRAAdapter, capacity: Int) {
        self.capacity = capacity
        u = adapter.slots.map { _ in FloatBuffer(count: adapter.config.rank * capacity) }
        du = FloatBuffer(count: adapter.config.rank * capacity)
    }
}
