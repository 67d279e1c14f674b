import ArgumentParser
import Foundation
import SisaCoordinator
import SisaEngine

@main
struct Sisa: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sisa",
        abstract: "Train a sharded ensemble of language models (byte-level GPTs, or a pretrained base with an adapter per shard) that can forget any record exactly.",
        discussion: """
        A store (default ./shards, or --store PATH, or $SISA_STORE) holds a SQLite catalog and \
        zstd-compressed checkpoints. Typical use: sisa init, sisa ingest, sisa train, sisa query, \
        sisa delete. Every shard's model after a deletion is bit-for-bit the model a store that \
        never saw the record would have trained.
        """,
        subcommands: [Init.self, Ingest.self, Train.self, Status.self, Records.self, Query.self, Score.self, Tokenize.self,
                      Eval.self, Delete.self, Verify.self, Export.self, Compare.self, Plot.self, Audit.self,
                      Canaries.self, ExposureCommand.self, Privacy.self, Filter.self, Token.self, Serve.self, WorkerCommand.self, Benchmark.self, Bench.self]
    )

    /// A bad SISA_KERNELS is reported before any command runs, not when a
    /// command first happens to build a model.
    static func main() {
        do {
            _ = try Kernels.processDefault()
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            Foundation.exit(2)
        }
        // ArgumentParser's own main follows a bad value a command finds while it
        // runs (a file, a model, a size) with the root's usage line, "sisa
        // <subcommand>", which says nothing; the message alone does, with the
        // same exit status (64) as a bad option.
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        do { try command.run() } catch let e as ValidationError {
            FileHandle.standardError.write(Data("Error: \(e.message)\n".utf8))
            Foundation.exit(ExitCode.validationFailure.rawValue)
        } catch { exit(withError: error) }
    }
}

/// Model shape options shared by commands that build a model.
struct ModelOptions: ParsableArguments {
    @Option(help: "Named configuration: nano (2 layers, 2 heads, width 64, context 64), tiny (4, 4, 128, 128), small (6, 8, 256, 256).")
    var preset: String?
    @Option(help: "Transformer blocks (overrides the preset).") var layers: Int?
    @Option(help: "Attention heads (overrides the preset).") var heads: Int?
    @Option(help: "Model width (overrides the preset).") var dim: Int?
    @Option(help: "Context length: bytes for a byte-level model (overrides the preset), tokens on a base (at most the base's).") var ctx: Int?

    func resolve(defaultPreset: String = "tiny") throws -> GPT2Configuration {
        let name = preset ?? defaultPreset
        guard var c = GPT2Configuration.presets[name] else {
            throw ValidationError("unknown preset '\(name)' (known: nano, tiny, small)")
        }
        if let layers { c.layers = layers }
        if let heads { c.heads = heads }
        if let dim { c.dim = dim }
        if let ctx { c.context = ctx }
        do { try c.validate() } catch { throw ValidationError("\(error)") }
        return c
    }
}

/// Where the store lives.
struct StoreOptions: ParsableArguments {
    @Option(help: "Store folder (default: $SISA_STORE, else ./shards).")
    var store: String?

    var url: URL {
        let path = store ?? ProcessInfo.processInfo.environment["SISA_STORE"] ?? "shards"
        return URL(fileURLWithPath: path)
    }

    func open(writer: String? = nil) throws -> Store {
        try Store.open(at: url, writer: writer)
    }
}

/// The JSON every command writes: sorted keys, pretty, non-finite numbers as strings.
func reportEncoder() -> JSONEncoder {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .prettyPrinted]
    e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return e
}

/// Prints JSON to stdout.
func printJSON<T: Encodable>(_ value: T) throws {
    print(String(decoding: try reportEncoder().encode(value), as: UTF8.self))
}

/// Prints JSON on one line (long id lists stay readable by tools, not by eye).
func printCompactJSON<T: Encodable>(_ value: T) throws {
    let e = reportEncoder()
    e.outputFormatting = [.sortedKeys]
    print(String(decoding: try e.encode(value), as: UTF8.self))
}

/// Writes JSON to a file.
func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    try reportEncoder().encode(value).write(to: URL(fileURLWithPath: path))
}

func printJSONObject(_ obj: Any) throws {
    let d = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .prettyPrinted])
    print(String(decoding: d, as: UTF8.self))
}

/// Human output goes to stderr when --json owns stdout.
func note(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

/// Training progress: an updating line per event on a terminal, plain log
/// lines (at most one per shard every few seconds) otherwise. Always stderr.
/// `@unchecked Sendable`: `lastPrint` is only touched with `lock` held.
final class ProgressPrinter: @unchecked Sendable {
    private let lock = NSLock()
    private let tty = isatty(2) != 0
    private var lastPrint: [Int: Date] = [:]
    private let quiet: Bool

    init(quiet: Bool = false) { self.quiet = quiet }

    func handler() -> (@Sendable (TrainProgress) -> Void)? {
        if quiet { return nil }
        let printer = self
        return { @Sendable (p: TrainProgress) in printer.report(p) }
    }

    private func report(_ p: TrainProgress) {
        lock.withLock {
            let line = String(format: "shard %d  stage %d/%d  step %d/%d  loss %.3f  %.1fk tok/s  ETA %@",
                              p.shard, p.stage + 1, p.stages, p.step, p.steps, p.loss, p.tokensPerSecond / 1000,
                              formatDuration(p.etaSeconds) as NSString)
            if tty {
                FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + (p.doneSteps == p.totalSteps ? "\n" : "")).utf8))
            } else {
                let now = Date()
                if p.doneSteps == p.totalSteps || now.timeIntervalSince(lastPrint[p.shard] ?? .distantPast) >= 5 {
                    lastPrint[p.shard] = now
                    FileHandle.standardError.write(Data((line + "\n").utf8))
                }
            }
        }
    }
}

func formatDuration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
}
