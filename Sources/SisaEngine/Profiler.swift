import Foundation

/// Optional wall-clock accounting per kernel kind ("where the time goes").
/// Off by default; every kernel call is synchronous, so timing around it is exact.
public final class Profiler {
    public private(set) var seconds: [String: Double] = [:]
    public private(set) var calls: [String: Int] = [:]

    public init() {}

    @inline(__always)
    func measure<R>(_ name: String, _ body: () -> R) -> R {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = body()
        seconds[name, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        calls[name, default: 0] += 1
        return r
    }

    public func reset() { seconds = [:]; calls = [:] }

    public var report: [(name: String, seconds: Double)] {
        seconds.sorted { $0.value > $1.value }.map { ($0.key, $0.value) }
    }
}
