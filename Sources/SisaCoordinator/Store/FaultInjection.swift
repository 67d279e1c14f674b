import Foundation
import Synchronization

/// Faults the crash tests inject at chosen points instead of after sleeps.
/// Read once from the environment of a `sisa` process; never set in use
/// (the names say TEST), and nothing a store computes depends on them.
///
/// - `SISA_TEST_KILL_AFTER_CHECKPOINTS=N`: the process SIGKILLs itself right
///   after its N-th checkpoint is durable and recorded (mid-training, at a
///   known point).
/// - `SISA_TEST_KILL_BEFORE_RECORDING_CHECKPOINT=N`: the same, between the
///   N-th checkpoint file's rename and its row in the catalog (an orphan file).
/// - `SISA_TEST_CHECKPOINT_GATE=PATH`: after each checkpoint (a local one, or
///   a Slurm task's), the process creates `PATH.waiting-s<shard>-<stage>` and
///   waits until `PATH` exists: training held in flight, as long as a test needs.
/// - `SISA_TEST_KILL_DURING_INGEST=before-commit|after-commit`: the process
///   SIGKILLs itself once an ingest has inserted every record, just before its
///   transaction commits, or just after (before anyone is told).
/// - `SISA_TEST_INFERENCE_GATE=PATH`: each query or score, on its inference
///   thread, first creates `PATH.waiting-<uuid>` (so a test sees it in flight)
///   and then waits until `PATH` exists (the test opens the gate).
public enum FaultInjection {
    static let killAfterCheckpoints: Int? = ProcessInfo.processInfo.environment["SISA_TEST_KILL_AFTER_CHECKPOINTS"].flatMap(Int.init)
    static let killBeforeRecording: Int? = ProcessInfo.processInfo.environment["SISA_TEST_KILL_BEFORE_RECORDING_CHECKPOINT"].flatMap(Int.init)
    static let inferenceGate: String? = ProcessInfo.processInfo.environment["SISA_TEST_INFERENCE_GATE"]
    static let checkpointGate: String? = ProcessInfo.processInfo.environment["SISA_TEST_CHECKPOINT_GATE"]
    static let killDuringIngest: IngestPoint? = ProcessInfo.processInfo.environment["SISA_TEST_KILL_DURING_INGEST"].flatMap(IngestPoint.init)
    private static let checkpoints = Atomic<Int>(0)
    private static let files = Atomic<Int>(0)

    enum IngestPoint: String { case beforeCommit = "before-commit", afterCommit = "after-commit" }

    static func ingest(at point: IngestPoint) {
        if killDuringIngest == point { kill(getpid(), SIGKILL) }
    }

    /// Called when a checkpoint file is durable, before the catalog records it.
    static func checkpointFileWritten() {
        guard let n = killBeforeRecording else { return }
        if files.add(1, ordering: .relaxed).newValue >= n { kill(getpid(), SIGKILL) }
    }

    /// Called after each checkpoint is written and recorded (by a Slurm task: written).
    static func checkpointWritten(shard: Int, stage: Int) {
        if let gate = checkpointGate { wait(at: gate, tag: "s\(shard)-\(stage)") }
        guard let n = killAfterCheckpoints else { return }
        if checkpoints.add(1, ordering: .relaxed).newValue >= n { kill(getpid(), SIGKILL) }
    }

    private static func wait(at gate: String, tag: String) {
        _ = FileManager.default.createFile(atPath: "\(gate).waiting-\(tag)", contents: nil)
        while !FileManager.default.fileExists(atPath: gate) { usleep(2_000) }
    }

    /// Called by the server at the start of each inference job.
    public static func passInferenceGate() {
        guard let gate = inferenceGate else { return }
        wait(at: gate, tag: UUID().uuidString)
    }
}
