/// GPT-2's byte-to-unicode map: each byte value stands for one printable
/// character in vocabularies and merges, so that byte-level BPE can store
/// its tokens as text. Printable Latin-1 bytes (! to ~, ¡ to ¬, ® to ÿ)
/// stand for themselves; the other 68 take U+0100, U+0101, ... in order.
enum ByteLevel {
    static let byteToScalar: [Unicode.Scalar] = {
        var map = [Unicode.Scalar](repeating: "\u{0}", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                map[b] = Unicode.Scalar(UInt32(b))!
            } else {
                map[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return map
    }()

    static let scalarToByte: [UInt32: UInt8] = {
        var m: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { m[s.value] = UInt8(b) }
        return m
    }()

    /// The bytes a vocabulary string stands for, nil when a character is outside the map.
    static func bytes(of token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.unicodeScalars.count)
        for s in token.unicodeScalars {
            guard let b = scalarToByte[s.value] else { return nil }
            out.append(b)
        }
        return out
    }

    /// Decoding as Hugging Face's ByteLevel decoder does: mapped characters
    /// to their bytes, any other character as its own UTF-8.
    static func decode(_ token: String) -> [UInt8] {
        var out: [UInt8] = []
        for s in token.unicodeScalars {
            if let b = scalarToByte[s.value] { out.append(b) } else { out += Array(String(s).utf8) }
        }
        return out
    }
}
