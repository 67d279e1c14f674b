import ArgumentParser
import Foundation
import SisaCoordinator

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "API tokens for `sisa serve`: roles reader, deleter, admin.",
        discussion: """
        reader: query, score, status. deleter: deletion requests and their receipts. admin: ingest, train, \
        tokens. The catalog keeps only a SHA-256 hash of each token: it is printed once, at creation. \
        Clients send `Authorization: Bearer TOKEN`.
        """,
        subcommands: [TokenCreate.self, TokenList.self, TokenRevoke.self])
}

struct TokenCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a token and print it once.")
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "reader, deleter or admin.") var role: String
    @Option(help: "A name to list and revoke it by.") var name: String
    @Flag(help: "Print {\"token\", \"role\", \"name\"} as JSON.") var json = false

    func run() throws {
        guard let r = Role(rawValue: role) else { throw ValidationError("--role must be reader, deleter or admin") }
        let store = try storeOptions.open(writer: "token create")
        let token = try store.createToken(role: r, name: name)
        if json {
            try printJSONObject(["token": token, "role": r.rawValue, "name": name.trimmingCharacters(in: .whitespaces)])
        } else {
            print(token)
            note("token \(name) (\(r.rawValue)) created; it is not stored and cannot be shown again")
        }
    }
}

struct TokenList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Names, roles and state of the tokens (never the tokens).")
    @OptionGroup var storeOptions: StoreOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let ts = try storeOptions.open().tokens()
        if json { try printJSON(ts); return }
        if ts.isEmpty { print("no tokens (`sisa token create --role R --name N`)") }
        for t in ts { print("\(t.name)\t\(t.role.rawValue)\tcreated \(t.createdAt)\(t.revoked ? "\trevoked" : "")") }
    }
}

struct TokenRevoke: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a token by name.")
    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "The token's name.") var name: String

    func run() throws {
        try storeOptions.open(writer: "token revoke").revokeToken(name: name)
        print("token \(name) revoked")
    }
}
