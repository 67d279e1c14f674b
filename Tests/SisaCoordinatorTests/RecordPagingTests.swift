import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

/// Record listings paged in SQL are slices of the whole listing, for every
/// group and after deletions, through the library, the CLI and the server.
final class RecordPagingTests: XCTestCase {
    func testPagesAreSlicesOfTheWholeListing() throws {
        let tmp = TempDir()
        let store = try Store.create(at: tmp.url.appendingPathComponent("s"), config: microConfig())
        _ = try store.ingest(paths: [tmp.jsonl("a.jsonl", syntheticRecords(70, prefix: "a"))], group: "a")
        _ = try store.ingest(paths: [tmp.jsonl("b.jsonl", syntheticRecords(45, prefix: "b"))], group: "b")
        _ = try store.delete(ids: ["a-3", "a-40", "b-0"])
        var rng = Xoshiro256(seed: 11)
        for group in [nil, "a", "b", "none"] as [String?] {
            let all = try store.catalog.records(group: group)
            XCTAssertEqual(try store.catalog.liveRecordCount(group: group), all.count)
            for _ in 0..<25 {
                let offset = rng.nextInt(below: all.count + 5), limit = 1 + rng.nextInt(below: 30)
                let page = try store.catalog.records(group: group, offset: offset, limit: limit)
                XCTAssertEqual(page.map(\.id), Array(all.dropFirst(offset).prefix(limit)).map(\.id), "group \(group ?? "-") offset \(offset) limit \(limit)")
            }
        }
        // Keyset pages (each after the previous page's last id) walk the same listing.
        for group in [nil, "a", "b"] as [String?] {
            let all = try store.catalog.records(group: group).map(\.id)
            for limit in [1, 7, 200] {
                var walked: [String] = [], after: String?
                while true {
                    let page = try store.catalog.records(group: group, after: after, limit: limit).map(\.id)
                    walked += page
                    guard page.count == limit else { break }
                    after = page.last
                }
                XCTAssertEqual(walked, all, "group \(group ?? "-") limit \(limit)")
            }
            // A deleted record is still a valid cursor: the page starts after where it was.
            let afterDeleted = try store.catalog.records(group: group, after: "a-3", limit: 3).map(\.id)
            // (every b record was ingested after a-3)
            let expected = group == "b" ? Array(all.prefix(3)) : Array(all.drop { $0 != "a-4" }.prefix(3))
            XCTAssertEqual(afterDeleted, expected, "group \(group ?? "-")")
        }
        XCTAssertThrowsError(try store.catalog.records(group: nil, after: "no-such-id", limit: 3))
        XCTAssertFalse(try store.catalog.records(group: nil, offset: 0, limit: 200).contains { ["a-3", "a-40", "b-0"].contains($0.id) })

        let sisa = try sisaBinary()
        let r = try runSisa(sisa, ["records", "--store", store.url.path, "--group", "a", "--offset", "10", "--limit", "5", "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let ids = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]]).compactMap { $0["id"] as? String }
        XCTAssertEqual(ids, Array(try store.catalog.records(group: "a").dropFirst(10).prefix(5)).map(\.id))
        let bad = try runSisa(sisa, ["records", "--store", store.url.path, "--limit", "0"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("--limit"), bad.err)
    }
}
