import Foundation
import SisaEngine

/// What trains a shard: the engine's trainer behind one face, whatever the
/// model (a byte GPT-2, or a base with an adapter).
protocol ShardLearner: AnyObject {
    var languageModel: any LanguageModel { get }
    var numericsVersion: Int { get }
    @discardableResult func step(_ batch: Batch) -> StepResult
    /// What is trained, its moments, the step and the generator (a base store's state).
    func trainableState() -> Data
}

extension Trainer: ShardLearner {
    var languageModel: any LanguageModel { model }
    func trainableState() -> Data { serializeTrainable() }
}

private func learner(_ model: some LanguageModel, optimizer: OptimizerConfig, rng: Xoshiro256) -> ShardLearner {
    Trainer(model: model, optimizer: optimizer, rng: rng)
}

private func learner(restoring state: Data, into model: some LanguageModel) throws -> ShardLearner {
    try Trainer(restoringTrainable: state, into: model)
}

/// How a store builds, saves and restores its shards' models.
///
/// A byte-level store trains a GPT-2 from scratch per shard; its states are
/// the engine's byte states (parameters, moments, step, generator). A base
/// store loads the base once (after checking its digest), frozen and shared
/// by every shard; each shard trains an adapter over it (or, with full
/// fine-tuning, its own copy of the weights), and a state holds what is
/// trained, its moments, the step and the generator: nothing of the base.
/// `@unchecked Sendable`: the lazily loaded codec and base are read and set
/// only with `lock` held; everything else is immutable.
public final class ShardModels: @unchecked Sendable {
    public let config: StoreConfig
    let storeURL: URL
    // Guards the lazily loaded base and codec.
    private let lock = NSLock()
    private var loadedCodec: RecordCodec?
    private var loadedBase: BaseModel?

    init(config: StoreConfig, storeURL: URL) {
        self.config = config
        self.storeURL = storeURL
        if config.base == nil { loadedCodec = .bytes }
    }

    /// Parameters each shard trains: a byte model's, an adapter's, or the base's (full fine-tuning).
    public func trainableParameterCount() throws -> Int {
        guard let b = config.base else { return config.model!.parameterCount }
        let c = try baseConfiguration()
        if let lora = b.lora { return lora.parameterCount(targets: c.loraTargets, layerCount: c.layers) }
        switch c {
        case .llama(let l): return l.parameterCount
        case .gpt2(let g): return g.parameterCount
        }
    }

    /// Bytes of the float section of every state of this store (a file claiming another size is corrupt).
    public func stateFloatBytes() throws -> Int {
        guard config.base != nil else { return ByteTrainer.stateFloatBytes(for: config.model!) }
        return ByteTrainer.trainableStateFloatBytes(parameters: try trainableParameterCount())
    }

    private var baseURL: URL? {
        config.base.map { storeURL.appendingPathComponent(BaseFiles.folder).appendingPathComponent($0.name) }
    }

    func baseConfiguration() throws -> BaseModel.Configuration {
        guard let url = baseURL else { throw CoordinatorError.invalidInput("a byte-level store has no base") }
        do { return try BaseModel.configuration(at: url) } catch let e as EngineError { throw CoordinatorError.corrupt("\(e)") }
    }

    /// The record codec: bytes, or the base's tokenizer (read without the weights).
    public func codec() throws -> RecordCodec {
        try lock.withLock {
            if let c = loadedCodec { return c }
            guard let url = baseURL else { return .bytes }
            let t: BPETokenizer
            do { t = try BaseModel.tokenizer(at: url) } catch let e as EngineError { throw CoordinatorError.corrupt("\(e)") }
            let c = RecordCodec(base: t)
            loadedCodec = c
            return c
        }
    }

    /// Bases in memory, by digest and context: every store object of a
    /// process (a server's reader, writer and submission stores) shares one
    /// copy of a base's weights. Entries hold frozen weights only.
    private static let registryLock = NSLock()
    nonisolated(unsafe) private static var registry: [String: BaseModel] = [:]

