import Foundation

/// The safetensors format: u64 little-endian header length, a JSON header
/// mapping tensor names to {dtype, shape, data_offsets}, then raw data.
/// Only F32 is written; F32, F16 and BF16 are read (converted to fp32 exactly).
public enum Safetensors {
    public struct Tensor: Equatable {
        public var shape: [Int]
        public var values: [Float]
        public init(shape: [Int], values: [Float]) {
            self.shape = shape
            self.values = values
        }
    }

    /// Headers beyond this are refused (the format's own reference limit).
    public static let maxHeaderBytes = 100_000_000

    /// Serialises tensors in the given order (deterministic bytes).
    public static func encode(_ tensors: [(name: String, shape: [Int], values: UnsafeBufferPointer<Float>)],
                              metadata: [String: String] = [:]) throws -> Data {
        var entries: [String] = []
        if !metadata.isEmpty {
            let meta = try JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys])
            entries.append("\"__metadata__\":" + String(decoding: meta, as: UTF8.self))
        }
        var offset = 0
        for t in tensors {
            precondition(t.shape.reduce(1, *) == t.values.count, "shape/count mismatch for \(t.name)")
            let bytes = t.values.count * 4
            let name = String(decoding: try JSONSerialization.data(withJSONObject: t.name, options: [.fragmentsAllowed]), as: UTF8.self)
            entries.append("\(name):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(0x20) }  // pad with spaces, as the format allows
        var out = Data(capacity: 8 + header.count + offset)
        out.appendLE(UInt64(header.count))
        out.append(contentsOf: header)
        for t in tensors where t.values.count > 0 {
            out.append(UnsafeBufferPointer(start: UnsafeRawPointer(t.values.baseAddress!).assumingMemoryBound(to: UInt8.self), count: t.values.count * 4))
        }
        return out
    }

    /// Every tensor of a small file, as arrays (tests, exports read back).
    public static func decode(_ data: Data, source: String = "safetensors") throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let file = try SafetensorsFile(ModelFileBytes(path: source, data: data))
        var out: [String: Tensor] = [:]
        for (name, info) in file.tensors {
            var values = [Float](repeating: 0, count: info.count)
            try values.withUnsafeMutableBufferPointer { try file.read(name, shape: info.shape, into: $0.baseAddress!) }
            out[name] = Tensor(shape: info.shape, values: values)
        }
        return (out, file.metadata)
    }
}

/// One safetensors file, its header parsed and checked; tensor data is
/// decoded on request straight into the engine's buffers.
public struct SafetensorsFile: Sendable {
    public struct TensorInfo: Sendable {
        public let shape: [Int]
        public let encoding: TensorEncoding
        /// Byte range inside the data section.
        public let start: Int, end: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public let file: ModelFileBytes
    public let tensors: [String: TensorInfo]
    public let metadata: [String: String]
    let dataStart: Int

    public init(url: URL) throws { try self.init(ModelFileBytes(url: url)) }

