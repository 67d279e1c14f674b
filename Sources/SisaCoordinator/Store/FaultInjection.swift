import Foundation
import Synchronization

/// Faults the crash tests inject at chosen points instead of after sleeps.
/// Read once from the environment of a `sisa` process; never set in use
/// (the names say TEST), and nothing a store computes depends on them.
///
/// - `SISA_TEST_KILL_AFTER_CHECKPOINTS=N`: the process SIGKILLs itself right
///   after its N-th checkpoint file is durable (mid-training, at a known point).
/// - `SISA_TEST_INFERENCE_GATE=PATH`: each query or score, on its inference
///   thread, first creates `PATH.waiting-<uuid>` (so a test sees it in flight)
///   and then waits until `PATH` exists (the test opens the gate).
public enum FaultInjection {
    static let killAfterCheckpoints: Int? = ProcessInfo.processInfo.environment["SISA_TEST_KILL_AFTER_CHECKPOINTS"].flatMap(Int.init)
    static let inferenceGate: String? = ProcessInfo.processInfo.environment["SISA_TEST_INFERENCE_GATE"]
    private static let checkpoints = Atomic<Int>(0)

    /// Called after each checkpoint is written and recorded.
    static func checkpointWritten() {
        guard let n = killAfterCheckpoints else { return }
        if checkpoints.add(1, ordering: .relaxed).newValue >= n { kill(getpid(), SIGKILL) }
    }

    /// Called by the server at the start of each inference job.
    public static func passInferenceGate() {
        guard let gate = inferenceGate else { return }
        FileManager.default.createFile(atPath: "\(gate).waiting-\(UUID().uuidString)", contents: nil)
        while !FileManager.default.fileExists(atPath: gate) { usleep(2_000) }
    }
}
