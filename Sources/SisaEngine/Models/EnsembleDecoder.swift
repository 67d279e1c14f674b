/// Decoders for an ensemble's members, all fed the same tokens.
///
/// Members over one frozen base (a base store's shards, or the server's
/// inference copies of them) decode in lock-step through one decoder
/// (`LlamaDecoder`, `GPT2Decoder`), which reads the base once per token for
/// all of them: decoding a 135M base is bound by reading its 540 MB, so S
/// shards cost about one. Any other member (a byte model, or a fully
/// fine-tuned shard, with weights of its own) gets its own decoder. Either
/// way each member's logits are, bit for bit, those of its own decoder.
public final class EnsembleDecoder {
    private enum Group {
        case lockstep(any LockstepDecoder, members: [Int])
        case single(any TokenDecoder, member: Int)
    }
    private let groups: [Group]
    public let count: Int

    /// Members decoded in lock-step with at least one other (for reports and tests).
    public var lockstepMembers: Int {
        groups.reduce(0) { n, g in if case .lockstep(_, let m) = g { return n + m.count } else { return n } }
    }

    /// `pool` splits the lock-step decoders' base products by columns.
    public init(models: [any LanguageModel], pool: WorkerPool) {
        precondition(!models.isEmpty, "an ensemble needs a model")
        count = models.count
        groups = SharedBase.groups(models).map { group -> Group in
            guard group.count > 1 else { return .single(models[group[0]].makeDecoder(), member: group[0]) }
            if let llamas = group.map({ models[$0] }) as? [LlamaModel] {
                return .lockstep(LlamaDecoder(members: llamas, pool: pool), members: group)
            }
            return .lockstep(GPT2Decoder(members: group.map { models[$0] as! GPT2Model }, pool: pool), members: group)
        }
    }

    /// Feeds `token` to every member; returns each member's next-token
    /// logits, in member order (valid until the next call).
    public func feed(_ token: Int32) -> [UnsafeBufferPointer<Float>] {
        var out = [UnsafeBufferPointer<Float>](repeating: UnsafeBufferPointer(start: nil, count: 0), count: count)
        for g in groups {
            switch g {
            case .lockstep(let d, let members):
                d.feed(token)
                for (k, i) in members.enumerated() { out[i] = d.logits(member: k) }
            case .single(let d, let i):
                out[i] = d.feed(token)
            }
        }
        return out
    }
}

/// A decoder stepping several members over one frozen base (`LlamaDecoder`, `GPT2Decoder`).
public protocol LockstepDecoder: TokenDecoder {
    /// Member `i`'s next-token logits after the last `feed`.
    func logits(member i: Int) -> UnsafeBufferPointer<Float>
}

extension LlamaDecoder: LockstepDecoder {}
extension GPT2Decoder: LockstepDecoder {}
