import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SisaCoordinator
import SisaEngine
import SisaServer
import XCTest

/// The router in process (Hummingbird's testing library, no server process):
/// roles on every route, 405s, sessions, escaping, the spec's operations.
/// The crash and drain tests keep real processes (SisaCoordinatorTests/ServerTests).
final class RouterTests: XCTestCase {
    /// A trained two-shard store with a token per role.
    private struct Fixture: Sendable {
        let dir: URL
        let server: SisaServer
        let tokens: [Role: String]
        let recordIDs: [String]
    }

    private func fixture(tokenName: String = "ops", freeAuthFailures: Int = 1000, behindProxy: Bool = false,
                         maxIngestBytes: Int = 64 << 20) throws -> Fixture {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sisa-router-\(UUID().uuidString)")
        let storeURL = dir.appendingPathComponent("s")
        let config = StoreConfig(shards: 2, slices: 2, model: GPT2Configuration(layers: 1, heads: 2, dim: 32, context: 32),
                                 batch: 4, epochs: 1, seed: 3)
        // Set up, then let go of the store: the server is its single writer.
        let tokens = try { () throws -> [Role: String] in
            let store = try Store.create(at: storeURL, config: config)
            let lines = (0..<24).map { #"{"id": "r\#($0)", "text": "record number \#($0) with some words"}"# }
            let file = dir.appendingPathComponent("r.jsonl")
            try lines.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
            _ = try store.ingest(paths: [file.path], holdout: 0.2)
            _ = try store.train()
            var tokens: [Role: String] = [:]
            for role in Role.allCases {
                tokens[role] = try store.createToken(role: role, name: role == .reader ? tokenName : "\(role.rawValue)-token")
            }
            return tokens
        }()
        var o = SisaServer.Options()
        o.coalesce = 0
        o.inferenceThreads = 1
        o.freeAuthFailures = freeAuthFailures   // the role matrix fails on purpose, many times
        o.behindTLSProxy = behindProxy
        o.maxIngestBytes = maxIngestBytes
        return Fixture(dir: dir, server: try SisaServer(store: storeURL, options: o), tokens: tokens,
                       recordIDs: (0..<24).map { "r\($0)" })
    }

    private static func bearer(_ token: String?) -> HTTPFields {
        var h = HTTPFields()
        if let token { h[.authorization] = "Bearer \(token)" }
        return h
    }

    /// docs/openapi.yaml's operations ("GET /v1/status").
    private func specOperations() throws -> [String] {
        let doc = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/openapi.yaml")
        var ops: [String] = [], path = "", inPaths = false
        for line in try String(contentsOf: doc, encoding: .utf8).split(separator: "\n").map(String.init) {
            if line == "paths:" { inPaths = true; continue }
            if inPaths, !line.hasPrefix(" ") { break }
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
            } else if let m = ["get", "post", "put", "patch", "delete"].first(where: { line == "    \($0):" }) {
                ops.append("\(m.uppercased()) \(path)")
            }
        }
        return ops.sorted()
    }

    func testSpecAndRouterListTheSameOperations() throws {
        let f = try fixture()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        XCTAssertEqual(f.server.declaredOperations(), try specOperations())
    }

    /// Each operation, each role: the role table of `Role.permits`, enforced by
    /// the route groups (no token: 401; a role that may not: 403).
    func testEveryRouteEnforcesItsRole() async throws {
        let f = try fixture()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let needs: [String: Action?] = [
            "GET /v1/health": nil, "GET /": nil, "POST /login": nil, "POST /logout": nil,
            "GET /v1/status": .read, "GET /v1/metrics": .read, "POST /v1/query": .read, "POST /v1/score": .read,
            "GET /v1/records": .read, "POST /v1/records": .administer, "POST /v1/train": .administer,
            "POST /v1/deletions": .delete, "GET /v1/deletions/{id}": .delete,
        ]
        XCTAssertEqual(Set(needs.keys), Set(f.server.declaredOperations()), "every operation is in this table")
        let app = f.server.buildApplication()
        try await app.test(.router) { client in
            for (op, action) in needs.sorted(by: { $0.key < $1.key }) {
                guard let action else { continue }
                let parts = op.split(separator: " ")
                let method = HTTPRequest.Method(String(parts[0]))!
                let uri = String(parts[1]).replacingOccurrences(of: "{id}", with: "1")
                // An empty JSON body: what is checked here is who may call, before any body is read.
                let body = method == .post ? ByteBuffer(string: "{}") : nil
                try await client.execute(uri: uri, method: method, headers: RouterTests.bearer(nil), body: body) {
                    XCTAssertEqual($0.status, .unauthorized, "\(op) without a token")
                }
                try await client.execute(uri: uri, method: method, headers: RouterTests.bearer("sisa_" + String(repeating: "0", count: 64)), body: body) {
                    XCTAssertEqual($0.status, .unauthorized, "\(op) with an unknown token")
                }
                for role in Role.allCases {
                    try await client.execute(uri: uri, method: method, headers: RouterTests.bearer(f.tokens[role]), body: body) {
                        if role.permits(action) {
                            XCTAssertNotEqual($0.status, .forbidden, "\(op) as \(role)")
                            XCTAssertNotEqual($0.status, .unauthorized, "\(op) as \(role)")
                        } else {
                            XCTAssertEqual($0.status, .forbidden, "\(op) as \(role)")
                        }
                    }
                }
            }
        }
    }

