import Foundation
import SisaCoordinator
import SisaEngine

/// The shard models held in memory: one copy of each shard's weights (on a
/// base store, one copy of the base for every shard and request, and each
/// shard's adapter).
///
/// Each query reads the shards' states through its own catalog snapshot and
/// takes, per answering shard, the cached model of that shard's current
/// checkpoint key, loading it if the key changed. A retrained shard is thus
/// swapped in by the first query after its new key is committed (the server
/// preloads it right after the retraining, so that query rarely pays the
/// load), and a quarantined one is left out from the instant its deletion
/// is durable.
/// Queries never wait for training, and each gets its own inference
/// instances over the shared weights, so they run concurrently.
///
/// `@unchecked Sendable`: `models` and `loadCount` are only touched with
/// `lock` held; the store is the readers' (read-only statements).
final class ModelCache: @unchecked Sendable {
    private let store: Store
    private let lock = NSLock()
    private var models: [Int: (key: String, model: ShardModel)] = [:]
    private var loadCount = 0

    /// Checkpoints loaded so far.
    var loads: Int { lock.withLock { loadCount } }

    init(store: Store) { self.store = store }

    /// An ensemble for one query: every trained shard that is not quarantined.
    func ensemble(shard only: Int? = nil) throws -> Ensemble {
        let states = try store.catalog.shardStates()
        if let only, !states.contains(where: { $0.index == only }) {
            throw CoordinatorError.invalidInput("no shard \(only) (the store has \(states.count))")
        }
        var answering: [(shard: Int, model: ShardModel)] = []
        var excluded: [(shard: Int, reason: String)] = []
        for st in states where only == nil || st.index == only {
            if st.quarantined {
                excluded.append((st.index, "quarantined by a pending deletion"))
            } else if let key = st.currentKey, st.digest != nil {
                let shared = try model(shard: st.index, key: key)
                answering.append((st.index, shared.sharing(pool: WorkerPool(threads: 1))))
            } else {
                excluded.append((st.index, "not trained"))
            }
        }
        guard !answering.isEmpty else {
            throw CoordinatorError.notTrained("no shard can answer (\(excluded.map { "shard \($0.shard): \($0.reason)" }.joined(separator: "; ")))")
        }
        return Ensemble(models: answering, excluded: excluded)
    }

    /// Loads the current model of every shard that can answer: at start and
    /// after each retraining, so queries do not pay for decompression.
    func preload() throws {
        for st in try store.catalog.shardStates() where !st.quarantined && st.digest != nil {
            if let key = st.currentKey { _ = try model(shard: st.index, key: key) }
        }
    }

    private func model(shard: Int, key: String) throws -> ShardModel {
        lock.lock()
        if let m = models[shard], m.key == key { lock.unlock(); return m.model }
        lock.unlock()
        // Load outside the lock; the key's checkpoint is immutable once recorded.
        let m = try store.model(checkpointKey: key)
        lock.lock()
        defer { lock.unlock() }
        models[shard] = (key, m)
        loadCount += 1
        return m
    }
}
