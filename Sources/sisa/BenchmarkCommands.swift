import ArgumentParser
import Foundation
import SisaCoordinator

struct Benchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Unlearning benchmarks generated locally (throughput benchmarks are `sisa bench`).",
        subcommands: [TOFUBenchmark.self])
}

struct TOFUBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tofu",
        abstract: "Generate a TOFU-style benchmark: fictitious people as question/answer records.",
        discussion: """
        Each person gets 5 questions (birthplace, birth year, occupation, writing, favourite dish), each \
        with its answer, a paraphrased answer and perturbed (false) answers, from templates and word lists \
        (Maini et al. 2024, generated locally). Writes DIR/records.jsonl (ids tofu-<person>-<question>, \
        group tofu: ingest it), DIR/questions.json (every question with its paraphrased and perturbed \
        answers) and DIR/splits.json (the people, and the record ids, of the 1%, 5% and 10% forget splits).
        """)
    @Option(help: "Fictitious people.") var people: Int = 200
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Perturbed answers per question.") var perturbed: Int = 4
    @Option(help: "Output directory.") var out: String

    func run() throws {
        guard people >= 1, people <= 100_000, (1...10).contains(perturbed) else {
            throw ValidationError("--people between 1 and 100000, --perturbed between 1 and 10")
        }
        let b = TOFU.generate(people: people, seed: seed, perturbed: perturbed)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var lines: [String] = []
        var perPerson: [Int: Int] = [:]
        var ids: [String] = []
        for q in b.questions {
            let k = perPerson[q.person, default: 0]
            perPerson[q.person] = k + 1
            let id = "tofu-\(q.person)-\(k)"
            ids.append(id)
            lines.append(String(decoding: try e.encode(["id": id, "text": q.text, "group": "tofu"]), as: UTF8.self))
        }
        var splits: [String: [String: [String]]] = [:]
        for pct in [1.0, 5.0, 10.0] {
            let who = TOFU.forgetPeople(b, percent: pct)
            splits["forget\(Int(pct))"] = ["people": who.sorted().map { b.people[$0] },
                                           "ids": zip(b.questions, ids).filter { who.contains($0.0.person) }.map(\.1)]
        }
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try write(lines.joined(separator: "\n") + "\n", "records.jsonl")
        try write(String(decoding: try e.encode(b), as: UTF8.self), "questions.json")
        try write(String(decoding: try e.encode(splits), as: UTF8.self), "splits.json")
        print("wrote \(b.questions.count) question records about \(people) fictitious people to \(out) (records.jsonl, questions.json, splits.json)")
    }

    private func write(_ text: String, _ name: String) throws {
        let path = (out as NSString).appendingPathComponent(name)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
