import ArgumentParser
import Foundation
import SisaCoordinator

/// Where shard training runs: this machine, or Slurm job arrays.
struct ExecutorOptions: ParsableArguments {
    @Option(help: ArgumentHelp("local (this machine) or slurm (one job array task per shard).",
                               discussion: "With slurm the store folder must be on storage every node sees, and this sisa binary (or --slurm-sisa) must run on the nodes. --jobs and --threads apply to local only: every shard gets its own task, with --slurm-cpus threads."))
    var executor: String = "local"
    @Option(help: "Slurm partition (default: the cluster's default).") var slurmPartition: String?
    @Option(help: ArgumentHelp("Extra sbatch arguments, split like a shell does (quotes group), e.g. \"--time=2:00:00 --account=lab\".", valueName: "args"))
    var slurmArgs: String?
    @Option(help: "CPUs (and training threads) per Slurm task (default: Slurm's, one).") var slurmCpus: Int?
    @Option(help: "The sisa binary the Slurm tasks run (default: this one).") var slurmSisa: String?
    @Option(help: "Resubmissions of a Slurm task that failed, was cancelled or timed out (default 2).") var maxRetries: Int?

    func validate() throws {
        guard ["local", "slurm"].contains(executor) else { throw ValidationError("--executor must be local or slurm") }
        if let m = maxRetries, m < 0 { throw ValidationError("--max-retries must be >= 0") }
        if let c = slurmCpus, c < 1 { throw ValidationError("--slurm-cpus must be >= 1") }
        if executor == "local", slurmPartition != nil || slurmArgs != nil || slurmCpus != nil || slurmSisa != nil || maxRetries != nil {
            throw ValidationError("--slurm-* and --max-retries need --executor slurm")
        }
        if let a = slurmArgs { _ = try SlurmExecutor.Options.splitArguments(a) }
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
        o.sbatchArgs = try slurmArgs.map(SlurmExecutor.Options.splitArguments) ?? []
        o.maxRetries = maxRetries ?? 2
        o.cpusPerTask = slurmCpus
        return SlurmExecutor(options: o, note: { note("slurm: \($0)") })
    }
}
