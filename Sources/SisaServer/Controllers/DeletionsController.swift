import Hummingbird
import SisaCoordinator

/// `POST /v1/deletions` and `GET /v1/deletions/{id}` (deleters). A request
/// is durable (the text erased, the shard quarantined) before its 202; the
/// deletion worker retrains in the background.
struct DeletionsController {
    let server: SisaServer

    func addRoutes(to group: RouterGroup<SisaContext>) {
        group.post("/deletions") { [server] request, context -> Response in
            let body = try await request.decode(as: DeletionBody.self, context: context)
            return try await DeletionsController.submit(body, server: server, request: request, context: context)
        }
        group.get("/deletions/:id") { [server] _, context -> DeletionRequest in
            guard let id = context.parameters.get("id", as: Int.self), id >= 1 else {
                throw HTTPError(.badRequest, message: "the deletion request id must be a positive integer")
            }
            guard let r = try server.readers.deletionRequest(id: id) else { throw HTTPError(.notFound, message: "no deletion request \(id)") }
            return r
        }
    }

    static func submit(_ body: DeletionBody, server: SisaServer, request: Request, context: SisaContext) async throws -> Response {
        guard !body.ids.isEmpty, body.ids.count <= 10_000 else { throw HTTPError(.badRequest, message: "ids must hold 1 to 10000 record ids") }
        let result: DeletionSubmission
        do {
            let (ids, reason) = (body.ids, body.reason)
            result = try await server.submit { try $0.submitDeletion(ids: ids, reason: reason) }
        } catch let CoordinatorError.unknownIDs(ids) {
            throw HTTPError(.notFound, message: "unknown record ids (nothing was changed): \(ids.joined(separator: ", "))")
        }
        switch result {
        case let .queued(r, already):
            server.logger.info("deletion request \(r.id) queued: \(r.records.count) records, caller \(context.caller?.name ?? "-")")
            server.deletions.signal()
            return try encode(SubmittedDeletion(request: r, alreadyDeleted: already), status: .accepted,
                              location: "/v1/deletions/\(r.id)", request: request, context: context)
        case let .alreadyDeleted(receipt):
            return try encode(SubmittedDeletion(request: nil, alreadyDeleted: receipt.alreadyDeleted ?? [], receipt: receipt),
                              status: .ok, location: nil, request: request, context: context)
        }
    }
}

struct DeletionBody: Decodable {
    let ids: [String]
    let reason: String?

    enum CodingKeys: String, CodingKey { case ids, reason }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ids = try c.decode([String].self, forKey: .ids)
        reason = try c.decodeAbsentOrValue(String.self, forKey: .reason)
    }
}

struct SubmittedDeletion: Encodable {
    /// The new request (state queued), absent when every id was deleted before.
    let request: DeletionRequest?
    let alreadyDeleted: [String]
    /// For ids deleted before: the receipt of the request that deleted them.
    var receipt: DeletionReceipt? = nil
}

extension DeletionRequest: ResponseEncodable {}

/// A JSON response with a status other than 200, and a Location if given.
func encode<T: Encodable>(_ value: T, status: HTTPResponse.Status, location: String?, request: Request,
                          context: SisaContext) throws -> Response {
    var response = try context.responseEncoder.encode(value, from: request, context: context)
    response.status = status
    if let location { response.headers[.location] = location }
    return response
}
