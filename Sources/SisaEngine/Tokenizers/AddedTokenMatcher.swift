/// One pass of Hugging Face tokenizers' added vocabulary over a text: the
/// added tokens (special tokens, chat markers, user-added tokens) are found
/// leftmost-longest and never overlapping, as its Aho-Corasick automaton finds
/// them, and each match is then kept or dropped and widened by its flags:
///
///  - single_word: dropped unless the characters on both sides are not word
///    characters (Rust regex's `\w`: alphabetic, marks, decimal digits,
///    connector punctuation, joiners). A dropped match still ends the search
///    there: the next match is looked for after it.
///  - lstrip: widened over the whitespace before it, but not into the previous
///    match (its widened end);
///  - rstrip: widened over the whitespace after it. The next match is still
///    looked for right after the token itself, so a following whitespace token
///    can be matched inside that stretch: tokenizers then emits it as well and
///    resumes the text at its end.
struct AddedTokenMatcher: Sendable {
    enum Segment { case text([Unicode.Scalar]), added(Int32) }

    /// (token, the scalars it is matched as), by first scalar, longest first.
    private let byFirstScalar: [UInt32: [(token: AddedToken, scalars: [Unicode.Scalar])]]

    init(_ tokens: [(AddedToken, [Unicode.Scalar])]) {
        var byFirst: [UInt32: [(token: AddedToken, scalars: [Unicode.Scalar])]] = [:]
        for (a, s) in tokens where !s.isEmpty { byFirst[s[0].value, default: []].append((a, s)) }
        for k in byFirst.keys { byFirst[k]!.sort { $0.scalars.count > $1.scalars.count } }
        byFirstScalar = byFirst
    }

    /// The text cut at the matches, in order; no stretch of text is empty (tokenizers
    /// drops empty splits, so an empty text has no pieces to pre-tokenize).
    func split(_ t: [Unicode.Scalar]) -> [Segment] {
        guard !t.isEmpty else { return [] }
        guard !byFirstScalar.isEmpty else { return [.text(t)] }
        var out: [Segment] = []
        var done = 0, i = 0
        while i < t.count {
            guard let (a, length) = longestMatch(in: t, at: i) else {
                i += 1
                continue
            }
            let matchStart = i
            var start = i, stop = i + length
            i = stop
            if a.singleWord {
                if start > 0 && Self.isWordScalar(t[start - 1]) { continue }
                if stop < t.count && Self.isWordScalar(t[stop]) { continue }
            }
            if a.lstrip {
                while start > 0 && t[start - 1].properties.isWhitespace { start -= 1 }
                start = min(max(start, done), matchStart)
            }
            if a.rstrip { while stop < t.count && t[stop].properties.isWhitespace { stop += 1 } }
            if done < start { out.append(.text(Array(t[done..<start]))) }
            out.append(.added(a.id))
            done = stop
        }
        if done < t.count { out.append(.text(Array(t[done...]))) }
        return out
    }

    private func longestMatch(in t: [Unicode.Scalar], at i: Int) -> (AddedToken, Int)? {
        guard let candidates = byFirstScalar[t[i].value] else { return nil }
        for (a, c) in candidates where i + c.count <= t.count {
            var same = true
            for k in 1..<c.count where t[i + k] != c[k] {
                same = false
                break
            }
            if same { return (a, c.count) }
        }
        return nil
    }

    /// Rust regex's Unicode `\w`, which tokenizers' single_word test uses.
    static func isWordScalar(_ s: Unicode.Scalar) -> Bool {
        s.properties.isAlphabetic || s.value == 0x200C || s.value == 0x200D || ScalarSet.word.contains(s)
    }
}
