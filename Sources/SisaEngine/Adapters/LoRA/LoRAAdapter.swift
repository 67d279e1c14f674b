import Foundation

/// The parameters of a LoRA adapter over one model: for every adapted
/// (layer, target) an A [rank, in] and a Bᵀ [rank, out] in one flat buffer
/// (B is kept transposed so that every product of the adapter has `rank`
/// rows or a long side, which fills the kernel's register tile).
///
/// The adapter holds no activations: several model instances (serving
/// threads) can share one adapter's values, each with its own
/// `LoRAActivations`.
///
/// `@unchecked Sendable`: its values change only in an optimizer step on the
/// training thread; serving threads only read them.
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

    /// Whether this adapter was built for a model of `layers` blocks with
    /// these projections (its slots' targets are among them, extents and all).
    public func fits(targets: [LoRATarget], layers: Int) -> Bool {
        layerCount == layers && Set(slots.map(\.target)).isSubset(of: Set(targets))
    }

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
    let adapter: LoRAAdapter
    let capacity: Int
    let u: [FloatBuffer]
    let du: FloatBuffer

    init(adapter: LoRAAdapter, capacity: Int) {
        self.adapter = adapter
        self.capacity = capacity
        u = adapter.slots.map { _ in FloatBuffer(count: adapter.config.rank * capacity) }
        du = FloatBuffer(count: adapter.config.rank * capacity)
    }

    /// Adds the updates of layer `layer`'s slots on `product` to its output y [M, ·] (row stride ldy).
    func forward(product: Int, layer: Int, x: UnsafePointer<Float>, ldx: Int, y: UnsafeMutablePointer<Float>, ldy: Int, M: Int,
                 kernels: Kernels, pool: WorkerPool) {
        let P = adapter.parameters.values.pointer, c = adapter.config
        for s in adapter.slots(layer: layer, product: product) {
            LoRALinear.forward(x: x, ldx: ldx, y: y + s.target.column, ldy: ldy, M: M, a: P + s.a, bT: P + s.bT, rank: c.rank,
                               inFeatures: s.target.inFeatures, outFeatures: s.target.outFeatures, scale: c.scale,
                               u: u[s.index].pointer, kernels: kernels, pool: pool)
        }
    }

    /// Their gradients from dy: into the adapter's gradient buffer (when `weightGradients`), dx accumulated into (when given).
    func backward(product: Int, layer: Int, x: UnsafePointer<Float>, ldx: Int, dy: UnsafePointer<Float>, ldy: Int,
                  dx: UnsafeMutablePointer<Float>?, M: Int, weightGradients: Bool, kernels: Kernels, pool: WorkerPool) {
        let P = adapter.parameters.values.pointer, c = adapter.config
        let G = weightGradients ? adapter.parameters.gradients?.pointer : nil
        for s in adapter.slots(layer: layer, product: product) {
            LoRALinear.backward(x: x, ldx: ldx, dy: dy + s.target.column, ldy: ldy, dx: dx, M: M, a: P + s.a, bT: P + s.bT,
                                dA: G.map { $0 + s.a }, dBT: G.map { $0 + s.bT }, rank: c.rank, inFeatures: s.target.inFeatures,
                                outFeatures: s.target.outFeatures, scale: c.scale, u: u[s.index].pointer, du: du.pointer,
                                kernels: kernels, pool: pool)
        }
    }

    /// The adapter for `rows` rows: `current` when it is big enough and for this adapter.
    static func sized(_ current: LoRAActivations?, adapter: LoRAAdapter?, rows: Int) -> LoRAActivations? {
        guard let adapter else { return nil }
        if let c = current, c.adapter === adapter, c.capacity >= rows { return c }
        return LoRAActivations(adapter: adapter, capacity: rows)
    }
}

extension LoRAAdapter {
    /// One vector's updates for decoding: y[out] += s · Bᵀᵀ (A x) for layer `layer`'s slots on
    /// `product` (the batch forward's chains, so the logits match it bit for bit). `u` holds `rank` floats.
    func addUpdates(product: Int, layer: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                    u: UnsafeMutablePointer<Float>, kernels K: Kernels) {
        let P = parameters.values.pointer, r = config.rank
        for s in slots(layer: layer, product: product) {
            K.gemvRows(y: u, w: P + s.a, x: x, n: r, k: s.target.inFeatures, ldw: s.target.inFeatures)
            for i in 0..<r { u[i] *= config.scale }
            K.gemv(y: y + s.target.column, x: u, w: P + s.bT, k: r, n: s.target.outFeatures, ldw: s.target.outFeatures, accumulate: true)
        }
    }
}
