import Foundation
import NIOCore
import Prometheus
import Synchronization

/// Slows down a client that keeps presenting bad tokens or bad sign-ins:
/// the first `freeAttempts` failures within `window` answer at once, each
/// later one waits twice as long as the one before (from 0.1 s, at most
/// `maxDelay`). Tokens are 256 random bits, so this is not what keeps them
/// from being guessed; it keeps a scanner from costing the server, and the
/// metrics show it (`sisa_http_unauthorized_total`, `..._delayed_total`).
/// Clients are told apart by IP address (behind a TLS proxy, the one it
/// forwards: `SisaContext.client`); the table is bounded.
public final class AuthFailures: Sendable {
    public static let freeAttempts = 5
    static let window: Double = 60
    static let maxDelay: Double = 2
    static let maxClients = 10_000

    private struct Entry { var count: Int; var since: Double }
    private let table = Mutex<[String: Entry]>([:])
    private let unauthorized: Counter
    private let delayed: Counter

    let freeAttempts: Int

    init(registry: PrometheusCollectorRegistry, freeAttempts: Int = AuthFailures.freeAttempts) {
        self.freeAttempts = freeAttempts
        unauthorized = registry.makeCounter(name: "sisa_http_unauthorized_total",
                                            help: "Requests refused with 401 (missing, unknown or revoked token or session).")
        delayed = registry.makeCounter(name: "sisa_http_unauthorized_delayed_total",
                                       help: "401s held back because the client had failed more than \(AuthFailures.freeAttempts) times in \(Int(AuthFailures.window)) s.")
    }

    /// Counts a failure from `client` and waits as long as the client's record says.
    func failed(client: String, now: Double = Date().timeIntervalSince1970) async throws {
        unauthorized.increment()
        let wait = delay(for: client, now: now)
        guard wait > 0 else { return }
        delayed.increment()
        try await Task.sleep(for: .milliseconds(Int(wait * 1000)))
    }

    /// The delay for one more failure from `client` (seconds), recording it.
    func delay(for client: String, now: Double) -> Double {
        table.withLock { t in
            if t.count >= AuthFailures.maxClients {
                t = t.filter { now - $0.value.since < AuthFailures.window }
                if t.count >= AuthFailures.maxClients { t.removeAll() }
            }
            var e = t[client] ?? Entry(count: 0, since: now)
            if now - e.since >= AuthFailures.window { e = Entry(count: 0, since: now) }
            e.count += 1
            t[client] = e
            let over = e.count - freeAttempts
            return over <= 0 ? 0 : min(AuthFailures.maxDelay, 0.1 * pow(2, Double(over - 1)))
        }
    }
}
