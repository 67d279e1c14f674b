import ArgumentParser
import Foundation
import SisaCoordinator

struct Privacy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Epsilon of DP-SGD with Poisson sampling: plan a privacy budget before training.",
        discussion: """
        The RDP accountant of the sampled Gaussian mechanism (Mironov, Talwar and Zhang 2019): each of \
        --steps steps samples every record with probability --sampling-rate and adds Gaussian noise of \
        --noise times the clipping norm. RDP is composed over the steps at orders 1.1 ... 10.9 and \
        12 ... 63 and converted to (epsilon, delta) as in Balle et al. 2020. It agrees with Opacus's RDP \
        accountant to 1e-3 (the suite checks a grid of its values).
        """)
    @Option(help: "Probability that a record is in a step's batch (mean batch / records).") var samplingRate: Double
    @Option(help: "Noise multiplier sigma: noise standard deviation / clipping norm.") var noise: Double
    @Option(help: "Optimizer steps.") var steps: Int
    @Option(help: "Target delta.") var delta: Double = 1e-5
    @Flag(help: "Print JSON (epsilon, order, ...).") var json = false

    func run() throws {
        guard samplingRate > 0, samplingRate <= 1 else { throw ValidationError("--sampling-rate must be in (0, 1]") }
        guard noise > 0, noise.isFinite else { throw ValidationError("--noise must be positive") }
        guard steps >= 0 else { throw ValidationError("--steps must be >= 0") }
        guard delta > 0, delta < 1 else { throw ValidationError("--delta must be in (0, 1)") }
        let r = RDPAccountant.epsilon(samplingRate: samplingRate, noise: noise, steps: steps, delta: delta)
        if json {
            try printJSONObject(["epsilon": r.epsilon, "order": r.order, "delta": delta, "samplingRate": samplingRate,
                                 "noise": noise, "steps": steps])
        } else {
            print(String(format: "epsilon %.4f at delta %g (best RDP order %.1f): %d steps, sampling rate %g, noise %g",
                         r.epsilon, delta, r.order, steps, samplingRate, noise))
        }
    }
}
