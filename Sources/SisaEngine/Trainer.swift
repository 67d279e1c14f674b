import Foundation

public struct StepResult: Sendable {
    public let loss: Double
    public let learningRate: Float
    public let gradNorm: Double
}

/// The complete training state: model, AdamW moments, step counter and RNG.
/// The optimizer trains `model.trainable`: the adapter when the model has
/// one (its base frozen), else the weights.
///
/// A byte model's state (`ByteTrainer`) serializes: `serialize()` and
/// `init(restoring:)` round-trip it exactly, so k steps, save, restore,
/// n-k steps gives the same bits as n straight steps.
public final class Trainer<Model: LanguageModel> {
    public let model: Model
    public let optimizer: AdamW
    public var rng: Xoshiro256

    public var step: Int { optimizer.step }

    /// The numerics version the state was trained under (`Numerics.version`
    /// for a new trainer; read from the state when restoring, 1 if absent).
    public let numericsVersion: Int

    /// Trains `model` (already initialised or loaded) from here.
    public convenience init(model: Model, optimizer: OptimizerConfig, rng: Xoshiro256) {
        self.init(model: model, optimizer: AdamW(config: optimizer, tensors: model.trainable.tensors), rng: rng,
                  numericsVersion: Numerics.version)
    }

    /// A state put back together (moments and step already in `optimizer`).
    init(model: Model, optimizer: AdamW, rng: Xoshiro256, numericsVersion: Int) {
        precondition(model.trainable.gradients != nil, "the model has nothing to train (frozen weights and no adapter)")
        precondition(optimizer.m.count == model.trainable.count, "optimizer moments for another parameter set")
        self.model = model
        self.optimizer = optimizer
        self.rng = rng
        self.numericsVersion = numericsVersion
    }

    /// One optimizer step on `batch`.
    @discardableResult
    public func step(_ batch: Batch) -> StepResult {
        let loss = model.forward(batch, gradients: true)
        model.backward()
        let trained = model.trainable
        let update = {
            self.optimizer.update(params: trained.values, grads: trained.gradients!, kernels: self.model.kernels,
                                  pool: self.model.pool)
        }
        let (lr, gnorm) = model.profiler.map { $0.measure("adamw", update) } ?? update()
        return StepResult(loss: loss, learningRate: lr, gradNorm: gnorm)
    }
}

/// Step counts beyond this are corrupt data, not training (and would overflow).
let maxTrainingStep: UInt64 = 1 << 48

/// The training state of a byte-level model, as checkpoints hold it.
public typealias ByteTrainer = Trainer<GPT2Model>

extension Trainer where Model == GPT2Model {
    public var config: GPT2Configuration { model.config }

    public convenience init(model config: GPT2Configuration, optimizer: OptimizerConfig, seed: UInt64,
                            pool: WorkerPool = .shared, kernels: Kernels? = nil) throws {
        let model = try GPT2Model(config: config, pool: pool, kernels: kernels)
        var rng = Xoshiro256(seed: seed)
        model.initialize(rng: &rng)
        self.init(model: model, optimizer: optimizer, rng: rng)
    }

    // MARK: serialisation
    //
    // Layout (little-endian):
    //   "SISATS01" | u32 n | n bytes of JSON {model, optimizer} (sorted keys)
    //   | u64 step | 4 x u64 rng state | u64 P | P x f32 params | P x f32 m | P x f32 v

    static var magic: [UInt8] { Array("SISATS01".utf8) }

    private struct Header: Codable {
        var model: GPT2Configuration
        var optimizer: OptimizerConfig
        /// Absent in states written before numerics version 2.
        var numerics: Int?
    }

    public func serialize() -> Data {
        precondition(model.adapter == nil, "byte-model states hold no adapter")
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let json = try! enc.encode(Header(model: model.config, optimizer: optimizer.config, numerics: numericsVersion))
        let P = model.params.count
        var out = Data(capacity: 8 + 4 + json.count + 8 * 6 + 3 * P * 4)
        out.append(contentsOf: Trainer.magic)
        out.appendLE(UInt32(json.count))
        out.append(json)
        out.appendLE(UInt64(optimizer.step))
        for w in rng.stateWords { out.appendLE(w) }
        out.appendLE(UInt64(P))
        for buf in [model.params, optimizer.m, optimizer.v] { out.append(contentsOf: buf.bytes) }
        return out
    }

