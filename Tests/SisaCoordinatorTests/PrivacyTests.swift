import Foundation
import SisaCoordinator
import XCTest

/// The RDP accountant against Opacus.
final class PrivacyAccountantTests: XCTestCase {
    /// Reference values computed once, outside the repository, with Opacus 1.6.0's
    /// RDP accountant: `compute_rdp(q, noise_multiplier, steps, orders)` then
    /// `get_privacy_spent(orders, rdp, delta)`, orders 1.1 ... 10.9 by 0.1 and
    /// 12 ... 63 (the first five are also in shared/REFERENCE.md §7).
    /// Columns: q, sigma, steps, delta, epsilon, best order.
    static let opacus: [(Double, Double, Int, Double, Double, Double)] = [
        (0.01, 1.0, 1000, 1e-5, 2.101365272, 7.8),
        (0.004, 1.1, 12000, 1e-5, 2.219269185, 9.1),
        (0.05, 2.0, 500, 1e-6, 3.101868254, 8.2),
        (0.1, 0.8, 200, 1e-5, 17.18144843, 2.2),
        (1.0, 5.0, 10, 1e-5, 2.813653247, 7.9),
        (0.02, 0.7, 300, 1e-5, 6.385379812, 3.2),
        (0.001, 0.6, 5000, 1e-6, 3.627394749, 4.6),
        (0.25, 1.5, 100, 1e-5, 10.57284258, 3.0),
        (0.5, 3.0, 50, 1e-4, 5.389638505, 4.0),
        (0.008, 1.3, 2500, 1e-5, 1.581056408, 12.0),
        (0.03, 4.0, 1000, 1e-6, 1.119568554, 20.0),
        (0.15, 1.0, 40, 1e-3, 5.463684082, 2.8),
    ]

    func testEpsilonMatchesOpacusOnAGrid() {
        for (q, sigma, steps, delta, eps, order) in Self.opacus {
            let r = RDPAccountant.epsilon(samplingRate: q, noise: sigma, steps: steps, delta: delta)
            XCTAssertEqual(r.epsilon, eps, accuracy: 1e-3 * eps, "q \(q) sigma \(sigma) steps \(steps) delta \(delta)")
            XCTAssertEqual(r.order, order, accuracy: 1e-9, "best order for q \(q) sigma \(sigma)")
        }
    }

    func testStepsWithDifferentRatesCompose() {
        // Opacus: compute_rdp(0.02, 1.2, 400) + compute_rdp(0.05, 1.2, 100), delta 1e-5 -> 3.3422199834506316 at order 5.9.
        var a = RDPAccountant()
        a.step(samplingRate: 0.02, noise: 1.2, steps: 400)
        a.step(samplingRate: 0.05, noise: 1.2, steps: 100)
        let r = a.epsilon(delta: 1e-5)
        XCTAssertEqual(r.epsilon, 3.3422199834506316, accuracy: 1e-3 * 3.34)
        XCTAssertEqual(r.order, 5.9, accuracy: 1e-9)
    }

    func testLimitsAndMonotonicity() {
        // No sampling, no loss; full batch is the Gaussian mechanism, alpha / (2 sigma^2).
        XCTAssertEqual(RDPAccountant.rdp(q: 0, sigma: 1, order: 4), 0)
        XCTAssertEqual(RDPAccountant.rdp(q: 1, sigma: 2, order: 4), 0.5, accuracy: 1e-12)
        // Integer and fractional orders agree where they meet.
        let at3 = RDPAccountant.rdp(q: 0.05, sigma: 1.1, order: 3)
        let near3 = RDPAccountant.rdp(q: 0.05, sigma: 1.1, order: 3 + 1e-7)
        XCTAssertEqual(near3, at3, accuracy: 1e-5 * at3)
        // More noise, fewer steps or a lower rate: a smaller epsilon.
        let base = RDPAccountant.epsilon(samplingRate: 0.01, noise: 1.0, steps: 1000, delta: 1e-5).epsilon
        XCTAssertLessThan(RDPAccountant.epsilon(samplingRate: 0.01, noise: 1.5, steps: 1000, delta: 1e-5).epsilon, base)
        XCTAssertLessThan(RDPAccountant.epsilon(samplingRate: 0.01, noise: 1.0, steps: 500, delta: 1e-5).epsilon, base)
        XCTAssertLessThan(RDPAccountant.epsilon(samplingRate: 0.005, noise: 1.0, steps: 1000, delta: 1e-5).epsilon, base)
        XCTAssertEqual(RDPAccountant.epsilon(samplingRate: 0.01, noise: 1.0, steps: 0, delta: 1e-5).epsilon, 0)
    }
}