    public init(_ file: ModelFileBytes) throws {
        self.file = file
        var c = FileCursor(file)
        guard file.count >= 8 else { throw file.fail("not a safetensors file (shorter than its header length)") }
        let n64 = try c.u64()
        guard n64 <= UInt64(c.remaining), n64 <= UInt64(Safetensors.maxHeaderBytes) else {
            throw file.fail("bad header length \(n64) (file has \(c.remaining) bytes after it)")
        }
        let header = try c.bytes(Int(n64))
        guard let obj = try? JSONSerialization.jsonObject(with: header) as? [String: Any] else {
            throw file.fail("header is not a JSON object")
        }
        dataStart = 8 + Int(n64)
        let dataLength = file.count - dataStart
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        // In name order, so a damaged file gets the same error on every run.
        for (name, value) in obj.sorted(by: { $0.key < $1.key }) {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = SafetensorsFile.exactInts(info["shape"]), let offsets = SafetensorsFile.exactInts(info["data_offsets"]), offsets.count == 2
            else { throw file.fail("malformed entry for tensor \(name)") }
            guard let encoding = TensorEncoding(rawValue: dtype), [.f32, .f16, .bf16].contains(encoding) else {
                throw file.fail("tensor \(name) has unsupported dtype \(dtype) (F32, F16 and BF16 are read)")
            }
            // Sizes from the file are checked before any arithmetic can overflow.
            guard let count = checkedProduct(shape), count <= dataLength, let bytes = encoding.byteCount(values: count) else {
                throw file.fail("tensor \(name): shape \(shape) does not fit the file")
            }
            guard offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] - offsets[0] == bytes else {
                throw file.fail("tensor \(name): data_offsets \(offsets) do not fit shape \(shape) of \(dtype)")
            }
            guard offsets[1] <= dataLength else {
                throw file.fail("tensor \(name): data_offsets \(offsets) run past the end of the data (\(dataLength) bytes): is the file truncated?")
            }
            tensors[name] = TensorInfo(shape: shape, encoding: encoding, start: offsets[0], end: offsets[1])
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Decodes tensor `name` into `dst`, checking its shape.
    public func read(_ name: String, shape expected: [Int], into dst: UnsafeMutablePointer<Float>) throws {
        guard let t = tensors[name] else { throw file.fail("tensor \(name) is missing") }
        guard t.shape == expected else { throw file.fail("tensor \(name) has shape \(t.shape), expected \(expected)") }
        let lo = dataStart + t.start, hi = dataStart + t.end
        file.data.withUnsafeBytes { raw in
            t.encoding.decode(UnsafeRawBufferPointer(rebasing: raw[lo..<hi]), count: t.count, into: dst)
        }
    }

    /// A JSON array of integers, each exactly representable (nil otherwise:
    /// 1e300 or 3.5 is malformed, not something to round).
    private static func exactInts(_ value: Any?) -> [Int]? {
        guard let array = value as? [Any] else { return nil }
        var out: [Int] = []
        for v in array {
            guard let n = v as? NSNumber, let i = n as? Int else { return nil }
            out.append(i)
        }
        return out
    }
}

/// The tensors of a Hugging Face folder: `model.safetensors`, or the shards
/// that `model.safetensors.index.json` lists (its `weight_map` maps each
/// tensor to a file of the same folder; names that leave it are refused).
public struct SafetensorsCheckpoint: Sendable {
    public let files: [SafetensorsFile]
    /// Tensor name -> index into `files`.
    let owner: [String: Int]

    public static let indexName = "model.safetensors.index.json"

    public init(folder: URL) throws {
        let single = folder.appendingPathComponent("model.safetensors")
        let index = folder.appendingPathComponent(SafetensorsCheckpoint.indexName)
        let fm = FileManager.default
        if fm.fileExists(atPath: single.path) {
            let f = try SafetensorsFile(url: single)
            files = [f]
            owner = Dictionary(uniqueKeysWithValues: f.tensors.keys.map { ($0, 0) })
            return
        }
        guard fm.fileExists(atPath: index.path) else {
            throw EngineError.io("\(folder.path): no model.safetensors or \(SafetensorsCheckpoint.indexName) (the engine never reads pickle files such as pytorch_model.bin)")
        }
        let raw = try ModelFileBytes(url: index)
        guard raw.count <= 64 << 20 else { throw raw.fail("index is larger than 64 MB") }
        guard let obj = try? JSONSerialization.jsonObject(with: raw.data) as? [String: Any],
              let map = obj["weight_map"] as? [String: Any] else {
            throw raw.fail("not a JSON object with a weight_map")
        }
        var shardNames: [String] = []
        var shardOf: [String: String] = [:]
        for (tensor, v) in map.sorted(by: { $0.key < $1.key }) {
            guard let name = v as? String else { throw raw.fail("weight_map[\(tensor)] is not a file name") }
            guard !name.isEmpty, !name.contains("/"), !name.contains("\\"), name != ".", name != "..", !name.hasPrefix("."),
                  name.hasSuffix(".safetensors") else {
                throw raw.fail("weight_map[\(tensor)] = \(name) is not a .safetensors file of this folder")
            }
            shardOf[tensor] = name
            if !shardNames.contains(name) { shardNames.append(name) }
        }
        shardNames.sort()
        guard !shardNames.isEmpty, shardNames.count <= 4096 else { throw raw.fail("weight_map lists \(shardNames.count) files") }
        var files: [SafetensorsFile] = []
        var owner: [String: Int] = [:]
        for (i, name) in shardNames.enumerated() {
            let shard = folder.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: shard.path) else {
                throw raw.fail("weight_map names \(name), which is not in the folder")
            }
            let f = try SafetensorsFile(url: shard)
            files.append(f)
            for t in f.tensors.keys where shardOf[t] == name { owner[t] = i }
        }
        for (tensor, name) in shardOf.sorted(by: { $0.key < $1.key }) where owner[tensor] == nil {
            throw raw.fail("tensor \(tensor) is listed in \(name) but that file does not hold it")
        }
        self.files = files
        self.owner = owner
    }

