import Foundation

/// Forget quality (log scale) against model utility, one point per method
/// and split, as in the TOFU paper's figure: up and to the right is better,
/// and the exact model sits at forget quality 1 by definition.
public enum TOFUPlot {
    static let colors: [String: String] = ["exact": "#2ca02c", "none": "#7f7f7f", "ga": "#d62728", "graddiff": "#ff7f0e",
                                           "npo": "#9467bd", "filter": "#1f77b4", "dp": "#8c564b"]

    public static func svg(_ results: [TOFUResult], title: String = "TOFU-style benchmark: forget quality vs model utility") -> String {
        let width = 760.0, height = 520.0, x0 = 90.0, y0 = 50.0, w = 470.0, h = 380.0
        let us = results.map(\.utility)
        var uLo = us.min() ?? 0, uHi = us.max() ?? 1
        let pad = max(0.01, (uHi - uLo) * 0.08)
        uLo = max(0, uLo - pad); uHi = min(1, uHi + pad)
        if uHi <= uLo { uHi = uLo + 0.01 }
        // Forget quality on log10, down to the smallest p-value seen (at least 1e-4).
        let qLo = floor(min(-4, results.map { log10(max($0.forgetQuality, 1e-300)) }.min() ?? -4))
        let px = { (u: Double) in x0 + (u - uLo) / (uHi - uLo) * w }
        let py = { (q: Double) in y0 + h - (log10(max(q, pow(10, qLo))) - qLo) / (0 - qLo) * h }
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(width / 2)" y="24" text-anchor="middle" font-size="15" font-weight="bold">\(ComparisonPlot.escape(title))</text>
        <rect x="\(x0)" y="\(y0)" width="\(w)" height="\(h)" fill="none" stroke="#333"/>

        """
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
            out += "<text x=\"\(px(u))\" y=\"\(y0 + h + 20)\" text-anchor=\"middle\">\(String(format: "%.3f", u))</text>\n"
        }
        out += "<text x=\"\(x0 + w / 2)\" y=\"\(y0 + h + 42)\" text-anchor=\"middle\">model utility: mean per-byte probability of retained people's true answers</text>\n"
        out += "<text transform=\"translate(\(x0 - 62), \(y0 + h / 2)) rotate(-90)\" text-anchor=\"middle\">forget quality: KS p-value vs the retrained model (log)</text>\n"
        // Splits by marker: circle 1%, square 5%, triangle 10%.
        let splits = Array(Set(results.map(\.split))).sorted()
        for r in results {
            let c = colors[r.method] ?? "#000", x = px(r.utility), y = py(r.forgetQuality)
            let k = splits.firstIndex(of: r.split) ?? 0
            switch k % 3 {
            case 0: out += "<circle cx=\"\(x)\" cy=\"\(y)\" r=\"6\" fill=\"\(c)\" fill-opacity=\"0.85\"/>"
            case 1: out += "<rect x=\"\(x - 5.5)\" y=\"\(y - 5.5)\" width=\"11\" height=\"11\" fill=\"\(c)\" fill-opacity=\"0.85\"/>"
            default: out += "<path d=\"M\(x) \(y - 7) L\(x + 6.5) \(y + 5) L\(x - 6.5) \(y + 5) Z\" fill=\"\(c)\" fill-opacity=\"0.85\"/>"
            }
            out += "<title>\(r.method) \(r.split)%: forget quality \(r.forgetQuality), utility \(r.utility)</title>\n"
        }
        var ly = y0 + 10
        let lx = x0 + w + 30
        for m in TOFUMethod.allCases.map(\.rawValue) where results.contains(where: { $0.method == m }) {
            out += "<circle cx=\"\(lx)\" cy=\"\(ly)\" r=\"6\" fill=\"\(colors[m]!)\"/><text x=\"\(lx + 12)\" y=\"\(ly + 4)\">\(m)</text>\n"
            ly += 20
        }
        ly += 10
        for (k, s) in splits.enumerated() {
            let shape = ["circle", "square", "triangle"][k % 3]
            out += "<text x=\"\(lx - 6)\" y=\"\(ly + 4)\">\(shape): forget \(String(format: "%g", s))%</text>\n"
            ly += 18
        }
        out += "</svg>\n"
        return out
    }
}
