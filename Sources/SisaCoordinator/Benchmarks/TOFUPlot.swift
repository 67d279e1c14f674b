import Foundation

/// Forget quality (log scale) against model utility, one point per method
/// and split, as in the TOFU paper's figure: up and to the right is better,
/// and the exact model sits at forget quality 1 by definition.
public enum TOFUPlot {
    static let colors: [String: String] = ["exact": "#2ca02c", "none": "#7f7f7f", "ga": "#d62728", "graddiff": "#ff7f0e",
                                           "npo": "#9467bd", "filter": "#1f77b4", "dp": "#8c564b"]

    public static func svg(_ results: [TOFUResult], title: String = "TOFU-style benchmark: forget quality vs model utility") -> String {
        let width = 1180.0, height = 540.0
        let us = results.map(\.utility)
        var uLo = us.min() ?? 0, uHi = us.max() ?? 1
        let pad = max(0.01, (uHi - uLo) * 0.08)
        uLo = max(0, uLo - pad); uHi = min(1, uHi + pad)
        if uHi <= uLo { uHi = uLo + 0.01 }
        // Forget quality on log10, down to the smallest p-value seen (at least 1e-4), the same in both panels.
        let all = results.flatMap { [$0.forgetQuality, $0.forgetQualityTrained] }
        let qLo = floor(min(-4, all.map { log10(max($0, 1e-300)) }.min() ?? -4))
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(width / 2)" y="24" text-anchor="middle" font-size="15" font-weight="bold">\(ComparisonPlot.escape(title))</text>

        """
        out += panel(results, x0: 90, title: "truth ratio as TOFU defines it (paraphrased answers)", quality: \.forgetQuality,
                     uLo: uLo, uHi: uHi, qLo: qLo)
        out += panel(results, x0: 600, title: "truth ratio in the trained wording", quality: \.forgetQualityTrained,
                     uLo: uLo, uHi: uHi, qLo: qLo)
        // Legend: methods by colour (none as a ring: it sits under filter, same likelihoods), splits by shape.
        var lx = 90.0
        let ly = 505.0
        for m in TOFUMethod.allCases.map(\.rawValue) where results.contains(where: { $0.method == m }) {
            out += marker(m, shape: 0, x: lx, y: ly)
            out += "<text x=\"\(lx + 12)\" y=\"\(ly + 4)\">\(m)</text>\n"
            lx += 85
        }
        let splits = Array(Set(results.map(\.split))).sorted()
        lx += 20
        for (k, s) in splits.enumerated() {
            out += marker("legend", shape: k, x: lx, y: ly)
            out += "<text x=\"\(lx + 12)\" y=\"\(ly + 4)\">forget \(String(format: "%g", s))%</text>\n"
            lx += 95
        }
        out += "</svg>\n"
        return out
    }

    /// Marker of a method (colour) and split (0 circle, 1 square, 2 triangle); "none" is a ring.
    static func marker(_ method: String, shape: Int, x: Double, y: Double) -> String {
        let c = colors[method] ?? "#444"
        let paint = method == "none" ? "fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\"" : "fill=\"\(c)\" fill-opacity=\"0.85\""
        let grow = method == "none" ? 3.0 : 0
        switch shape % 3 {
        case 0: return "<circle cx=\"\(x)\" cy=\"\(y)\" r=\"\(6 + grow)\" \(paint)/>"
        case 1: return "<rect x=\"\(x - 5.5 - grow)\" y=\"\(y - 5.5 - grow)\" width=\"\(11 + 2 * grow)\" height=\"\(11 + 2 * grow)\" \(paint)/>"
        default:
            let r = 7 + grow
            return "<path d=\"M\(x) \(y - r) L\(x + r * 0.93) \(y + r * 0.72) L\(x - r * 0.93) \(y + r * 0.72) Z\" \(paint)/>"
        }
    }

    static func panel(_ results: [TOFUResult], x0: Double, title: String, quality: (TOFUResult) -> Double,
                      uLo: Double, uHi: Double, qLo: Double) -> String {
        let y0 = 60.0, w = 440.0, h = 370.0
        let px = { (u: Double) in x0 + (u - uLo) / (uHi - uLo) * w }
        let py = { (q: Double) in y0 + h - (log10(max(q, pow(10, qLo))) - qLo) / (0 - qLo) * h }
        var out = "<text x=\"\(x0 + w / 2)\" y=\"\(y0 - 10)\" text-anchor=\"middle\" font-weight=\"bold\">\(ComparisonPlot.escape(title))</text>\n"
        out += "<rect x=\"\(x0)\" y=\"\(y0)\" width=\"\(w)\" height=\"\(h)\" fill=\"none\" stroke=\"#333\"/>\n"
        for e in stride(from: Int(qLo), through: 0, by: 1) {
            let y = py(pow(10, Double(e)))
            out += "<line x1=\"\(x0)\" y1=\"\(y)\" x2=\"\(x0 + w)\" y2=\"\(y)\" stroke=\"#ddd\"/>"
            out += "<text x=\"\(x0 - 8)\" y=\"\(y + 4)\" text-anchor=\"end\">1e\(e)</text>\n"
        }
        // p = 0.05: below it the KS test tells the method's model from the retrained one.
        let y05 = py(0.05)
        out += "<line x1=\"\(x0)\" y1=\"\(y05)\" x2=\"\(x0 + w)\" y2=\"\(y05)\" stroke=\"#d62728\" stroke-dasharray=\"5,4\"/>"
        out += "<text x=\"\(x0 + w - 4)\" y=\"\(y05 - 5)\" text-anchor=\"end\" fill=\"#d62728\">p = 0.05</text>\n"
        for i in 0...4 {
            let u = uLo + (uHi - uLo) * Double(i) / 4
            out += "<line x1=\"\(px(u))\" y1=\"\(y0 + h)\" x2=\"\(px(u))\" y2=\"\(y0 + h + 5)\" stroke=\"#333\"/>"
            out += "<text x=\"\(px(u))\" y=\"\(y0 + h + 20)\" text-anchor=\"middle\">\(String(format: "%.2f", u))</text>\n"
        }
        out += "<text x=\"\(x0 + w / 2)\" y=\"\(y0 + h + 40)\" text-anchor=\"middle\">model utility: per-byte probability of retained people's answers</text>\n"
        out += "<text transform=\"translate(\(x0 - 55), \(y0 + h / 2)) rotate(-90)\" text-anchor=\"middle\">forget quality: KS p-value vs retrained (log)</text>\n"
        let splits = Array(Set(results.map(\.split))).sorted()
        for r in results {
            out += marker(r.method, shape: splits.firstIndex(of: r.split) ?? 0, x: px(r.utility), y: py(quality(r)))
            out += "<title>\(r.method) \(r.split)%: forget quality \(quality(r)), utility \(r.utility)</title>\n"
        }
        return out
    }
}