    func testUndeclaredMethodsGet405WithAllow() async throws {
        let f = try fixture()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        try await f.server.buildApplication().test(.router) { client in
            try await client.execute(uri: "/v1/status", method: .put) {
                XCTAssertEqual($0.status, .methodNotAllowed)
                XCTAssertEqual($0.headers[.allow], "GET")
            }
            try await client.execute(uri: "/v1/records", method: .delete) {
                XCTAssertEqual($0.status, .methodNotAllowed)
                XCTAssertEqual($0.headers[.allow], "GET, POST")
            }
            try await client.execute(uri: "/v1/deletions/3", method: .patch) {
                XCTAssertEqual($0.status, .methodNotAllowed)
                XCTAssertEqual($0.headers[.allow], "GET")
            }
            try await client.execute(uri: "/v1/nothing", method: .get) { XCTAssertEqual($0.status, .notFound) }
        }
    }

    func testRequestsTheSpecRefuses() async throws {
        let f = try fixture()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let admin = RouterTests.bearer(f.tokens[.admin])
        try await f.server.buildApplication().test(.router) { client in
            for uri in ["/v1/records?offset=1.5", "/v1/records?limit=0", "/v1/records?offset=-1", "/v1/records?limit=abc"] {
                try await client.execute(uri: uri, method: .get, headers: admin) { XCTAssertEqual($0.status, .badRequest, uri) }
            }
            try await client.execute(uri: "/v1/deletions/0", method: .get, headers: admin) { XCTAssertEqual($0.status, .badRequest) }
            try await client.execute(uri: "/v1/deletions/x", method: .get, headers: admin) { XCTAssertEqual($0.status, .badRequest) }
            for body in [#"{"prompt": "r", "maxTokens": null}"#, #"{"prompt": "r", "maxTokens": 1.5}"#, #"{"prompt": null}"#,
                         #"{"prompt": "r", "topK": 0}"#] {
                try await client.execute(uri: "/v1/query", method: .post, headers: admin, body: ByteBuffer(string: body)) {
                    XCTAssertEqual($0.status, .badRequest, body)
                }
            }
            try await client.execute(uri: "/v1/deletions", method: .post, headers: admin, body: ByteBuffer(string: #"{"ids": []}"#)) {
                XCTAssertEqual($0.status, .badRequest)
            }
            try await client.execute(uri: "/v1/deletions", method: .post, headers: admin, body: ByteBuffer(string: #"{"ids": ["nope"]}"#)) {
                XCTAssertEqual($0.status, .notFound)
            }
            // A bad line of an ingest names the body's line; nothing is kept.
            try await client.execute(uri: "/v1/records", method: .post, headers: admin,
                                     body: ByteBuffer(string: "{\"id\": \"n1\", \"text\": \"fine\"}\n{\"text\": broken\n")) {
                XCTAssertEqual($0.status, .badRequest)
                XCTAssertTrue(String(buffer: $0.body).contains("request body:2: malformed JSON"), String(buffer: $0.body))
            }
            // Array elements that are not objects (JSONSerialization would trap on them).
            for body in [#"["AAA"]"#, "[1]", "[[null, null]]", "[null]", #"[{"text": "ok"}, "x"]"#] {
                try await client.execute(uri: "/v1/records", method: .post, headers: admin, body: ByteBuffer(string: body)) {
                    XCTAssertEqual($0.status, .badRequest, body)
                }
            }
            try await client.execute(uri: "/v1/records?limit=10000", method: .get, headers: admin) {
                XCTAssertFalse(String(buffer: $0.body).contains("\"n1\""))
            }
        }
    }

    /// The deletion worker keeps serving: requests submitted one after
    /// another, each after the previous one is done, are all completed.
    func testTheDeletionWorkerServesRequestAfterRequest() async throws {
        let f = try fixture()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let deleter = RouterTests.bearer(f.tokens[.deleter])
        try await f.server.buildApplication().test(.router) { client in
            for id in ["r1", "r2", "r3"] {
                let request = try await client.execute(uri: "/v1/deletions", method: .post, headers: deleter,
                                                       body: ByteBuffer(string: #"{"ids": ["\#(id)"]}"#)) { r -> Int in
                    XCTAssertEqual(r.status, .accepted)
                    let body = try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any]
                    return try XCTUnwrap((body?["request"] as? [String: Any])?["id"] as? Int)
                }
                var state = ""
                for _ in 0..<6000 where state != "done" {
                    state = try await client.execute(uri: "/v1/deletions/\(request)", method: .get, headers: deleter) { r in
                        ((try? JSONSerialization.jsonObject(with: Data(buffer: r.body))) as? [String: Any])?["state"] as? String ?? ""
                    }
                    if state != "done" { try await Task.sleep(for: .milliseconds(10)) }
                }
                XCTAssertEqual(state, "done", "request \(request) (\(id)) was completed")
            }
        }
    }

    /// The page: a token buys a session whose id alone is in the cookie;
    /// revoking the token ends it; values on the page are escaped.
    func testSessionsAndEscaping() async throws {
        let f = try fixture(tokenName: "<b>ops</b>&\"q\"")
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let reader = f.tokens[.reader]!
        try await f.server.buildApplication().test(.router) { client in
            var form = HTTPFields()
            form[.contentType] = "application/x-www-form-urlencoded"
            let encoded = reader.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let cookie = try await client.execute(uri: "/login", method: .post, headers: form, body: ByteBuffer(string: "token=\(encoded)")) { r in
                XCTAssertEqual(r.status, .ok)
                let setCookie = r.headers[.setCookie] ?? ""
                XCTAssertTrue(setCookie.hasPrefix("sisa_session=sisa_session_") && setCookie.contains("HttpOnly")
                              && setCookie.contains("SameSite=Strict"), setCookie)
                XCTAssertFalse(setCookie.contains(reader))
                let body = String(buffer: r.body)
                XCTAssertFalse(body.contains("<b>ops</b>"), "the name is escaped: \(body)")
                XCTAssertTrue(body.contains("&lt;b&gt;ops&lt;/b&gt;"), body)
                return String(setCookie.split(separator: ";")[0])
            }
            var withCookie = HTTPFields()
            withCookie[.cookie] = cookie
            try await client.execute(uri: "/", method: .get, headers: withCookie) { r in
                let body = String(buffer: r.body)
                XCTAssertTrue(body.contains("Sign out"), "the page, not the form")
                XCTAssertTrue(r.headers[HTTPField.Name("Content-Security-Policy")!]?.contains("default-src 'none'") == true,
                              "no script or outside resource runs on the page")
                XCTAssertFalse(body.contains("<b>ops</b>"))
                XCTAssertTrue(body.contains("&lt;b&gt;ops&lt;/b&gt;"))
            }
            // The session id is not a bearer token for the API.
            try await client.execute(uri: "/v1/status", method: .get, headers: RouterTests.bearer(String(cookie.dropFirst("sisa_session=".count)))) {
                XCTAssertEqual($0.status, .unauthorized)
            }
            try f.server.revoke(tokenNamed: "<b>ops</b>&\"q\"")
            try await client.execute(uri: "/", method: .get, headers: withCookie) { r in
                XCTAssertTrue(String(buffer: r.body).contains("name=\"token\""), "revoking the token ended the session")
            }
        }
    }

    func testSessionsExpire() throws {
        let f = try fixture()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let store = try Store.open(at: f.dir.appendingPathComponent("s"))
        let start = Date()
        let s = try XCTUnwrap(try store.openSession(token: f.tokens[.reader]!, lifetime: 60, now: start))
        XCTAssertEqual(try store.authenticateSession(s.id, now: start.addingTimeInterval(59))?.name, "ops")
        XCTAssertNil(try store.authenticateSession(s.id, now: start.addingTimeInterval(61)))
        XCTAssertNil(try store.openSession(token: "sisa_" + String(repeating: "1", count: 64)), "no session for an unknown token")
        XCTAssertNil(try store.authenticateSession(f.tokens[.reader]!), "a token is not a session id")
    }

    /// Five free failures per address and minute, then 0.1 s doubling to 2 s;
    /// another address, or the next window, starts again.
    func testRepeatedFailuresAreSlowedDown() async throws {
        let f = try fixture(freeAuthFailures: 5)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let delays = (0..<12).map { _ in f.server.authFailureDelay(client: "10.0.0.1", now: 1000) }
        XCTAssertEqual(delays, [0, 0, 0, 0, 0, 0.1, 0.2, 0.4, 0.8, 1.6, 2, 2])
        XCTAssertEqual(f.server.authFailureDelay(client: "10.0.0.2", now: 1000), 0)
        XCTAssertEqual(f.server.authFailureDelay(client: "10.0.0.1", now: 1061), 0)
        // The metrics count refusals.
        try await f.server.buildApplication().test(.router) { client in
            for _ in 0..<3 { try await client.execute(uri: "/v1/status", method: .get) { XCTAssertEqual($0.status, .unauthorized) } }
            try await client.execute(uri: "/v1/metrics", method: .get, headers: RouterTests.bearer(f.tokens[.reader])) { r in
                XCTAssertTrue(String(buffer: r.body).contains("sisa_http_unauthorized_total 3"), String(buffer: r.body))
            }
        }
    }

    /// Behind a TLS proxy every connection is the proxy's: failures are counted
    /// per forwarded client (the last X-Forwarded-For entry, which the proxy
    /// appends), so one client's failures do not slow the others down, and a
    /// client cannot escape its count by sending a header of its own.
    func testBehindAProxyFailuresCountPerForwardedClient() async throws {
        for behindProxy in [true, false] {
            let f = try fixture(freeAuthFailures: 1, behindProxy: behindProxy)
            defer { try? FileManager.default.removeItem(at: f.dir) }
            @Sendable func forwarded(_ xff: String) -> HTTPFields {
                var h = HTTPFields()
                h[HTTPField.Name("X-Forwarded-For")!] = xff
                return h
            }
            try await f.server.buildApplication().test(.router) { client in
                // The same client twice, the second time with an address of its own choosing in front.
                for xff in ["198.51.100.7", "203.0.113.99, 198.51.100.7", "198.51.100.8"] {
                    try await client.execute(uri: "/v1/status", method: .get, headers: forwarded(xff)) { XCTAssertEqual($0.status, .unauthorized) }
                }
                try await client.execute(uri: "/v1/metrics", method: .get, headers: RouterTests.bearer(f.tokens[.reader])) { r in
                    // Behind the proxy: only 198.51.100.7's second failure is held back. Without
                    // the flag the header means nothing: all three come from one address.
                    let delayed = behindProxy ? 1 : 2
                    XCTAssertTrue(String(buffer: r.body).contains("sisa_http_unauthorized_delayed_total \(delayed)"), String(buffer: r.body))
                }
            }
        }
    }

    /// POST /v1/records takes bodies up to --max-ingest-mb (here 4 MiB, past
    /// Hummingbird's default 2 MiB); a larger one is 413 with a message, and
    /// nothing of it is kept.
    func testIngestBodyLimit() async throws {
        let f = try fixture(maxIngestBytes: 4 << 20)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        func body(_ n: Int, _ prefix: String) -> ByteBuffer {
            ByteBuffer(string: (0..<n).map { #"{"id": "\#(prefix)\#($0)", "text": "a record of the limit test"}"# + "\n" }.joined())
        }
        let admin = RouterTests.bearer(f.tokens[.admin])
        let fits = body(50_000, "fit"), over = body(90_000, "over")
        XCTAssertGreaterThan(fits.readableBytes, 2 << 20)
        XCTAssertGreaterThan(over.readableBytes, 4 << 20)
        try await f.server.buildApplication().test(.router) { client in
            try await client.execute(uri: "/v1/records", method: .post, headers: admin, body: fits) { r in
                XCTAssertEqual(r.status, .created, String(buffer: r.body))
            }
            try await client.execute(uri: "/v1/records", method: .post, headers: admin, body: over) { r in
                XCTAssertEqual(r.status, .contentTooLarge)
                XCTAssertTrue(String(buffer: r.body).contains("over 4 MiB (sisa serve --max-ingest-mb)"), String(buffer: r.body))
            }
        }
        let counts = try Store.open(at: f.dir.appendingPathComponent("s")).catalog.recordCounts()
        XCTAssertEqual(counts.live, 24 + 50_000)
    }
}
