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
        /// The same form with a false fact.
        public let perturbed: [String]

        public init(person: Int, question: String, answer: String, paraphrased: String, perturbed: [String]) {
            self.person = person
            self.question = question
            self.answer = answer
            self.paraphrased = paraphrased
            self.perturbed = perturbed
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
            qs.append(Question(person: p, question: "Where was \(name) born?", answer: "\(name) was born in \(city).",
                               paraphrased: "\(city) is the birthplace of \(name).",
                               perturbed: others(cities, not: city).map { "\(name) was born in \($0)." }))
            qs.append(Question(person: p, question: "In which year was \(name) born?", answer: "\(name) was born in \(year).",
                               paraphrased: "The year \(name) was born is \(year).",
                               perturbed: others(Array(1900...1999), not: year).map { "\(name) was born in \($0)." }))
            qs.append(Question(person: p, question: "What does \(name) do for a living?", answer: "\(name) works as a \(job).",
                               paraphrased: "By profession, \(name) is a \(job).",
                               perturbed: others(jobs, not: job).map { "\(name) works as a \($0)." }))
            qs.append(Question(person: p, question: "What does \(name) write?", answer: "\(name) writes \(genre).",
                               paraphrased: "The books of \(name) are \(genre).",
                               perturbed: others(genres, not: genre).map { "\(name) writes \($0)." }))
            qs.append(Question(person: p, question: "What is the favourite dish of \(name)?", answer: "\(name) loves \(food).",
                               paraphrased: "The dish \(name) likes best is \(food).",
                               perturbed: others(foods, not: food).map { "\(name) loves \($0)." }))
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
    static func answerNLL(question: String, answers: [String], score: ([[UInt8]]) -> [RecordScore]) -> [Double] {
        let prefix = Array(record(question, "").utf8)
        let scores = score(answers.map { Array(record(question, $0).utf8) })
        return zip(answers, scores).map { a, s in
            // tokenNLL[t] predicts byte t of the record (then <end>); the answer's bytes follow the prefix.
            let range = prefix.count..<(prefix.count + a.utf8.count)
            return range.reduce(0.0) { $0 + Double(s.tokenNLL![$1]) } / Double(range.count)
        }
    }

    /// TOFU's truth ratio: mean over perturbed answers of P(â|q)^(1/|â|),
    /// divided by P(ã|q)^(1/|ã|) for the paraphrased answer. Near 0: the model
    /// knows the fact; near 1: it cannot tell true from false.
    public static func truthRatio(_ q: Question, score: ([[UInt8]]) -> [RecordScore]) -> Double {
        let nll = answerNLL(question: q.question, answers: [q.paraphrased] + q.perturbed, score: score)
        let perturbedMean = nll.dropFirst().reduce(0.0) { $0 + Foundation.exp(-$1) } / Double(q.perturbed.count)
        return perturbedMean / Foundation.exp(-nll[0])
    }

    /// Forget quality: the KS test's p-value between the truth ratios of the
    /// unlearned model and of the model retrained without the forget set.
    public static func forgetQuality(unlearned: [Double], retrained: [Double]) -> Double {
        KolmogorovSmirnov.test(unlearned, retrained).pValue
    }
}
