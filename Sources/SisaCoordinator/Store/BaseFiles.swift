import Crypto
import Foundation
import SisaEngine

/// The base's files inside a store (`STORE/base/NAME`): copied there at
/// `init`, with their sha256, and checked against it whenever a model is
/// built from them, so a base that changed under the store is refused
/// rather than silently breaking "delete = never ingested".
///
/// A GGUF file's digest is the sha256 of its bytes. A Hugging Face folder's
/// is the sha256 of, for each file the engine reads, in name order, the
/// line "NAME sha256(file)\n"; only those files are copied.
public enum BaseFiles {
    static let folder = "base"

    /// The files of a Hugging Face folder the engine reads: configuration,
    /// tokenizer and weights.
    static func filesToCopy(in dir: URL) throws -> [String] {
        let fm = FileManager.default
        var names = ["config.json"]
        if fm.fileExists(atPath: dir.appendingPathComponent("tokenizer.json").path) {
            names.append("tokenizer.json")
        } else {
            for pair in [["vocab.json", "merges.txt"], ["encoder.json", "vocab.bpe"]]
            where pair.allSatisfy({ fm.fileExists(atPath: dir.appendingPathComponent($0).path) }) {
                names += pair
                break
            }
        }
        if fm.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path) {
            names.append("model.safetensors")
        } else {
            let index = dir.appendingPathComponent(SafetensorsCheckpoint.indexName)
            names.append(SafetensorsCheckpoint.indexName)
            let st = try SafetensorsCheckpoint(folder: dir)
            names += st.files.map { URL(fileURLWithPath: $0.file.path).lastPathComponent }
            _ = index
        }
        return names.sorted()
    }

    /// sha256 of a file, streamed.
    static func sha256(of url: URL) throws -> (hex: String, bytes: Int) {
        guard let h = FileHandle(forReadingAtPath: url.path) else { throw CoordinatorError.io("\(url.path): cannot read") }
        defer { try? h.close() }
        var hasher = SHA256()
        var total = 0
        while let chunk = try h.read(upToCount: 4 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
            total += chunk.count
        }
        return (Digest.hex(hasher.finalize()), total)
    }

    /// The digest and size of a base at `url` (a GGUF file or a Hugging Face folder).
    public static func digest(of url: URL) throws -> (sha256: String, bytes: Int) {
        var dir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &dir) else { throw CoordinatorError.io("\(url.path): no such file or folder") }
        guard dir.boolValue else {
            let d = try sha256(of: url)
            return (d.hex, d.bytes)
        }
        var lines = "", total = 0
        for name in try filesToCopy(in: url) {
            let d = try sha256(of: url.appendingPathComponent(name))
            lines += "\(name) \(d.hex)\n"
            total += d.bytes
        }
        return (Digest.sha256Hex(Array(lines.utf8)), total)
    }

    /// Copies the base at `source` into `store/base/`, atomically (a temporary
    /// name, every file fsynced, then renamed), and returns its name, digest and size.
    static func install(_ source: URL, into store: URL) throws -> (name: String, sha256: String, bytes: Int) {
        let fm = FileManager.default
        let baseDir = store.appendingPathComponent(folder)
        try fm.createDirectory(at: baseDir, withIntermediateDirectories: true)
        let name = source.standardizedFileURL.lastPathComponent
        let tmp = baseDir.appendingPathComponent(".\(name).partial")
        try? fm.removeItem(at: tmp)
        var dir: ObjCBool = false
        guard fm.fileExists(atPath: source.path, isDirectory: &dir) else { throw CoordinatorError.io("\(source.path): no such file or folder") }
        if dir.boolValue {
            try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
            for f in try filesToCopy(in: source) {
                try copyFile(source.appendingPathComponent(f), to: tmp.appendingPathComponent(f))
            }
        } else {
            try copyFile(source, to: tmp)
        }
        let d = try digest(of: tmp)
        let dest = baseDir.appendingPathComponent(name)
        try? fm.removeItem(at: dest)
        try fm.moveItem(at: tmp, to: dest)
        FileIO.fsyncDirectory(baseDir.path)
        return (name, d.sha256, d.bytes)
    }

    private static func copyFile(_ from: URL, to: URL) throws {
        do {
            try FileManager.default.copyItem(at: from, to: to)
        } catch {
            throw CoordinatorError.io("\(from.path): cannot copy into the store (\((error as NSError).localizedDescription))")
        }
        let fd = open(to.path, O_RDONLY)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// The base's path relative to the store folder.
    public static func relativePath(_ config: BaseStoreConfig) -> String { "\(folder)/\(config.name)" }

    /// The base's path in the store, after checking its digest against the configuration.
    static func checked(_ config: BaseStoreConfig, store: URL) throws -> URL {
        let url = store.appendingPathComponent(folder).appendingPathComponent(config.name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw CoordinatorError.corrupt("\(url.path): the store's base is missing")
        }
        let d = try digest(of: url)
        guard d.sha256 == config.sha256 else {
            throw CoordinatorError.corrupt("\(url.path): the base changed (sha256 \(d.sha256.prefix(16))..., the store was created on \(config.sha256.prefix(16))...); the store's models are adapters of the original base: put it back, or create a new store")
        }
        return url
    }

    /// What a store on the base at `source` records, after every check a
    /// training run would make: the configuration and tokenizer parse, every
    /// tensor reads with the shapes the configuration implies, `context` is
    /// at most the base's (default: the base's, capped at
    /// `BaseStoreConfig.defaultContext`), and the adapter fits the model.
    public static func inspect(_ source: URL, context: Int? = nil, lora: LoRAConfiguration?) throws -> BaseStoreConfig {
        let c: BaseModel.Configuration
        do {
            c = try BaseModel.configuration(at: source)
            _ = try BaseModel.load(source, context: 2, trainable: false, pool: WorkerPool(threads: 1))
        } catch let e as EngineError { throw CoordinatorError.invalidInput("\(e)") }
        let ctx = context ?? min(c.context, BaseStoreConfig.defaultContext)
        guard ctx >= 2, ctx <= c.context else {
            throw CoordinatorError.invalidInput("--ctx \(ctx) must be between 2 and the base's context, \(c.context) tokens")
        }
        var resolved: LoRAConfiguration?
        if let lora {
            do { resolved = try lora.resolved(against: c.loraTargets.map(\.name), layerCount: c.layers) } catch let e as EngineError {
                throw CoordinatorError.invalidInput("\(e)")
            }
        }
        let d = try digest(of: source)
        return BaseStoreConfig(name: source.standardizedFileURL.lastPathComponent, sha256: d.sha256, bytes: d.bytes,
                               architecture: c.architecture, context: ctx, lora: resolved)
    }
}
