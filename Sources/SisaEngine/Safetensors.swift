import Foundation

/// The safetensors format: u64 little-endian header length, a JSON header
/// mapping tensor names to {dtype, shape, data_offsets}, then raw data.
/// Only F32 is written; F32, F16 and BF16 are read (converted to Float).
public enum Safetensors {
    public struct Tensor: Equatable {
        public var shape: [Int]
        public var values: [Float]
        public init(shape: [Int], values: [Float]) {
            self.shape = shape
            self.values = values
        }
    }

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
        for t in tensors { out.append(UnsafeBufferPointer(start: UnsafeRawPointer(t.values.baseAddress!).assumingMemoryBound(to: UInt8.self), count: t.values.count * 4)) }
        return out
    }

    public static func decode(_ data: Data, source: String = "safetensors") throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        func fail(_ m: String) -> EngineError { .format("\(source): \(m)") }
        var r = ByteReader(data)
        guard let n64 = try? r.u64(), n64 <= UInt64(r.remaining), n64 < 100_000_000 else { throw fail("bad header length") }
        let n = Int(n64)
        let headerBytes = try r.bytes(n)
        guard let obj = try? JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        let dataStart = data.startIndex + 8 + n
        let dataLength = data.count - 8 - n
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in obj {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = exactInts(info["shape"]), let offsets = exactInts(info["data_offsets"]), offsets.count == 2
            else { throw fail("malformed entry for tensor \(name)") }
            let width: Int
            switch dtype {
            case "F32": width = 4
            case "F16", "BF16": width = 2
            default: throw fail("tensor \(name) has unsupported dtype \(dtype)")
            }
            // Sizes from the file are checked before any arithmetic can overflow.
            var count = 1
            for d in shape {
                let (p, overflow) = count.multipliedReportingOverflow(by: d)
                guard d >= 0, !overflow, p <= dataLength else { throw fail("tensor \(name): shape \(shape) does not fit the file") }
                count = p
            }
            guard offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] <= dataLength,
                  offsets[1] - offsets[0] == count * width else {
                throw fail("tensor \(name): data_offsets \(offsets) do not fit shape \(shape) of \(dtype)")
            }
            var values = [Float](repeating: 0, count: count)
            let base = dataStart + offsets[0]
            values.withUnsafeMutableBytes { dst in
                switch dtype {
                case "F32":
                    data.copyBytes(to: dst, from: base..<(base + count * 4))
                    for i in 0..<count { dst.storeBytes(of: UInt32(littleEndian: dst.load(fromByteOffset: i * 4, as: UInt32.self)), toByteOffset: i * 4, as: UInt32.self) }
                default:
                    for i in 0..<count {
                        let lo = UInt16(data[base + 2 * i]), hi = UInt16(data[base + 2 * i + 1])
                        let h = lo | (hi << 8)
                        let f: Float = dtype == "BF16" ? Float(bitPattern: UInt32(h) << 16) : Float(Float16(bitPattern: h))
                        dst.storeBytes(of: f, toByteOffset: i * 4, as: Float.self)
                    }
                }
            }
            tensors[name] = Tensor(shape: shape, values: values)
        }
        return (tensors, metadata)
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
