/// A decoder's history and the position of its key/value cache. When the
/// cache is full, it restarts from the last half of the history (the new
/// token included), so generation can run past the context.
struct DecodeWindow {
    let context: Int
    private(set) var history: [Int32] = []
    private(set) var position = 0

    init(context: Int) { self.context = context }

    mutating func reset() {
        history = []
        position = 0
    }

    /// Appends `token`, then calls `step(token, position)` for every token the cache takes in.
    mutating func feed(_ token: Int32, step: (Int32, Int) -> Void) {
        history.append(token)
        if position == context {
            position = 0
            for t in history.suffix(context / 2) {
                step(t, position)
                position += 1
            }
        } else {
            step(token, position)
            position += 1
        }
    }
}
