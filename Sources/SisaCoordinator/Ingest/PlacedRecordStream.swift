import Foundation
import SisaEngine

/// A record parsed, named and placed: everything its insert needs.
struct PlacedRecord: Sendable {
    let record: ParsedRecord
    let id: String
    let placement: Placement
    let sha256: String
}

/// An ingest's two halves on two threads: a reader thread parses the input,
/// derives ids, places each record and hashes its text (all pure work), and
/// hands batches to the caller, who inserts them in its transaction. The
/// queue between them holds at most `depth` batches, so memory stays bounded
/// by the batch, not the input. Records arrive in input order; an input
/// error arrives after every record before it, so the caller sees errors in
/// the order a single pass would.
///
/// `@unchecked Sendable`: every mutable field is read and written only with
/// `condition` locked.
final class PlacedRecordStream: @unchecked Sendable {
    static let batchSize = 1024
    static let depth = 8

    private let condition = NSCondition()
    private var batches: [[PlacedRecord]] = []
    private var failure: Error?
    private var finished = false
    private var cancelled = false
    private var readerExited = false
    private var bytesReadSoFar = 0

    private struct Cancelled: Error {}

    /// Starts reading `source` on a new thread; `place` runs there, once per record.
    init(source: IngestSource, place: @escaping @Sendable (ParsedRecord) throws -> PlacedRecord) {
        let thread = Thread { [self] in
            var batch: [PlacedRecord] = []
            batch.reserveCapacity(PlacedRecordStream.batchSize)
            do {
                try RecordParser.forEach(source, progress: { [self] read in condition.withLock { bytesReadSoFar = read } }) { r in
                    batch.append(try place(r))
                    if batch.count == PlacedRecordStream.batchSize {
                        try push(batch)
                        batch.removeAll(keepingCapacity: true)
                    }
                }
                try push(batch)
                finish(nil)
            } catch is Cancelled {
                finish(nil)
            } catch {
                try? push(batch)
                finish(error)
            }
        }
        thread.name = "sisa-ingest-reader"
        thread.start()
    }

    /// Bytes of the input read so far.
    var bytesRead: Int { condition.withLock { bytesReadSoFar } }

    /// The next batch in input order; nil at the end; throws the input's error where it occurred.
    func next() throws -> [PlacedRecord]? {
        condition.lock()
        defer { condition.unlock() }
        while batches.isEmpty && !finished { condition.wait() }
        if !batches.isEmpty {
            condition.broadcast()
            return batches.removeFirst()
        }
        if let failure { throw failure }
        return nil
    }

    /// Stops the reader (the caller hit an error) and waits for its thread to exit.
    func cancelAndWait() {
        condition.lock()
        defer { condition.unlock() }
        cancelled = true
        condition.broadcast()
        while !readerExited { condition.wait() }
    }

    private func push(_ batch: [PlacedRecord]) throws {
        guard !batch.isEmpty else { return }
        condition.lock()
        defer { condition.unlock() }
        while batches.count >= PlacedRecordStream.depth && !cancelled { condition.wait() }
        if cancelled { throw Cancelled() }
        batches.append(batch)
        condition.broadcast()
    }

    private func finish(_ error: Error?) {
        condition.withLock {
            failure = error
            finished = true
            readerExited = true
            condition.broadcast()
        }
    }
}
