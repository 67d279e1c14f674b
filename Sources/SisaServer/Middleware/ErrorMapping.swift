import Hummingbird
import SisaCoordinator

/// The one mapping from the library's errors to HTTP: handlers throw
/// `CoordinatorError` as the CLI does, and the client gets the same message
/// with the status that fits it.
struct ErrorMapping: RouterMiddleware {
    typealias Context = SisaContext

    func handle(_ request: Request, context: SisaContext,
                next: (Request, SisaContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as CoordinatorError {
            throw ErrorMapping.http(e)
        }
    }

    static func http(_ e: CoordinatorError) -> HTTPError {
        switch e {
        case .invalidInput, .configFrozen: return HTTPError(.badRequest, message: "\(e)")
        case .unknownIDs: return HTTPError(.notFound, message: "\(e)")
        case .duplicateID: return HTTPError(.conflict, message: "\(e)")
        case .notTrained, .locked, .numericsMismatch: return HTTPError(.serviceUnavailable, message: "\(e)")
        case .noStore, .storeExists, .corrupt, .io: return HTTPError(.internalServerError, message: "\(e)")
        }
    }
}
