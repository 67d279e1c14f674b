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
        /// k-block and column block of the product (floats).
        public let kc: Int, nc: Int
        /// One of the C library's static kernel tables (function pointers, never
        /// written after load): safe to share across threads.
        nonisolated(unsafe) let table: UnsafePointer<SisaKernelTable>
        public var description: String { "\(path) \(tile.rows)x\(tile.columns) kc \(kc) nc \(nc)" }
        public static func == (a: Candidate, b: Candidate) -> Bool { a.table == b.table && a.kc == b.kc && a.nc == b.nc }

        init(path: KernelPath, kc: Int, nc: Int, table: UnsafePointer<SisaKernelTable>) {
            self.path = path
            tile = (Int(table.pointee.gemm_mr), Int(table.pointee.gemm_nr))
            self.kc = kc
            self.nc = nc
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
    /// A planner that runs every product with one candidate (benchmarks).
    private let forced: Candidate?

    init(forcing c: Candidate) {
        family = .other
        candidates = [c]
        preferred = 0
        wide = nil
        forced = c
    }

    init(paths: [KernelPath], family: Family = ProductPlanner.detectFamily()) {
        self.family = family
        let simd = paths.filter { $0 != .portable }
        var c: [Candidate] = []
        for p in simd.isEmpty ? paths : simd {
            var variant: Int32 = 0
            while let t = sisa_kernel_table_tile(p.cPath, variant) {
                for (kc, nc) in ProductPlanner.blockings { c.append(Candidate(path: p, kc: kc, nc: nc, table: t)) }
                variant += 1
            }
        }
        candidates = c
        preferred = 0
        wide = c.first { $0.path == .avx512 && $0.tile.columns == 64 && $0.kc == 256 && $0.nc == 512 }
        forced = nil
    }

    /// k-block x column-block pairs tried (the first is the kernels' default).
    static let blockings = [(256, 512), (128, 512), (384, 512), (256, 1024)]

    /// The candidate for `shape` on this CPU.
    @inline(__always)
    public func plan(_ shape: Shape) -> Candidate {
        if let forced { return forced }
        switch family {
        case .zen4:
            // Measured on a 2-core Zen 4 VM (`sisa bench gemm --candidates`, tiny, small and
            // SmolLM2-135M shapes, several runs): no candidate beats AVX-512 with the default
            // blocking by more than the run-to-run noise (±10%) at any shape, AVX2 included.
            return candidates[preferred]
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
