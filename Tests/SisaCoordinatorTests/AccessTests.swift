import Foundation
import SisaCoordinator
import XCTest

/// API tokens: shown once, stored as a hash, roles that permit what they say.
final class AccessTests: XCTestCase {
    func testTokensAreStoredAsHashesAndRevocable() throws {
        let tmp = TempDir()
        let s = try Store.create(at: tmp.url.appendingPathComponent("s"), config: microConfig())
        let reader = try s.createToken(role: .reader, name: "dashboard")
        let admin = try s.createToken(role: .admin, name: "ops")
        XCTAssertTrue(reader.hasPrefix("sisa_") && reader.count == 69)
        XCTAssertNotEqual(reader, admin)
        XCTAssertEqual(try s.authenticate(reader)?.role, .reader)
        XCTAssertEqual(try s.authenticate(admin)?.name, "ops")
        XCTAssertNil(try s.authenticate("sisa_" + String(repeating: "0", count: 64)))
        XCTAssertNil(try s.authenticate(String(reader.dropLast())))
        XCTAssertNil(try s.authenticate(""))
        // Only hashes reach the disk.
        for (name, bytes) in allFileBytes(s.url) {
            XCTAssertNil(bytes.range(of: Data(reader.utf8)), "token in \(name)")
            XCTAssertNil(bytes.range(of: Data(reader.dropFirst(5).prefix(32).utf8)), "part of a token in \(name)")
        }
        XCTAssertEqual(try s.tokens().map(\.name), ["dashboard", "ops"])
        XCTAssertThrowsError(try s.createToken(role: .deleter, name: "ops"), "names are unique")
        XCTAssertThrowsError(try s.createToken(role: .deleter, name: "  "))
        try s.revokeToken(name: "dashboard")
        XCTAssertNil(try s.authenticate(reader))
        XCTAssertEqual(try s.tokens().first { $0.name == "dashboard" }?.revoked, true)
        XCTAssertThrowsError(try s.revokeToken(name: "dashboard"), "already revoked")
        XCTAssertThrowsError(try s.revokeToken(name: "nobody"))
        // A store reopened (by another process) sees the same tokens.
        XCTAssertEqual(try Store.open(at: s.url).authenticate(admin)?.role, .admin)
    }

    func testRolesPermitWhatTheySay() {
        XCTAssertTrue(Role.reader.permits(.read))
        XCTAssertFalse(Role.reader.permits(.delete))
        XCTAssertFalse(Role.reader.permits(.administer))
        XCTAssertTrue(Role.deleter.permits(.delete) && Role.deleter.permits(.read))
        XCTAssertFalse(Role.deleter.permits(.administer))
        XCTAssertTrue(Role.admin.permits(.administer) && Role.admin.permits(.delete) && Role.admin.permits(.read))
    }

    /// A store made before tokens existed (catalog schema 1) gains the table when opened.
    func testSchemaOneCatalogIsMigrated() throws {
        let tmp = TempDir()
        let url = tmp.url.appendingPathComponent("old")
        _ = try Store.create(at: url, config: microConfig())
        let outside = try SQLiteDatabase(path: url.appendingPathComponent("catalog.sqlite").path)
        try outside.execute("""
            DROP INDEX deletions_request; DROP INDEX deletions_record; DROP INDEX deletions_status; DROP TABLE receipts;
            ALTER TABLE deletions DROP COLUMN receipt_id; DROP TABLE sessions; DROP TABLE tokens; DROP TABLE deletion_requests;
            ALTER TABLE deletions DROP COLUMN request; PRAGMA user_version = 1;
            """)
        let s = try Store.open(at: url)
        XCTAssertEqual(try s.tokens(), [])
        let t = try s.createToken(role: .reader, name: "r")
        XCTAssertEqual(try s.authenticate(t)?.role, .reader)
        XCTAssertEqual(try outside.scalarInt("PRAGMA user_version"), 6)
    }

}
