/// A batch of B rows of T token ids, with next-token targets (-1 = ignored).
public struct Batch: Sendable {
    public let B: Int
    public let T: Int
    public var tokens: [Int32]
    public var targets: [Int32]
    /// Optional per-position weights of the loss gradient (nil: all 1). The
    /// approximate unlearning methods use them: -1 is gradient ascent.
    public var weights: [Float]?

    public init(B: Int, T: Int, tokens: [Int32], targets: [Int32]) {
        precondition(tokens.count == B * T && targets.count == B * T, "batch arrays must hold B*T ids")
        self.B = B
        self.T = T
        self.tokens = tokens
        self.targets = targets
    }

    /// Rows cut from token streams: row r predicts stream[r][1...] from stream[r][...].
    /// Each stream holds at most T+1 tokens; shorter ones are padded with
    /// `pad` (any valid id: its targets are masked) and masked.
    public init(rows: [[Int32]], T: Int, padTo B: Int? = nil, pad: Int32 = ByteTokenizer.endOfText) {
        let B = B ?? rows.count
        precondition(rows.count <= B)
        var tokens = [Int32](repeating: pad, count: B * T)
        var targets = [Int32](repeating: -1, count: B * T)
        for (r, row) in rows.enumerated() {
            precondition(row.count <= T + 1, "row longer than T+1")
            for t in 0..<max(0, row.count - 1) {
                tokens[r * T + t] = row[t]
                targets[r * T + t] = row[t + 1]
            }
            if row.count == 1 { tokens[r * T] = row[0] }
        }
        self.init(B: B, T: T, tokens: tokens, targets: targets)
    }

    public var targetCount: Int { targets.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }
}
