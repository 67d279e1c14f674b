import Crypto
import Foundation

/// Who may do what through the service (`sisa serve`).
public enum Role: String, CaseIterable, Codable, Sendable {
    /// query, score, status.
    case reader
    /// deletion requests and their receipts (and what a reader may do).
    case deleter
    /// ingest, train, tokens (and everything else).
    case admin

    public func permits(_ action: Action) -> Bool {
        switch self {
        case .admin: return true
        case .deleter: return action == .delete || action == .read
        case .reader: return action == .read
        }
    }
}

public enum Action: String, Sendable {
    /// query, score, status, health.
    case read
    /// deletion requests and receipts.
    case delete
    /// ingest, train, token management.
    case administer
}

public struct TokenInfo: Codable, Sendable, Equatable {
    public let name: String
    public let role: Role
    public let createdAt: String
    public let revoked: Bool
}

/// API tokens: 32 random bytes, shown once at creation. The catalog keeps
/// only the SHA-256 of each (the tokens are random, so no salt is needed to
/// make the hash useless for guessing), with its name and role.
extension Store {
    static let tokenPrefix = "sisa_"

    /// Creates a token and returns it; it cannot be shown again.
    public func createToken(role: Role, name: String) throws -> String {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.count <= 100 else {
            throw CoordinatorError.invalidInput("--name must be 1 to 100 characters")
        }
        guard try !catalog.tokens().contains(where: { $0.name == trimmed }) else {
            throw CoordinatorError.invalidInput("a token named \(trimmed) exists already (names are kept after revocation)")
        }
        var g = SystemRandomNumberGenerator()
        let token = Store.tokenPrefix + (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
        try catalog.transaction { try catalog.addToken(name: trimmed, role: role.rawValue, hash: Store.tokenHash(token)) }
        return token
    }

    public func tokens() throws -> [TokenInfo] {
        try catalog.tokens().map {
            TokenInfo(name: $0.name, role: Role(rawValue: $0.role) ?? .reader, createdAt: $0.createdAt, revoked: $0.revokedAt != nil)
        }
    }

    public func revokeToken(name: String) throws {
        guard try catalog.transaction({ try catalog.revokeToken(name: name) }) else {
            throw CoordinatorError.invalidInput("no live token named \(name) (`sisa token list`)")
        }
    }

    /// The live token's name and role, or nil (unknown, malformed or revoked).
    public func authenticate(_ token: String) throws -> (name: String, role: Role)? {
        guard token.hasPrefix(Store.tokenPrefix), token.count == Store.tokenPrefix.count + 64 else { return nil }
        guard let t = try catalog.token(hash: Store.tokenHash(token)), let role = Role(rawValue: t.role) else { return nil }
        return (t.name, role)
    }

    static func tokenHash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
