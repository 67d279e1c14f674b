import Foundation

/// A self-contained SVG of one or more comparisons: forget NLL and holdout
/// perplexity against unlearning steps, each run with its original (dotted)
/// and exact (dashed) levels as reference lines.
public enum ComparisonPlot {
    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]

    public static func svg(_ runs: [(label: String, report: ComparisonReport)], title: String? = nil) -> String {
        // Three legend entries per row; the picture grows with the legend.
        let legendRows = (runs.count + 2) / 3
        let width = 980.0, height = 430.0 + 18 * Double(max(0, legendRows - 1))
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>

        """
        let heading = title ?? "Exact vs approximate unlearning (\(runs.map { "\($0.label): \($0.report.approximate.method.rawValue)" }.joined(separator: ", ")))"
        out += "<text x=\"\(width / 2)\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">\(escape(heading))</text>\n"
        out += panel(runs, x0: 70, y0: 50, w: 380, h: 290, ylabel: "forget-set NLL (nats/token)", value: { $0.forgetNLL }, band: { $0.forgetNLLCI },
                     original: { $0.original.forgetNLL }, exact: { $0.exact.forgetNLL })
        out += panel(runs, x0: 570, y0: 50, w: 380, h: 290, ylabel: "holdout perplexity, all groups (log scale)", value: { $0.holdoutPPL }, band: { $0.holdoutPPLCI },
                     original: { $0.original.holdoutPPL }, exact: { $0.exact.holdoutPPL }, logScale: true)
        // Legend.
        var ly = 385.0
        var lx = 70.0
        for (i, run) in runs.enumerated() {
            let c = colors[i % colors.count]
            out += "<line x1=\"\(lx)\" y1=\"\(ly)\" x2=\"\(lx + 24)\" y2=\"\(ly)\" stroke=\"\(c)\" stroke-width=\"2.5\"/>"
            out += "<text x=\"\(lx + 30)\" y=\"\(ly + 4)\">\(escape(run.label)) (\(run.report.approximate.method.rawValue), lr \(run.report.approximate.learningRate))</text>\n"
            lx += 300
            if lx > 800 { lx = 70; ly += 18 }
        }
        out += "<line x1=\"70\" y1=\"\(ly + 22)\" x2=\"94\" y2=\"\(ly + 22)\" stroke=\"#444\" stroke-dasharray=\"7,4\" stroke-width=\"1.5\"/>"
        out += "<text x=\"100\" y=\"\(ly + 26)\">exact (retrained without the forget set)</text>"
        out += "<line x1=\"370\" y1=\"\(ly + 22)\" x2=\"394\" y2=\"\(ly + 22)\" stroke=\"#444\" stroke-dasharray=\"2,3\" stroke-width=\"1.5\"/>"
        out += "<text x=\"400\" y=\"\(ly + 26)\">original (before unlearning)</text>\n"
        out += "<rect x=\"640\" y=\"\(ly + 16)\" width=\"24\" height=\"12\" fill=\"#444\" fill-opacity=\"0.15\"/>"
        out += "<text x=\"670\" y=\"\(ly + 26)\">95% bootstrap interval over records</text>\n"
        out += "</svg>\n"
        return out
    }

    private static func panel(_ runs: [(label: String, report: ComparisonReport)], x0: Double, y0: Double, w: Double, h: Double,
                              ylabel: String, value: (ModelMetrics) -> Double, band: (ModelMetrics) -> Interval?,
                              original: (ComparisonReport) -> Double, exact: (ComparisonReport) -> Double,
                              logScale: Bool = false) -> String {
        let xs = runs.flatMap { $0.report.approximate.curve.compactMap { $0.step } }
        // On a log scale positions are computed on log10 of the values.
        let tf: (Double) -> Double = logScale ? { log10(max($0, 1e-12)) } : { $0 }
        let ys = runs.flatMap { r in
            r.report.approximate.curve.flatMap { [value($0)] + (band($0).map { [$0.low, $0.high] } ?? []) }
                + [original(r.report), exact(r.report)]
        }
            .filter(\.isFinite).map(tf)
        let xmax = Double(max(1, xs.max() ?? 1))
        var (ymin, ymax) = (ys.min() ?? 0, ys.max() ?? 1)
        if ymax - ymin < 1e-9 { ymin -= 0.5; ymax += 0.5 }
        let pad = (ymax - ymin) * 0.06
        ymin -= pad
        ymax += pad
        func px(_ x: Double) -> Double { x0 + x / xmax * w }
        func py(_ v: Double) -> Double { let y = tf(v); return y0 + h - (min(max(y, ymin), ymax) - ymin) / (ymax - ymin) * h }
        var s = "<g>\n<rect x=\"\(x0)\" y=\"\(y0)\" width=\"\(w)\" height=\"\(h)\" fill=\"none\" stroke=\"#333\"/>\n"
        let yticks = logScale ? logTicks(pow(10, ymin), pow(10, ymax)) : ticks(ymin, ymax)
        for t in yticks {
            s += "<line x1=\"\(x0 - 4)\" y1=\"\(py(t))\" x2=\"\(x0 + w)\" y2=\"\(py(t))\" stroke=\"#e5e5e5\"/>"
            s += "<text x=\"\(x0 - 7)\" y=\"\(py(t) + 4)\" text-anchor=\"end\">\(fmt(t))</text>\n"
        }
        for t in ticks(0, xmax) where t <= xmax {
            s += "<line x1=\"\(px(t))\" y1=\"\(y0 + h)\" x2=\"\(px(t))\" y2=\"\(y0 + h + 4)\" stroke=\"#333\"/>"
            s += "<text x=\"\(px(t))\" y=\"\(y0 + h + 17)\" text-anchor=\"middle\">\(fmt(t))</text>\n"
        }
        s += "<text x=\"\(x0 + w / 2)\" y=\"\(y0 + h + 36)\" text-anchor=\"middle\">unlearning steps</text>\n"
        s += "<text transform=\"translate(\(x0 - 48) \(y0 + h / 2)) rotate(-90)\" text-anchor=\"middle\">\(escape(ylabel))</text>\n"
        for (i, run) in runs.enumerated() {
            let c = colors[i % colors.count]
            let o = original(run.report), e = exact(run.report)
            s += "<line x1=\"\(x0)\" y1=\"\(py(o))\" x2=\"\(x0 + w)\" y2=\"\(py(o))\" stroke=\"\(c)\" stroke-dasharray=\"2,3\" stroke-width=\"1.5\"/>"
            s += "<line x1=\"\(x0)\" y1=\"\(py(e))\" x2=\"\(x0 + w)\" y2=\"\(py(e))\" stroke=\"\(c)\" stroke-dasharray=\"7,4\" stroke-width=\"1.5\"/>\n"
            // The 95% bootstrap band around the curve.
            let banded = run.report.approximate.curve.compactMap { m in band(m).map { (Double(m.step ?? 0), $0) } }
            if banded.count == run.report.approximate.curve.count, !banded.isEmpty {
                let upper = banded.map { "\(fmt(px($0.0), 1)),\(fmt(py($0.1.high), 1))" }
                let lower = banded.reversed().map { "\(fmt(px($0.0), 1)),\(fmt(py($0.1.low), 1))" }
                s += "<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(c)\" fill-opacity=\"0.15\" stroke=\"none\"/>\n"
            }
            let pts = run.report.approximate.curve.map { "\(fmt(px(Double($0.step ?? 0)), 1)),\(fmt(py(value($0)), 1))" }
            s += "<polyline points=\"\(pts.joined(separator: " "))\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"2.5\"/>\n"
            for m in run.report.approximate.curve {
                s += "<circle cx=\"\(px(Double(m.step ?? 0)))\" cy=\"\(py(value(m)))\" r=\"2.5\" fill=\"\(c)\"/>"
            }
            s += "\n"
        }
        return s + "</g>\n"
    }

    /// About five round tick values between lo and hi.
    static func ticks(_ lo: Double, _ hi: Double) -> [Double] {
        let raw = (hi - lo) / 5
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? raw
        var t = ceil(lo / step) * step
        var out: [Double] = []
        while t <= hi + 1e-9 { out.append(t); t += step }
        return out
    }

    /// 1, 2, 5 x 10^k between lo and hi (at most about eight of them).
    static func logTicks(_ lo: Double, _ hi: Double) -> [Double] {
        var out: [Double] = []
        var k = floor(log10(lo))
        while pow(10, k) <= hi * 1.0001 {
            for m in [1.0, 2, 5] where m * pow(10, k) >= lo * 0.9999 && m * pow(10, k) <= hi * 1.0001 { out.append(m * pow(10, k)) }
            k += 1
        }
        if out.count < 3 { return ticks(lo, hi) }  // a narrow range: plain round values
        return out.count > 8 ? out.filter { log10($0).rounded() == log10($0) } : out
    }

    static func fmt(_ v: Double, _ digits: Int? = nil) -> String {
        if let digits { return String(format: "%.\(digits)f", v) }
        if v == v.rounded() && abs(v) < 1e6 { return String(Int(v)) }
        return String(format: abs(v) >= 10 ? "%.1f" : "%.2f", v)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
