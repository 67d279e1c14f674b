import Foundation

/// Writes generated text to standard output as it comes, token by token,
/// holding back the bytes of a character a token split (a byte-level BPE
/// token may end inside one), so the output is the whole text's UTF-8
/// decoding (invalid bytes as U+FFFD) followed by a newline, as `print`
/// would have written it at the end.
final class UTF8Stream {
    private var pending: [UInt8] = []
    private let out = FileHandle.standardOutput

    func write(_ bytes: [UInt8]) {
        pending += bytes
        let cut = Self.completePrefix(pending)
        guard cut > 0 else { return }
        out.write(Data(String(decoding: pending[..<cut], as: UTF8.self).utf8))
        pending.removeFirst(cut)
    }

    func finish() {
        out.write(Data((String(decoding: pending, as: UTF8.self) + "\n").utf8))
        pending.removeAll()
    }

    /// The length of `b` up to the start of a trailing character whose bytes
    /// have not all come yet (a lead byte followed by fewer continuation bytes
    /// than it announces); every other byte, valid or not, is ready.
    static func completePrefix(_ b: [UInt8]) -> Int {
        var i = b.count
        var continuations = 0
        while i > 0 && continuations < 3 && b[i - 1] & 0xC0 == 0x80 {
            i -= 1
            continuations += 1
        }
        guard i > 0 else { return b.count }
        let lead = b[i - 1]
        let length = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 && lead < 0xF0 ? 3 : lead >= 0xC2 && lead < 0xE0 ? 2 : 1
        return length > 1 && continuations < length - 1 ? i - 1 : b.count
    }
}
