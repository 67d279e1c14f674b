import Foundation

/// Next-token choice: greedy at temperature 0, else softmax(logits / T)
/// restricted to the top k, sampled with a seeded generator.
public struct Sampler {
    public var temperature: Double
    public var topK: Int?
    public var rng: Xoshiro256

    public init(temperature: Double = 1, topK: Int? = nil, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.rng = Xoshiro256(seed: seed)
    }

    /// Softmax of logits (Double, for aggregation across models).
    public static func probabilities<C: Collection>(_ logits: C) -> [Double] where C.Element == Float {
        let mx = Double(logits.max() ?? 0)
        let e = logits.map { Numerics.exp(Double($0) - mx) }
        let z = e.reduce(0, +)
        return e.map { $0 / z }
    }

    /// Picks a token from a probability vector (already aggregated if from an ensemble).
    public mutating func pick(_ probs: [Double]) -> Int32 {
        if temperature <= 0 { return Int32(probs.indices.max { probs[$0] < probs[$1] }!) }
        var order = Array(probs.indices)
        if let k = topK, k > 0, k < probs.count {
            order.sort { probs[$0] != probs[$1] ? probs[$0] > probs[$1] : $0 < $1 }
            order = Array(order.prefix(k))
        }
        // A byte of probability 0 (refused by an output filter) is never drawn.
        // Weights are p^(1/T) / p_max^(1/T): the most likely candidate weighs 1,
        // so a temperature near 0 tends to greedy instead of every weight
        // underflowing to 0 (which drew the first id).
        let top = order.lazy.map { probs[$0] }.max() ?? 0
        guard top > 0 else { return Int32(order[0]) }
        let logTop = Numerics.log(top)
        let w = order.map { probs[$0] > 0 ? Numerics.exp((Numerics.log(max(probs[$0], 1e-300)) - logTop) / temperature) : 0 }
        let z = w.reduce(0, +)
        var u = rng.nextDouble() * z
        for (i, idx) in order.enumerated() {
            u -= w[i]
            if u <= 0 { return Int32(idx) }
        }
        return Int32(order.last!)
    }
}

extension LanguageModel {
    /// Generates up to `maxTokens` tokens after `prompt` (token ids, at least
    /// one), stopping before any token of `stop`; `onToken` sees each token as
    /// it is chosen (to show a long generation as it goes).
    public func generate(tokens prompt: [Int32], maxTokens: Int, stop: Set<Int32>, sampler: inout Sampler,
                         onToken: ((Int32) -> Void)? = nil) -> [Int32] {
        precondition(!prompt.isEmpty, "generation needs a prompt of at least one token")
        let decoder = makeDecoder()
        var logits = decoder.feed(prompt[0])
        for t in prompt.dropFirst() { logits = decoder.feed(t) }
        var out: [Int32] = []
        for _ in 0..<maxTokens {
            let next = sampler.pick(Sampler.probabilities(logits))
            if stop.contains(next) { break }
            out.append(next)
            onToken?(next)
            logits = decoder.feed(next)
        }
        return out
    }
}

extension GPT2Model {
    /// A byte model's generation: up to `maxTokens` bytes after `prompt`, stopping at end-of-text.
    public func generate(prompt: [UInt8], maxTokens: Int, sampler: inout Sampler) -> [UInt8] {
        let ids = generate(tokens: [ByteTokenizer.endOfText] + prompt.map(Int32.init), maxTokens: maxTokens,
                           stop: [ByteTokenizer.endOfText], sampler: &sampler)
        return ids.map { UInt8($0) }
    }
}
