import Foundation

/// A Hugging Face `config.json`, read with checks: every accessor names the
/// file and the key when a value is missing or of the wrong kind.
public struct ModelConfigJSON {
    public let path: String
    public let object: [String: Any]

    public init(url: URL) throws {
        path = url.path
        guard let data = FileManager.default.contents(atPath: url.path) else { throw EngineError.io("\(url.path): cannot read") }
        guard data.count <= 16 << 20 else { throw EngineError.format("\(url.path): larger than 16 MB") }
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw EngineError.format("\(url.path): not a JSON object")
        }
        object = obj
    }

    func fail(_ m: String) -> EngineError { .format("\(path): \(m)") }

    public var modelType: String? { object["model_type"] as? String }

    public func has(_ key: String) -> Bool { object[key] != nil && !(object[key] is NSNull) }

    public func int(_ key: String) throws -> Int {
        guard let v = try optionalInt(key) else { throw fail("\(key) is missing") }
        return v
    }

    public func optionalInt(_ key: String) throws -> Int? {
        guard has(key) else { return nil }
        guard let n = object[key] as? NSNumber, !isBool(n), let v = n as? Int else { throw fail("\(key) is not an integer") }
        return v
    }

    public func optionalDouble(_ key: String) throws -> Double? {
        guard has(key) else { return nil }
        guard let n = object[key] as? NSNumber, !isBool(n) else { throw fail("\(key) is not a number") }
        let d = n.doubleValue
        guard d.isFinite else { throw fail("\(key) is not finite") }
        return d
    }

    public func optionalBool(_ key: String) throws -> Bool? {
        guard has(key) else { return nil }
        guard let b = object[key] as? Bool else { throw fail("\(key) is not a boolean") }
        return b
    }

    public func optionalString(_ key: String) throws -> String? {
        guard has(key) else { return nil }
        guard let s = object[key] as? String else { throw fail("\(key) is not a string") }
        return s
    }

    /// An integer or a list of integers (eos_token_id may be either).
    public func optionalIntList(_ key: String) throws -> [Int]? {
        guard has(key) else { return nil }
        if let n = object[key] as? NSNumber, !isBool(n), let v = n as? Int { return [v] }
        guard let a = object[key] as? [Any] else { throw fail("\(key) is not an integer or a list of integers") }
        return try a.map { e in
            guard let n = e as? NSNumber, !isBool(n), let v = n as? Int else { throw fail("\(key) holds a non-integer") }
            return v
        }
    }

    public func dictionary(_ key: String) throws -> [String: Any]? {
        guard has(key) else { return nil }
        guard let d = object[key] as? [String: Any] else { throw fail("\(key) is not an object") }
        return d
    }

    /// JSON's true and false arrive as NSNumbers of type "c" (char), which
    /// would otherwise read as the integers 1 and 0.
    private func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }
}
