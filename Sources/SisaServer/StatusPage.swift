import Foundation
import Hummingbird
import Mustache
import SisaCoordinator

/// The status page's HTML (`PageController` serves it): the shards, the
/// deletion queue with receipts, and the newest `compare` plots saved in
/// `<store>/reports/*.svg` (inline). No JavaScript. Every value goes through
/// Mustache's `{{...}}`, which HTML-escapes it; the only unescaped value is
/// an SVG that passed `safeSVG`.
struct StatusPage {
    let store: Store
    let templates: (page: MustacheTemplate, login: MustacheTemplate, signedIn: MustacheTemplate)

    init(store: Store) throws {
        self.store = store
        templates = (try MustacheTemplate(string: StatusPage.pageTemplate), try MustacheTemplate(string: StatusPage.loginTemplate),
                     try MustacheTemplate(string: StatusPage.signedInTemplate))
    }

    func signedIn(name: String) -> String {
        // Rendered by Mustache too: a token's name is the caller's text.
        templates.signedIn.render(["name": name])
    }

    func login(error: String?) -> String {
        // A key absent, not nil: Mustache renders an Optional as text.
        var context: [String: Any] = [:]
        if let error { context["error"] = error }
        return templates.login.render(context)
    }

    func page(caller: String) throws -> String {
        let s = try store.status()
        let shards: [[String: Any]] = s.shards.map { sh in
            ["index": sh.index, "records": sh.records, "stages": "\(sh.stagesTrained)/\(sh.stages)",
             "state": sh.quarantined ? "quarantined" : (sh.digest == nil ? "untrained" : "serving"),
             "quarantined": sh.quarantined, "digest": sh.digest.map { String($0.prefix(16)) } ?? "-",
             "epsilon": sh.epsilon.map { String(format: "%.3f", $0) } ?? ""]
        }
        let requests: [[String: Any]] = try store.catalog.recentDeletionRequests(limit: 20).compactMap { id in
            guard let r = try store.deletionRequest(id: id) else { return nil }
            let receipt = r.receipt.map { rc in
                rc.shards.map { "shard \($0.shard): stages \($0.fromStage)...\($0.fromStage + $0.stagesTrained - 1), \($0.steps) steps, \(String(format: "%.1f", $0.seconds)) s, \($0.previousDigest.map { String($0.prefix(8)) } ?? "-") → \(String($0.digest.prefix(8)))" }
                    .joined(separator: "; ")
            } ?? ""
            return ["id": r.id, "state": r.state.rawValue, "records": r.records.joined(separator: ", "), "reason": r.reason ?? "",
                    "requestedAt": r.requestedAt, "completedAt": r.completedAt ?? "", "receipt": receipt]
        }
        let reports = store.url.appendingPathComponent("reports")
        let svgs = ((try? FileManager.default.contentsOfDirectory(at: reports, includingPropertiesForKeys: [.contentModificationDateKey])) ?? [])
            .filter { $0.pathExtension == "svg" }
            .sorted { (try? $0.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate ?? .distantPast) ?? .distantPast
                > (try? $1.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate ?? .distantPast) ?? .distantPast }
            .prefix(3)
            .compactMap { url -> [String: Any]? in
                guard let text = try? String(contentsOf: url, encoding: .utf8), StatusPage.safeSVG(text) else { return nil }
                return ["name": url.lastPathComponent, "svg": text]
            }
        return templates.page.render([
            "store": s.store, "caller": caller, "records": s.records, "deleted": s.deletedRecords,
            "pending": s.pendingDeletions, "shards": shards, "requests": requests, "hasRequests": !requests.isEmpty,
            "reports": Array(svgs), "hasReports": !svgs.isEmpty, "numerics": s.config.numerics,
        ])
    }

    /// Only SVGs as `sisa compare --plot` writes them: no scripts, event
    /// handlers, foreign objects or external references.
    static func safeSVG(_ text: String) -> Bool {
        let lower = text.lowercased()
        guard text.hasPrefix("<svg"),
              !["<script", "href", "javascript:", "<foreignobject", "<iframe", "<!entity", "url("].contains(where: { lower.contains($0) })
        else { return false }
        // No event-handler attribute (onload=, onclick= ...).
        return lower.firstMatch(of: try! Regex("\\son[a-z]+\\s*=")) == nil
    }

    static let signedInTemplate = """
    <!doctype html><meta http-equiv="refresh" content="0; url=/"><a href="/">Signed in as {{name}}.</a>
    """

    static let style = """
    body{font-family:Helvetica,Arial,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
    th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;font-size:14px}th{background:#f3f3f3}
    .quarantined{background:#fde8e8}.queued,.retraining{background:#fff6d6}.done{background:#e8f6e8}.failed{background:#fde8e8}
    code{font-size:13px}
    """

    static let loginTemplate = """
    <!doctype html><html><head><meta charset="utf-8"><title>sisa: sign in</title><style>\(style)</style></head>
    <body><h1>sisa</h1>{{#error}}<p style="color:#b00">{{error}}</p>{{/error}}
    <form method="post" action="/login"><label>API token (reader, deleter or admin)<br>
    <input type="password" name="token" size="72" autofocus></label> <button type="submit">Sign in</button></form>
    <p>Create one with <code>sisa token create --role reader --name NAME</code>.</p></body></html>
    """

    static let pageTemplate = """
    <!doctype html><html><head><meta charset="utf-8"><title>sisa: {{store}}</title><style>\(style)</style></head>
    <body><h1>sisa store <code>{{store}}</code></h1>
    <form method="post" action="/logout"><p>Signed in as <b>{{caller}}</b>. <button type="submit">Sign out</button></p></form>
    <p>{{records}} live records, {{deleted}} deleted, {{pending}} deletions pending. Numerics version {{numerics}}.</p>
    <h2>Shards</h2>
    <table><tr><th>shard</th><th>state</th><th>records</th><th>stages</th><th>digest</th><th>epsilon</th></tr>
    {{#shards}}<tr class="{{#quarantined}}quarantined{{/quarantined}}"><td>{{index}}</td><td>{{state}}</td><td>{{records}}</td><td>{{stages}}</td><td><code>{{digest}}</code></td><td>{{epsilon}}</td></tr>
    {{/shards}}</table>
    <h2>Deletion requests</h2>
    {{^hasRequests}}<p>None yet.</p>{{/hasRequests}}
    {{#hasRequests}}<table><tr><th>id</th><th>state</th><th>records</th><th>reason</th><th>requested</th><th>completed</th><th>receipt</th></tr>
    {{#requests}}<tr class="{{state}}"><td>{{id}}</td><td>{{state}}</td><td>{{records}}</td><td>{{reason}}</td><td>{{requestedAt}}</td><td>{{completedAt}}</td><td>{{receipt}}</td></tr>
    {{/requests}}</table>{{/hasRequests}}
    <h2>Latest comparisons</h2>
    {{^hasReports}}<p>None: save <code>sisa compare --plot STORE/reports/NAME.svg</code> to show one here.</p>{{/hasReports}}
    {{#reports}}<h3>{{name}}</h3>{{{svg}}}{{/reports}}
    </body></html>
    """
}
