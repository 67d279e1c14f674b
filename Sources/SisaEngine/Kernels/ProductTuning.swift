import CSisaKernels
import Foundation

/// The kernel path and cache blocking of each matrix-product shape on this
/// CPU: a table by CPU family, looked up per call (no lock, no state).
///
/// Every candidate computes each element as the same chain of fused
/// multiply-adds (Numerics), so the choice changes speed only, never a bit.
/// `sisa bench gemm --candidates` times every candidate at a step's shapes,
/// the measurements a family's rules are written from.
public struct ProductPlanner: Sendable {
    public struct Candidate: Sendable, CustomStringConvertible, Equatable {
        public let path: KernelPath
        /// The register tile (rows x columns) of the table's micro-kernel.
        public let tile: (rows: Int, columns: Int)
        /// How the product is cut: k-block, column block, and the largest leading
        /// dimension (floats) of a transposed A read in place (one with rows
        /// further apart is copied tile by tile).
        let blocking: SisaBlocking
        public var kc: Int { blocking.kc }
        public var nc: Int { blocking.nc }
        public var aInPlace: Int { blocking.a_in_place }
        /// One of the C library's static kernel tables (function pointers, never
        /// written after load): safe to share across threads.
        nonisolated(unsafe) let table: UnsafePointer<SisaKernelTable>
        public var description: String {
            "\(path) \(tile.rows)x\(tile.columns) kc \(kc) nc \(nc)"
                + (aInPlace == ProductPlanner.blockings[0].a_in_place ? "" : " A in place to \(aInPlace)")
        }
        public static func == (a: Candidate, b: Candidate) -> Bool {
            a.table == b.table && a.kc == b.kc && a.nc == b.nc && a.aInPlace == b.aInPlace
        }

        /// The kernels' own defaults (what `gemm` without a plan uses).
        static let defaultBlocking = SisaBlocking(kc: 0, nc: 0, a_in_place: -1)

        init(path: KernelPath, blocking: SisaBlocking, table: UnsafePointer<SisaKernelTable>) {
            self.path = path
            tile = (Int(table.pointee.gemm_mr), Int(table.pointee.gemm_nr))
            self.blocking = blocking
            self.table = table
        }
    }

    public struct Shape: Hashable, Sendable, CustomStringConvertible {
        public let transA: Bool, transB: Bool
        public let m: Int, n: Int, k: Int
        public init(transA: Bool, transB: Bool, m: Int, n: Int, k: Int) {
            self.transA = transA
            self.transB = transB
            self.m = m
            self.n = n
            self.k = k
        }
        public var description: String { "\(transA ? "T" : "N")\(transB ? "T" : "N") m \(m) n \(n) k \(k)" }
    }

    /// CPU families with rules of their own.
    public enum Family: String, Sendable {
        /// AMD Zen 4 (family 19h, models 10h-1Fh and 60h-7Fh and A0h-AFh): AVX-512 as two 256-bit halves.
        case zen4
        /// AMD Zen 5 (family 1Ah): full-width AVX-512.
        case zen5
        /// Intel with AVX-512 (Skylake-SP and later server cores: two full-width FMA units; the
        /// client parts with one are not told apart, and lose little with the wider tile).
        case intelAVX512
        case other
    }

    public let family: Family
    /// Every path this CPU runs (SIMD paths only, unless portable is all there is) x its register
    /// tiles x a few blockings.
    public let candidates: [Candidate]
    private let preferred: Int
    /// AVX-512's 6 x 64 tile with the default blocking, when this CPU runs it.
    private let wide: Candidate?
    /// AVX-512's 8 x 32 tile with a transposed A read in place only up to rows 256 floats apart.
    private let narrowInPlace: Candidate?
    /// A planner that runs every product with one candidate (benchmarks).
    private let forced: Candidate?

    init(forcing c: Candidate) {
        family = .other
        candidates = [c]
        preferred = 0
        wide = nil
        narrowInPlace = nil
        forced = c
    }