    /// Bytes of the float section at the end of a serialized state (params, m, v).
    public static func stateFloatBytes(for config: GPT2Configuration) -> Int { 3 * config.parameterCount * 4 }


    /// Restores a state written by `serialize()`. Every field is checked
    /// before anything is allocated: a truncated, corrupted or hostile input
    /// ends in `EngineError.corruptState`, never in a crash.
    public convenience init(restoring data: Data, pool: WorkerPool = .shared, kernels: Kernels? = nil) throws {
        var r = ByteReader(data)
        guard try r.bytes(8) == Trainer.magic else { throw EngineError.corruptState("bad magic (not a sisa training state)") }
        let n = Int(try r.u32())
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: Data(try r.bytes(n))) } catch let e as EngineError {
            throw e
        } catch { throw EngineError.corruptState("unreadable header: \(error)") }
        do {
            try header.model.validate()
            try header.optimizer.validate()
        } catch { throw EngineError.corruptState("header: \(error)") }
        let step = try r.u64()
        guard step <= maxTrainingStep else { throw EngineError.corruptState("step counter \(step) is not plausible") }
        let rngState = [try r.u64(), try r.u64(), try r.u64(), try r.u64()]
        guard rngState != [0, 0, 0, 0] else { throw EngineError.corruptState("random generator state is all zero") }
        let P = try r.u64()
        let expected = GPT2Layout(header.model).count
        guard P == UInt64(expected) else {
            throw EngineError.corruptState("holds \(P) parameters, configuration \(header.model) needs \(expected)")
        }
        guard r.remaining == 3 * expected * 4 else {
            throw EngineError.corruptState("\(r.remaining) bytes of tensor data, configuration \(header.model) needs \(3 * expected * 4)")
        }
        let model = try GPT2Model(config: header.model, pool: pool, kernels: kernels)
        let optimizer = AdamW(config: header.optimizer, tensors: model.layout.tensors)
        for buf in [model.params, optimizer.m, optimizer.v] { try r.floats(into: buf) }
        optimizer.step = Int(step)
        self.init(model: model, optimizer: optimizer, rng: Xoshiro256(state: rngState), numericsVersion: header.numerics ?? 1)
    }
}

// MARK: the trainable part of any model
//
// A state holding what a model trains and nothing else (an adapter over a
// frozen base: not a weight of the base). Layout (little-endian):
//   "SISAAS01" | u32 n | n bytes of JSON {layout, optimizer, numerics, parameters} (sorted keys)
//   | u64 step | 4 x u64 rng state | u64 P | P x f32 values | P x f32 m | P x f32 v
// `layout` is a hash of the trainable tensors' names and shapes: a state is
// restored only into a model that trains the same tensors.

extension Trainer {
    static var trainableMagic: [UInt8] { Array("SISAAS01".utf8) }

    private struct TrainableHeader: Codable {
        var layout: String
        var optimizer: OptimizerConfig
        var numerics: Int
        var parameters: Int
    }

    /// A hash of the names and shapes of `tensors`.
    public static func layoutHash(_ tensors: [ParameterTensor]) -> String {
        Digest.sha256Hex(Array(tensors.map { "\($0.name):\($0.shape.map(String.init).joined(separator: "x"))" }.joined(separator: ";").utf8))
    }

    /// Bytes of the float section of a trainable state of `parameters` parameters (values, m, v).
    public static func trainableStateFloatBytes(parameters: Int) -> Int { 3 * parameters * 4 }

    public func serializeTrainable() -> Data {
        let t = model.trainable
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let json = try! enc.encode(TrainableHeader(layout: Trainer.layoutHash(t.tensors), optimizer: optimizer.config,
                                                   numerics: numericsVersion, parameters: t.count))
        var out = Data(capacity: 8 + 4 + json.count + 8 * 6 + 3 * t.count * 4)
        out.append(contentsOf: Trainer.trainableMagic)
        out.appendLE(UInt32(json.count))
        out.append(json)
        out.appendLE(UInt64(optimizer.step))
        for w in rng.stateWords { out.appendLE(w) }
        out.appendLE(UInt64(t.count))
        for buf in [t.values, optimizer.m, optimizer.v] { out.append(contentsOf: buf.bytes) }
        return out
    }

