/// Errors of the engine. Messages name the file (and the key, tensor or
/// offset) when the problem is in a file from elsewhere.
public enum EngineError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(String)
    case corruptState(String)
    case io(String)
    case format(String)

    public var description: String {
        switch self {
        case .invalidConfig(let m): return "invalid configuration: \(m)"
        case .corruptState(let m): return "corrupt training state: \(m)"
        case .io(let m): return m
        case .format(let m): return "format error: \(m)"
        }
    }
}
