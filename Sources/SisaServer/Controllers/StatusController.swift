import Hummingbird
import NIOCore
import SisaCoordinator

/// `GET /v1/health` (no token), `GET /v1/status` and `GET /v1/metrics` (readers).
struct StatusController {
    let server: SisaServer

    func addPublicRoutes(to group: RouterGroup<SisaContext>) {
        group.get("/health") { _, _ in Health(status: "ok") }
    }

    func addRoutes(to group: RouterGroup<SisaContext>) {
        group.get("/status") { [server] _, _ -> StatusBody in
            StatusBody(status: try server.readers.status(), deletionWorkerError: server.deletions.lastError,
                       modelLoads: server.models.loads)
        }
        group.get("/metrics") { [server] _, _ -> Response in
            var response = Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: try server.metrics.scrape(server.readers))))
            response.headers[.contentType] = "text/plain; version=0.0.4"
            return response
        }
    }
}

struct Health: ResponseEncodable { let status: String }

struct StatusBody: ResponseEncodable {
    let status: StoreStatus
    let deletionWorkerError: String?
    /// Checkpoints loaded into memory so far (one per shard and key).
    let modelLoads: Int
}