    /// The base, frozen, loaded once per process after its digest is checked
    /// (the check runs for every store object: a base changed under a store is refused).
    public func base() throws -> BaseModel {
        try lock.withLock {
            if let b = loadedBase { return b }
            guard let b = config.base else { throw CoordinatorError.invalidInput("a byte-level store has no base") }
            let url = try BaseFiles.checked(b, store: storeURL)
            let key = "\(b.sha256)|\(b.context)"
            let loaded: BaseModel
            if let shared = ShardModels.registryLock.withLock({ ShardModels.registry[key] }) {
                loaded = shared
            } else {
                do { loaded = try BaseModel.load(url, context: b.context, trainable: false) } catch let e as EngineError {
                    throw CoordinatorError.corrupt("\(e)")
                }
                ShardModels.registryLock.withLock { ShardModels.registry[key] = loaded }
            }
            loadedBase = loaded
            if loadedCodec == nil { loadedCodec = RecordCodec(base: loaded.tokenizer) }
            return loaded
        }
    }

    /// A model over the base, for this shard to train or answer with: the
    /// shared frozen weights with a fresh adapter, or a copy of the weights.
    private func baseModel(pool: WorkerPool, gradients: Bool) throws -> any LanguageModel {
        let b = try base()
        guard let lora = config.base!.lora else { return try b.model.copyingWeights(pool: pool, trainable: gradients) }
        let m = b.model.sharingWeights(pool: pool)
        m.attach(LoRAAdapter(config: lora, targets: m.loraTargets, layers: m.layerCount, gradients: gradients))
        return m
    }

    /// A shard's learner before its first stage: the seeded initialisation
    /// (a byte model's parameters, or the adapter's A; a base's weights as they are).
    func initial(shard: Int, pool: WorkerPool) throws -> ShardLearner {
        let seed = Schedule.initSeed(config: config, shard: shard)
        guard config.base != nil else {
            return try Trainer(model: config.model!, optimizer: config.optimizer, seed: seed, pool: pool)
        }
        let m = try baseModel(pool: pool, gradients: true)
        var rng = Xoshiro256(seed: seed)
        m.adapter?.initialize(rng: &rng)
        return learner(m, optimizer: config.optimizer, rng: rng)
    }

    /// A learner restored from a saved state.
    func restore(_ state: Data, pool: WorkerPool) throws -> ShardLearner {
        guard config.base != nil else { return try ByteTrainer(restoring: state, pool: pool) }
        do { return try learner(restoring: state, into: try baseModel(pool: pool, gradients: true)) } catch let e as EngineError {
            throw CoordinatorError.corrupt("\(e)")
        }
    }

    /// The bytes a learner's state is saved as.
    func serialize(_ learner: ShardLearner) -> Data {
        if config.base == nil { return (learner as! ByteTrainer).serialize() }
        return learner.trainableState()
    }

    /// An inference model from a saved state (no optimizer moments, no gradients).
    public func model(from state: Data, pool: WorkerPool) throws -> ShardModel {
        guard config.base != nil else { return ShardModel(model: try ByteTrainer(restoring: state, pool: pool).model, codec: .bytes) }
        let m = try baseModel(pool: pool, gradients: false)
        do { try Trainer<GPT2Model>.loadTrainableValues(state, into: m.trainable) } catch let e as EngineError {
            throw CoordinatorError.corrupt("\(e)")
        }
        return ShardModel(model: m, codec: try codec())
    }

    /// The base alone, zero-shot (no adapter, no record seen): the
    /// reference a base store's shards are measured against; nil on a byte store.
    public func baseAlone(pool: WorkerPool) throws -> ShardModel? {
        guard config.base != nil else { return nil }
        return ShardModel(model: try base().model.sharingWeights(pool: pool), codec: try codec())
    }

    /// The numerics version a saved state was trained under.
    func numericsVersion(of learner: ShardLearner) -> Int { learner.numericsVersion }
}
