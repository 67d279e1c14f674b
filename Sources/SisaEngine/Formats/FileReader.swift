import Foundation

/// A model file from elsewhere (a GGUF, a safetensors shard, a tokenizer):
/// its bytes, mapped rather than read when the file is large, and its path
/// for error messages.
///
/// `@unchecked Sendable`: immutable; `data` may be a read-only mapping of
/// the file, which no thread writes.
public struct ModelFileBytes: @unchecked Sendable {
    public let path: String
    public let data: Data

    /// Maps `url` (read-only). A missing or unreadable file is an error naming it.
    public init(url: URL) throws {
        path = url.path
        do {
            data = try Data(contentsOf: url, options: [.alwaysMapped])
        } catch {
            throw EngineError.io("\(url.path): cannot read (\((error as NSError).localizedDescription))")
        }
    }

    public init(path: String, data: Data) {
        self.path = path
        self.data = data
    }

    public var count: Int { data.count }

    func fail(_ message: String) -> EngineError { .format("\(path): \(message)") }
}

/// A bounds-checked little-endian cursor over a file's bytes. Every length
/// and count read from the file is checked against what is left before it
/// is used, so a truncated or hostile file ends in an error naming the file
/// and the offset, never in a trap or a huge allocation.
struct FileCursor {
    let file: ModelFileBytes
    private(set) var offset: Int

    init(_ file: ModelFileBytes, at offset: Int = 0) {
        self.file = file
        self.offset = offset
    }

    var remaining: Int { file.count - offset }

    func fail(_ message: String) -> EngineError { file.fail("\(message) (at byte \(offset))") }

    mutating func skip(_ n: Int) throws {
        guard n >= 0, n <= remaining else { throw fail("truncated: \(n) bytes wanted, \(remaining) left") }
        offset += n
    }

    mutating func bytes(_ n: Int) throws -> Data {
        guard n >= 0, n <= remaining else { throw fail("truncated: \(n) bytes wanted, \(remaining) left") }
        let start = file.data.startIndex + offset
        defer { offset += n }
        return file.data.subdata(in: start..<(start + n))
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type = T.self) throws -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw fail("truncated: \(size)-byte value wanted, \(remaining) left") }
        var v: T = 0
        let start = file.data.startIndex + offset
        _ = withUnsafeMutableBytes(of: &v) { file.data.copyBytes(to: $0, from: start..<(start + size)) }
        offset += size
        return T(littleEndian: v)
    }

    mutating func u8() throws -> UInt8 { try integer() }
    mutating func u32() throws -> UInt32 { try integer() }
    mutating func u64() throws -> UInt64 { try integer() }

    /// A u64 that must fit an Int and be at most `limit` (a count or a length).
    mutating func count(_ what: String, limit: Int) throws -> Int {
        let v = try u64()
        guard v <= UInt64(max(0, limit)) else { throw fail("\(what) \(v) exceeds what the file can hold (\(limit))") }
        return Int(v)
    }

    mutating func float32() throws -> Float { Float(bitPattern: try u32()) }
    mutating func float64() throws -> Double { Double(bitPattern: try u64()) }

    /// A UTF-8 string of `n` bytes; invalid UTF-8 is an error (token strings must be exact).
    mutating func utf8(_ n: Int, what: String) throws -> String {
        let d = try bytes(n)
        guard let s = String(validating: d, as: UTF8.self) else { throw fail("\(what) is not valid UTF-8") }
        return s
    }
}

/// Sizes from a file, multiplied without overflow.
func checkedProduct(_ dims: [Int]) -> Int? {
    var n = 1
    for d in dims {
        guard d >= 0 else { return nil }
        let (p, o) = n.multipliedReportingOverflow(by: d)
        if o { return nil }
        n = p
    }
    return n
}
