import Foundation

/// A GGUF file (llama.cpp's format, versions 2 and 3): metadata key/values,
/// tensor descriptions, and tensor data dequantized to fp32 on request.
///
///   "GGUF" | u32 version | u64 tensors | u64 metadata pairs
///   | pairs: string key, u32 type, value | tensor infos: string name,
///   u32 dims, u64 x dims (innermost first), u32 ggml type, u64 offset
///   | padding to `general.alignment` (32) | tensor data
///
/// Strings are u64 length + UTF-8 bytes. The file is mapped, not read; every
/// count and offset is checked against the file's size before it is used.
public struct GGUFFile: Sendable {
    public indirect enum Value: Sendable, Equatable {
        case unsigned(UInt64), signed(Int64), float(Double), bool(Bool), string(String), array([Value])

        public var int: Int? {
            switch self {
            case .unsigned(let u): return u <= UInt64(Int.max) ? Int(u) : nil
            case .signed(let s): return Int(exactly: s)
            default: return nil
            }
        }
        public var double: Double? {
            switch self {
            case .float(let d): return d
            case .unsigned, .signed: return int.map(Double.init)
            default: return nil
            }
        }
        public var string: String? { if case .string(let s) = self { return s } else { return nil } }
        public var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
        public var array: [Value]? { if case .array(let a) = self { return a } else { return nil } }
    }

    public struct TensorInfo: Sendable {
        public let name: String
        /// Extents innermost first, as GGUF stores them (a [out, in] matrix reads [in, out]).
        public let dims: [Int]
        public let ggmlType: UInt32
        /// Offset of the data from the start of the data section.
        public let offset: Int
        public var count: Int { dims.reduce(1, *) }
        public var encoding: TensorEncoding? { GGUFFile.encodings[ggmlType] }
        public var typeName: String { GGUFFile.typeNames[ggmlType] ?? "type \(ggmlType)" }
    }

    public let file: ModelFileBytes
    public let version: Int
    public let metadata: [String: Value]
    public let tensors: [String: TensorInfo]
    /// Tensor names in file order.
    public let tensorOrder: [String]
    public let dataStart: Int

    /// ggml's type numbers for the encodings the engine decodes.
    static let encodings: [UInt32: TensorEncoding] = [0: .f32, 1: .f16, 2: .q4_0, 3: .q4_1, 8: .q8_0, 30: .bf16]
    static let typeNames: [UInt32: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
        11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS",
        19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32",
        27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16",
    ]

    /// Most dimensions of a ggml tensor, and how deep arrays may nest.
    static let maxDims = 4, maxArrayDepth = 3

    public static func isGGUF(_ url: URL) -> Bool {
        guard let h = FileHandle(forReadingAtPath: url.path) else { return false }
        defer { try? h.close() }
        return (try? h.read(upToCount: 4)) == Data("GGUF".utf8)
    }

    public init(url: URL) throws {
        try self.init(ModelFileBytes(url: url))
    }

