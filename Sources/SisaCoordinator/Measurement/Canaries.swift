import Foundation
import SisaEngine

/// Secret-bearing records in the style of Carlini et al. 2019 ("The Secret
/// Sharer"): "The secret code of <name> is <digits>." Each canary is
/// repeated as distinct records (own ids), so a repetition count can be chosen.
public struct Canary: Equatable, Sendable {
    /// Everything before the secret, and after it.
    public let prefix: String
    public let secret: String
    public let suffix: String

    public var text: String { prefix + secret + suffix }

    public static let lead = "The secret code of "

    /// Recognises a canary text: it starts with `lead` and ends with
    /// " is " + at least 4 ASCII digits + ".". The secret is the digit run.
    public static func parse(_ text: [UInt8]) -> Canary? {
        guard let s = String(validating: text, as: UTF8.self), s.hasPrefix(lead), s.hasSuffix("."),
              let isRange = s.range(of: " is ", options: .backwards) else { return nil }
        let secret = s[isRange.upperBound..<s.index(before: s.endIndex)]
        guard secret.count >= 4, secret.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Canary(prefix: String(s[..<isRange.upperBound]), secret: String(secret), suffix: ".")
    }

    /// The canary text with another secret of the same format.
    public func with(secret other: String) -> [UInt8] { Array((prefix + other + suffix).utf8) }

    /// log2 of the number of possible secrets of this format (10^digits).
    public var secretSpaceBits: Double { Double(secret.count) * log2(10.0) }

    /// Uniform random secret of `digits` decimal digits.
    static func randomSecret(digits: Int, rng: inout Xoshiro256) -> String {
        String((0..<digits).map { _ in Character(String(rng.next() % 10)) })
    }

    private static let names = ["Ada Moreau", "Bram Okafor", "Chen Lindqvist", "Dana Petrov", "Elif Navarro",
                                "Femi Larsen", "Greta Sato", "Hugo Mbeki", "Ines Kowalski", "Jonas Adeyemi",
                                "Kira Dubois", "Lars Haddad", "Mira Fischer", "Noor Castillo", "Oskar Tanaka",
                                "Priya Novak"]

    /// `count` canaries with distinct secrets of `digits` digits, drawn from `seed`.
    public static func generate(count: Int, digits: Int = 8, seed: UInt64) -> [Canary] {
        var rng = Xoshiro256(seed: seed ^ 0x6361_6E61_7279)
        var seen = Set<String>()
        var out: [Canary] = []
        while out.count < count {
            let name = names[Int(rng.next() % UInt64(names.count))]
            let secret = randomSecret(digits: digits, rng: &rng)
            guard seen.insert(secret).inserted else { continue }
            out.append(Canary(prefix: "\(lead)\(name) (\(out.count + 1)) is ", secret: secret, suffix: "."))
        }
        return out
    }

    /// The JSON lines `sisa canaries` writes: each canary `repeats` times,
    /// ids `canary-<seed>-<i>-<r>`, in group `group`.
    public static func jsonLines(_ canaries: [Canary], repeats: Int, group: String, seed: UInt64) throws -> String {
        var lines: [String] = []
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for (i, c) in canaries.enumerated() {
            for r in 0..<repeats {
                let obj = ["id": "canary-\(seed)-\(i + 1)-\(r + 1)", "text": c.text, "group": group]
                lines.append(String(decoding: try e.encode(obj), as: UTF8.self))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
