import Foundation

/// The regular expressions tokenizers split text with (GPT-2's, Llama 3's,
/// Qwen2's patterns and the like), matched over Unicode scalars the way
/// Hugging Face's tokenizers (Oniguruma) match them: leftmost-first
/// alternation, greedy or lazy quantifiers, backtracking.
///
/// Supported: literals and escapes (\n \r \t \f \v \e \0, \xHH, \x{H..},
/// \uHHHH, escaped punctuation), `.`, classes `[...]` with ranges and
/// negation, \s \S \d \D \w \W, \p{..} \P{..} over general categories
/// (L, Lu, Ll, Lt, Lm, Lo, M, Mn, Mc, Me, N, Nd, Nl, No, P.., S.., Z.., C..),
/// groups `(...)` `(?:...)` `(?i:...)`, lookahead `(?=...)` `(?!...)`,
/// quantifiers `* + ? {n} {n,} {n,m}` and their lazy forms, `|`, `^`, `$`.
/// Anything else is refused with the pattern and the offset.
///
/// \s is Unicode White_Space (as Oniguruma's), \d is Nd, \w is letters,
/// marks, Nd and Pc. Matching is bounded: a text may take at most
/// `stepBudget` + `stepsPerScalar` x its length steps in all; past that, the
/// rest of the text matches nothing (no pattern a tokenizer ships comes near
/// it; a pathological one cannot hang the process).
public struct SplitPattern: Sendable, CustomStringConvertible {
    public let source: String
    private let program: Program

    public var description: String { source }

    public init(_ pattern: String) throws {
        source = pattern
        var p = Parser(Array(pattern.unicodeScalars), source: pattern)
        let node = try p.parseAlternation()
        guard p.atEnd else { throw p.fail("unexpected \(p.peekDescription)") }
        var c = Compiler()
        program = try c.compile(node)
    }

    /// Steps the matcher may take over one text.
    static let stepBudget = 1_000_000, stepsPerScalar = 10_000

    /// The non-overlapping matches in `text`, left to right (an empty match
    /// advances by one scalar, as regex engines do).
    public func matches(in text: [Unicode.Scalar]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var matcher = Matcher(program: program, text: text)
        matcher.budget = SplitPattern.stepBudget + SplitPattern.stepsPerScalar * text.count
        var pos = 0
        while pos <= text.count && matcher.budget > 0 {
            guard let end = matcher.match(at: pos, program: 0) else {
                pos += 1
                continue
            }
            out.append(pos..<end)
            pos = end > pos ? end : pos + 1
        }
        return out
    }
}

// MARK: scalar classes

/// A set of scalars: the union of its items, then negated if asked. ASCII
/// membership is precomputed in a bitmap.
struct ScalarSet: Sendable {
    enum Item: Sendable {
        case range(UInt32, UInt32)
        case categories(UInt64, negated: Bool)
        case whitespace(negated: Bool)
        case set(ScalarSet)
    }
    var items: [Item] = []
    var negated = false
    private var asciiLow: UInt64 = 0, asciiHigh: UInt64 = 0

    init(items: [Item] = [], negated: Bool = false) {
        self.items = items
        self.negated = negated
    }

    mutating func seal() {
        asciiLow = 0
        asciiHigh = 0
        for v in 0..<128 where slowContains(Unicode.Scalar(UInt8(v))) {
            if v < 64 { asciiLow |= 1 << UInt64(v) } else { asciiHigh |= 1 << UInt64(v - 64) }
        }
    }

    @inline(__always)
    func contains(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 64 { return asciiLow & (1 << UInt64(v)) != 0 }
        if v < 128 { return asciiHigh & (1 << UInt64(v - 64)) != 0 }
        return slowContains(s)
    }

