import Foundation
import Hummingbird

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
