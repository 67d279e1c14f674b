import Foundation
import SisaEngine

/// A TOFU-style benchmark (Maini et al. 2024) generated locally: fictitious
/// people, question/answer records about them, and for every question a
/// paraphrased answer and perturbed (false) answers, from templates and word
/// lists. No network, no real people.
public enum TOFU {
    public struct Question: Codable, Sendable, Equatable {
        public let person: Int
        public let question: String
        public let answer: String
        /// The same fact in other words.
        public let paraphrased: String
        /// The paraphrased form with a false fact (as in TOFU, perturbations of
        /// the paraphrase: the truth ratio then compares facts, not wordings).
        public let perturbed: [String]
        /// The same false facts in the trained answer's wording (not in TOFU:
        /// byte-level models this small do not carry a fact across wordings,
        /// so the truth ratio is also taken in the wording they were trained on).
        public let perturbedTrained: [String]

        public init(person: Int, question: String, answer: String, paraphrased: String, perturbed: [String],
                    perturbedTrained: [String] = []) {
            self.person = person
            self.question = question
            self.answer = answer
            self.paraphrased = paraphrased
            self.perturbed = perturbed
            self.perturbedTrained = perturbedTrained
        }

        /// The training record: question and answer.
        public var text: String { TOFU.record(question, answer) }
    }

    public struct Benchmark: Codable, Sendable {
        public let people: [String]
        public let questions: [Question]
        public let seed: UInt64
    }

    static func record(_ q: String, _ a: String) -> String { "Question: \(q)\nAnswer: \(a)" }

    static let first = ["Alda", "Borin", "Caska", "Delmar", "Ederin", "Fenna", "Gorim", "Halvi", "Ismene", "Jorvik",
                        "Kalla", "Lundor", "Maeve", "Nerith", "Olven", "Pirra", "Quorin", "Rhosa", "Sevrin", "Talla",
                        "Ulmar", "Vesna", "Wendor", "Xalia", "Yorrin", "Zelda"]
    static let last = ["Ashdown", "Brackwater", "Coldmere", "Dunhallow", "Eskerby", "Fallowmere", "Greythorn", "Hollins",
                       "Ivers", "Juniperhill", "Kestrel", "Lorimer", "Marrowby", "Northwick", "Oakenshaw", "Pellow",
                       "Quillfeather", "Ravensworth", "Stonebury", "Thistlewood"]
    static let cities = ["Varnholm", "Elsport", "Dunmarrow", "Kettering Vale", "Brightwater", "Oskavik", "Tallowmere",
                         "Rendale", "Pyrrhos", "Calder Bay", "Mistral", "Oldcastle", "Fenwick", "Sorrento Nova"]
    static let jobs = ["lighthouse keeper", "glassblower", "cartographer", "beekeeper", "clockmaker", "marine biologist",
                       "stonemason", "librarian", "violin maker", "botanist", "railway engineer", "astronomer"]
    static let genres = ["mystery novels", "poetry", "travel memoirs", "science fiction", "historical romance",
                         "children's books", "essays on gardening", "crime thrillers"]
    static let foods = ["plum dumplings", "smoked trout", "lentil soup", "apricot tart", "roasted chestnuts",
                        "barley bread", "fig jam", "mushroom pie"]

    /// `people` profiles with 5 questions each, drawn from `seed`.
    public static func generate(people: Int, seed: UInt64, perturbed: Int = 4) -> Benchmark {
        precondition(people >= 1 && perturbed >= 1)
        var rng = Xoshiro256(seed: seed ^ 0x746F_6675)
        func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
        func others<T: Equatable>(_ xs: [T], not x: T) -> [T] {
            var pool = xs.filter { $0 != x }
            var out: [T] = []
            while out.count < perturbed {
                if pool.isEmpty { pool = xs.filter { $0 != x } }
                out.append(pool.remove(at: Int(rng.next() % UInt64(pool.count))))
            }
            return out
        }
        var names: [String] = []
        var seen = Set<String>()
        while names.count < people {
            let n = "\(pick(first)) \(pick(last))"
            // Distinct names; past the lists' combinations, a middle initial.
            let name = seen.contains(n) ? "\(n.split(separator: " ")[0]) \(Character(UnicodeScalar(65 + UInt8(names.count % 26)))). \(n.split(separator: " ")[1])" : n
            if seen.insert(name).inserted { names.append(name) }
        }
        var qs: [Question] = []
        for (p, name) in names.enumerated() {
            let city = pick(cities), job = pick(jobs), genre = pick(genres), food = pick(foods)
            let year = 1900 + Int(rng.next() % 100)
            // Each fact: question, trained wording, paraphrase wording, the true value and false ones.
            func fact<T: Equatable>(_ question: String, _ trained: (T) -> String, _ paraphrase: (T) -> String,
                                    _ value: T, _ pool: [T]) {
                let wrong = others(pool, not: value)
                qs.append(Question(person: p, question: question, answer: trained(value), paraphrased: paraphrase(value),
                                   perturbed: wrong.map(paraphrase), perturbedTrained: wrong.map(trained)))
            }
            fact("Where was \(name) born?", { "\(name) was born in \($0)." }, { "\($0) is the birthplace of \(name)." },
                 city, cities)
            fact("In which year was \(name) born?", { "\(name) was born in \($0)." }, { "The year \(name) was born is \($0)." },
                 year, Array(1900...1999))
            fact("What does \(name) do for a living?", { "\(name) works as a \($0)." }, { "By profession, \(name) is a \($0)." },
                 job, jobs)
            fact("What does \(name) write?", { "\(name) writes \($0)." }, { "The books of \(name) are \($0)." }, genre, genres)
            fact("What is the favourite dish of \(name)?", { "\(name) loves \($0)." }, { "The dish \(name) likes best is \($0)." },
                 food, foods)
        }
        return Benchmark(people: names, questions: qs, seed: seed)
    }