    func slowContains(_ s: Unicode.Scalar) -> Bool {
        var hit = false
        for item in items {
            switch item {
            case .range(let lo, let hi): hit = s.value >= lo && s.value <= hi
            case .categories(let mask, let neg): hit = (mask & ScalarSet.bit(s.properties.generalCategory) != 0) != neg
            case .whitespace(let neg): hit = s.properties.isWhitespace != neg
            case .set(let inner): hit = inner.slowContains(s)
            }
            if hit { break }
        }
        return hit != negated
    }

    static func bit(_ c: Unicode.GeneralCategory) -> UInt64 { 1 << UInt64(categoryIndex[c] ?? 63) }

    static let categoryIndex: [Unicode.GeneralCategory: Int] = {
        let all: [Unicode.GeneralCategory] = [
            .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
            .nonspacingMark, .spacingMark, .enclosingMark,
            .decimalNumber, .letterNumber, .otherNumber,
            .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
            .finalPunctuation, .otherPunctuation,
            .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol,
            .spaceSeparator, .lineSeparator, .paragraphSeparator,
            .control, .format, .surrogate, .privateUse, .unassigned,
        ]
        return Dictionary(uniqueKeysWithValues: all.enumerated().map { ($1, $0) })
    }()

    /// Property names of \p{..}: one- and two-letter general categories and their long names.
    static func categoryMask(_ name: String) -> UInt64? {
        let groups: [String: [Unicode.GeneralCategory]] = [
            "L": [.uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter],
            "Lu": [.uppercaseLetter], "Ll": [.lowercaseLetter], "Lt": [.titlecaseLetter], "Lm": [.modifierLetter], "Lo": [.otherLetter],
            "M": [.nonspacingMark, .spacingMark, .enclosingMark], "Mn": [.nonspacingMark], "Mc": [.spacingMark], "Me": [.enclosingMark],
            "N": [.decimalNumber, .letterNumber, .otherNumber], "Nd": [.decimalNumber], "Nl": [.letterNumber], "No": [.otherNumber],
            "P": [.connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
                  .finalPunctuation, .otherPunctuation],
            "Pc": [.connectorPunctuation], "Pd": [.dashPunctuation], "Ps": [.openPunctuation], "Pe": [.closePunctuation],
            "Pi": [.initialPunctuation], "Pf": [.finalPunctuation], "Po": [.otherPunctuation],
            "S": [.mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol],
            "Sm": [.mathSymbol], "Sc": [.currencySymbol], "Sk": [.modifierSymbol], "So": [.otherSymbol],
            "Z": [.spaceSeparator, .lineSeparator, .paragraphSeparator],
            "Zs": [.spaceSeparator], "Zl": [.lineSeparator], "Zp": [.paragraphSeparator],
            "C": [.control, .format, .surrogate, .privateUse, .unassigned],
            "Cc": [.control], "Cf": [.format], "Cs": [.surrogate], "Co": [.privateUse], "Cn": [.unassigned],
        ]
        let long: [String: String] = ["Letter": "L", "Mark": "M", "Number": "N", "Punctuation": "P", "Symbol": "S",
                                      "Separator": "Z", "Other": "C", "Uppercase_Letter": "Lu", "Lowercase_Letter": "Ll",
                                      "Decimal_Number": "Nd"]
        let key = long[name] ?? name
        guard let cats = groups[key] else { return nil }
        return cats.reduce(0) { $0 | bit($1) }
    }

    static let digit = ScalarSet.of(.categories(categoryMask("Nd")!, negated: false))
    static let word = ScalarSet.of(.categories(categoryMask("L")! | categoryMask("M")! | categoryMask("Nd")! | categoryMask("Pc")!,
                                               negated: false))
    static let space = ScalarSet.of(.whitespace(negated: false))

    static func of(_ items: Item..., negated: Bool = false) -> ScalarSet {
        var s = ScalarSet(items: items, negated: negated)
        s.seal()
        return s
    }

    func inverted() -> ScalarSet {
        var s = self
        s.negated.toggle()
        s.seal()
        return s
    }
}

// MARK: syntax

