import ArgumentParser
import Foundation
import SisaCoordinator

/// Where shard training runs: this machine, or Slurm job arrays.
struct ExecutorOptions: ParsableArguments {
    @Option(help: ArgumentHelp("local (this machine) or slurm (one job array task per shard).",
                               discussion: "With slurm the store folder must be on storage every node sees, and this sisa binary (or --slurm-sisa) must run on the nodes."))
    var executor: String = "local"
    @Option(help: "Slurm partition (default: the cluster's default).") var slurmPartition: String?
    @Option(help: ArgumentHelp("Extra sbatch arguments, split on spaces, e.g. \"--time=2:00:00 --account=lab\".", valueName: "args"))
    var slurmArgs: String?
    @Option(help: "CPUs (and training threads) per Slurm task (default: Slurm's, one).") var slurmCpus: Int?
    @Option(help: "The sisa binary the Slurm tasks run (default: this one).") var slurmSisa: String?
    @Option(help: "Resubmissions of a Slurm task that failed, was cancelled or timed out.") var maxRetries: Int = 2

    func validate() throws {
        guard ["local", "slurm"].contains(executor) else { throw ValidationError("--executor must be local or slurm") }
        guard maxRetries >= 0 else { throw ValidationError("--max-retries must be >= 0") }
        if let c = slurmCpus, c < 1 { throw ValidationError("--slurm-cpus must be >= 1") }
        if executor == "local", slurmPartition != nil || slurmArgs != nil || slurmCpus != nil || slurmSisa != nil {
            throw ValidationError("--slurm-* options need --executor slurm")
        }
    }

    /// nil for local (the caller's --jobs and --threads apply).
    func make() throws -> ShardExecutor? {
        guard executor == "slurm" else { return nil }
        let binary = URL(fileURLWithPath: slurmSisa ?? Bundle.main.executablePath ?? CommandLine.arguments[0]).standardizedFileURL
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw ValidationError("\(binary.path): not an executable sisa binary (--slurm-sisa)")
        }
        var o = SlurmExecutor.Options(worker: binary)
        o.partition = slurmPartition
        o.sbatchArgs = slurmArgs.map { $0.split(separator: " ").map(String.init) } ?? []
        o.maxRetries = maxRetries
        o.cpusPerTask = slurmCpus
        return SlurmExecutor(options: o, note: { note("slurm: \($0)") })
    }
}
