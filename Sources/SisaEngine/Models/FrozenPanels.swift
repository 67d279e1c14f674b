import Foundation

/// A frozen base's weight matrices, each packed once for the forward
/// products (`PackedPanels`) the first time a forward pass needs it, and
/// shared by every model instance over the same weights (the shards of a
/// base store, the server's inference copies).
///
/// Only a model whose weights never change after loading has one: a base
/// under LoRA, or an inference copy of it. Full fine-tuning packs per call.
/// Packing copies floats, so the products' bits are the same either way.
///
/// `@unchecked Sendable`: the table is read and filled under `lock`; the
/// panels are written once, before they are published, and then only read.
final class FrozenPanels: @unchecked Sendable {
    private let lock = NSLock()
    private var packed: [Int: PackedPanels] = [:]

    /// The panels of op(W) [k, n] for the weight at `weights + offset` (stored
    /// [n, k] when `transB`), packed with `kernels` on first use.
    func panels(_ weights: UnsafePointer<Float>, offset: Int, transB: Bool, k: Int, n: Int, kernels: Kernels) -> PackedPanels {
        lock.lock()
        defer { lock.unlock() }
        if let p = packed[offset] {
            precondition(p.k == k && p.n == n, "panels of another shape at offset \(offset)")
            return p
        }
        let p = kernels.packPanels(b: weights + offset, ldb: transB ? k : n, transB: transB, k: k, n: n)
        packed[offset] = p
        return p
    }

    /// Forgets every packed matrix (after the weights were rewritten).
    func removeAll() {
        lock.lock()
        packed = [:]
        lock.unlock()
    }

    /// Bytes held by the packed matrices.
    var bytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return packed.values.reduce(0) { $0 + $1.bytes }
    }
}
