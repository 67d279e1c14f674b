import ArgumentParser
import SisaEngine

@main
struct Sisa: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sisa",
        abstract: "Train a sharded ensemble of small byte-level language models that can forget any record exactly.",
        subcommands: [Bench.self]
    )
}

/// Model shape options shared by commands that build a model.
struct ModelOptions: ParsableArguments {
    @Option(help: "Named configuration: nano (2 layers, 2 heads, width 64, context 64), tiny (4, 4, 128, 128), small (6, 8, 256, 256).")
    var preset: String?
    @Option(help: "Transformer blocks (overrides the preset).") var layers: Int?
    @Option(help: "Attention heads (overrides the preset).") var heads: Int?
    @Option(help: "Model width (overrides the preset).") var dim: Int?
    @Option(help: "Context length in bytes (overrides the preset).") var ctx: Int?

    func resolve(defaultPreset: String = "tiny") throws -> ModelConfig {
        let name = preset ?? defaultPreset
        guard var c = ModelConfig.presets[name] else {
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
