import ArgumentParser
import Foundation
import SisaCoordinator

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Train one shard from a work order (what a Slurm task runs; `train --executor slurm` writes the orders).",
        discussion: """
        Reads FILE (in <store>/work/), trains the shard from the latest readable checkpoint of its plan, \
        writes each stage's checkpoint atomically into <store>/checkpoints/ and a result file next to the \
        order. It never opens the catalog: the coordinator records the results.
        """)
    @Option(help: "The work order file.") var order: String
    @Option(help: "Training threads (default: SLURM_CPUS_PER_TASK, else 1). Results do not depend on it.") var threads: Int?

    func run() throws {
        let url = URL(fileURLWithPath: order)
        let r = try Worker.run(order: url, threads: threads) { note($0) }
        let trained = r.report.stagesTrained == 0 ? "nothing to train (its last checkpoint was on disk)"
            : "trained stages \(r.report.fromStage)...\(r.report.fromStage + r.report.stagesTrained - 1) (\(r.report.steps) steps, \(String(format: "%.1f", r.report.seconds)) s)"
        print("shard \(r.shard): \(trained), digest \(r.report.digest.prefix(16))")
    }
}
