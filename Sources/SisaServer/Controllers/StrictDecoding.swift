import Foundation

/// Optional fields of a request body may be absent, but not `null`: the
/// spec (docs/openapi.yaml) types them as integers, strings or numbers, and
/// a null there is a client bug worth a 400 rather than a silent default.
extension KeyedDecodingContainer {
    func decodeAbsentOrValue<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard contains(key) else { return nil }
        if try decodeNil(forKey: key) {
            throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath + [key],
                                                            debugDescription: "\(key.stringValue) must not be null (leave it out instead)"))
        }
        return try decode(T.self, forKey: key)
    }
}
