import Foundation
import Synchronization

/// A small pool of persistent threads running "parts" of a job.
///
/// Determinism rule of the engine: a job is split into parts by a function of
/// the problem's shape only, never of the thread count, and each part writes
/// its own outputs (or its own slot of partial sums, reduced afterwards in
/// part order). Which thread runs which part is then irrelevant to the bits.
///
/// `@unchecked Sendable`: all shared state is in `Core`, behind its
/// condition and atomics.
public final class WorkerPool: @unchecked Sendable {
    public let threads: Int
    private let core: Core

    public init(threads: Int) {
        self.threads = max(1, threads)
        core = Core()
        for t in 1..<self.threads {
            // Threads own the core, not the pool, so a pool can be released
            // while its threads are still spinning down.
            let thread = Thread { [core] in core.workerLoop(index: t) }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    deinit { core.shutdown() }

    /// A process-wide default pool, sized by `SISA_THREADS` or the core count.
    public static let shared: WorkerPool = {
        if let s = ProcessInfo.processInfo.environment["SISA_THREADS"], let n = Int(s), n > 0 {
            return WorkerPool(threads: n)
        }
        return WorkerPool(threads: ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Runs `body(part, thread)` for part in 0..<parts; `thread` indexes
    /// per-thread scratch space (0..<threads). Returns when all parts are done.
    public func run(parts: Int, _ body: (_ part: Int, _ thread: Int) -> Void) {
        if parts <= 0 { return }
        if threads == 1 || parts == 1 {
            for p in 0..<parts { body(p, 0) }
            return
        }
        withoutActuallyEscaping(body) { body in core.run(parts: parts, workers: threads - 1, body) }
    }

    /// `@unchecked Sendable`: the job fields are written by the caller before
    /// `generation` is bumped (release) and read by workers after they see it
    /// (acquire); the rest are atomics or behind `condition`.
    private final class Core: @unchecked Sendable {
        let condition = NSCondition()
        let generation = Atomic<Int>(0)
        let nextPart = Atomic<Int>(0)
        let finishedWorkers = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)
        // Written by the caller before `generation` is bumped (release), read by
        // workers after they observe the bump (acquire).
        var job: ((Int, Int) -> Void)?
        var partCount = 0

        func run(parts: Int, workers: Int, _ body: @escaping (Int, Int) -> Void) {
            job = body
            partCount = parts
            nextPart.store(0, ordering: .relaxed)
            finishedWorkers.store(0, ordering: .relaxed)
            generation.wrappingAdd(1, ordering: .releasing)
            condition.lock()
            condition.broadcast()
            condition.unlock()
            drain(body, parts: parts, thread: 0)
            while finishedWorkers.load(ordering: .acquiring) < workers {}
            job = nil
        }

        func shutdown() {
            stopping.store(true, ordering: .releasing)
            generation.wrappingAdd(1, ordering: .releasing)
            condition.lock()
            condition.broadcast()
            condition.unlock()
        }

        @inline(__always)
        func drain(_ body: (Int, Int) -> Void, parts: Int, thread: Int) {
            while true {
                let p = nextPart.wrappingAdd(1, ordering: .relaxed).oldValue
                if p >= parts { return }
                body(p, thread)
            }
        }

        func workerLoop(index: Int) {
            // Start from generation 0, not the current value: a thread that starts
            // late must still take part in jobs launched before it ran.
            var seen = 0
            while true {
                // Parallel regions come every few hundred microseconds during
                // training: spin a little before paying for a futex sleep.
                var spins = 0
                while generation.load(ordering: .acquiring) == seen && spins < 20_000 { spins += 1 }
                if generation.load(ordering: .acquiring) == seen {
                    condition.lock()
                    while generation.load(ordering: .acquiring) == seen { condition.wait() }
                    condition.unlock()
                }
                seen = generation.load(ordering: .acquiring)
                if stopping.load(ordering: .acquiring) { return }
                if let body = job { drain(body, parts: partCount, thread: index) }
                finishedWorkers.wrappingAdd(1, ordering: .releasing)
            }
        }
    }
}

extension WorkerPool {
    /// Parts for a matrix product cut along an extent of `total`: at most one
    /// per thread. A product is the one exception to "parts by shape alone":
    /// each output element is one chain over k whichever part computes it,
    /// so its bits do not depend on the cut, and fewer parts pack the shared
    /// operand fewer times.
    public func productParts(_ total: Int, grain: Int) -> Int { min(partCount(total, grain: grain), threads) }

    /// Runs `body(rows, columns)` over blocks of an M x N product's output: by
    /// rows of about `rowGrain` when there are rows enough for every thread,
    /// else by columns, one block per thread (short batches, such as scoring
    /// a few short texts, still use every core).
    /// Column blocks start at multiples of `columnAlignment` (a packed
    /// matrix's panel width).
    public func productBlocks(rows M: Int, columns N: Int, rowGrain: Int, columnGrain: Int = 64, columnAlignment: Int = 1,
                              _ body: (_ rows: Range<Int>, _ columns: Range<Int>) -> Void) {
        if splitsByRows(rows: M, columns: N, rowGrain: rowGrain, columnGrain: columnGrain) {
            let parts = partCount(M, grain: rowGrain)
            run(parts: parts) { part, _ in body(partRange(part, of: parts, total: M), 0..<N) }
        } else {
            let parts = productParts(N, grain: columnGrain)
            run(parts: parts) { part, _ in body(0..<M, partRange(part, of: parts, total: N, alignment: columnAlignment)) }
        }
    }

    /// Whether `productBlocks` cuts an M x N product by rows (else by columns).
    public func splitsByRows(rows M: Int, columns N: Int, rowGrain: Int, columnGrain: Int = 64) -> Bool {
        M >= rowGrain * threads || N < columnGrain * 2
    }

    /// Runs `body(rows, columns)` over one block per thread of a weight gradient's
    /// output [R, C] = Aᵀ · B (a product over the batch's rows, A [M, R], B [M, C]).
    /// Every part reads the whole of the operand its cut does not divide, so the cut
    /// runs along the wider side: by columns (each part reads all of A) when C >= R,
    /// else by rows (each reads all of B) starting at multiples of `rowAlignment`
    /// (a register tile's rows). Each element is one chain whichever part computes
    /// it, so the cut changes no bit.
    public func weightGradientBlocks(rows R: Int, columns C: Int, grain: Int, rowAlignment: Int = 8,
                                     _ body: (_ rows: Range<Int>, _ columns: Range<Int>) -> Void) {
        if C >= R {
            let parts = productParts(C, grain: grain)
            run(parts: parts) { part, _ in body(0..<R, partRange(part, of: parts, total: C)) }
        } else {
            let parts = productParts(R, grain: grain)
            run(parts: parts) { part, _ in body(partRange(part, of: parts, total: R, alignment: rowAlignment), 0..<C) }
        }
    }
}

/// Splits `total` items into parts of about `grain` items: a function of the
/// problem size alone (see `WorkerPool`).
@inline(__always)
public func partCount(_ total: Int, grain: Int) -> Int { max(1, (total + grain - 1) / grain) }

@inline(__always)
public func partRange(_ part: Int, of parts: Int, total: Int) -> Range<Int> {
    let lo = total * part / parts
    let hi = total * (part + 1) / parts
    return lo..<hi
}

/// `partRange` over units of `alignment` items: every part but the last starts and
/// ends on a multiple of `alignment` (a packed panel's columns, a register tile's rows).
@inline(__always)
func partRange(_ part: Int, of parts: Int, total: Int, alignment: Int) -> Range<Int> {
    let u = partRange(part, of: parts, total: (total + alignment - 1) / alignment)
    return min(total, u.lowerBound * alignment)..<min(total, u.upperBound * alignment)
}