/// The two-sample KS test (TOFU's forget quality) against scipy.
final class KolmogorovSmirnovTests: XCTestCase {
    /// scipy 1.17.1, `stats.ks_2samp(a, b, method="exact")`, run once outside the repository.
    func testStatisticAndExactPValueMatchScipy() {
        let cases: [([Double], [Double], Double, Double)] = [
            ([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], 1.0, 0.007936507936507936),
            ([1, 3, 5, 7], [2, 4, 6, 8, 10], 0.4, 0.7460317460317459),
            ([0.1, 0.4, 0.7], [0.2, 0.3, 0.5, 0.6, 0.9, 1.2], 0.3333333333333333, 0.988095238095238),
            ([2.041, -2.556, 0.418, -0.568, -0.453, -0.216, -2.02, -0.232, -0.865, 3.323, 0.226, -0.353, -0.281, -0.668,
              -1.055, -0.391, 0.482, -0.239, 0.958, -0.2],
             [0.824, 2.346, 1.345, 0.295, 0.617, 1.341, 2.735, 0.53, 0.556, 1.802, -0.086, 0.508, 1.683, 1.38, 0.892, 1.47,
              -2.028, 1.821, -0.16, -0.869, 1.076, 1.501, 0.355, -0.276, 0.826], 0.58, 0.000565698421827719),
            ([-0.053, 1.406, 0.747, 0.194, 1.112, -0.206, -0.926, 0.584, 0.583, -0.215, -0.783, 0.229, -2.494, 0.69, 0.491,
              -1.639, 0.061, -0.964, 0.757, -2.034, -0.914, 0.71, 1.156, -2.158, -0.498, 0.328, -0.609, 1.591, -1.191, 0.355,
              -1.048, 1.406, -0.022, -0.372, -1.718, 1.682, 0.753, 0.754, 1.138, 0.349],
             [-0.631, -0.84, -0.84, 1.981, -1.698, -0.575, -0.218, 0.492, 0.948, -1.424, -2.049, 0.194, 1.778, 1.184, 0.48,
              -0.212, 0.581, -0.116, 1.262, -0.833, 0.375, 0.056, 0.906, 0.492, 3.515, 2.148, 2.146, -2.451, -0.242, -0.591],
             0.16666666666666666, 0.677132831390203),
        ]
        for (a, b, d, p) in cases {
            let r = KolmogorovSmirnov.test(a, b)
            XCTAssertEqual(r.statistic, d, accuracy: 1e-12)
            XCTAssertEqual(r.pValue, p, accuracy: 1e-9 + 1e-6 * p, "n \(a.count) m \(b.count)")
            // Symmetric in its samples.
            XCTAssertEqual(KolmogorovSmirnov.test(b, a).pValue, r.pValue, accuracy: 1e-12)
        }
        // Identical samples: D = 0, p = 1.
        XCTAssertEqual(KolmogorovSmirnov.test([1, 2, 3], [1, 2, 3]).pValue, 1)
        XCTAssertEqual(KolmogorovSmirnov.test([1, 2, 3], [1, 2, 3]).statistic, 0)
    }
}

/// DP-SGD stores: epsilon per shard, determinism, exact deletion under DP.
final class PrivateTrainingTests: XCTestCase {
    func dpConfig(_ dp: DPConfig, seed: UInt64 = 7) -> StoreConfig {
        var c = microConfig(seed: seed)
        c.dp = dp
        return c
    }

