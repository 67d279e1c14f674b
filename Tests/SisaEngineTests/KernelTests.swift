import CSisaKernels
import Foundation
import SisaEngine
import XCTest

/// The kernel paths against the numerics contract (Numerics.swift): every
/// path this CPU runs gives the bits of the portable path, and the matrix
/// product gives the bits of one fused multiply-add chain per element.
final class KernelTests: XCTestCase {
    let paths = Kernels.availablePaths

    private func table(_ path: KernelPath) -> UnsafePointer<SisaKernelTable> {
        let c: SisaKernelPath = path == .avx512 ? SISA_PATH_AVX512 : path == .avx2 ? SISA_PATH_AVX2 : SISA_PATH_PORTABLE
        return sisa_kernel_table(c)!
    }

    /// Values of mixed sign and magnitude, so summation order shows in the bits.
    private func randomFloats(_ n: Int, seed: UInt64, scale: Double = 1) -> [Float] {
        var rng = Xoshiro256(seed: seed)
        return (0..<n).map { _ in Float((rng.nextDouble() - 0.5) * scale * (rng.nextDouble() < 0.1 ? 100 : 1)) }
    }

    private func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

    func testThisMachineRunsThePortablePathAndReportsItsPaths() {
        XCTAssertTrue(paths.contains(.portable))
        XCTAssertEqual(paths, KernelPath.allCases.filter { Kernels($0) != nil })
        print("kernel paths on this machine: \(paths.map(\.rawValue).joined(separator: ", "))")
    }

    func testSelectionFromTheEnvironment() throws {
        XCTAssertEqual(try Kernels.fromEnvironment([:]).path, paths[0])
        XCTAssertEqual(try Kernels.fromEnvironment(["SISA_KERNELS": "auto"]).path, paths[0])
        XCTAssertEqual(try Kernels.fromEnvironment(["SISA_KERNELS": "portable"]).path, .portable)
        XCTAssertThrowsError(try Kernels.fromEnvironment(["SISA_KERNELS": "sse9"])) { e in
            XCTAssertTrue("\(e)".contains("SISA_KERNELS=sse9"), "\(e)")
        }
        for p in KernelPath.allCases where !paths.contains(p) {
            XCTAssertThrowsError(try Kernels.fromEnvironment(["SISA_KERNELS": p.rawValue]))
        }
    }

    // MARK: matrix products