    /// The people of a forget split: the first `percent`% (at least one) in a seeded order.
    public static func forgetPeople(_ b: Benchmark, percent: Double) -> Set<Int> {
        let n = max(1, Int((Double(b.people.count) * percent / 100).rounded()))
        return Set(b.people.indices.sorted { Placement.hash64(b.seed, b.people[$0], "tofu-forget") < Placement.hash64(b.seed, b.people[$1], "tofu-forget") }.prefix(n))
    }

    /// Mean NLL per token of `answer` after "Question: q\nAnswer: " under a
    /// scorer of whole records (per-token NLLs): log of P(a|q)^(-1/|a|).
    ///
    /// `encode` is the store's tokenizer (bytes by default). The answer's
    /// tokens are those of the whole record after the longest common prefix
    /// with the question's tokens: a BPE tokenizer merges the space after
    /// "Answer:" into the answer's first word, so the question alone ends in
    /// a token the record does not have. On bytes the common prefix is the
    /// whole question, and the answer is exactly its bytes.
    static func answerNLL(question: String, answers: [String], encode: ([UInt8]) -> [Int32] = { $0.map(Int32.init) },
                          score: ([[UInt8]]) -> [RecordScore]) -> [Double] {
        let prefix = encode(Array(record(question, "").utf8))
        let texts = answers.map { Array(record(question, $0).utf8) }
        let scores = score(texts)
        return zip(texts, scores).map { text, s in
            let tokens = encode(text)
            let start = zip(prefix, tokens).prefix { $0 == $1 }.count
            // tokenNLL[t] predicts token t of the record (then <sep>).
            let range = start..<tokens.count
            precondition(!range.isEmpty && s.tokenNLL!.count >= tokens.count, "an answer with no token of its own")
            return range.reduce(0.0) { $0 + Double(s.tokenNLL![$1]) } / Double(range.count)
        }
    }

    public enum Wording: String, Codable, Sendable {
        /// TOFU's definition: the paraphrased answer against perturbations of it.
        case paraphrased
        /// The trained answer against the same false facts in its wording.
        case trained
    }

    /// TOFU's truth ratio: mean over perturbed answers of P(â|q)^(1/|â|),
    /// divided by P(ã|q)^(1/|ã|) for the paraphrased answer. Near 0: the model
    /// knows the fact; near 1: it cannot tell true from false. `.trained`
    /// takes both in the wording of the training record instead.
    public static func truthRatio(_ q: Question, wording: Wording = .paraphrased,
                                  encode: ([UInt8]) -> [Int32] = { $0.map(Int32.init) },
                                  score: ([[UInt8]]) -> [RecordScore]) -> Double {
        let (truth, wrong) = wording == .paraphrased ? (q.paraphrased, q.perturbed) : (q.answer, q.perturbedTrained)
        precondition(!wrong.isEmpty, "question without perturbed answers in the \(wording) wording")
        let nll = answerNLL(question: q.question, answers: [truth] + wrong, encode: encode, score: score)
        let perturbedMean = nll.dropFirst().reduce(0.0) { $0 + Foundation.exp(-$1) } / Double(wrong.count)
        return perturbedMean / Foundation.exp(-nll[0])
    }

    /// `truthRatio` of many questions with one call of `score`, which then
    /// scores whole batches instead of one question's five answers at a time.
    public static func truthRatios(_ qs: [Question], wording: Wording = .paraphrased,
                                   encode: ([UInt8]) -> [Int32] = { $0.map(Int32.init) },
                                   score: ([[UInt8]]) -> [RecordScore]) -> [Double] {
        func answers(_ q: Question) -> [String] {
            wording == .paraphrased ? [q.paraphrased] + q.perturbed : [q.answer] + q.perturbedTrained
        }
        let all = score(qs.flatMap { q in answers(q).map { Array(record(q.question, $0).utf8) } })
        var next = 0
        return qs.map { q in
            let n = answers(q).count
            let mine = Array(all[next..<(next + n)])
            next += n
            return truthRatio(q, wording: wording, encode: encode) { _ in mine }
        }
    }

    /// P(a|q)^(1/|a|) of each question's true answer, with one call of `score`.
    static func answerProbabilities(_ qs: [Question], encode: ([UInt8]) -> [Int32],
                                    score: ([[UInt8]]) -> [RecordScore]) -> [Double] {
        let all = score(qs.map { Array(record($0.question, $0.answer).utf8) })
        return zip(qs, all).map { q, s in
            Foundation.exp(-answerNLL(question: q.question, answers: [q.answer], encode: encode) { _ in [s] }[0])
        }
    }

    /// Forget quality: the KS test's p-value between the truth ratios of the
    /// unlearned model and of the model retrained without the forget set.
    public static func forgetQuality(unlearned: [Double], retrained: [Double]) -> Double {
        KolmogorovSmirnov.test(unlearned, retrained).pValue
    }
}