private indirect enum Node {
    case set(ScalarSet)
    case sequence([Node])
    case alternation([Node])
    case repeat_(Node, min: Int, max: Int?, lazy: Bool)
    case lookahead(Node, negated: Bool)
    case start, end

    var nullable: Bool {
        switch self {
        case .set: return false
        case .sequence(let ns): return ns.allSatisfy(\.nullable)
        case .alternation(let ns): return ns.contains { $0.nullable }
        case .repeat_(let n, let min, _, _): return min == 0 || n.nullable
        case .lookahead, .start, .end: return true
        }
    }
}

private struct Parser {
    let s: [Unicode.Scalar]
    let source: String
    var i = 0
    var caseInsensitive = false
    var depth = 0

    init(_ s: [Unicode.Scalar], source: String) {
        self.s = s
        self.source = source
    }

    var atEnd: Bool { i >= s.count }
    var peekDescription: String { atEnd ? "end of pattern" : "'\(Character(s[i]))'" }

    func fail(_ m: String) -> EngineError { .format("split pattern \(source): \(m) at offset \(i)") }

    mutating func eat(_ c: Unicode.Scalar) -> Bool {
        if !atEnd && s[i] == c { i += 1; return true }
        return false
    }

    mutating func parseAlternation() throws -> Node {
        depth += 1
        defer { depth -= 1 }
        guard depth < 64 else { throw fail("groups nested too deep") }
        var branches = [try parseSequence()]
        while eat("|") { branches.append(try parseSequence()) }
        return branches.count == 1 ? branches[0] : .alternation(branches)
    }

    mutating func parseSequence() throws -> Node {
        var items: [Node] = []
        while !atEnd && s[i] != "|" && s[i] != ")" {
            var atom = try parseAtom()
            atom = try parseQuantifiers(atom)
            items.append(atom)
        }
        return items.count == 1 ? items[0] : .sequence(items)
    }

    mutating func parseQuantifiers(_ atom: Node) throws -> Node {
        var node = atom
        while !atEnd {
            var lo = 0, hi: Int?
            switch s[i] {
            case "*": (lo, hi) = (0, nil); i += 1
            case "+": (lo, hi) = (1, nil); i += 1
            case "?": (lo, hi) = (0, 1); i += 1
            case "{":
                let save = i
                i += 1
                guard let a = parseNumber() else { i = save; return node }
                lo = a
                hi = a
                if eat(",") { hi = parseNumber() }
                guard eat("}") else { throw fail("unterminated {n,m}") }
                guard lo <= 1000, (hi ?? lo) <= 1000, (hi ?? lo) >= lo else { throw fail("repetition {\(lo),\(hi.map(String.init) ?? "")} out of range") }
            default:
                return node
            }
            if case .start = node { throw fail("quantifier after an anchor") }
            let lazy = eat("?")
            if !atEnd && s[i] == "+" { throw fail("possessive quantifiers are not supported") }
            node = .repeat_(node, min: lo, max: hi, lazy: lazy)
        }
        return node
    }

    mutating func parseNumber() -> Int? {
        var n = 0, digits = 0
        while !atEnd, let d = Int(String(s[i])), s[i].isASCII, digits < 6 {
            n = n * 10 + d
            digits += 1
            i += 1
        }
        return digits > 0 ? n : nil
    }

