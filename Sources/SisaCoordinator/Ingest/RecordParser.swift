import Foundation
import SisaEngine

public enum InputFormat: String, CaseIterable, Sendable {
    case auto, lines, jsonl, fortune, dir
}

/// What an ingest reads: files in a format, or JSON lines already in memory
/// (a request body; `name` stands for the file in error messages).
public enum IngestSource: Sendable {
    case files([String], InputFormat)
    case jsonLines([UInt8], name: String)

    var description: String {
        switch self {
        case let .files(paths, _): return paths.joined(separator: ", ")
        case let .jsonLines(_, name): return name
        }
    }
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
/// naming the file and line. Files are read a chunk at a time (`forEach`), so
/// an ingest's memory is bounded by its batch, not its input.
public enum RecordParser {
    /// Every record of `path`, in order (for small inputs; ingest streams with `forEach`).
    /// `emptyTexts`: texts to tokenize or score, not records to train on: a JSON line's
    /// "text" may be "". `blankLines`: in lines format every line is a text, blank ones
    /// included, so item i is line i (else lines of spaces and tabs are skipped).
    public static func parse(path: String, format: InputFormat, emptyTexts: Bool = false, blankLines: Bool = false) throws -> [ParsedRecord] {
        var out: [ParsedRecord] = []
        try forEach(path: path, format: format, emptyTexts: emptyTexts, blankLines: blankLines) { out.append($0) }
        return out
    }