    public init(_ file: ModelFileBytes) throws {
        self.file = file
        var c = FileCursor(file)
        guard file.count >= 24, try c.bytes(4) == Data("GGUF".utf8) else { throw file.fail("not a GGUF file (bad magic)") }
        let v = try c.u32()
        guard v == 2 || v == 3 else { throw file.fail("GGUF version \(v) is not supported (2 and 3 are)") }
        version = Int(v)
        // Each tensor info takes at least 8 + 4 + 8 + 4 + 8 bytes, each pair 8 + 4 + 1.
        let tensorCount = try c.count("tensor count", limit: c.remaining / 32)
        let pairCount = try c.count("metadata count", limit: c.remaining / 13)
        var metadata: [String: Value] = [:]
        for _ in 0..<pairCount {
            let key = try GGUFFile.string(&c, what: "metadata key")
            guard metadata[key] == nil else { throw c.fail("metadata key \(key) appears twice") }
            let type = try c.u32()
            metadata[key] = try GGUFFile.value(&c, type: type, depth: 0, key: key)
        }
        var tensors: [String: TensorInfo] = [:]
        var order: [String] = []
        for _ in 0..<tensorCount {
            let name = try GGUFFile.string(&c, what: "tensor name")
            let n = try c.u32()
            guard n >= 1, n <= UInt32(GGUFFile.maxDims) else { throw c.fail("tensor \(name) has \(n) dimensions (1 to 4 allowed)") }
            var dims: [Int] = []
            for _ in 0..<n {
                let d = try c.u64()
                guard d >= 1, d <= UInt64(Int32.max) else { throw c.fail("tensor \(name) has an extent of \(d)") }
                dims.append(Int(d))
            }
            guard checkedProduct(dims) != nil else { throw c.fail("tensor \(name): extents \(dims) overflow") }
            let type = try c.u32()
            let off = try c.u64()
            guard off <= UInt64(file.count) else { throw c.fail("tensor \(name): offset \(off) is past the end of the file") }
            guard tensors[name] == nil else { throw c.fail("tensor \(name) appears twice") }
            tensors[name] = TensorInfo(name: name, dims: dims, ggmlType: type, offset: Int(off))
            order.append(name)
        }
        let alignment: Int
        if let a = metadata["general.alignment"] {
            guard let ai = a.int, ai >= 1, ai <= 1 << 16, ai & (ai - 1) == 0 else {
                throw file.fail("general.alignment \(a) is not a power of two up to 65536")
            }
            alignment = ai
        } else {
            alignment = 32
        }
        // A vocabulary-only file (llama.cpp's ggml-vocab-*.gguf) ends with its metadata, unpadded.
        let aligned = (c.offset + alignment - 1) / alignment * alignment
        let start = tensors.isEmpty ? min(aligned, file.count) : aligned
        guard start <= file.count else { throw file.fail("truncated: the data section starts past the end of the file") }
        self.metadata = metadata
        self.tensors = tensors
        self.tensorOrder = order
        self.dataStart = start
        // Every tensor whose size we know must lie inside the file, and no two
        // may share bytes (llama.cpp lays them end to end; a file whose regions
        // overlap or alias is not one it wrote).
        // In the file's order, so a damaged file gets the same error on every run.
        var regions: [(offset: Int, end: Int, name: String)] = []
        for t in order.compactMap({ tensors[$0] }) {
            guard t.offset % alignment == 0 else { throw file.fail("tensor \(t.name): offset \(t.offset) is not aligned to \(alignment)") }
            if let e = t.encoding {
                guard t.dims[0] % e.blockSize == 0, let bytes = e.byteCount(values: t.count) else {
                    throw file.fail("tensor \(t.name): \(t.dims) is not a whole number of \(e.rawValue) blocks")
                }
                guard t.offset <= file.count - start, bytes <= file.count - start - t.offset else {
                    throw file.fail("tensor \(t.name): \(bytes) bytes at offset \(t.offset) run past the end of the file")
                }
                regions.append((t.offset, t.offset + bytes, t.name))
            }
        }
        regions.sort { $0.offset != $1.offset ? $0.offset < $1.offset : $0.name < $1.name }
        for (a, b) in zip(regions, regions.dropFirst()) where b.offset < a.end {
            throw file.fail("tensor \(b.name) (offset \(b.offset)) overlaps tensor \(a.name) (bytes \(a.offset)..<\(a.end))")
        }
    }

    private static func string(_ c: inout FileCursor, what: String) throws -> String {
        let n = try c.count("\(what) length", limit: c.remaining)
        return try c.utf8(n, what: what)
    }

    /// Smallest encoded size of one value of a type (to bound array counts).
    private static func minimumSize(_ type: UInt32) -> Int {
        switch type {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 8, 10, 11, 12: return 8
        default: return 12
        }
    }

