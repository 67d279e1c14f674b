import Foundation
import Hummingbird
import Prometheus
import SisaCoordinator

/// What `GET /v1/metrics` exposes, in Prometheus text: queue depth and
/// quarantined shards (read from the catalog at each scrape), retraining
/// seconds, and request latencies by route.
final class ServerMetrics: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    private let queueDepth: Gauge
    private let quarantined: Gauge
    private let retraining: DurationHistogram
    private let lock = NSLock()
    private var latencies: [String: DurationHistogram] = [:]

    init() {
        queueDepth = registry.makeGauge(name: "sisa_deletion_queue_depth", help: "Deletion requests not yet done (queued, retraining, failed).")
        quarantined = registry.makeGauge(name: "sisa_quarantined_shards", help: "Shards left out of queries by a pending deletion.")
        retraining = registry.makeDurationHistogram(
            name: "sisa_retraining_seconds", buckets: [.seconds(1), .seconds(5), .seconds(15), .seconds(60), .seconds(300), .seconds(1800)],
            help: "Wall clock of each background retraining (deletions or POST /v1/train).")
    }

    func recordRetraining(seconds: Double) {
        retraining.record(.milliseconds(Int64(seconds * 1000)))
    }

    func recordRequest(route: String, method: String, seconds: Double) {
        let histogram = lock.withLock { () -> DurationHistogram in
            let key = "\(method) \(route)"
            if let h = latencies[key] { return h }
            let h = registry.makeDurationHistogram(
                name: "sisa_http_request_duration_seconds", labels: [("route", route), ("method", method)],
                buckets: [.milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10)])
            latencies[key] = h
            return h
        }
        histogram.record(.microseconds(Int64(seconds * 1_000_000)))
    }

    /// The exposition, with the catalog-derived gauges refreshed.
    func scrape(_ store: Store) throws -> String {
        queueDepth.set(Double(try store.catalog.openDeletionRequests()))
        quarantined.set(Double(try store.catalog.shardStates().filter(\.quarantined).count))
        return registry.emitToString()
    }
}

/// Times every request, labelled by its route pattern (not its path, so ids do not multiply series).
struct RequestTiming: RouterMiddleware {
    typealias Context = SisaContext
    let metrics: ServerMetrics

    func handle(_ request: Request, context: SisaContext,
                next: (Request, SisaContext) async throws -> Response) async throws -> Response {
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer {
            metrics.recordRequest(route: context.endpointPath ?? "unmatched", method: request.method.rawValue,
                                  seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        return try await next(request, context)
    }
}
