import Foundation
import Hummingbird
import SisaCoordinator

/// The request context: who is calling (set by `TokenAuth`).
public struct SisaContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var caller: (name: String, role: Role)?

    public init(source: Source) {
        coreContext = .init(source: source)
        caller = nil
    }

    /// Throws 403 unless the caller's role permits `action`.
    func require(_ action: Action) throws {
        guard let caller else { throw HTTPError(.unauthorized, message: "missing or unknown token") }
        guard caller.role.permits(action) else {
            throw HTTPError(.forbidden, message: "role \(caller.role.rawValue) may not \(action.rawValue)")
        }
    }
}

/// `Authorization: Bearer TOKEN`, checked against the hashes in the catalog.
/// A missing or unknown token is 401; whether the role fits is the route's call (403).
struct TokenAuth: RouterMiddleware {
    typealias Context = SisaContext
    let tokens: @Sendable (String) throws -> (name: String, role: Role)?

    func handle(_ request: Request, context: SisaContext,
                next: (Request, SisaContext) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
              let caller = try tokens(String(header.dropFirst("Bearer ".count)).trimmingCharacters(in: .whitespaces)) else {
            throw HTTPError(.unauthorized, message: "missing or unknown token (send Authorization: Bearer TOKEN; `sisa token create`)")
        }
        var context = context
        context.caller = caller
        return try await next(request, context)
    }
}