    public var tensorNames: Set<String> { Set(owner.keys) }

    /// Checks a configuration's tensors against the checkpoint before the model is
    /// allocated: each of `required` (the layout's name, the name stored here, the
    /// shape) is here with that shape, so a configuration claiming more than the files
    /// hold is an error, not a huge allocation; and the checkpoint holds nothing else
    /// but `alsoRead` names and what `isBuffer` excuses. A tensor outside them (a layer
    /// past the configuration's count, a bias the architecture lacks) is refused rather
    /// than ignored, as for GGUF files: transformers would warn and drop it, but the
    /// model here would not be the one the files describe.
    func check(required: [(name: String, stored: String, shape: [Int])], alsoRead: Set<String>, architecture: String,
               isBuffer: (String) -> Bool) throws {
        let path = files.first?.file.path ?? "checkpoint"
        for t in required {
            guard let shape = shape(of: t.stored) else { throw EngineError.format("\(path): tensor \(t.name) is missing") }
            guard shape == t.shape else {
                throw EngineError.format("\(path): tensor \(t.name) has shape \(shape), the configuration needs \(t.shape)")
            }
        }
        let known = Set(required.map(\.stored)).union(alsoRead)
        if let extra = owner.keys.sorted().first(where: { !known.contains($0) && !isBuffer($0) }) {
            throw EngineError.format("\(files[owner[extra]!].file.path): tensor \(extra) is not one this engine reads for the \(architecture) model config.json describes (refused rather than ignored)")
        }
    }

    public func shape(of name: String) -> [Int]? { owner[name].flatMap { files[$0].tensors[name]?.shape } }

    public func read(_ name: String, shape: [Int], into dst: UnsafeMutablePointer<Float>) throws {
        guard let i = owner[name] else { throw EngineError.format("\(files.first?.file.path ?? "checkpoint"): tensor \(name) is missing") }
        try files[i].read(name, shape: shape, into: dst)
    }

    /// A model whose head is its embedding (`embedding`, already read) may still
    /// find a head tensor `name` in its checkpoint: the same values are fine (a
    /// tied model saved with both), different ones are a model this engine would
    /// silently get wrong, so they are refused. transformers would use them as a
    /// separate head.
    func requireTied(head name: String, shape: [Int], equals embedding: UnsafePointer<Float>, embeddingName: String) throws {
        guard let i = owner[name] else { return }
        let head = FloatBuffer(count: shape.reduce(1, *))
        try files[i].read(name, shape: shape, into: head.pointer)
        guard memcmp(head.pointer, embedding, head.count * MemoryLayout<Float>.size) == 0 else {
            throw EngineError.format("\(files[i].file.path): \(name) differs from \(embeddingName), but the model's head is tied to its embedding (a separate head is not supported here)")
        }
    }
}