    func testShardEpsilonComposesItsStagesLikeOpacus() throws {
        // Opacus 1.6.0: RDPAccountant with history [(1.0, 0.2, 5), (1.0, 0.1, 10), (1.0, 1/15, 15)],
        // get_epsilon(1e-5) = 5.3894105216239865; [(0.7, 0.1, 30), (0.7, 0.05, 60), (0.7, 1.0, 2)],
        // get_epsilon(1e-6) = 18.21489181057601.
        let e1 = PrivateSchedule.epsilon(stages: [(0.2, 5), (0.1, 10), (4.0 / 60, 15)], noise: 1.0, delta: 1e-5)
        XCTAssertEqual(e1, 5.3894105216239865, accuracy: 1e-3 * 5.39)
        let e2 = PrivateSchedule.epsilon(stages: [(0.1, 30), (0.05, 60), (1.0, 2)], noise: 0.7, delta: 1e-6)
        XCTAssertEqual(e2, 18.21489181057601, accuracy: 1e-3 * 18.2)
        // A stage that trains nothing costs nothing.
        XCTAssertEqual(PrivateSchedule.epsilon(stages: [(0.2, 5), (0.1, 10), (4.0 / 60, 15), (0.5, 0)], noise: 1.0, delta: 1e-5), e1)
    }

    func testDPStoreIsDeterministicAndReportsEpsilon() throws {
        let tmp = TempDir()
        let records = syntheticRecords(80)
        var digestsSeen: [[String?]] = []
        for (name, jobs) in [("a", 1), ("b", 2)] {
            let s = try Store.create(at: tmp.url.appendingPathComponent(name), config: dpConfig(DPConfig(clip: 1, noise: 1.2)))
            _ = try s.ingest(paths: [tmp.jsonl("all.jsonl", records)])
            _ = try s.train(jobs: jobs)
            digestsSeen.append(try digests(s))
            for sh in try s.status().shards {
                let p = try s.plan(shard: sh.index)
                // Steps are ceil(a n_r / batch) at rate batch / n_r, stage by stage.
                for st in p.stages where st.steps > 0 {
                    XCTAssertEqual(st.samplingRate, min(1, 4 / Double(st.ids.count)), accuracy: 1e-15)
                    XCTAssertEqual(st.steps, Int((0.5 * Double(st.ids.count) / Double(min(4, st.ids.count))).rounded(.up)))
                }
                var acc = RDPAccountant()
                for st in p.stages where st.steps > 0 { acc.step(samplingRate: st.samplingRate, noise: 1.2, steps: st.steps) }
                let eps = try XCTUnwrap(sh.epsilon)
                XCTAssertEqual(eps, acc.epsilon(delta: 1e-5).epsilon, accuracy: 1e-12)
                XCTAssertGreaterThan(eps, 0)
                XCTAssertEqual(sh.noise, 1.2)
            }
            let v = try s.verify(shard: 1)
            XCTAssertTrue(v.matches, "DP retraining from scratch must give the same bits")
        }
        XCTAssertEqual(digestsSeen[0], digestsSeen[1])
        // Without DP the status has no epsilon.
        let plain = try Store.create(at: tmp.url.appendingPathComponent("plain"), config: microConfig())
        XCTAssertNil(try plain.status().shards[0].epsilon)
        // DP changes the model.
        _ = try plain.ingest(paths: [tmp.jsonl("all.jsonl", records)])
        _ = try plain.train()
        XCTAssertNotEqual(try digests(plain), digestsSeen[0])
    }