    mutating func parseAtom() throws -> Node {
        let c = s[i]
        switch c {
        case "(":
            i += 1
            if eat("?") {
                if eat(":") { return try group() }
                if eat("=") { return .lookahead(try group(), negated: false) }
                if eat("!") { return .lookahead(try group(), negated: true) }
                if eat("i") {
                    if eat(":") {
                        let saved = caseInsensitive
                        caseInsensitive = true
                        defer { caseInsensitive = saved }
                        return try group()
                    }
                    if eat(")") {
                        caseInsensitive = true
                        return .sequence([])
                    }
                }
                throw fail("unsupported group syntax (?\(atEnd ? "" : String(Character(s[i])))")
            }
            return try group()
        case ")": throw fail("unbalanced )")
        case "[":
            i += 1
            return .set(try parseClass())
        case ".":
            i += 1
            return .set(ScalarSet.of(.range(0x0A, 0x0A), negated: true))
        case "^": i += 1; return .start
        case "$": i += 1; return .end
        case "\\":
            i += 1
            guard !atEnd else { throw fail("trailing backslash") }
            if let set = try parseEscapeClass() { return .set(set) }
            return literal(try parseEscapeScalar())
        case "*", "+", "?": throw fail("nothing to repeat")
        default:
            i += 1
            return literal(c)
        }
    }

    mutating func group() throws -> Node {
        let n = try parseAlternation()
        guard eat(")") else { throw fail("missing )") }
        return n
    }

    func literal(_ c: Unicode.Scalar) -> Node {
        var items: [ScalarSet.Item] = [.range(c.value, c.value)]
        if caseInsensitive {
            for v in Parser.caseVariants(c) where v != c { items.append(.range(v.value, v.value)) }
        }
        var set = ScalarSet(items: items)
        set.seal()
        return .set(set)
    }

    /// The scalar's simple lower- and uppercase forms (single scalars only).
    static func caseVariants(_ c: Unicode.Scalar) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = [c]
        for m in [c.properties.lowercaseMapping, c.properties.uppercaseMapping, c.properties.titlecaseMapping] {
            let scalars = Array(m.unicodeScalars)
            if scalars.count == 1, !out.contains(scalars[0]) { out.append(scalars[0]) }
        }
        return out
    }

    /// \s \S \d \D \w \W \p{..} \P{..}: a class, or nil for a single-scalar escape.
    mutating func parseEscapeClass() throws -> ScalarSet? {
        let c = s[i]
        switch c {
        case "s": i += 1; return .space
        case "S": i += 1; return ScalarSet.space.inverted()
        case "d": i += 1; return .digit
        case "D": i += 1; return ScalarSet.digit.inverted()
        case "w": i += 1; return .word
        case "W": i += 1; return ScalarSet.word.inverted()
        case "p", "P":
            i += 1
            let negated = c == "P"
            var name = ""
            if eat("{") {
                while !atEnd && s[i] != "}" { name.unicodeScalars.append(s[i]); i += 1 }
                guard eat("}") else { throw fail("unterminated \\p{") }
            } else if !atEnd {
                name = String(Character(s[i]))
                i += 1
            }
            var neg = negated
            if name.hasPrefix("^") { name.removeFirst(); neg.toggle() }
            guard let mask = ScalarSet.categoryMask(name) else { throw fail("unsupported property \\p{\(name)}") }
            return ScalarSet.of(.categories(mask, negated: neg))
        default:
            return nil
        }
    }

    mutating func parseEscapeScalar() throws -> Unicode.Scalar {
        let c = s[i]
        i += 1
        switch c {
        case "n": return "\n"
        case "r": return "\r"
        case "t": return "\t"
        case "f": return "\u{0C}"
        case "v": return "\u{0B}"
        case "e": return "\u{1B}"
        case "a": return "\u{07}"
        case "0": return "\u{0}"
        case "x":
            if eat("{") {
                let v = try hex(maxDigits: 8)
                guard eat("}") else { throw fail("unterminated \\x{") }
                return try scalar(v)
            }
            return try scalar(try hex(maxDigits: 2, exactly: true))
        case "u": return try scalar(try hex(maxDigits: 4, exactly: true))
        default:
            if c.properties.isAlphabetic || c.properties.numericType != nil {
                throw fail("unsupported escape \\\(Character(c))")
            }
            return c
        }
    }

    mutating func hex(maxDigits: Int, exactly: Bool = false) throws -> UInt32 {
        var v: UInt32 = 0, n = 0
        while n < maxDigits, !atEnd, let d = hexValue(s[i]) {
            v = v * 16 + d
            n += 1
            i += 1
        }
        guard n > 0, !exactly || n == maxDigits else { throw fail("bad hexadecimal escape") }
        return v
    }

    func hexValue(_ c: Unicode.Scalar) -> UInt32? {
        switch c.value {
        case 0x30...0x39: return c.value - 0x30
        case 0x41...0x46: return c.value - 0x41 + 10
        case 0x61...0x66: return c.value - 0x61 + 10
        default: return nil
        }
    }

    func scalar(_ v: UInt32) throws -> Unicode.Scalar {
        guard let s = Unicode.Scalar(v) else { throw fail("\\x{\(String(v, radix: 16))} is not a Unicode scalar") }
        return s
    }

    mutating func parseClass() throws -> ScalarSet {
        var set = ScalarSet()
        if eat("^") { set.negated = true }
        var first = true
        while true {
            guard !atEnd else { throw fail("unterminated [") }
            if s[i] == "]" && !first { i += 1; break }
            first = false
            if s[i] == "[" { throw fail("nested classes are not supported") }
            var lo: Unicode.Scalar
            if eat("\\") {
                guard !atEnd else { throw fail("trailing backslash") }
                if let inner = try parseEscapeClass() {
                    set.items.append(.set(inner))
                    continue
                }
                lo = try parseEscapeScalar()
            } else {
                lo = s[i]
                i += 1
            }
            var hi = lo
            if i + 1 < s.count, s[i] == "-", s[i + 1] != "]" {
                i += 1
                if eat("\\") {
                    guard !atEnd else { throw fail("trailing backslash") }
                    hi = try parseEscapeScalar()
                } else {
                    hi = s[i]
                    i += 1
                }
                guard hi.value >= lo.value else { throw fail("range out of order") }
            }
            set.items.append(.range(lo.value, hi.value))
            if caseInsensitive {
                for v in lo.value...hi.value where hi.value - lo.value < 256 {
                    if let c = Unicode.Scalar(v) {
                        for w in Parser.caseVariants(c) where w != c { set.items.append(.range(w.value, w.value)) }
                    }
                }
            }
        }
        set.seal()
        return set
    }
}

