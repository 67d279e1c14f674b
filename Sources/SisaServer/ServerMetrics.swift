import Foundation
import Hummingbird
import Prometheus
import SisaCoordinator

/// What `GET /v1/metrics` exposes, in Prometheus text: queue depth and
/// quarantined shards (read from the catalog at each scrape), retraining
/// seconds, request latencies by route, and refused (401) requests.
///
/// `@unchecked Sendable`: the Prometheus types are Sendable; the one mutable
/// field, `latencies`, is only touched with `lock` held.
final class ServerMetrics: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    private let queueDepth: Gauge
    private let quarantined: Gauge
    private let retraining: DurationHistogram
    private let lock = NSLock()
    private var latencies: [String: DurationHistogram] = [:]
    let authFailures: AuthFailures

    init(freeAuthFailures: Int = AuthFailures.freeAttempts) {
        queueDepth = registry.makeGauge(name: "sisa_deletion_queue_depth", help: "Deletion requests not yet done (queued, retraining, failed).")
        quarantined = registry.makeGauge(name: "sisa_quarantined_shards", help: "Shards left out of queries by a pending deletion.")
        retraining = registry.makeDurationHistogram(
            name: "sisa_retraining_seconds", buckets: [.seconds(1), .seconds(5), .seconds(15), .seconds(60), .seconds(300), .seconds(1800)],
            help: "Wall clock of each background retraining (deletions or POST /v1/train).")
        authFailures = AuthFailures(registry: registry, freeAttempts: freeAuthFailures)
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
