import ArgumentParser
import Foundation
import SisaCoordinator

struct ChallengeScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "challenge-score",
        abstract: "The NeurIPS 2023 unlearning challenge's forgetting score F of two populations of models.",
        discussion: """
        U.json and R.json each hold a JSON array of arrays, [model][example]: the confidence of every forget \
        example under each of N unlearned and N retrained models (the same N, the same examples in the same \
        order). For each example, ε is the best (ε, δ) bound over the challenge's single- and double-threshold \
        decision rules (100 thresholds per unit) that tell the two populations apart; F is the mean of bucket \
        points, 1 for ε in [0, 0.5), halving every 0.5, none from ceil(ln(N − 1)) on (Triantafillou et al. \
        2024; google-deepmind/unlearning_evaluation). F near 1 means the unlearned models cannot be told from \
        retrained ones; at small N even two samples of one distribution score well under 1, see \
        `sisa benchmark challenge`, which reports that ceiling.
        JSON out: {"epsilons": [...], "forgetScore": F, "models": N, "examples": E, "maxEpsilon": ...}.
        """)
    @Option(help: "JSON [model][example] confidences of the unlearned models.") var unlearned: String
    @Option(help: "JSON [model][example] confidences of the retrained models.") var retrained: String
    @Option(help: "δ of the (ε, δ) bound.") var delta: Double = ChallengeScore.defaultDelta
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let r = try ChallengeScore.score(unlearned: try Self.load(unlearned), retrained: try Self.load(retrained), delta: delta)
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys]
            print(String(decoding: try e.encode(r), as: UTF8.self))
            return
        }
        let sorted = r.epsilons.sorted()
        print(String(format: "forget score F = %.4f over %d examples, %d models per population (no points from ε ≥ %.0f)",
                     r.forgetScore, r.examples, r.models, r.maxEpsilon))
        print(String(format: "ε: min %.3f, median %.3f, max %.3f", sorted.first!, ChallengeScoreCommand.median(sorted), sorted.last!))
    }

    static func median(_ s: [Double]) -> Double { s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }

    /// A [model][example] array of numbers, with errors that name the file.
    static func load(_ path: String) throws -> [[Double]] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw CoordinatorError.io("\(path): cannot read (\(error.localizedDescription))")
        }
        do { return try JSONDecoder().decode([[Double]].self, from: data) } catch {
            throw CoordinatorError.invalidInput("\(path): expected a JSON array of arrays of numbers, [model][example] (\(jsonReason(error)))")
        }
    }

    private static func jsonReason(_ error: Error) -> String {
        switch error as? DecodingError {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c), .keyNotFound(_, let c):
            let at = c.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            return (at.isEmpty ? "" : "at [\(at.joined(separator: "]["))]: ") + c.debugDescription
        default:
            return "\(error)"
        }
    }
}