// MARK: program

private enum Instruction: Sendable {
    /// Matches one scalar of `Program.sets[i]`.
    case set(Int)
    /// Try `first`, and on failure `second`.
    case split(Int, Int)
    case jump(Int)
    case lookahead(program: Int, negated: Bool)
    /// Records the position in a register (the start of a nullable loop body).
    case mark(Int)
    /// Fails when the position equals the register (the body matched nothing).
    case progress(Int)
    case start, end
    case match
}

private struct Program: Sendable {
    /// Program 0 is the pattern; the others are lookahead bodies.
    var code: [[Instruction]] = []
    var sets: [ScalarSet] = []
    var registers = 0
}

private struct Compiler {
    var program = Program()

    mutating func compile(_ node: Node) throws -> Program {
        program.code.append([])
        try emit(node, into: 0)
        program.code[0].append(.match)
        return program
    }

    mutating func emit(_ node: Node, into p: Int) throws {
        guard program.code[p].count < 200_000 else { throw EngineError.format("split pattern too large") }
        switch node {
        case .set(let s):
            program.sets.append(s)
            program.code[p].append(.set(program.sets.count - 1))
        case .start: program.code[p].append(.start)
        case .end: program.code[p].append(.end)
        case .sequence(let ns): for n in ns { try emit(n, into: p) }
        case .alternation(let ns):
            var jumps: [Int] = []
            for (k, n) in ns.enumerated() {
                if k < ns.count - 1 {
                    let split = program.code[p].count
                    program.code[p].append(.split(split + 1, -1))
                    try emit(n, into: p)
                    jumps.append(program.code[p].count)
                    program.code[p].append(.jump(-1))
                    program.code[p][split] = .split(split + 1, program.code[p].count)
                } else {
                    try emit(n, into: p)
                }
            }
            let end = program.code[p].count
            for j in jumps { program.code[p][j] = .jump(end) }
        case .repeat_(let n, let min, let max, let lazy):
            for _ in 0..<min { try emit(n, into: p) }
            if let max {
                // (n (n (...)?)?)? for the optional copies.
                var exits: [Int] = []
                for _ in min..<max {
                    let split = program.code[p].count
                    program.code[p].append(.split(-1, -1))
                    exits.append(split)
                    try emit(n, into: p)
                }
                let end = program.code[p].count
                for e in exits { program.code[p][e] = lazy ? .split(end, e + 1) : .split(e + 1, end) }
            } else {
                let loop = program.code[p].count
                program.code[p].append(.split(-1, -1))
                let guarded = n.nullable
                let reg = program.registers
                if guarded {
                    program.registers += 1
                    program.code[p].append(.mark(reg))
                }
                try emit(n, into: p)
                if guarded { program.code[p].append(.progress(reg)) }
                program.code[p].append(.jump(loop))
                let end = program.code[p].count
                program.code[p][loop] = lazy ? .split(end, loop + 1) : .split(loop + 1, end)
            }
        case .lookahead(let n, let negated):
            let sub = program.code.count
            program.code.append([])
            try emit(n, into: sub)
            program.code[sub].append(.match)
            program.code[p].append(.lookahead(program: sub, negated: negated))
        }
    }
}