    private static func value(_ c: inout FileCursor, type: UInt32, depth: Int, key: String) throws -> Value {
        switch type {
        case 0: return .unsigned(UInt64(try c.integer(UInt8.self)))
        case 1: return .signed(Int64(try c.integer(Int8.self)))
        case 2: return .unsigned(UInt64(try c.integer(UInt16.self)))
        case 3: return .signed(Int64(try c.integer(Int16.self)))
        case 4: return .unsigned(UInt64(try c.integer(UInt32.self)))
        case 5: return .signed(Int64(try c.integer(Int32.self)))
        case 6: return .float(Double(try c.float32()))
        case 7:
            let b = try c.u8()
            guard b <= 1 else { throw c.fail("\(key): bool value \(b)") }
            return .bool(b == 1)
        case 8: return .string(try string(&c, what: "value of \(key)"))
        case 9:
            guard depth < maxArrayDepth else { throw c.fail("\(key): arrays nested too deep") }
            let elementType = try c.u32()
            guard elementType <= 12 else { throw c.fail("\(key): unknown array element type \(elementType)") }
            let n = try c.count("\(key): array length", limit: c.remaining / minimumSize(elementType))
            var out: [Value] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try value(&c, type: elementType, depth: depth + 1, key: key)) }
            return .array(out)
        case 10: return .unsigned(try c.u64())
        case 11: return .signed(try c.integer(Int64.self))
        case 12: return .float(try c.float64())
        default: throw c.fail("\(key): unknown value type \(type)")
        }
    }

    // MARK: typed metadata

    public func int(_ key: String) throws -> Int {
        guard let v = metadata[key] else { throw file.fail("metadata \(key) is missing") }
        guard let i = v.int else { throw file.fail("metadata \(key) is not an integer") }
        return i
    }

    public func optionalInt(_ key: String) throws -> Int? {
        guard let v = metadata[key] else { return nil }
        guard let i = v.int else { throw file.fail("metadata \(key) is not an integer") }
        return i
    }

    public func optionalDouble(_ key: String) throws -> Double? {
        guard let v = metadata[key] else { return nil }
        guard let d = v.double else { throw file.fail("metadata \(key) is not a number") }
        return d
    }

    public func string(_ key: String) throws -> String {
        guard let v = metadata[key] else { throw file.fail("metadata \(key) is missing") }
        guard let s = v.string else { throw file.fail("metadata \(key) is not a string") }
        return s
    }

    public func strings(_ key: String) throws -> [String] {
        guard let v = metadata[key] else { throw file.fail("metadata \(key) is missing") }
        guard let a = v.array else { throw file.fail("metadata \(key) is not an array") }
        return try a.map { e in
            guard let s = e.string else { throw file.fail("metadata \(key) holds a non-string") }
            return s
        }
    }

    public func ints(_ key: String) throws -> [Int]? {
        guard let v = metadata[key] else { return nil }
        guard let a = v.array else { throw file.fail("metadata \(key) is not an array") }
        return try a.map { e in
            guard let i = e.int else { throw file.fail("metadata \(key) holds a non-integer") }
            return i
        }
    }

    // MARK: tensor data

    /// Every listed tensor is present with these extents and a supported encoding:
    /// checked before a model is allocated for them.
    /// Every `required` tensor is here with its extents and a supported type,
    /// and the file holds no tensor outside `required` and `optional`: one the
    /// engine would not read (attention biases in a llama file, a layer past
    /// block_count) is refused, not ignored, since llama.cpp would use it or
    /// refuse the file.
    public func check(_ required: [(String, [Int])], optional: Set<String> = []) throws {
        let known = Set(required.map(\.0)).union(optional)
        if let extra = tensorOrder.first(where: { !known.contains($0) }) {
            throw file.fail("tensor \(extra) is not one this engine reads for \(metadata["general.architecture"]?.string ?? "this") model (refused rather than ignored)")
        }
        for (name, dims) in required {
            guard let t = tensors[name] else { throw file.fail("tensor \(name) is missing") }
            guard t.dims == dims else { throw file.fail("tensor \(name) has extents \(t.dims), the metadata needs \(dims)") }
            guard t.encoding != nil else {
                throw file.fail("tensor \(name) is \(t.typeName); supported: \(TensorEncoding.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
    }

    /// Decodes tensor `name` into `dst` (exactly `count` floats), checking its extents.
    public func read(_ name: String, dims expected: [Int], into dst: UnsafeMutablePointer<Float>) throws {
        guard let t = tensors[name] else { throw file.fail("tensor \(name) is missing") }
        guard t.dims == expected else { throw file.fail("tensor \(name) has extents \(t.dims), expected \(expected)") }
        guard let e = t.encoding else {
            throw file.fail("tensor \(name) is \(t.typeName); supported: \(TensorEncoding.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let bytes = e.byteCount(values: t.count)!
        let start = dataStart + t.offset
        file.data.withUnsafeBytes { raw in
            e.decode(UnsafeRawBufferPointer(rebasing: raw[start..<(start + bytes)]), count: t.count, into: dst)
        }
    }
}
