import Foundation

/// Several runs of the TOFU-style benchmark (seeds of the people and of the
/// store) folded into one row per split and method: the mean and the range
/// of each figure over the runs. One run's KS test on a handful of forget
/// questions says little; the spread over seeds says how much.
public enum TOFUSummary {
    /// Mean, smallest and largest of one figure over the runs that have it.
    public struct Spread: Codable, Equatable, Sendable {
        public let mean: Double
        public let min: Double
        public let max: Double

        init?(_ xs: [Double]) {
            guard !xs.isEmpty else { return nil }
            mean = xs.reduce(0, +) / Double(xs.count)
            min = xs.min()!
            max = xs.max()!
        }
    }

    public struct Row: Codable, Equatable, Sendable {
        public let split: Double
        public let method: String
        public let runs: Int
        public let forgetRecords: Spread
        public let forgetQuality: Spread
        public let forgetQualityTrained: Spread
        /// Runs whose forget quality (TOFU's) is below 0.05: the KS test tells this model from the exact one.
        public let detected: Int
        public let utility: Spread
        public let holdoutPPL: Spread
        public let calibratedAUC: Spread?
        public let likelihoodGap: Spread?
        public let extractionRate: Spread?
        public let seconds: Spread
    }

    /// One row per (split, method), splits ascending, methods in order of first appearance.
    public static func rows(_ results: [TOFUResult]) -> [Row] {
        var methods: [String] = []
        for r in results where !methods.contains(r.method) { methods.append(r.method) }
        let splits = Array(Set(results.map(\.split))).sorted()
        return splits.flatMap { split in
            methods.compactMap { method -> Row? in
                let rs = results.filter { $0.split == split && $0.method == method }
                guard !rs.isEmpty else { return nil }
                return Row(split: split, method: method, runs: rs.count,
                           forgetRecords: Spread(rs.map { Double($0.forgetRecords) })!,
                           forgetQuality: Spread(rs.map(\.forgetQuality))!,
                           forgetQualityTrained: Spread(rs.map(\.forgetQualityTrained))!,
                           detected: rs.filter { $0.forgetQuality < 0.05 }.count,
                           utility: Spread(rs.map(\.utility))!, holdoutPPL: Spread(rs.map(\.holdoutPPL))!,
                           calibratedAUC: Spread(rs.compactMap(\.calibratedAUC)),
                           likelihoodGap: Spread(rs.compactMap(\.likelihoodGap)),
                           extractionRate: Spread(rs.compactMap(\.extractionRate)),
                           seconds: Spread(rs.map(\.seconds))!)
            }
        }
    }

    /// The rows as a markdown table: mean [min, max] over the runs.
    public static func table(_ rows: [Row]) -> String {
        func f(_ s: Spread?, _ fmt: String = "%.3f") -> String {
            guard let s else { return "-" }
            return s.min == s.max ? String(format: fmt, s.mean)
                : String(format: fmt + " [" + fmt + ", " + fmt + "]", s.mean, s.min, s.max)
        }
        var out = "| split | method | runs | forget q | forget quality (TOFU) | KS tells it from exact | forget quality (trained wording) | utility | holdout PPL | calibrated AUC | likelihood gap | extraction | seconds |\n"
        out += "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            out += "| \(String(format: "%g", r.split))% | \(r.method) | \(r.runs) | \(f(r.forgetRecords, "%.0f")) | "
                + "\(f(r.forgetQuality, "%.3g")) | \(r.detected)/\(r.runs) | \(f(r.forgetQualityTrained, "%.3g")) | "
                + "\(f(r.utility, "%.4f")) | \(f(r.holdoutPPL)) | \(f(r.calibratedAUC)) | \(f(r.likelihoodGap)) | "
                + "\(f(r.extractionRate, "%.2f")) | \(f(r.seconds, "%.1f")) |\n"
        }
        return out
    }
}
