import Hummingbird
import NIOCore

/// 405 with `Allow` for a method a path does not declare (any method,
/// QUERY and the like included); 404 stays for paths that do not exist.
/// The router answers an unmatched request with a 404 of its own; this
/// middleware, outermost, turns that into a 405 when the path matches a
/// route under another method.
struct MethodNotAllowed: RouterMiddleware {
    typealias Context = SisaContext
    /// Route patterns ("/v1/deletions/{id}") and their methods.
    let routes: [(segments: [Substring], methods: [String])]

    init(operations: [String]) {
        var byPath: [String: [String]] = [:]
        for op in operations {
            let parts = op.split(separator: " ", maxSplits: 1)
            byPath[String(parts[1]), default: []].append(String(parts[0]))
        }
        routes = byPath.map { ($0.key.split(separator: "/"), $0.value.sorted()) }
    }

    func allowed(path: String) -> [String] {
        let segments = path.split(separator: "/")
        return routes.filter { r in
            r.segments.count == segments.count
                && zip(r.segments, segments).allSatisfy { $0.0.hasPrefix("{") || $0.0.hasPrefix(":") || $0.0 == $0.1 }
        }.flatMap(\.methods).sorted()
    }

    func handle(_ request: Request, context: SisaContext,
                next: (Request, SisaContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as HTTPError where e.status == .notFound {
            // A handler's own 404 (no such request) comes from an allowed method: left as it is.
            let allow = allowed(path: request.uri.path)
            guard !allow.isEmpty, !allow.contains(request.method.rawValue) else { throw e }
            var r = Response(status: .methodNotAllowed,
                             body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"message":"method \#(request.method.rawValue) not allowed (allowed: \#(allow.joined(separator: ", ")))"}}"#)))
            r.headers[.allow] = allow.joined(separator: ", ")
            r.headers[.contentType] = "application/json; charset=utf-8"
            return r
        }
    }
}