    /// Calls `body` with each record of `source` in order (files a chunk at a time).
    public static func forEach(_ source: IngestSource, progress: ((_ bytesRead: Int) -> Void)? = nil,
                               _ body: (ParsedRecord) throws -> Void) throws {
        switch source {
        case let .files(paths, format):
            var before = 0
            for path in paths {
                try forEach(path: path, format: format, progress: { progress?(before + $0) }, body)
                before += inputBytes(path)
            }
        case let .jsonLines(bytes, name):
            var number = 0, start = bytes.starts(with: byteOrderMark) ? 3 : 0
            try bytes.withUnsafeBufferPointer { b in
                while start <= b.count {
                    var end = start
                    while end < b.count && b[end] != 0x0A { end += 1 }
                    if end == b.count && start == b.count { break }
                    number += 1
                    var lineEnd = end
                    if lineEnd > start && b[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                    if let r = try parseJSONLine(UnsafeBufferPointer(rebasing: b[start..<lineEnd]), origin: "\(name):\(number)") {
                        try body(r)
                    }
                    start = end + 1
                }
            }
            progress?(bytes.count)
        }
    }

    /// Calls `body` with each record of `path` in order, reading the file a chunk at a time.
    /// An error (the input's or `body`'s) stops the walk.
    public static func forEach(path: String, format: InputFormat, emptyTexts: Bool = false, blankLines: Bool = false,
                               progress: ((_ bytesRead: Int) -> Void)? = nil, _ body: (ParsedRecord) throws -> Void) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CoordinatorError.invalidInput("\(path): no such file or directory")
        }
        if format == .dir || (format == .auto && isDir.boolValue) {
            guard isDir.boolValue else { throw CoordinatorError.invalidInput("\(path): --format dir needs a directory") }
            return try forEachInDirectory(path, body)
        }
        guard !isDir.boolValue else { throw CoordinatorError.invalidInput("\(path): is a directory (use --format dir)") }
        let resolved = format == .auto ? try detect(path: path) : format
        let reader = try LineReader(path: path)
        switch resolved {
        case .lines:
            try reader.forEach { number, line in
                let origin = "\(path):\(number)"
                try checkUTF8(line, origin)
                if !blankLines && line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }
                try body(ParsedRecord(id: nil, text: Array(line), group: nil, origin: origin))
                if number % 65536 == 0 { progress?(reader.bytesRead) }
            }
        case .jsonl:
            try reader.forEach { number, line in
                if let r = try parseJSONLine(line, origin: "\(path):\(number)", emptyText: emptyTexts) { try body(r) }
                if number % 65536 == 0 { progress?(reader.bytesRead) }
            }
        case .fortune:
            // Records separated by lines holding only "%"; each record is its lines
            // joined with "\n" (no trailing newline). Empty records are skipped.
            var current: [UInt8] = []
            var lines = 0, blank = true, startLine = 1
            func flush() throws {
                defer { current.removeAll(keepingCapacity: true); lines = 0; blank = true }
                guard !blank else { return }
                let origin = "\(path):\(startLine)"
                try checkUTF8(current, origin)
                try body(ParsedRecord(id: nil, text: current, group: nil, origin: origin))
            }
            try reader.forEach { number, line in
                if line.count == 1 && line[0] == 0x25 {
                    try flush()
                    startLine = number + 1
                } else {
                    if lines == 0 { startLine = number } else { current.append(0x0A) }
                    current.append(contentsOf: line)
                    lines += 1
                    if !line.isEmpty { blank = false }
                }
                if number % 65536 == 0 { progress?(reader.bytesRead) }
            }
            try flush()
        case .auto, .dir: fatalError("unreachable")
        }
        progress?(reader.bytesRead)
    }

    /// jsonl by extension, fortune if a line holds only "%", else lines (one pass over the file).
    static func detect(path: String) throws -> InputFormat {
        let ext = (path as NSString).pathExtension.lowercased()
        if ext == "jsonl" || ext == "ndjson" { return .jsonl }
        let reader = try LineReader(path: path)
        struct Found: Error {}
        do {
            try reader.forEach { _, line in if line.count == 1 && line[0] == 0x25 { throw Found() } }
        } catch is Found { return .fortune }
        return .lines
    }

    static func checkUTF8<C: Collection<UInt8>>(_ bytes: C, _ origin: String) throws {
        // Pure ASCII, the common case, needs no decoding.
        if bytes.allSatisfy({ $0 < 0x80 }) { return }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw CoordinatorError.invalidInput("\(origin): invalid UTF-8")
        }
    }

    /// One JSON line ({"text", "id"?, "group"?}); nil for a blank line.
    static func parseJSONLine(_ line: UnsafeBufferPointer<UInt8>, origin: String, emptyText: Bool = false) throws -> ParsedRecord? {
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return nil }
        try checkUTF8(line, origin)
        let obj: Any
        do { obj = try JSONSerialization.jsonObject(with: Data(buffer: line), options: .fragmentsAllowed) } catch {
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
        // true and false come as NSNumber's boolean subclass (and `is Bool` holds
        // for 0 and 1 too, so only the class tells them apart): a boolean is not an id.
        case let n as NSNumber where !String(describing: type(of: n)).contains("Boolean"): id = n.stringValue
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
        guard !text.isEmpty || emptyText else { throw CoordinatorError.invalidInput("\(origin): empty \"text\"") }
        return ParsedRecord(id: id, text: Array(text.utf8), group: group, origin: origin)
    }

    /// UTF-8's byte order mark, which some editors put at the start of a file: not text.
    static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

    /// One record per regular file (sorted, not recursive, hidden files skipped);
    /// the id is the file name.
    static func forEachInDirectory(_ path: String, _ body: (ParsedRecord) throws -> Void) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: path).filter { !$0.hasPrefix(".") }.sorted()
        for name in names {
            let full = (path as NSString).appendingPathComponent(name)
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: full, isDirectory: &isDir), !isDir.boolValue else { continue }
            guard let d = FileManager.default.contents(atPath: full) else {
                throw CoordinatorError.invalidInput("\(full): cannot read")
            }
            let bytes = [UInt8](d.dropFirst(d.starts(with: byteOrderMark) ? byteOrderMark.count : 0))
            try checkUTF8(bytes, "\(full):1")
            if bytes.isEmpty { continue }
            try body(ParsedRecord(id: name, text: bytes, group: nil, origin: "\(full):1"))
        }
    }

    /// The bytes `forEach` will read from `path` (a directory: its files), for progress.
    static func inputBytes(_ path: String) -> Int {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return 0 }
        if !isDir.boolValue { return ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0 }
        return ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).reduce(0) {
            $0 + inputBytes((path as NSString).appendingPathComponent($1))
        }
    }

    /// The id of a record given without one: derived from its text.
    public static func derivedID(_ text: [UInt8]) -> String { String(Digest.sha256Hex(text).prefix(16)) }
}
