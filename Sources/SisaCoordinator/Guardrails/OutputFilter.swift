import Crypto
import Foundation

/// A guardrail baseline (Thaker et al. 2024): leave the model alone and
/// block any continuation that would reproduce a forgotten record verbatim
/// for `windowBytes` bytes or more; the sampler then takes the next-best byte.
///
/// It works from fingerprints: the first 8 bytes of SHA-256(salt || window)
/// for every `windowBytes`-byte window of each forgotten record. No record
/// byte is kept, but the fingerprints are still data derived from erased
/// text: anyone holding the salt and a guess of the text can test whether
/// the guess was forgotten. That is why the filter is opt-in.
public struct OutputFilter: Sendable {
    public let windowBytes: Int
    public let salt: [UInt8]
    public let fingerprints: Set<UInt64>

    public static let defaultWindowBytes = 16
    /// Windows shorter than this would block common phrases of unrelated text.
    public static let minimumWindowBytes = 8

    public init(windowBytes: Int, salt: [UInt8], fingerprints: Set<UInt64>) {
        precondition(windowBytes >= 1 && !salt.isEmpty)
        self.windowBytes = windowBytes
        self.salt = salt
        self.fingerprints = fingerprints
    }

    /// A filter over `records` (for `compare --method filter`, which keeps it in memory only).
    public init(records: [[UInt8]], windowBytes: Int, salt: [UInt8]) {
        var set = Set<UInt64>()
        for r in records { set.formUnion(OutputFilter.fingerprints(of: r, windowBytes: windowBytes, salt: salt)) }
        self.init(windowBytes: windowBytes, salt: salt, fingerprints: set)
    }

    public static func newSalt() -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<16).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    public static func fingerprint<C: Collection>(_ window: C, salt: [UInt8]) -> UInt64 where C.Element == UInt8 {
        var h = SHA256()
        h.update(data: salt)
        h.update(data: Array(window))
        var v: UInt64 = 0
        for (i, b) in h.finalize().prefix(8).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return v
    }

    /// Fingerprints of every window of `text` (none if it is shorter than a window).
    public static func fingerprints(of text: [UInt8], windowBytes n: Int, salt: [UInt8]) -> Set<UInt64> {
        guard text.count >= n else { return [] }
        return Set((0...(text.count - n)).map { fingerprint(text[$0..<($0 + n)], salt: salt) })
    }

    /// Whether emitting `next` after `context` (the bytes since the last
    /// end-of-text, prompt included) completes a fingerprinted window.
    public func blocks(context: [UInt8], next: UInt8) -> Bool {
        guard context.count >= windowBytes - 1 else { return false }
        return fingerprints.contains(OutputFilter.fingerprint(context.suffix(windowBytes - 1) + [next], salt: salt))
    }

    /// Whether emitting the bytes `next` (one token's) after `context`
    /// completes a fingerprinted window anywhere within them.
    public func blocks(context: [UInt8], next: [UInt8]) -> Bool {
        var window = Array(context.suffix(windowBytes - 1))
        for b in next {
            if blocks(context: window, next: b) { return true }
            window.append(b)
            if window.count > windowBytes - 1 { window.removeFirst(window.count - (windowBytes - 1)) }
        }
        return false
    }
}
