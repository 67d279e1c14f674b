import Foundation
import HTTPTypes
import Hummingbird
import SisaCoordinator

/// The status page for people: `GET /` (the page, or the sign-in form),
/// `POST /login` (a token for a session), `POST /logout`.
///
/// Signing in exchanges an API token for a random session id
/// (`Store.openSession`); the cookie holds only that id, HttpOnly,
/// SameSite=Strict, and Secure when the server is behind TLS. The page
/// reads the session on every request, so revoking the token ends it.
struct PageController {
    static let cookie = "sisa_session"
    let server: SisaServer

    struct LoginForm: Decodable { let token: String? }

    func addRoutes(to router: Router<SisaContext>) {
        router.get("/") { [server] request, context -> Response in
            guard let caller = try PageController.caller(request, server: server) else {
                if PageController.sessionCookie(request) != nil { try await server.metrics.authFailures.failed(client: context.client(of: request, behindProxy: server.options.behindTLSProxy)) }
                return html(server.page.login(error: nil))
            }
            return html(try server.page.page(caller: "\(caller.name) (\(caller.role.rawValue))"))
        }
        router.post("/login") { [server] request, context -> Response in
            var request = request
            let body = String(buffer: try await request.collectBody(upTo: 4096))
            let form: LoginForm
            do { form = try URLEncodedFormDecoder().decode(LoginForm.self, from: body) } catch {
                throw HTTPError(.badRequest, message: "the sign-in form is malformed")
            }
            let token = form.token ?? ""
            guard let session = try await server.submit({ try $0.openSession(token: token) }),
                  session.caller.role.permits(.read) else {
                try await server.metrics.authFailures.failed(client: context.client(of: request, behindProxy: server.options.behindTLSProxy))
                return html(server.page.login(error: "Unknown or revoked token."), status: .unauthorized)
            }
            server.logger.info("page session opened for \(session.caller.name)")
            var response = html(server.page.signedIn(name: session.caller.name))
            response.headers[.setCookie] = PageController.cookieHeader(value: session.id, maxAge: Int(Store.sessionLifetime),
                                                                       secure: server.options.behindTLSProxy)
            return response
        }
        router.post("/logout") { [server] request, _ -> Response in
            if let id = PageController.sessionCookie(request) { try await server.submit { try $0.closeSession(id) } }
            var response = html(server.page.login(error: nil))
            response.headers[.setCookie] = PageController.cookieHeader(value: "", maxAge: 0, secure: server.options.behindTLSProxy)
            return response
        }
    }

    static func cookieHeader(value: String, maxAge: Int, secure: Bool) -> String {
        "\(cookie)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }

    static func sessionCookie(_ request: Request) -> String? {
        guard let header = request.headers[.cookie] else { return nil }
        for part in header.split(separator: ";") {
            let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0] == cookie { return String(kv[1]) }
        }
        return nil
    }

    /// The session's caller, if the cookie names a live session whose token may read.
    static func caller(_ request: Request, server: SisaServer) throws -> (name: String, role: Role)? {
        guard let id = sessionCookie(request), let c = try server.readers.authenticateSession(id), c.role.permits(.read) else { return nil }
        return c
    }
}

/// An HTML response. The Content-Security-Policy is the second line behind
/// the page's escaping and its SVG check: no script, frame, form target or
/// resource from anywhere runs or loads, whatever a value slipped through.
func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
    var r = Response(status: status, body: .init(byteBuffer: ByteBuffer(string: text)))
    r.headers[.contentType] = "text/html; charset=utf-8"
    r.headers[HTTPField.Name("Content-Security-Policy")!] =
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    r.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
    return r
}
