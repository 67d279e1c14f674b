import ArgumentParser
import Foundation
import SisaCoordinator
import SisaEngine

/// Texts from the command line or a file: repeated --text, or FILE of one
/// text per line, or JSON lines with a "text" field.
struct TextInputOptions: ParsableArguments {
    // Unconditional: a text may start with a dash ("-5 degrees").
    @Option(parsing: .unconditionalSingleValue, help: "A text (repeat for several).") var text: [String] = []
    @Argument(help: "File of texts: one per line (with --base every line, blank ones included), or JSON lines with a \"text\" field (multi-line texts).") var file: String?
    @Option(help: "auto (jsonl for .jsonl/.ndjson files, else lines), lines or jsonl.") var format: String = "auto"

    func validate() throws {
        guard ["auto", "lines", "jsonl"].contains(format) else { throw ValidationError("--format must be auto, lines or jsonl") }
    }

    /// The texts, command-line ones first, then the file's in order. `blankLines`: every
    /// line of a file of lines is a text, blank ones included (a base model's texts; a
    /// store's byte models skip them, as ingest does).
    func texts(blankLines: Bool) throws -> [[UInt8]] {
        var out = text.map { Array($0.utf8) }
        if let file {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: file, isDirectory: &isDir), isDir.boolValue {
                throw ValidationError("\(file): is a directory, not a file of texts")
            }
            let ext = (file as NSString).pathExtension.lowercased()
            let f: InputFormat = format == "lines" ? .lines : format == "jsonl" ? .jsonl : ext == "jsonl" || ext == "ndjson" ? .jsonl : .lines
            let parsed = try RecordParser.parse(path: file, format: f, emptyTexts: true, blankLines: blankLines).map(\.text)
            guard !parsed.isEmpty else { throw ValidationError("\(file): no texts in it") }
            out += parsed
        }
        guard !out.isEmpty else { throw ValidationError("give --text T or a FILE of texts") }
        return out
    }
}

/// What is trained on a pretrained base: a LoRA adapter (the base frozen) or every weight.
enum AdapterKind: String, ExpressibleByArgument, CaseIterable {
    case lora, full
}

/// The adapter options shared by `bench train --base` and `init --base`.
struct AdapterOptions: ParsableArguments {
    @Option(help: "lora (a low-rank adapter per target, the base frozen) or full (fine-tune every weight).")
    var adapter: AdapterKind = .lora
    @Option(help: "LoRA rank r.") var loraRank: Int = 8
    @Option(help: "LoRA alpha (updates are scaled by alpha / r).") var loraAlpha: Float = 16
    @Option(help: ArgumentHelp("Projections to adapt, comma-separated.",
                               discussion: "llama: q, k, v, o, gate, up, down; gpt2: attn, proj, fc, mlp_proj."))
    var loraTargets: String?
    @Option(help: "Adapt only the top K layers (default: every layer).") var loraLayers: Int?

    /// Whether any adapter option was given on the command line.
    var isSet: Bool { adapter != .lora || loraRank != 8 || loraAlpha != 16 || loraTargets != nil || loraLayers != nil }

    /// The LoRA configuration for a base of this shape, checked (nil for full fine-tuning).
    func lora(for config: BaseModel.Configuration) throws -> LoRAConfiguration? {
        guard adapter == .lora else {
            guard loraTargets == nil, loraLayers == nil else { throw ValidationError("--lora-targets and --lora-layers need --adapter lora") }
            return nil
        }
        let defaultTargets = config.architecture == .llama ? ["q", "v"] : ["attn"]
        let targets = loraTargets.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? defaultTargets
        let c = LoRAConfiguration(rank: loraRank, alpha: loraAlpha, targets: targets, layers: loraLayers)
        do {
            return try c.resolved(against: config.loraTargets.map(\.name), layerCount: config.layers)
        } catch { throw ValidationError("\(error)") }
    }
}

/// Loads `--base PATH` with a clear error for the user.
func loadBase(_ path: String, context: Int? = nil, trainable: Bool = false, pool: WorkerPool = .shared) throws -> BaseModel {
    let url = URL(fileURLWithPath: path)
    do { return try BaseModel.load(url, context: context, trainable: trainable, pool: pool) } catch let e as EngineError {
        throw ValidationError("\(e)")
    }
}
