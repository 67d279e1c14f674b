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
    private(set) var lockstep = false

    /// The model's adapter on all `rows`.
    mutating func single(_ adapter: LoRAAdapter?, rows: Int) {
        members = []  // other shards' activations are not kept past a lock-step call
        own = LoRAActivations.sized(own, adapter: adapter, rows: rows)
        groups = [(0..<rows, own)]
        lockstep = false
    }

    /// `adapters[i]` on rows [i·rows/S, (i+1)·rows/S).
    mutating func lockstep(_ adapters: [LoRAAdapter?], rows: Int) {
        precondition(!adapters.isEmpty && rows % adapters.count == 0, "\(rows) rows do not split into \(adapters.count) groups")
        let share = rows / adapters.count
        members = adapters.enumerated().map { i, a in LoRAActivations.sized(i < members.count ? members[i] : nil, adapter: a, rows: share) }
        groups = members.enumerated().map { i, acts in ((i * share)..<((i + 1) * share), acts) }
        lockstep = true
    }

    /// The activations of the single adapter's last forward (for backward).
    var single: LoRAActivations? { lockstep ? nil : own }

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
