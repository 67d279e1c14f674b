import Foundation

public struct StepResult: Sendable {
    public let loss: Double
    public let learningRate: Float
    public let gradNorm: Double
}

/// The complete training state: model, AdamW moments, step counter and RNG.
/// `serialize()` and `init(restoring:)` round-trip it exactly, so k steps,
/// save, restore, n-k steps gives the same bits as n straight steps.
public final class Trainer {
    public let model: GPT
    public let optimizer: AdamW
    public var rng: Xoshiro256

    public var step: Int { optimizer.step }
    public var config: ModelConfig { model.config }

    /// The numerics version the state was trained under (`Numerics.version`
    /// for a new trainer; read from the state when restoring, 1 if absent).
    public let numericsVersion: Int

    public init(model config: ModelConfig, optimizer: OptimizerConfig, seed: UInt64,
                pool: WorkerPool = .shared, kernels: Kernels? = nil) throws {
        model = try GPT(config: config, pool: pool, kernels: kernels)
        numericsVersion = Numerics.version
        self.optimizer = AdamW(config: optimizer, layout: model.layout)
        rng = Xoshiro256(seed: seed)
        model.initialize(rng: &rng)
    }

    /// One optimizer step on `batch`.
    @discardableResult
    public func step(_ batch: Batch) -> StepResult {
        let loss = model.forward(batch, gradients: true)
        model.backward()
        let update = {
            self.optimizer.update(params: self.model.params, grads: self.model.grads, kernels: self.model.kernels,
                                  pool: self.model.pool)
        }
        let (lr, gnorm) = model.profiler.map { $0.measure("adamw", update) } ?? update()
        return StepResult(loss: loss, learningRate: lr, gradNorm: gnorm)
    }

    // MARK: serialisation
    //
    // Layout (little-endian):
    //   "SISATS01" | u32 n | n bytes of JSON {model, optimizer} (sorted keys)
    //   | u64 step | 4 x u64 rng state | u64 P | P x f32 params | P x f32 m | P x f32 v

    static let magic = Array("SISATS01".utf8)

    private struct Header: Codable {
        var model: ModelConfig
        var optimizer: OptimizerConfig
        /// Absent in states written before numerics version 2.
        var numerics: Int?
    }

    public func serialize() -> Data {
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
    public static func stateFloatBytes(for config: ModelConfig) -> Int { 3 * config.parameterCount * 4 }

    /// Step counts beyond this are corrupt data, not training (and would overflow).
    static let maxStep: UInt64 = 1 << 48

    /// Restores a state written by `serialize()`. Every field is checked
    /// before anything is allocated: a truncated, corrupted or hostile input
    /// ends in `EngineError.corruptState`, never in a crash.
    public init(restoring data: Data, pool: WorkerPool = .shared, kernels: Kernels? = nil) throws {
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
        guard step <= Trainer.maxStep else { throw EngineError.corruptState("step counter \(step) is not plausible") }
        let rngState = [try r.u64(), try r.u64(), try r.u64(), try r.u64()]
        guard rngState != [0, 0, 0, 0] else { throw EngineError.corruptState("random generator state is all zero") }
        let P = try r.u64()
        let expected = ParameterLayout(header.model).count
        guard P == UInt64(expected) else {
            throw EngineError.corruptState("holds \(P) parameters, configuration \(header.model) needs \(expected)")
        }
        guard r.remaining == 3 * expected * 4 else {
            throw EngineError.corruptState("\(r.remaining) bytes of tensor data, configuration \(header.model) needs \(3 * expected * 4)")
        }
        numericsVersion = header.numerics ?? 1
        model = try GPT(config: header.model, pool: pool, kernels: kernels)
        optimizer = AdamW(config: header.optimizer, layout: model.layout)
        rng = Xoshiro256(state: rngState)
        for buf in [model.params, optimizer.m, optimizer.v] { try r.floats(into: buf) }
        optimizer.step = Int(step)
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
