import Hummingbird
import SisaCoordinator

/// The role a route group needs: 403 unless the caller's role permits the
/// group's action. Every route is registered in a group that carries one
/// (`buildRouter`), so no handler checks its own role and a route cannot
/// be added without one.
struct RequireRole: RouterMiddleware {
    typealias Context = SisaContext
    let action: Action

    func handle(_ request: Request, context: SisaContext,
                next: (Request, SisaContext) async throws -> Response) async throws -> Response {
        guard let caller = context.caller else { throw HTTPError(.unauthorized, message: "missing or unknown token") }
        guard caller.role.permits(action) else {
            throw HTTPError(.forbidden, message: "role \(caller.role.rawValue) may not \(action.rawValue)")
        }
        return try await next(request, context)
    }
}
