/// Errors a user can act on: each names the file and line, the id, or the store.
public enum CoordinatorError: Error, CustomStringConvertible, Equatable {
    case noStore(String)
    case storeExists(String)
    case invalidInput(String)
    case unknownIDs([String])
    /// An id that is taken (ingest without --skip-duplicates).
    case duplicateID(String)
    case configFrozen(String)
    case locked(String)
    case corrupt(String)
    case io(String)
    case notTrained(String)
    /// The store's checkpoints were computed under another numerics version.
    case numericsMismatch(store: String, stored: Int, current: Int)

    public var description: String {
        switch self {
        case .noStore(let p): return "no sisa store at \(p) (create one with `sisa init`, or pass --store / SISA_STORE)"
        case .storeExists(let p): return "a sisa store already exists at \(p)"
        case .invalidInput(let m): return m
        case .duplicateID(let m): return m
        case .unknownIDs(let ids): return "unknown record id\(ids.count == 1 ? "" : "s"): \(ids.joined(separator: ", ")) (nothing was changed)"
        case .configFrozen(let m): return m
        case .locked(let m): return m
        case .corrupt(let m): return m
        case .io(let m): return m
        case .notTrained(let m): return m
        case let .numericsMismatch(store, stored, current):
            let era = stored == 1 ? " (OpenBLAS, whose bits depend on the CPU)" : ""
            return "\(store): this store was trained under numerics version \(stored)\(era), and this sisa computes with "
                + "version \(current). Continuing from those checkpoints would mix two sets of bits and break exact "
                + "deletion, so nothing was changed. Run `sisa train --rebuild` to retrain every stage from scratch "
                + "under version \(current) (records and deletions are kept); `sisa delete --defer` still erases "
                + "records at once, and the rebuild retrains without them."
        }
    }
}
