import Hummingbird
import SisaCoordinator

/// `Authorization: Bearer TOKEN`, looked up by its hash in the catalog
/// (`Store.authenticate`: tokens are only ever compared as hashes). A
/// missing or unknown token is 401, after the delay `AuthFailures` sets for
/// the client; whether the role fits is `RequireRole`'s call (403).
struct TokenAuth: RouterMiddleware {
    typealias Context = SisaContext
    let tokens: @Sendable (String) throws -> (name: String, role: Role)?
    let failures: AuthFailures
    /// X-Forwarded-For names the client (`--behind-tls-proxy`).
    let behindProxy: Bool

    func handle(_ request: Request, context: SisaContext,
                next: (Request, SisaContext) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
              let caller = try tokens(String(header.dropFirst("Bearer ".count)).trimmingCharacters(in: .whitespaces)) else {
            try await failures.failed(client: context.client(of: request, behindProxy: behindProxy))
            throw HTTPError(.unauthorized, message: "missing or unknown token (send Authorization: Bearer TOKEN; `sisa token create`)")
        }
        var context = context
        context.caller = caller
        return try await next(request, context)
    }
}
