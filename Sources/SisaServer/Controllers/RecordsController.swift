import Foundation
import Hummingbird
import NIOCore
import SisaCoordinator

/// `GET /v1/records` (readers): a page of live records, in SQL.
/// `POST /v1/records` and `POST /v1/train` (admins): ingest and train.
struct RecordsController {
    let server: SisaServer

    func addReaderRoutes(to group: RouterGroup<SisaContext>) {
        group.get("/records") { [server] request, _ -> RecordPage in
            let q = request.uri.queryParameters
            let offset = try RecordsController.integer(q["offset"].map(String.init), name: "offset", default: 0, range: 0...Int.max)
            let limit = try RecordsController.integer(q["limit"].map(String.init), name: "limit", default: 100, range: 1...10_000)
            let group = q["group"].map(String.init)
            let after = q["after"].map(String.init)
            // Paged in SQL, and the total read from the maintained counts. `after`
            // (the last id of the previous page) costs the page's rows wherever it
            // starts; `offset` walks the rows it skips (after `after`, if both are given).
            let page: [RecordInfo]
            do {
                page = try server.readers.catalog.records(group: group, after: after, offset: offset, limit: limit)
            } catch CoordinatorError.unknownIDs(let ids) {
                throw HTTPError(.notFound, message: "after: no live record with id \(ids.joined())")
            }
            let total = try server.readers.catalog.liveRecordCount(group: group)
            let rows = page.map {
                RecordPage.Record(id: $0.id, group: $0.group, shard: $0.shard, slice: $0.slice, holdout: $0.holdout)
            }
            return RecordPage(records: rows, total: total, offset: offset, limit: limit,
                              next: rows.count == limit ? rows.last?.id : nil)
        }
    }

    func addAdminRoutes(to group: RouterGroup<SisaContext>) {
        group.post("/records") { [server] request, context -> Response in
            var request = request
            let limit = server.options.maxIngestBytes
            let body: ByteBuffer
            do { body = try await request.collectBody(upTo: limit) } catch is NIOTooManyBytesError {
                throw HTTPError(.contentTooLarge, message: "the body is over \(limit >> 20) MiB (sisa serve --max-ingest-mb): send the records in several requests, or ingest the file with `sisa ingest`")
            }
            let q = request.uri.queryParameters
            let report = try await RecordsController.ingest(Array(body.readableBytesView), group: q["group"].map(String.init),
                                                      holdout: q["holdout"].map(String.init), server: server)
            return try encode(report, status: .created, location: nil, request: request, context: context)
        }
        group.post("/train") { [server] request, context -> Response in
            server.deletions.requestTraining()
            return try encode(["state": "training"], status: .accepted, location: "/v1/status", request: request, context: context)
        }
    }

    /// A query parameter that must be a whole number in `range` (absent: `default`).
    static func integer(_ value: String?, name: String, default d: Int, range: ClosedRange<Int>) throws -> Int {
        guard let value else { return d }
        guard let n = Int(value), range.contains(n) else {
            throw HTTPError(.badRequest, message: range.upperBound == Int.max ? "\(name) must be an integer >= \(range.lowerBound)"
                                                 : "\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }

    /// The CLI's all-or-nothing ingest on a request body: a JSON array of
    /// records or JSON lines ({"text", "id"?, "group"?}), parsed in memory
    /// (the text never lands in a scratch file).
    static func ingest(_ body: [UInt8], group: String?, holdout: String?, server: SisaServer) async throws -> IngestAnswer {
        let fraction: Double
        if let holdout {
            guard let f = Double(holdout), f >= 0, f < 1 else { throw HTTPError(.badRequest, message: "holdout must be a number in [0, 1)") }
            fraction = f
        } else { fraction = 0 }
        if let group, group.isEmpty { throw HTTPError(.badRequest, message: "group must not be empty") }
        var lines = body
        if body.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "[") {
            // A JSON array: one line per element, so errors still name the element's line.
            guard let array = try? JSONSerialization.jsonObject(with: Data(body)) as? [Any] else {
                throw HTTPError(.badRequest, message: "request body: not a JSON array of records")
            }
            // Each element must be an object: JSONSerialization traps (crashes the
            // process) on a top-level string or number, so nothing else reaches it.
            lines = try array.enumerated().flatMap { i, element -> [UInt8] in
                guard element is [String: Any], JSONSerialization.isValidJSONObject(element) else {
                    throw HTTPError(.badRequest, message: "request body:\(i + 1): element \(i + 1) is not a JSON object {\"text\", \"id\"?, \"group\"?}")
                }
                return Array(try JSONSerialization.data(withJSONObject: element, options: [.sortedKeys])) + [0x0A]
            }
        }
        let source = IngestSource.jsonLines(lines, name: "request body")
        let r = try await server.submit { try $0.ingest(source: source, group: group, holdout: fraction) }
        return IngestAnswer(ingest: r.ingest, added: r.added, skipped: r.skipped, holdout: r.holdout,
                            appendedSlice: r.appendedSlice, perShard: r.perShard)
    }
}

struct IngestAnswer: Encodable {
    let ingest: Int
    let added: Int
    let skipped: Int
    let holdout: Int
    let appendedSlice: Int?
    let perShard: [Int]
}

struct RecordPage: ResponseEncodable {
    struct Record: Codable { let id: String; let group: String; let shard: Int; let slice: Int; let holdout: Bool }
    let records: [Record]
    let total: Int
    let offset: Int
    let limit: Int
    /// The id to pass as `after` for the next page (absent on the last page).
    let next: String?
}
