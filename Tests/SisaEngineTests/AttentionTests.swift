import XCTest
import CSisaKernels
import SisaEngine

/// Attention packs the operands its row blocks share once per head
/// (PanelProducts). These tests hold it to the bits of the plain products,
/// each packing its own B, on every path, register tile and blocking.
final class AttentionTests: XCTestCase {
    private func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
        var rng = Xoshiro256(seed: seed)
        return (0..<n).map { _ in Float(rng.nextDouble() - 0.5) }
    }

    /// Fails with the first differing element and how many differ (not two long arrays).
    private func assertSameBits(_ got: [Float], _ want: [Float], _ what: @autoclosure () -> String, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what(), line: line)
        let differing = got.indices.filter { $0 < want.count }.filter { got[$0].bitPattern != want[$0].bitPattern }
        if let first = differing.first {
            XCTFail("\(what()): \(differing.count) of \(got.count) differ, first at \(first): \(got[first]) vs \(want[first])", line: line)
        }
    }

    private var kernelsUnderTest: [Kernels] {
        let planner = Kernels.best.planner!
        return Kernels.availablePaths.compactMap { Kernels($0) } + [Kernels.best] + planner.candidates.map { Kernels.best.forcing($0) }
    }

    /// A product over rows row ..< row + k and the first n columns of panels packed with more
    /// rows and columns gives the bits of `gemm` on that sub-matrix, with A plain or transposed,
    /// from zero or from C.
    func testProductsOverPartOfSharedPanelsGiveThePlainBits() {
        let portable = Kernels(.portable)!
        let (packedK, packedN) = (75, 70)
        let b = randomFloats(packedK * packedN, seed: 1)
        for kern in kernelsUnderTest {
            let run = kern.panelProducts(for: .init(transA: false, transB: false, m: 32, n: packedN, k: packedK))
            for transB in [false, true] {
                // op(B) [packedK, packedN]: stored [packedN, packedK] when transposed.
                let ldb = transB ? packedK : packedN
                let panels = FloatBuffer(count: run.floats(k: packedK, n: packedN))
                b.withUnsafeBufferPointer { run.pack(panels.pointer, b: $0.baseAddress!, ldb: ldb, transB: transB, k: packedK, n: packedN) }
                for (m, n, row, k) in [(32, 70, 0, 75), (9, 33, 40, 35), (17, 64, 3, 1), (8, 1, 74, 1), (5, 31, 10, 0)] {
                    for transA in [false, true] {
                        let lda = transA ? m : k
                        let a = randomFloats(max(1, m * k), seed: 2), c0 = randomFloats(m * n, seed: 3)
                        for accumulate in [false, true] {
                            var want = c0, got = c0
                            a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in want.withUnsafeMutableBufferPointer { pc in
                                portable.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: pa.baseAddress!, lda: max(1, lda),
                                              b: pb.baseAddress! + (transB ? row : row * packedN), ldb: ldb, c: pc.baseAddress!, ldc: n,
                                              accumulate: accumulate)
                            } } }
                            a.withUnsafeBufferPointer { pa in got.withUnsafeMutableBufferPointer { pc in
                                run.gemm(transA: transA, m: m, n: n, k: k, a: pa.baseAddress!, lda: max(1, lda), panels: panels.pointer,
                                         packedK: packedK, row: row, c: pc.baseAddress!, ldc: n, accumulate: accumulate)
                            } }
                            assertSameBits(got, want, "\(kern) \(m)x\(n)x\(k) from row \(row) transA \(transA) transB \(transB) accumulate \(accumulate)")
                        }
                    }
                }
            }
        }
    }

    /// The layer's forward and backward give the bits of the same blocks computed with plain
    /// products (the portable path, packing per call): grouped heads, a context that is not a
    /// multiple of the row block, heads of 32 and 64 values (one and two panels of the 8 x 32
    /// tile), on every candidate and with 1 and 3 threads.
    func testAttentionGivesTheBitsOfPlainProducts() {
        for (T, heads, kvHeads, hs) in [(70, 4, 2, 32), (33, 3, 1, 64), (64, 2, 2, 16)] {
            let B = 2
            let stride = (heads + 2 * kvHeads) * hs
            let s = AttentionShape(B: B, T: T, heads: heads, kvHeads: kvHeads, headSize: hs, stride: stride,
                                   kOffset: heads * hs, vOffset: (heads + kvHeads) * hs, yStride: heads * hs)
            let qkv = randomFloats(B * T * stride, seed: 4), dy = randomFloats(B * T * heads * hs, seed: 5)
            let want = reference(s, qkv: qkv, dy: dy)
            for kern in kernelsUnderTest {
                for threads in [1, 3] {
                    let pool = WorkerPool(threads: threads)
                    let y = FloatBuffer(count: B * T * heads * hs), att = FloatBuffer(count: B * heads * T * T)
                    let dqkv = FloatBuffer(count: B * T * stride), scratch = FloatBuffer(count: threads * T * T)
                    qkv.withUnsafeBufferPointer { pq in dy.withUnsafeBufferPointer { pdy in
                        Attention.forward(y: y.pointer, att: att.pointer, qkv: pq.baseAddress!, shape: s, kernels: kern, pool: pool)
                        Attention.backward(dqkv: dqkv.pointer, dy: pdy.baseAddress!, qkv: pq.baseAddress!, att: att.pointer, shape: s,
                                           scratch: scratch.pointer, kernels: kern, pool: pool)
                    } }
                    let what = "\(kern), T \(T) heads \(heads)/\(kvHeads) hs \(hs), \(threads) threads"
                    assertSameBits(y.array, want.y, "y: " + what)
                    // dq and the group's dk, dv: the layer writes every q|k|v column of dqkv.
                    assertSameBits(dqkv.array, want.dqkv, "dqkv: " + what)
                }
            }
        }
    }

    /// The streaming copy the forward writes P with copies every float of every row, on
    /// every path, whatever the destination's alignment, and nothing else.
    func testStreamingRowCopiesAreExactCopies() {
        let src = randomFloats(7 * 41, seed: 8)
        for path in Kernels.availablePaths {
            let table = sisa_kernel_table(path == .avx512 ? SISA_PATH_AVX512 : path == .avx2 ? SISA_PATH_AVX2 : SISA_PATH_PORTABLE)!.pointee
            for offset in 0..<4 {
                for cols in [0, 1, 15, 16, 17, 33, 37] {
                    let sentinel = Float(-7.25)
                    var dst = [Float](repeating: sentinel, count: offset + 7 * 37 + 16)
                    let base = dst.withUnsafeMutableBufferPointer { d in src.withUnsafeBufferPointer { s -> Int in
                        // From a 64-byte boundary plus `offset` floats.
                        let p = d.baseAddress!, skip = (64 - Int(bitPattern: p) % 64) % 64 / 4 + offset
                        table.copy_rows_streaming(p + skip, 37, s.baseAddress!, 41, 7, cols)
                        return skip
                    } }
                    for r in 0..<7 {
                        for c in 0..<37 {
                            let want = c < cols ? src[r * 41 + c] : sentinel
                            XCTAssertEqual(dst[base + r * 37 + c].bitPattern, want.bitPattern, "\(path) offset \(offset) cols \(cols) (\(r), \(c))")
                        }
                    }
                    XCTAssertTrue(dst[..<base].allSatisfy { $0 == sentinel } && dst[(base + 7 * 37)...].allSatisfy { $0 == sentinel })
                }
            }
        }
    }

    /// `sisa bench gemm` counts the FLOPs attention computes (row blocks over the lower
    /// triangle, not the whole square) and times the layer's products on every candidate.
    func testTheKernelBenchmarkCountsAttentionsRowBlocks() {
        // T = 70: blocks of 32, 32 and 6 rows; hs = 35 / 5 = 7.
        let products = KernelBenchmark.trainingProducts(config: GPT2Configuration(layers: 1, heads: 5, dim: 35, context: 70), batch: 2)
        let attention = products.filter { $0.attention != nil }
        XCTAssertEqual(attention.map(\.name), ["attention q.k^T", "attention P.v", "attention dy.v^T", "attention dS.k",
                                               "attention dS^T.q", "attention P^T.dy"])
        // Rows x keys per block: 32 x 32 + 32 x 64 + 6 x 70 (the key and value gradients gather
        // 70, 38 and 6 query rows for 32, 32 and 6 key rows: the same total).
        let multiplies = Double(32 * 32 + 32 * 64 + 6 * 70) * 7
        for p in attention {
            XCTAssertEqual(p.count, 2 * 5)
            XCTAssertEqual(p.flops, 2 * multiplies * 10, p.name)
            XCTAssertLessThan(p.flops, 2 * Double(p.m * p.n * p.k * p.count), p.name)
            let pool = WorkerPool(threads: 2)
            // Grouped heads (5 query heads per key/value head, as a llama base may have): the
            // backward's parts are groups.
            var grouped = p
            grouped.groupSize = 5
            for kern in [Kernels.best] + Kernels.best.planner!.candidates.prefix(2).map({ Kernels.best.forcing($0) }) {
                for q in [p, grouped] {
                    let g = KernelBenchmark.measure(q, kernels: kern, pool: pool, minSeconds: 0.001, repeats: 1)
                    XCTAssertTrue(g.isFinite && g > 0, "\(q.name) on \(kern), group \(q.groupSize): \(g) GFLOP/s")
                }
            }
        }
    }

    /// The layer's algorithm with plain products (each packing its own B) on the portable path.
    private func reference(_ s: AttentionShape, qkv: [Float], dy: [Float]) -> (y: [Float], dqkv: [Float]) {
        let k = Kernels(.portable)!, table = sisa_kernel_table(SISA_PATH_PORTABLE)!.pointee
        let T = s.T, hs = s.headSize, ld = s.stride, block = Attention.block
        let scale = 1 / Float(hs).squareRoot()
        var y = [Float](repeating: 0, count: s.B * T * s.yStride), att = [Float](repeating: 0, count: s.B * s.heads * T * T)
        var dqkv = [Float](repeating: 0, count: s.B * T * ld), dS = [Float](repeating: 0, count: T * T)
        qkv.withUnsafeBufferPointer { pq in dy.withUnsafeBufferPointer { pdy in
            y.withUnsafeMutableBufferPointer { py in att.withUnsafeMutableBufferPointer { patt in
                dqkv.withUnsafeMutableBufferPointer { pd in dS.withUnsafeMutableBufferPointer { pdS in
                    let qkv = pq.baseAddress!, dy = pdy.baseAddress!, ds = pdS.baseAddress!
                    for b in 0..<s.B {
                        for h in 0..<s.heads {
                            let g = h / s.groupSize, row0 = qkv + b * T * ld
                            let q = row0 + h * hs, kk = row0 + s.kOffset + g * hs, v = row0 + s.vOffset + g * hs
                            let P = patt.baseAddress! + (b * s.heads + h) * T * T, out = py.baseAddress! + b * T * s.yStride + h * hs
                            for r0 in stride(from: 0, to: T, by: block) {
                                let r1 = min(T, r0 + block)
                                k.gemm(transB: true, m: r1 - r0, n: r1, k: hs, a: q + r0 * ld, lda: ld, b: kk, ldb: ld, c: P + r0 * T, ldc: T)
                                for i in r0..<r1 { table.softmax_causal(P + i * T, i + 1, r1, scale) }
                                k.gemm(m: r1 - r0, n: hs, k: r1, a: P + r0 * T, lda: T, b: v, ldb: ld, c: out + r0 * s.yStride, ldc: s.yStride)
                            }
                        }
                        for g in 0..<s.kvHeads {
                            let row0 = qkv + b * T * ld, drow0 = pd.baseAddress! + b * T * ld
                            let kk = row0 + s.kOffset + g * hs, v = row0 + s.vOffset + g * hs
                            let dk = drow0 + s.kOffset + g * hs, dv = drow0 + s.vOffset + g * hs
                            for member in 0..<s.groupSize {
                                let h = g * s.groupSize + member
                                let q = row0 + h * hs, dq = drow0 + h * hs
                                let P = patt.baseAddress! + (b * s.heads + h) * T * T, gy = dy + b * T * s.yStride + h * hs
                                for r0 in stride(from: 0, to: T, by: block) {
                                    let r1 = min(T, r0 + block)
                                    k.gemm(transB: true, m: r1 - r0, n: r1, k: hs, a: gy + r0 * s.yStride, lda: s.yStride, b: v, ldb: ld,
                                           c: ds + r0 * T, ldc: T)
                                    for i in r0..<r1 { table.softmax_causal_backward(ds + i * T, P + i * T, i + 1, r1, scale) }
                                }
                                for r0 in stride(from: 0, to: T, by: block) {
                                    let r1 = min(T, r0 + block)
                                    k.gemm(m: r1 - r0, n: hs, k: r1, a: ds + r0 * T, lda: T, b: kk, ldb: ld, c: dq + r0 * ld, ldc: ld)
                                    k.gemm(transA: true, m: r1 - r0, n: hs, k: T - r0, a: ds + r0 * T + r0, lda: T, b: q + r0 * ld, ldb: ld,
                                           c: dk + r0 * ld, ldc: ld, accumulate: member > 0)
                                    k.gemm(transA: true, m: r1 - r0, n: hs, k: T - r0, a: P + r0 * T + r0, lda: T, b: gy + r0 * s.yStride,
                                           ldb: s.yStride, c: dv + r0 * ld, ldc: ld, accumulate: member > 0)
                                }
                            }
                        }
                    }
                } }
            } }
        } }
        return (y, dqkv)
    }
}