    /// C = chain of fused multiply-adds over k in order, from C (accumulate), the bias, or 0.
    private func referenceGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: [Float], lda: Int,
                               b: [Float], ldb: Int, c: [Float], ldc: Int, accumulate: Bool, bias: [Float]? = nil,
                               reversed: Bool = false) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var acc: Float = accumulate ? c[i * ldc + j] : bias?[j] ?? 0
                for step in 0..<k {
                    let p = reversed ? k - 1 - step : step
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    acc = acc.addingProduct(av, bv)
                }
                out[i * ldc + j] = acc
            }
        }
        return out
    }

    func testGemmIsOneFusedMultiplyAddChainPerElementOnEveryPath() throws {
        // Odd shapes, shapes that fill whole tiles, and k across the 256-wide k-blocks.
        let shapes: [(Int, Int, Int)] = [(1, 1, 1), (7, 33, 129), (33, 7, 300), (129, 129, 33), (8, 32, 256),
                                         (9, 33, 257), (64, 257, 128), (1, 129, 600), (130, 17, 513), (6, 16, 1), (5, 3, 0),
                                         (5, 1100, 300),  // n over two 512-wide column blocks
                                         (509, 40, 270), (510, 40, 270)]  // a transposed A read in place (lda 512), then packed (513)
        var sensitive = false
        for (si, (m, n, k)) in shapes.enumerated() {
            for transA in [false, true] {
                for transB in [false, true] {
                    // The chain starts from 0, from C (accumulate) or from a bias row.
                    for start in ["zero", "accumulate", "bias"] {
                        let accumulate = start == "accumulate"
                        // Leading dimensions wider than the matrices, to catch stride mistakes.
                        let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 5, ldc = n + 2
                        let seed = UInt64(si * 12 + (transA ? 6 : 0) + (transB ? 3 : 0) + (start == "zero" ? 0 : start == "bias" ? 1 : 2))
                        let a = randomFloats(max(1, (transA ? k : m) * lda), seed: seed)
                        let b = randomFloats(max(1, (transB ? n : k) * ldb), seed: seed + 100)
                        let c0 = randomFloats(m * ldc, seed: seed + 200)
                        let bias = start == "bias" ? randomFloats(n, seed: seed + 300) : nil
                        let expected = referenceGemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda,
                                                     b: b, ldb: ldb, c: c0, ldc: ldc, accumulate: accumulate, bias: bias)
                        if !sensitive && k > 16 {
                            let other = referenceGemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda,
                                                      b: b, ldb: ldb, c: c0, ldc: ldc, accumulate: accumulate, bias: bias,
                                                      reversed: true)
                            sensitive = bits(other) != bits(expected)
                        }
                        for path in paths {
                            var c = c0
                            a.withUnsafeBufferPointer { ap in
                                b.withUnsafeBufferPointer { bp in
                                    c.withUnsafeMutableBufferPointer { cp in
                                        let kernels = Kernels(path)!
                                        if let bias {
                                            bias.withUnsafeBufferPointer { biasp in
                                                kernels.gemm(transA: transA, transB: transB, m: m, n: n, k: k,
                                                             a: ap.baseAddress!, lda: lda, b: bp.baseAddress!, ldb: ldb,
                                                             c: cp.baseAddress!, ldc: ldc, bias: biasp.baseAddress!)
                                            }
                                        } else {
                                            kernels.gemm(transA: transA, transB: transB, m: m, n: n, k: k,
                                                         a: ap.baseAddress!, lda: lda, b: bp.baseAddress!, ldb: ldb,
                                                         c: cp.baseAddress!, ldc: ldc, accumulate: accumulate)
                                        }
                                    }
                                }
                            }
                            XCTAssertEqual(bits(c), bits(expected),
                                           "\(path) gemm m \(m) n \(n) k \(k) transA \(transA) transB \(transB) from \(start)")
                        }
                    }
                }
            }
        }
        XCTAssertTrue(sensitive, "the data must make summation order visible, or this test could not fail")
    }

    /// Every path, register tile and blocking the product planner may choose
    /// gives the portable path's bits, with each chain started from C, from a
    /// bias row or from zero.
    func testEveryPlannerCandidateGivesThePortableBits() throws {
        let planner = try XCTUnwrap(Kernels.best.planner)
        XCTAssertFalse(planner.candidates.isEmpty)
        let portable = Kernels(.portable)!
        enum Start: String, CaseIterable { case fromC, fromBias, fromZero }
        for (m, n, k) in [(37, 70, 300), (130, 33, 513), (8, 1100, 257), (13, 200, 64),
                          (300, 70, 300),  // a transposed A with lda 300: in place or packed, by candidate
                          (520, 70, 300)] {  // a transposed A with lda over 512 is packed, not read in place
            for (ta, tb) in [(false, false), (true, false), (false, true)] {
                let a = randomFloats(m * k, seed: 1), b = randomFloats(k * n, seed: 2), c0 = randomFloats(m * n, seed: 3)
                let bias = randomFloats(n, seed: 4)
                for start in Start.allCases {
                    func product(_ kern: Kernels) -> [Float] {
                        var c = c0
                        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                            bias.withUnsafeBufferPointer { pbias in
                                kern.gemm(transA: ta, transB: tb, m: m, n: n, k: k, a: pa.baseAddress!, lda: ta ? m : k, b: pb.baseAddress!,
                                          ldb: tb ? k : n, c: pc.baseAddress!, ldc: n, accumulate: start == .fromC,
                                          bias: start == .fromBias ? pbias.baseAddress! : nil)
                            }
                        } } }
                        return c
                    }
                    let reference = bits(product(portable))
                    let what = "\(m)x\(n)x\(k) \(ta) \(tb) \(start)"
                    XCTAssertEqual(bits(product(Kernels.best)), reference, "planned, \(what)")
                    for cand in planner.candidates {
                        XCTAssertEqual(bits(product(Kernels.best.forcing(cand))), reference, "\(cand), \(what)")
                    }
                }
            }
        }
        print("product planner: family \(planner.family), \(planner.candidates.count) candidates")
    }

    /// A product over a matrix packed once (a frozen base's weights) gives the
    /// bits of the same product that packs per call: every path, packed by
    /// every candidate's path, transposed or not, from any panel-aligned
    /// column, with a bias, from C, or from zero, with partial tiles and panels.
    func testProductsOverPackedPanelsGiveTheBitsOfPackingPerCall() throws {
        let planner = try XCTUnwrap(Kernels.best.planner)
        let portable = Kernels(.portable)!
        let kernelsUnderTest = paths.compactMap { Kernels($0) } + [Kernels.best] + planner.candidates.map { Kernels.best.forcing($0) }
        for (m, n, k) in [(37, 70, 300), (130, 97, 513), (1, 1100, 257), (9, 33, 1)] {
            for tb in [false, true] {
                let a = randomFloats(m * k, seed: 4), b = randomFloats(k * n, seed: 5), c0 = randomFloats(m * n, seed: 6)
                let bias = randomFloats(n, seed: 7)
                for mode in ["zero", "accumulate", "bias"] {
                    func unpacked(_ kern: Kernels, columns: Range<Int>) -> [Float] {
                        var c = c0
                        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                            bias.withUnsafeBufferPointer { pbias in
                                let j = columns.lowerBound
                                kern.gemm(transB: tb, m: m, n: columns.count, k: k, a: pa.baseAddress!, lda: k,
                                          b: pb.baseAddress! + (tb ? j * k : j), ldb: tb ? k : n, c: pc.baseAddress! + j, ldc: n,
                                          accumulate: mode == "accumulate", bias: mode == "bias" ? pbias.baseAddress! + j : nil)
                            }
                        } } }
                        return c
                    }
                    for kern in kernelsUnderTest {
                        let panels = b.withUnsafeBufferPointer { kern.packPanels(b: $0.baseAddress!, ldb: tb ? k : n, transB: tb, k: k, n: n) }
                        XCTAssertEqual(panels.k, k)
                        XCTAssertEqual(panels.n, n)
                        let w = panels.columnsPerPanel
                        for start in Set([0, w, (n / 2) / w * w]) where start < n {
                            let columns = start..<n
                            var c = c0
                            a.withUnsafeBufferPointer { pa in c.withUnsafeMutableBufferPointer { pc in bias.withUnsafeBufferPointer { pbias in
                                kern.gemm(m: m, n: columns.count, a: pa.baseAddress!, lda: k, panels: panels, column: start,
                                          c: pc.baseAddress! + start, ldc: n, accumulate: mode == "accumulate",
                                          bias: mode == "bias" ? pbias.baseAddress! + start : nil)
                            } } }
                            XCTAssertEqual(bits(c), bits(unpacked(portable, columns: columns)),
                                           "\(kern), \(m)x\(n)x\(k) transB \(tb) from column \(start), \(mode)")
                        }
                    }
                }
            }
        }
    }

    /// A product over a pool, its B packed once and shared by the row blocks
    /// (or cut by columns when rows are few), gives the bits of one `gemm` on
    /// the portable path: every path and planner candidate, 1 to 3 threads,
    /// either operand transposed, with or without a bias, partial tiles and panels.
    func testPooledProductsGiveTheBitsOfOneProduct() throws {
        let planner = try XCTUnwrap(Kernels.best.planner)
        let portable = Kernels(.portable)!
        let kernelsUnderTest = paths.compactMap { Kernels($0) } + [Kernels.best] + planner.candidates.map { Kernels.best.forcing($0) }
        let pools = [1, 2, 3].map { WorkerPool(threads: $0) }
        for (m, n, k, rowGrain) in [(600, 70, 37, 256), (520, 300, 130, 256), (203, 97, 130, 64), (40, 300, 9, 256), (1, 33, 5, 16)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let a = randomFloats(m * k, seed: 8), b = randomFloats(k * n, seed: 9), bias = randomFloats(n, seed: 10)
                    let lda = ta ? m : k, ldb = tb ? k : n
                    for withBias in [false, true] {
                        func run(_ kern: Kernels, pool: WorkerPool?) -> [Float] {
                            var c = [Float](repeating: .nan, count: m * n)
                            a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                                bias.withUnsafeBufferPointer { pbias in
                                    let biasPointer = withBias ? pbias.baseAddress! : nil
                                    if let pool {
                                        kern.product(transA: ta, transB: tb, m: m, n: n, k: k, a: pa.baseAddress!, lda: lda,
                                                     b: pb.baseAddress!, ldb: ldb, c: pc.baseAddress!, ldc: n, bias: biasPointer,
                                                     rowGrain: rowGrain, pool: pool)
                                    } else {
                                        kern.gemm(transA: ta, transB: tb, m: m, n: n, k: k, a: pa.baseAddress!, lda: lda,
                                                  b: pb.baseAddress!, ldb: ldb, c: pc.baseAddress!, ldc: n, bias: biasPointer)
                                    }
                                }
                            } } }
                            return c
                        }
                        let expected = bits(run(portable, pool: nil))
                        for kern in kernelsUnderTest {
                            for pool in pools {
                                XCTAssertEqual(bits(run(kern, pool: pool)), expected,
                                               "\(kern), \(m)x\(n)x\(k) transA \(ta) transB \(tb) bias \(withBias), \(pool.threads) threads")
                            }
                        }
                    }
                }
            }
        }
    }

    /// A weight gradient that sums its output gradient's columns while packing it gives the
    /// product's bits and `columnSums`' bits: every path and candidate, several k-blocks and
    /// column blocks, partial panels, no rows or no k, transposed A or not. And the linear
    /// layer's bias gradient, so taken, is the column sums whichever way its weight gradient
    /// is cut (by columns, or by rows with only the first row block summing) and on 1-3 threads.
    func testProductsSummingBGiveTheBitsOfTheProductAndOfColumnSums() throws {
        let planner = try XCTUnwrap(Kernels.best.planner)
        let portable = Kernels(.portable)!
        let kernelsUnderTest = paths.compactMap { Kernels($0) } + planner.candidates.map { Kernels.best.forcing($0) }
        for (m, n, k) in [(37, 70, 600), (16, 1100, 300), (9, 33, 5), (0, 45, 20), (8, 40, 0), (128, 64, 257)] {
            for ta in [false, true] {
                let lda = ta ? max(m, 1) : max(k, 1), ldb = n + 3
                let a = randomFloats(max(m, 1) * max(k, 1) + lda, seed: 21), b = randomFloats(max(k, 1) * ldb, seed: 22)
                var expectedC = [Float](repeating: .nan, count: m * n)
                if m > 0 { portable.gemm(transA: ta, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: &expectedC, ldc: n) }
                var expectedSums = [Float](repeating: .nan, count: n)
                portable.columnSums(y: &expectedSums, x: b, rows: k, cols: n, ld: ldb)
                for kern in kernelsUnderTest {
                    var c = [Float](repeating: .nan, count: m * n), sums = [Float](repeating: .nan, count: n + 1)
                    sums.withUnsafeMutableBufferPointer { ps in
                        kern.gemm(transA: ta, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: &c, ldc: n, bSums: ps.baseAddress!)
                    }
                    XCTAssertEqual(bits(c), bits(expectedC), "\(kern) \(m)x\(n)x\(k) transA \(ta): product")
                    XCTAssertEqual(bits(Array(sums[..<n])), bits(expectedSums), "\(kern) \(m)x\(n)x\(k) transA \(ta): column sums")
                    XCTAssertTrue(sums[n].isNaN, "\(kern) wrote a sum past column \(n)")
                }
            }
        }
        // The layer: qkv-like (more columns than rows: cut by columns) and fc2-like (cut by rows).
        for (M, K, N) in [(300, 24, 72), (300, 96, 24), (520, 64, 40)] {
            let inp = randomFloats(M * K, seed: 31), dout = randomFloats(M * N, seed: 32), w = randomFloats(K * N, seed: 33)
            var expectedDb = [Float](repeating: .nan, count: N)
            portable.columnSums(y: &expectedDb, x: dout, rows: M, cols: N, ld: N)
            var expectedDw = [Float](repeating: .nan, count: K * N)
            portable.gemm(transA: true, m: K, n: N, k: M, a: inp, lda: K, b: dout, ldb: N, c: &expectedDw, ldc: N)
            for threads in [1, 2, 3] {
                let pool = WorkerPool(threads: threads)
                var dw = [Float](repeating: .nan, count: K * N), db = [Float](repeating: .nan, count: N)
                dw.withUnsafeMutableBufferPointer { pdw in db.withUnsafeMutableBufferPointer { pdb in
                    Linear.backward(dinp: nil, dw: pdw.baseAddress!, db: pdb.baseAddress!, dout: dout, inp: inp, w: w,
                                    M: M, K: K, N: N, kernels: Kernels.best, pool: pool)
                } }
                XCTAssertEqual(bits(db), bits(expectedDb), "Linear db, M \(M) K \(K) N \(N), \(threads) threads")
                XCTAssertEqual(bits(dw), bits(expectedDw), "Linear dw, M \(M) K \(K) N \(N), \(threads) threads")
            }
        }
    }

    func testGemvIsTheSameChainAsGemm() throws {
        for (k, n) in [(1, 1), (7, 33), (129, 257), (300, 65)] {
            let ldw = n + 3
            let x = randomFloats(k, seed: UInt64(k)), w = randomFloats(k * ldw, seed: UInt64(n)), y0 = randomFloats(n, seed: 9)
            for accumulate in [false, true] {
                let expected = referenceGemm(transA: false, transB: false, m: 1, n: n, k: k, a: x, lda: k, b: w, ldb: ldw,
                                             c: y0, ldc: n, accumulate: accumulate)
                for path in paths {
                    var y = y0
                    Kernels(path)!.gemv(y: &y, x: x, w: w, k: k, n: n, ldw: ldw, accumulate: accumulate)
                    XCTAssertEqual(bits(y), bits(expected), "\(path) gemv k \(k) n \(n) accumulate \(accumulate)")
                }
            }
        }
    }

    /// A bias gradient: each column summed row after row from zero, the bits of
    /// 1ᵀ · x by one fused chain, on every path, at widths that use every pass
    /// of the kernel (8 vectors, 4, 1, a short last one).
    func testColumnSumsAddRowsInOrder() throws {
        for (rows, cols) in [(1, 1), (5, 15), (64, 16), (33, 129), (300, 191), (2048, 384), (17, 530)] {
            let ld = cols + 5
            let x = randomFloats(rows * ld, seed: UInt64(rows * 31 + cols))
            var expected = [Float](repeating: 0, count: cols)
            for r in 0..<rows { for c in 0..<cols { expected[c] += x[r * ld + c] } }
            let ones = [Float](repeating: 1, count: rows)
            for path in paths {
                let kernels = try XCTUnwrap(Kernels(path))
                var y = [Float](repeating: .nan, count: cols + 1)
                kernels.columnSums(y: &y, x: x, rows: rows, cols: cols, ld: ld)
                XCTAssertEqual(bits(Array(y[..<cols])), bits(expected), "\(path) rows \(rows) cols \(cols)")
                XCTAssertTrue(y[cols].isNaN, "\(path) wrote past column \(cols)")
                var viaGemv = [Float](repeating: 0, count: cols)
                kernels.gemv(y: &viaGemv, x: ones, w: x, k: rows, n: cols, ldw: ld, accumulate: false)
                XCTAssertEqual(bits(Array(y[..<cols])), bits(viaGemv), "\(path) rows \(rows) cols \(cols) against 1ᵀ · x")
            }
        }
    }

    /// One row over packed panels (decoding a frozen base) is the chain of the
    /// reference product's row: every path and candidate, transposed weights or
    /// not, from any panel-aligned column, from y or from zero, partial panels.
    func testGemvOverPackedPanelsIsTheSameChainAsGemm() throws {
        let planner = try XCTUnwrap(Kernels.best.planner)
        let kernelsUnderTest = paths.compactMap { Kernels($0) } + planner.candidates.map { Kernels.best.forcing($0) }
        for (k, n) in [(1, 1), (7, 33), (129, 257), (300, 65), (576, 97)] {
            let x = randomFloats(k, seed: UInt64(k)), w = randomFloats(k * n, seed: UInt64(n)), y0 = randomFloats(n, seed: 9)
            for tb in [false, true] {
                for accumulate in [false, true] {
                    // w holds op(B) [k, n] row-major, or its transpose [n, k] when tb.
                    let opB = tb ? (0..<k * n).map { w[($0 % n) * k + $0 / n] } : w
                    let expected = referenceGemm(transA: false, transB: false, m: 1, n: n, k: k, a: x, lda: k, b: opB, ldb: n,
                                                 c: y0, ldc: n, accumulate: accumulate)
                    for kern in kernelsUnderTest {
                        let panels = w.withUnsafeBufferPointer { kern.packPanels(b: $0.baseAddress!, ldb: tb ? k : n, transB: tb, k: k, n: n) }
                        let step = panels.columnsPerPanel
                        for start in Set([0, step, (n / 2) / step * step]) where start < n {
                            var y = y0
                            y.withUnsafeMutableBufferPointer { py in
                                kern.gemv(y: py.baseAddress! + start, x: x, panels: panels, column: start, accumulate: accumulate)
                            }
                            XCTAssertEqual(bits(Array(y[start...])), bits(Array(expected[start...])),
                                           "\(kern) k \(k) n \(n) transB \(tb) from column \(start) accumulate \(accumulate)")
                            XCTAssertEqual(bits(Array(y[..<start])), bits(Array(y0[..<start])), "columns before \(start) untouched")
                        }
                    }
                }
            }
        }
    }

    // MARK: reductions and element-wise maps

    /// Runs `body` on every path with a fresh copy of `inputs`; each path's
    /// outputs must equal the portable path's, bit for bit.
    private func assertPathsAgree(_ what: String, _ inputs: [[Float]],
                                  _ body: (UnsafePointer<SisaKernelTable>, inout [[Float]]) -> [Float]) {
        var portableIn = inputs
        let reference = body(table(.portable), &portableIn)
        for path in paths where path != .portable {
            var copy = inputs
            let out = body(table(path), &copy)
            XCTAssertEqual(bits(out), bits(reference), "\(what): \(path) differs from portable")
            XCTAssertEqual(copy.map(bits), portableIn.map(bits), "\(what): \(path) wrote different inputs/outputs")
        }
    }

    func testRowKernelsMatchThePortablePathOnOddLengths() throws {
        // With the portable path alone there is nothing to compare it with: say so.
        guard paths.count > 1 else { throw XCTSkip("only the portable kernel path runs on this CPU") }
        for n in [1, 7, 15, 16, 17, 33, 129, 257] {
            let rows = 3
            let x = randomFloats(rows * n, seed: UInt64(n), scale: 4)
            let w = randomFloats(n, seed: UInt64(n) + 1), b = randomFloats(n, seed: UInt64(n) + 2)
            let g = randomFloats(rows * n, seed: UInt64(n) + 3)
            assertPathsAgree("layernorm forward n=\(n)", [x, w, b]) { t, io in
                var out = [Float](repeating: 0, count: rows * n), mean = [Float](repeating: 0, count: rows)
                var rstd = mean
                t.pointee.layernorm_forward(&out, &mean, &rstd, io[0], io[1], io[2], rows, n, 1e-5)
                return out + mean + rstd
            }
            assertPathsAgree("layernorm backward n=\(n)", [x, w, g]) { t, io in
                var out = [Float](repeating: 0, count: rows * n), mean = [Float](repeating: 0, count: rows)
                var rstd = mean
                t.pointee.layernorm_forward(&out, &mean, &rstd, io[0], io[1], io[1], rows, n, 1e-5)
                var dx = [Float](repeating: 0.5, count: rows * n), dw = [Float](repeating: 0.25, count: n)
                var db = [Float](repeating: -1, count: n)
                t.pointee.layernorm_backward(&dx, &dw, &db, io[2], io[0], mean, rstd, io[1], rows, n)
                return dx + dw + db
            }
            assertPathsAgree("softmax n=\(n)", [x]) { t, io in
                var row = Array(io[0].prefix(n)) + [9, 9, 9]
                t.pointee.softmax_causal(&row, n, n + 3, 0.37)
                return row
            }
            assertPathsAgree("softmax backward n=\(n)", [x, g]) { t, io in
                var p = Array(io[0].prefix(n))
                t.pointee.softmax_causal(&p, n, n, 1)
                var d = Array(io[1].prefix(n)) + [7, 7]
                t.pointee.softmax_causal_backward(&d, p, n, n + 2, 0.37)
                return d
            }
            for withGrad in [Int32(0), 1] {
                assertPathsAgree("cross-entropy n=\(n) grad \(withGrad)", [x, g]) { t, io in
                    var logits = io[0]
                    var losses = [Float](repeating: 0, count: rows)
                    let targets: [Int32] = [0, Int32(n - 1), -1]
                    t.pointee.cross_entropy(&logits, &losses, targets, io[1], rows, n, 0.125, withGrad)
                    return logits + losses
                }
            }
            assertPathsAgree("gelu n=\(n)", [x, g]) { t, io in
                var out = [Float](repeating: 0, count: rows * n), dx = out
                t.pointee.gelu_forward(&out, io[0], rows * n)
                t.pointee.gelu_backward(&dx, io[1], io[0], rows * n)
                return out + dx
            }
            for decays: Int32 in [0, 1] {
                assertPathsAgree("adamw n=\(n) decays \(decays)", [x, g, w, b]) { t, io in
                    var args = SisaAdamWArgs(learning_rate: 1e-3, beta1: 0.9, beta2: 0.95, epsilon: 1e-8, weight_decay: 0.1,
                                             grad_scale: 0.7, bias_correction1: 10, bias_correction2: 20)
                    let mAbs = io[2].map { abs($0) }
                    var p = io[0], m = io[3], v = mAbs
                    t.pointee.adamw(&p, io[1], &m, &v, n, &args, decays)
                    return p + m + v
                }
            }
            assertPathsAgree("sum of squares and dot n=\(n)", [x, g]) { t, io in
                [Float(t.pointee.sum_squares(io[0], n)), t.pointee.dot(io[0], io[1], n)]
            }
        }
    }

    func testReductionsUseTheFixedTreeNotASequentialSum() {
        // 16 lanes, then lane l + lane l+8, +4, +2, +1: written out here independently.
        let n = 37
        let x = randomFloats(n, seed: 77)
        var lanes = [Float](repeating: 0, count: 16)
        for (i, v) in x.enumerated() { lanes[i % 16] += v * v }
        var width = 8
        while width >= 1 {
            for l in 0..<width { lanes[l] = lanes[l] + lanes[l + width] }
            width /= 2
        }
        for path in paths {
            XCTAssertEqual(Float(table(path).pointee.sum_squares(x, n)).bitPattern, lanes[0].bitPattern, "\(path)")
        }
    }

    // MARK: the project's own exp and log

    func testExpAndLogAreAccurate() {
        var worstExp = 0.0, worstLog = 0.0
        var x: Float = -87
        while x < 88 {
            let e = Double(Numerics.exp(x)), ref = Foundation.exp(Double(x))
            worstExp = max(worstExp, abs(e - ref) / ref)
            x += 0.0137
        }
        var y: Float = 1e-30
        while y < 1e30 {
            let l = Double(Numerics.log(y)), ref = Foundation.log(Double(y))
            worstLog = max(worstLog, abs(l - ref) / max(1, abs(ref)))
            y *= 1.0371
        }
        XCTAssertLessThan(worstExp, 4e-7, "exp within about 3 ulp")
        XCTAssertLessThan(worstLog, 2.5e-7, "log within about 2 ulp")
        XCTAssertEqual(Numerics.log(Float(0)), -.infinity)
        XCTAssertTrue(Numerics.log(Float(-1)).isNaN)
        XCTAssertLessThan(abs(Double(Numerics.log(Float.leastNonzeroMagnitude)) - Foundation.log(Double(Float.leastNonzeroMagnitude))), 1e-5)
    }

    func testDoubleMathIsAccurate() {
        var rng = Xoshiro256(seed: 3)
        for _ in 0..<20_000 {
            let x = (rng.nextDouble() - 0.5) * 1400
            let e = Numerics.exp(x), ref = Foundation.exp(x)
            XCTAssertLessThanOrEqual(abs(e - ref), 4e-16 * ref, "exp(\(x))")
            let y = Foundation.exp((rng.nextDouble() - 0.5) * 1400)
            XCTAssertLessThanOrEqual(abs(Numerics.log(y) - Foundation.log(y)), 4e-16 * max(1, abs(Foundation.log(y))), "log(\(y))")
            let z = (rng.nextDouble() - 0.5) * 100
            XCTAssertLessThanOrEqual(abs(Numerics.cos(z) - Foundation.cos(z)), 4e-16, "cos(\(z))")
        }
        XCTAssertEqual(Numerics.pow(0.9, 10), 0.9 * 0.9 * 0.9 * 0.9 * 0.9 * 0.9 * 0.9 * 0.9 * 0.9 * 0.9, accuracy: 1e-15)
        XCTAssertEqual(Numerics.exp(0.0), 1)
        XCTAssertEqual(Numerics.log(1.0), 0)
        XCTAssertEqual(Numerics.cos(0.0), 1)
    }
}
