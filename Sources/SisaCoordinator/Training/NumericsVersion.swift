import Foundation
import SisaEngine

/// Keeping a store's checkpoints on one numerics version.
///
/// A checkpoint holds bits computed by one version of the kernels. Training
/// on from it with other kernels would give a model that no single version
/// reproduces, so `verify` could never match and "delete = never ingested"
/// would silently stop holding. The version is part of the configuration
/// (hence of every checkpoint key) and is checked before any training.
extension Store {
    /// Whether the store's checkpoints were computed under this build's numerics.
    public var numericsIsCurrent: Bool { config.numerics == Numerics.version }

    /// Throws `numericsMismatch` when training would continue from (or be
    /// compared with) checkpoints of another numerics version. A store with no
    /// trained state has nothing to mix: a writer (`adopt`) moves it to this
    /// build's version, a reader goes on.
    func requireCurrentNumerics(adopt: Bool = true) throws {
        if numericsIsCurrent { return }
        if try catalog.checkpoints().isEmpty && catalog.shardStates().allSatisfy({ $0.digest == nil }) {
            if adopt { try adoptCurrentNumerics() }
            return
        }
        throw CoordinatorError.numericsMismatch(store: url.path, stored: config.numerics, current: Numerics.version)
    }

    /// Moves a store with nothing trained to this build's numerics version.
    /// (A trained store moves with `train(rebuild: true)`, which records the
    /// new version together with the rebuilt models.) Returns the old version.
    @discardableResult
    public func adoptCurrentNumerics() throws -> Int {
        let old = config.numerics
        guard old != Numerics.version else { return old }
        var c = config
        c.numerics = Numerics.version
        try catalog.setMeta("config", String(decoding: c.canonicalJSON, as: UTF8.self))
        config = c
        return old
    }
}
