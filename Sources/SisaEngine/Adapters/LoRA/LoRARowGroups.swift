/// The adapters of one forward pass and the rows each applies to: the
/// model's own adapter on every row (training, scoring one shard), or one
/// adapter per equal group of rows (an ensemble's shards scored in lock-step
/// over one frozen base, `forward(_:adapters:)`). LoRA's products never mix
/// rows, so a row's update is the same whichever group it is computed in.
struct LoRARowGroups {
    private(set) var groups: [(rows: Range<Int>, acts: LoRAActivations?)] = []
    /// The activations kept for the next forward of the same shapes.
    private var own: LoRAActivations?
    private var members: [LoRAActivations?] = []
    /// Whether the last forward ran several adapters (no backward may follow).
    private(set) var isLockstep = false

    /// The model's adapter on all `rows`.
    mutating func useOwn(_ adapter: LoRAAdapter?, rows: Int) {
        members = []  // other shards' activations are not kept past a lock-step call
        own = LoRAActivations.sized(own, adapter: adapter, rows: rows)
        groups = [(0..<rows, own)]
        isLockstep = false
    }

    /// `adapters[i]` on the rows of sequences [i·B/S, (i+1)·B/S) of a batch
    /// of B sequences of T tokens; each adapter must fit the model (`targets`, `layers`).
    mutating func useMembers(_ adapters: [LoRAAdapter?], B: Int, T: Int, targets: [LoRATarget], layers: Int) {
        precondition(!adapters.isEmpty && B % adapters.count == 0, "\(B) rows do not split into \(adapters.count) groups")
        precondition(adapters.allSatisfy { $0?.fits(targets: targets, layers: layers) ?? true }, "an adapter for another model")
        let share = B / adapters.count * T
        members = adapters.enumerated().map { i, a in LoRAActivations.sized(i < members.count ? members[i] : nil, adapter: a, rows: share) }
        groups = members.enumerated().map { i, acts in ((i * share)..<((i + 1) * share), acts) }
        isLockstep = true
    }

    /// The activations of the model's own adapter in the last forward (for backward).
    var ownActivations: LoRAActivations? { isLockstep ? nil : own }

    /// Forgets every activation (a new adapter was attached).
    mutating func reset() { self = LoRARowGroups() }

    /// Adds each group's updates on product `product` of layer `layer` to its rows of y.
    func forward(product: Int, layer: Int, x: UnsafePointer<Float>, ldx: Int, y: UnsafeMutablePointer<Float>, ldy: Int,
                 kernels: Kernels, pool: WorkerPool) {
        for (rows, acts) in groups {
            acts?.forward(product: product, layer: layer, x: x + rows.lowerBound * ldx, ldx: ldx, y: y + rows.lowerBound * ldy,
                          ldy: ldy, M: rows.count, kernels: kernels, pool: pool)
        }
    }

    var isEmpty: Bool { groups.allSatisfy { $0.acts == nil } }
}