    /// The trained values of a state written by `serializeTrainable()`, put
    /// into `parameters` (an inference model's adapter or weights) without the
    /// optimizer's moments; checked as `init(restoringTrainable:into:)` checks.
    public static func loadTrainableValues(_ data: Data, into parameters: ParameterSet) throws {
        var r = ByteReader(data)
        guard try r.bytes(8) == trainableMagic else { throw EngineError.corruptState("bad magic (not a sisa adapter state)") }
        let n = Int(try r.u32())
        let header: TrainableHeader
        do { header = try JSONDecoder().decode(TrainableHeader.self, from: Data(try r.bytes(n))) } catch let e as EngineError {
            throw e
        } catch { throw EngineError.corruptState("unreadable header: \(error)") }
        guard header.layout == layoutHash(parameters.tensors), header.parameters == parameters.count else {
            throw EngineError.corruptState("the state trains other tensors than this model (\(header.parameters) parameters, \(parameters.count) here)")
        }
        _ = try r.bytes(8 + 32)
        guard try r.u64() == UInt64(parameters.count), r.remaining == 3 * parameters.count * 4 else {
            throw EngineError.corruptState("\(r.remaining) bytes of tensor data, \(3 * parameters.count * 4) expected")
        }
        try r.floats(into: parameters.values)
    }

    /// Puts a state written by `serializeTrainable()` into `model`'s trainable
    /// parameters (its adapter, or its weights), with the optimizer's moments,
    /// step and generator. Every field is checked before anything is written.
    public convenience init(restoringTrainable data: Data, into model: Model) throws {
        var r = ByteReader(data)
        guard try r.bytes(8) == Trainer.trainableMagic else { throw EngineError.corruptState("bad magic (not a sisa adapter state)") }
        let n = Int(try r.u32())
        let header: TrainableHeader
        do { header = try JSONDecoder().decode(TrainableHeader.self, from: Data(try r.bytes(n))) } catch let e as EngineError {
            throw e
        } catch { throw EngineError.corruptState("unreadable header: \(error)") }
        do { try header.optimizer.validate() } catch { throw EngineError.corruptState("header: \(error)") }
        let t = model.trainable
        guard header.layout == Trainer.layoutHash(t.tensors), header.parameters == t.count else {
            throw EngineError.corruptState("the state trains other tensors than this model (\(header.parameters) parameters, \(t.count) here)")
        }
        let step = try r.u64()
        guard step <= maxTrainingStep else { throw EngineError.corruptState("step counter \(step) is not plausible") }
        let rngState = [try r.u64(), try r.u64(), try r.u64(), try r.u64()]
        guard rngState != [0, 0, 0, 0] else { throw EngineError.corruptState("random generator state is all zero") }
        guard try r.u64() == UInt64(t.count), r.remaining == 3 * t.count * 4 else {
            throw EngineError.corruptState("\(r.remaining) bytes of tensor data, \(3 * t.count * 4) expected")
        }
        let optimizer = AdamW(config: header.optimizer, tensors: t.tensors)
        for buf in [t.values, optimizer.m, optimizer.v] { try r.floats(into: buf) }
        optimizer.step = Int(step)
        self.init(model: model, optimizer: optimizer, rng: Xoshiro256(state: rngState), numericsVersion: header.numerics)
    }
}

extension Data {
    public mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
}

/// Bounds-checked little-endian reader: truncated input is an error, never a crash.
struct ByteReader {
    let data: Data
    var offset: Int

    init(_ data: Data) {
        self.data = data
        offset = data.startIndex
    }

    var remaining: Int { data.endIndex - offset }

    mutating func bytes(_ n: Int) throws -> [UInt8] {
        guard n >= 0, remaining >= n else { throw EngineError.corruptState("truncated (wanted \(n) bytes, \(remaining) left)") }
        defer { offset += n }
        return [UInt8](data[offset..<(offset + n)])
    }

    mutating func u32() throws -> UInt32 { try integer() }
    mutating func u64() throws -> UInt64 { try integer() }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type = T.self) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw EngineError.corruptState("truncated") }
        var v: T = 0
        _ = withUnsafeMutableBytes(of: &v) { dst in
            data.copyBytes(to: dst, from: offset..<(offset + size))
        }
        offset += size
        return T(littleEndian: v)
    }

    mutating func floats(into buf: FloatBuffer) throws {
        let n = buf.count * 4
        guard remaining >= n else { throw EngineError.corruptState("truncated tensor data") }
        data.copyBytes(to: UnsafeMutableRawBufferPointer(start: buf.pointer, count: n), from: offset..<(offset + n))
        offset += n
    }
}