    func testDeleteEqualsNeverIngestedUnderDP() throws {
        for dp in [DPConfig(clip: 0.5, noise: 0.9), DPConfig(clip: 1, targetEpsilon: 6, delta: 1e-4)] {
            let tmp = TempDir()
            var records = syntheticRecords(70)
            records[23].text = "DP-SECRET-PAYLOAD-2291 of record twenty-three"
            let victim = records[23].id
            let a = try Store.create(at: tmp.url.appendingPathComponent("a"), config: dpConfig(dp))
            _ = try a.ingest(paths: [tmp.jsonl("all.jsonl", records)])
            _ = try a.train()
            let info = try XCTUnwrap(try a.catalog.record(id: victim))
            let receipt = try a.delete(ids: [victim])
            XCTAssertEqual(receipt.shards.map(\.shard), [info.shard])
            if dp.noise != nil {
                XCTAssertEqual(receipt.shards[0].fromStage, info.slice, "fixed noise keeps slice-level retraining")
            } else {
                XCTAssertEqual(receipt.shards[0].fromStage, 0, "a fitted noise changes with the data: the shard retrains")
            }
            let b = try Store.create(at: tmp.url.appendingPathComponent("b"), config: dpConfig(dp))
            _ = try b.ingest(paths: [tmp.jsonl("rest.jsonl", records.filter { $0.id != victim })])
            _ = try b.train()
            XCTAssertEqual(try digests(a), try digests(b), "DP \(dp): delete must equal never-ingested")
            XCTAssertEqual(try a.status().shards.map(\.epsilon), try b.status().shards.map(\.epsilon))
            let needle = Data("DP-SECRET-PAYLOAD-2291".utf8)
            for (name, bytes) in allFileBytes(a.url) { XCTAssertNil(bytes.range(of: needle), "deleted text in \(name)") }
            if let target = dp.targetEpsilon {
                for sh in try a.status().shards {
                    // The fitted noise reaches the target, and 0.001 less would not.
                    let eps = try XCTUnwrap(sh.epsilon), sigma = try XCTUnwrap(sh.noise)
                    XCTAssertLessThanOrEqual(eps, target)
                    let p = try a.plan(shard: sh.index)
                    XCTAssertGreaterThan(PrivateSchedule.epsilon(stages: p.stages.map { ($0.samplingRate, $0.steps) },
                                                                 noise: sigma - 0.001, delta: dp.delta), target)
                }
            }
        }
    }

    func testUnreachableTargetGivesTheLargestNoiseInsteadOfFailing() {
        // Every step sees every record (q = 1), 1000 times: epsilon 0.01 is out of reach.
        let sigma = PrivateSchedule.fitNoise(stages: [(1.0, 1000)], target: 0.01, delta: 1e-5)
        XCTAssertEqual(sigma, PrivateSchedule.maxNoise)
        XCTAssertGreaterThan(PrivateSchedule.epsilon(stages: [(1.0, 1000)], noise: sigma, delta: 1e-5), 0.01)
        // Small shards: with fewer records than the batch, a steps (each record in every one).
        var c = microConfig()
        c.epochs = 3
        XCTAssertEqual(PrivateSchedule.steps(records: 2, config: c), Int((c.stageTokenMultiplier).rounded(.up)))
    }

    func testLongRecordsAreRefusedByADPStore() throws {
        let tmp = TempDir()
        let s = try Store.create(at: tmp.url.appendingPathComponent("s"), config: dpConfig(DPConfig(clip: 1, noise: 1)))
        let limit = DPConfig.maxRecordBytes(context: microModel.context)
        var records = syntheticRecords(5)
        records[3].text = String(repeating: "x", count: limit + 1)
        let path = tmp.jsonl("long.jsonl", records)
        XCTAssertThrowsError(try s.ingest(paths: [path])) { e in
            XCTAssertTrue("\(e)".contains("long.jsonl:4") && "\(e)".contains("at most \(limit) bytes"), "\(e)")
        }
        XCTAssertEqual(try s.status().records, 0, "nothing ingested")
        records[3].text = String(repeating: "x", count: limit)
        _ = try s.ingest(paths: [tmp.jsonl("ok.jsonl", records)])
        _ = try s.train()
    }

    func testInvalidDPSettingsAreRefused() throws {
        let tmp = TempDir()
        for dp in [DPConfig(clip: 0, noise: 1), DPConfig(clip: 1), DPConfig(clip: 1, noise: 1, targetEpsilon: 2),
                   DPConfig(clip: 1, noise: -1), DPConfig(clip: 1, noise: 1, delta: 1)] {
            XCTAssertThrowsError(try Store.create(at: tmp.url.appendingPathComponent(UUID().uuidString), config: dpConfig(dp)))
        }
    }
}