    init(paths: [KernelPath], family: Family = ProductPlanner.detectFamily()) {
        self.family = family
        let simd = paths.filter { $0 != .portable }
        var c: [Candidate] = []
        for p in simd.isEmpty ? paths : simd {
            var variant: Int32 = 0
            while let t = sisa_kernel_table_tile(p.cPath, variant) {
                for b in ProductPlanner.blockings { c.append(Candidate(path: p, blocking: b, table: t)) }
                variant += 1
            }
        }
        candidates = c
        preferred = 0
        func avx512(columns: Int, aInPlace: Int) -> Candidate? {
            c.first { $0.path == .avx512 && $0.tile.columns == columns && $0.kc == 256 && $0.nc == 512 && $0.aInPlace == aInPlace }
        }
        wide = avx512(columns: 64, aInPlace: 512)
        narrowInPlace = avx512(columns: 32, aInPlace: 256)
        forced = nil
    }

    /// Blockings tried (the first is the kernels' default): k-blocks of 128 to 384, column
    /// blocks of 512 and 1024, and a transposed A read in place up to rows 512, 256 or 0
    /// floats apart (0: always copied).
    static let blockings: [SisaBlocking] = [(256, 512, 512), (128, 512, 512), (384, 512, 512), (256, 1024, 512),
                                            (256, 512, 256), (256, 512, 0)].map { SisaBlocking(kc: $0, nc: $1, a_in_place: $2) }

    /// The candidate for `shape` on this CPU.
    @inline(__always)
    public func plan(_ shape: Shape) -> Candidate {
        if let forced { return forced }
        switch family {
        case .zen4:
            // Measured on a 2-core Zen 4 VM (`sisa bench gemm --candidates`, tiny, small and
            // SmolLM2-135M shapes, several runs): no k-block or column block beats AVX-512 with
            // the default blocking by more than the run-to-run noise (±10%) at any shape, AVX2
            // included. But its 32 KB L1 (Zen 5: 48 KB) holds a transposed A read in place
            // badly once rows are 512 floats apart (a tile's 256 rows take 16 KB of L1 while
            // each B panel streams 32 KB through it): with tiny's fc2 weight gradient (A the
            // GELU output, lda 512, cold in a training step) copied tile by tile, a step's
            // weight gradients took 19.3-21.6 ms against 21.0-23.3 (medians of 4 to 6
            // interleaved rounds of `sisa bench train --preset tiny --profile` in three
            // sets, old binary against new). Small's lda-256 products were unchanged with
            // 256 or 0 as the threshold.
            return narrowInPlace ?? candidates[preferred]
        case .intelAVX512:
            // Measured on a 2-core Ice Lake VM (family 6 model 106, two FMA units a core): the
            // 6 x 64 tile beat 8 x 32 at most SmolLM2-135M shapes (`sisa bench gemm --base
            // --candidates`, best of each: 183-282 against 133-223 GFLOP/s of 338-361) and made
            // LoRA training 436 against 330 tokens/s, tiny byte training 26.4k against 24.0k.
            // No k-block or column block beat the default by more than the noise (standalone
            // loop, one core: 146-148 GFLOP/s of 182 with the default, 115-154 otherwise).
            // Under 64 columns (LoRA's rank-r products) the wide tile would mostly multiply padding.
            guard let wide, shape.n >= 64 else { return candidates[preferred] }
            return wide
        case .zen5, .other:
            // The defaults, set on Zen 5 (48 KB L1): weight gradients with a transposed A of
            // lda 128 to 512 ran 5-30% faster read in place, those of lda 576 to 3,072 up to
            // 12% slower (`sisa bench gemm`), so A is read in place up to 512 floats apart.
            return candidates[preferred]
        }
    }


    /// The family from CPUID's vendor, family and model (x86); other architectures are `other`.
    public static func detectFamily() -> Family {
        var vendor: UInt32 = 0, family: UInt32 = 0, model: UInt32 = 0
        sisa_cpu_identity(&vendor, &family, &model)
        if vendor == 2 {  // Intel
            return sisa_kernel_table(SISA_PATH_AVX512) != nil ? .intelAVX512 : .other
        }
        guard vendor == 1 else { return .other }  // AMD
        if family == 0x1A { return .zen5 }
        if family == 0x19, (0x10...0x1F).contains(model) || (0x60...0x7F).contains(model) || (0xA0...0xAF).contains(model) {
            return .zen4
        }
        return .other
    }
}
