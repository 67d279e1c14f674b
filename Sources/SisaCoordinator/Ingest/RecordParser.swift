import Foundation
import SisaEngine

public enum InputFormat: String, CaseIterable, Sendable {
    case auto, lines, jsonl, fortune, dir
}

/// A record read from input, before placement.
public struct ParsedRecord: Equatable, Sendable {
    public var id: String?
    public var text: [UInt8]
    public var group: String?
    /// "file:line" where the record starts, for error messages.
    public var origin: String
}

/// Reads records from files in the supported formats. Any problem is an error
/// naming the file and line; nothing is partially returned.
public enum RecordParser {
    public static func parse(path: String, format: InputFormat) throws -> [ParsedRecord] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CoordinatorError.invalidInput("\(path): no such file or directory")
        }
        if format == .dir || (format == .auto && isDir.boolValue) {
            guard isDir.boolValue else { throw CoordinatorError.invalidInput("\(path): --format dir needs a directory") }
            return try parseDirectory(path)
        }
        guard !isDir.boolValue else { throw CoordinatorError.invalidInput("\(path): is a directory (use --format dir)") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CoordinatorError.invalidInput("\(path): cannot read")
        }
        let bytes = [UInt8](data)
        switch format == .auto ? detect(path: path, bytes: bytes) : format {
        case .lines: return try parseLines(bytes, path: path)
        case .jsonl: return try parseJSONL(bytes, path: path)
        case .fortune: return try parseFortune(bytes, path: path)
        case .auto, .dir: fatalError("unreachable")
        }
    }

    /// jsonl by extension, fortune if a line holds only "%", else lines.
    static func detect(path: String, bytes: [UInt8]) -> InputFormat {
        let ext = (path as NSString).pathExtension.lowercased()
        if ext == "jsonl" || ext == "ndjson" { return .jsonl }
        return splitLines(bytes).contains(where: { $0.bytes == [0x25] }) ? .fortune : .lines
    }

    /// Lines without their terminators ("\n" or "\r\n"), with 1-based numbers.
    static func splitLines(_ b: [UInt8]) -> [(number: Int, bytes: [UInt8])] {
        var out: [(Int, [UInt8])] = []
        var start = 0, n = 1
        for i in 0..<b.count where b[i] == 0x0A {
            var end = i
            if end > start && b[end - 1] == 0x0D { end -= 1 }
            out.append((n, Array(b[start..<end])))
            start = i + 1
            n += 1
        }
        if start < b.count { out.append((n, Array(b[start...]))) }
        return out
    }

    static func checkUTF8(_ bytes: [UInt8], _ origin: String) throws {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw CoordinatorError.invalidInput("\(origin): invalid UTF-8")
        }
    }

    static func parseLines(_ b: [UInt8], path: String) throws -> [ParsedRecord] {
        try splitLines(b).compactMap { line in
            let origin = "\(path):\(line.number)"
            try checkUTF8(line.bytes, origin)
            if line.bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return nil }
            return ParsedRecord(id: nil, text: line.bytes, group: nil, origin: origin)
        }
    }

    static func parseJSONL(_ b: [UInt8], path: String) throws -> [ParsedRecord] {
        try splitLines(b).compactMap { line in
            let origin = "\(path):\(line.number)"
            if line.bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return nil }
            try checkUTF8(line.bytes, origin)
            let obj: Any
            do { obj = try JSONSerialization.jsonObject(with: Data(line.bytes)) } catch {
                throw CoordinatorError.invalidInput("\(origin): malformed JSON")
            }
            guard let dict = obj as? [String: Any] else {
                throw CoordinatorError.invalidInput("\(origin): expected a JSON object with a \"text\" field")
            }
            guard let text = dict["text"] as? String else {
                throw CoordinatorError.invalidInput("\(origin): missing string field \"text\"")
            }
            var id: String?
            switch dict["id"] {
            case nil, is NSNull: id = nil
            case let s as String: id = s
            case let n as NSNumber: id = n.stringValue
            default: throw CoordinatorError.invalidInput("\(origin): \"id\" must be a string or a number")
            }
            if let i = id, i.isEmpty { throw CoordinatorError.invalidInput("\(origin): empty \"id\"") }
            var group: String?
            if let g = dict["group"] {
                guard let gs = g as? String, !gs.isEmpty else {
                    throw CoordinatorError.invalidInput("\(origin): \"group\" must be a non-empty string")
                }
                group = gs
            }
            guard !text.isEmpty else { throw CoordinatorError.invalidInput("\(origin): empty \"text\"") }
            return ParsedRecord(id: id, text: Array(text.utf8), group: group, origin: origin)
        }
    }

    /// Records separated by lines holding only "%"; each record is its lines
    /// joined with "\n" (no trailing newline). Empty records are skipped.
    static func parseFortune(_ b: [UInt8], path: String) throws -> [ParsedRecord] {
        var out: [ParsedRecord] = []
        var current: [[UInt8]] = []
        var startLine = 1
        func flush() throws {
            defer { current = [] }
            guard current.contains(where: { !$0.isEmpty }) else { return }
            let text = Array(current.joined(separator: [0x0A]))
            let origin = "\(path):\(startLine)"
            try checkUTF8(text, origin)
            out.append(ParsedRecord(id: nil, text: text, group: nil, origin: origin))
        }
        for line in splitLines(b) {
            if line.bytes == [0x25] {
                try flush()
                startLine = line.number + 1
            } else {
                if current.isEmpty { startLine = line.number }
                current.append(line.bytes)
            }
        }
        try flush()
        return out
    }

    /// One record per regular file (sorted, not recursive, hidden files skipped);
    /// the id is the file name.
    static func parseDirectory(_ path: String) throws -> [ParsedRecord] {
        let names = try FileManager.default.contentsOfDirectory(atPath: path).filter { !$0.hasPrefix(".") }.sorted()
        var out: [ParsedRecord] = []
        for name in names {
            let full = (path as NSString).appendingPathComponent(name)
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: full, isDirectory: &isDir), !isDir.boolValue else { continue }
            guard let d = FileManager.default.contents(atPath: full) else {
                throw CoordinatorError.invalidInput("\(full): cannot read")
            }
            let bytes = [UInt8](d)
            try checkUTF8(bytes, "\(full):1")
            if bytes.isEmpty { continue }
            out.append(ParsedRecord(id: name, text: bytes, group: nil, origin: "\(full):1"))
        }
        return out
    }

    /// The id of a record given without one: derived from its text.
    public static func derivedID(_ text: [UInt8]) -> String { String(Digest.sha256Hex(text).prefix(16)) }
}