private struct Matcher {
    let program: Program
    let text: [Unicode.Scalar]
    private var stack: [(pc: Int, pos: Int, reg: Int, value: Int)] = []
    private var registers: [Int]
    /// Steps left for this text.
    var budget = 0

    init(program: Program, text: [Unicode.Scalar]) {
        self.program = program
        self.text = text
        registers = [Int](repeating: -1, count: program.registers)
    }

    /// End of the leftmost-first match of program `p` anchored at `start`, or nil.
    mutating func match(at start: Int, program p: Int) -> Int? {
        let code = program.code[p]
        let base = stack.count
        defer { stack.removeSubrange(base...) }
        var pc = 0, pos = start
        // Backtrack entries: (pc, pos) to resume, or (-1, reg, value) to restore a register.
        func backtrack(_ pc: inout Int, _ pos: inout Int, _ stack: inout [(pc: Int, pos: Int, reg: Int, value: Int)],
                       _ registers: inout [Int]) -> Bool {
            while stack.count > base {
                let e = stack.removeLast()
                if e.pc < 0 {
                    registers[e.reg] = e.value
                    continue
                }
                pc = e.pc
                pos = e.pos
                return true
            }
            return false
        }
        while true {
            budget -= 1
            if budget < 0 { return nil }
            switch code[pc] {
            case .match:
                return pos
            case .set(let i):
                if pos < text.count && program.sets[i].contains(text[pos]) {
                    pos += 1
                    pc += 1
                } else if !backtrack(&pc, &pos, &stack, &registers) {
                    return nil
                }
            case .split(let a, let b):
                stack.append((b, pos, 0, 0))
                pc = a
            case .jump(let t):
                pc = t
            case .start:
                if pos == 0 { pc += 1 } else if !backtrack(&pc, &pos, &stack, &registers) { return nil }
            case .end:
                if pos == text.count { pc += 1 } else if !backtrack(&pc, &pos, &stack, &registers) { return nil }
            case .mark(let r):
                stack.append((-1, 0, r, registers[r]))
                registers[r] = pos
                pc += 1
            case .progress(let r):
                if registers[r] != pos { pc += 1 } else if !backtrack(&pc, &pos, &stack, &registers) { return nil }
            case .lookahead(let sub, let negated):
                let saved = registers
                let found = match(at: pos, program: sub) != nil
                registers = saved
                if found != negated { pc += 1 } else if !backtrack(&pc, &pos, &stack, &registers) { return nil }
            }
        }
    }
}
