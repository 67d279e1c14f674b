import Crypto
import Foundation

/// Sessions of the status page: a person signs in once with an API token
/// and gets a random session id in a cookie, so the browser never holds the
/// bearer token itself. The catalog keeps only the SHA-256 of each id (the
/// ids are random: no salt needed), the token it was opened with, and an
/// expiry. Revoking the token ends its sessions; an expired or unknown id
/// is simply not a session.
extension Store {
    static let sessionPrefix = "sisa_session_"
    /// How long a session lasts from sign-in.
    public static let sessionLifetime: TimeInterval = 8 * 3600

    /// Opens a session for a live token; nil if the token is unknown or revoked.
    /// Expired sessions are removed on the way (the table stays small).
    public func openSession(token: String, lifetime: TimeInterval = Store.sessionLifetime,
                            now: Date = Date()) throws -> (id: String, caller: (name: String, role: Role))? {
        guard let caller = try authenticate(token) else { return nil }
        var g = SystemRandomNumberGenerator()
        let id = Store.sessionPrefix + (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
        try catalog.transaction {
            try catalog.deleteExpiredSessions(now: now.timeIntervalSince1970)
            try catalog.addSession(hash: Store.tokenHash(id), token: caller.name, expiresAt: now.timeIntervalSince1970 + lifetime)
        }
        return (id, caller)
    }

    /// The caller behind a session id, or nil (unknown, malformed, expired, or its token revoked).
    public func authenticateSession(_ id: String, now: Date = Date()) throws -> (name: String, role: Role)? {
        guard id.hasPrefix(Store.sessionPrefix), id.count == Store.sessionPrefix.count + 64 else { return nil }
        guard let s = try catalog.session(hash: Store.tokenHash(id), now: now.timeIntervalSince1970),
              let role = Role(rawValue: s.role) else { return nil }
        return (s.name, role)
    }

    /// Signs out: the id stops being a session.
    public func closeSession(_ id: String) throws {
        try catalog.transaction { try catalog.deleteSession(hash: Store.tokenHash(id)) }
    }
}
