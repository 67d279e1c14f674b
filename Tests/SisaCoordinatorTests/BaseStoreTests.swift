import Foundation
import SisaCoordinator
import SisaEngine
import XCTest

/// Stores on a pretrained base: one frozen base, one adapter per shard, and
/// the same promise as byte-level stores (delete = never ingested, bit for bit).
final class BaseStoreTests: XCTestCase {
    private func records(_ n: Int = 40) -> [(id: String, text: String)] {
        var r = syntheticRecords(n)
        r[11].text = "SECRET-PAYLOAD-qwerty-9431 is the code of record eleven"
        return r
    }

    /// Delete on a base store equals a store that never saw the record, for
    /// each kind of base and adapter; the record's bytes are on no file.
    private func checkDeleteEqualsNeverIngested(_ base: URL, lora: LoRAConfiguration?, file: StaticString = #filePath, line: UInt = #line) throws {
        let tmp = TempDir()
        let recs = records()
        let victim = recs[11].id
        let config = try baseConfig(base, lora: lora)
        let a = try createBaseStore(tmp.url.appendingPathComponent("a"), base, config: config)
        _ = try a.ingest(paths: [tmp.jsonl("all.jsonl", recs)], holdout: 0.1)
        _ = try a.train()
        let before = try digests(a)
        let info = try XCTUnwrap(try a.catalog.record(id: victim))
        XCTAssertFalse(info.holdout, file: file, line: line)
        let receipt = try a.delete(ids: [victim])
        XCTAssertEqual(receipt.shards.map(\.shard), [info.shard], file: file, line: line)
        XCTAssertEqual(receipt.shards[0].fromStage, info.slice, "retraining starts at the victim's slice", file: file, line: line)

        let b = try createBaseStore(tmp.url.appendingPathComponent("b"), base, config: config)
        _ = try b.ingest(paths: [tmp.jsonl("rest.jsonl", recs.filter { $0.id != victim })], holdout: 0.1)
        _ = try b.train()
        XCTAssertEqual(try digests(a), try digests(b), "delete must equal never ingested", file: file, line: line)
        let after = try digests(a)
        for s in 0..<config.shards where s != info.shard { XCTAssertEqual(after[s], before[s], file: file, line: line) }
        XCTAssertNotEqual(after[info.shard], before[info.shard], file: file, line: line)
        let needle = Data("SECRET-PAYLOAD-qwerty-9431".utf8)
        for (name, bytes) in allFileBytes(a.url) {
            XCTAssertNil(bytes.range(of: needle), "deleted text still present in \(name)", file: file, line: line)
        }
        // The shard digest is over what it trains (the adapter, or every weight), and verify agrees.
        let m = try a.model(shard: info.shard)
        XCTAssertEqual(m.digest, (m.model.adapter?.parameters ?? m.model.weights).digest, file: file, line: line)
        XCTAssertTrue(try a.verify(shard: info.shard).matches, file: file, line: line)
    }

    func testDeleteEqualsNeverIngestedOnALoRAGGUFBase() throws {
        try checkDeleteEqualsNeverIngested(TinyBase.gguf, lora: LoRAConfiguration(rank: 4, alpha: 8, targets: ["q", "v"]))
    }

    func testDeleteEqualsNeverIngestedWithFullFineTuningOfAShardedFolderBase() throws {
        try checkDeleteEqualsNeverIngested(TinyBase.tiedFolder, lora: nil)
    }

    func testDeleteEqualsNeverIngestedOnAGPT2BaseWithTopLayerLoRA() throws {
        try checkDeleteEqualsNeverIngested(TinyBase.gpt2Folder, lora: LoRAConfiguration(rank: 2, alpha: 4, targets: ["attn", "fc"], layers: 1))
    }

    func testCheckpointsHoldTheAdapterAndNothingOfTheBase() throws {
        let tmp = TempDir()
        let config = try baseConfig(TinyBase.gguf)
        let store = try createBaseStore(tmp.url.appendingPathComponent("s"), TinyBase.gguf, config: config)
        _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records())], holdout: 0.1)
        _ = try store.train()
        let status = try store.status()
        let baseSize = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: TinyBase.gguf.path)[.size] as? Int)
        XCTAssertEqual(status.baseBytes, baseSize)
        XCTAssertEqual(status.config.base?.sha256, try BaseFiles.digest(of: TinyBase.gguf).sha256)
        // rank 4 on q (64 -> 64) and v (64 -> 32) of 2 layers: 4 x (64 + 64 + 64 + 32) x 2.
        XCTAssertEqual(status.trainableParameters, 4 * (64 + 64 + 64 + 32) * 2)
        XCTAssertEqual(status.shards.map(\.checkpointBytes).reduce(0, +), status.checkpointStoredBytes)
        XCTAssertTrue(status.shards.allSatisfy { $0.checkpointBytes > 0 })
        for c in try store.catalog.checkpoints() {
            // Values, two moments, a header: a few dozen KB, against the base's 160 KB.
            XCTAssertLessThan(c.rawBytes, 3 * status.trainableParameters * 4 + 1024)
            let state = try XCTUnwrap(try store.checkpoints.load(key: c.key))
            XCTAssertEqual(Array(state.prefix(8)), Array("SISAAS01".utf8))
        }
        // Every key derives from the configuration, which holds the base's digest.
        let withOtherBase = StoreConfig(shards: config.shards, slices: config.slices, model: nil, optimizer: config.optimizer,
                                        batch: config.batch, epochs: config.epochs, seed: config.seed,
                                        base: { var b = config.base!; b.sha256 = String(repeating: "0", count: 64); return b }())
        let recs = try store.catalog.trainingRecords(shard: 0)
        XCTAssertNotEqual(try store.plan(shard: 0).stages.map(\.key),
                          Schedule.plan(shard: 0, config: withOtherBase, stageCount: 3, records: recs, codec: try store.models.codec()).stages.map(\.key))
    }

    func testAChangedBaseIsRefusedWithAClearMessage() throws {
        let tmp = TempDir()
        let url = tmp.url.appendingPathComponent("s")
        do {
            let store = try createBaseStore(url, TinyBase.gguf, config: try baseConfig(TinyBase.gguf))
            _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records(12))])
            _ = try store.train()
        }
        let file = url.appendingPathComponent("base/tiny-llama.gguf")
        var bytes = try Data(contentsOf: file)
        bytes[bytes.count - 5] ^= 0x40
        try bytes.write(to: file)
        let reopened = try Store.open(at: url)
        XCTAssertThrowsError(try Ensemble(store: reopened)) { e in
            XCTAssertTrue("\(e)".contains("the base changed"), "\(e)")
            XCTAssertTrue("\(e)".contains(file.path), "\(e)")
        }
        let writer = try Store.open(at: url, writer: "test")
        XCTAssertThrowsError(try writer.verify(shard: 0)) { XCTAssertTrue("\($0)".contains("the base changed"), "\($0)") }
    }

    func testBadBaseConfigurationsAreRefusedBeforeAnythingIsWritten() throws {
        let tmp = TempDir()
        XCTAssertThrowsError(try BaseFiles.inspect(TinyBase.gguf, context: 65, lora: LoRAConfiguration())) {
            XCTAssertTrue("\($0)".contains("base's context, 64"), "\($0)")
        }
        XCTAssertThrowsError(try BaseFiles.inspect(TinyBase.gguf, context: 16, lora: LoRAConfiguration(targets: ["attn"]))) {
            XCTAssertTrue("\($0)".contains("not a projection"), "\($0)")
        }
        XCTAssertThrowsError(try BaseFiles.inspect(TinyBase.gguf, context: 16, lora: LoRAConfiguration(layers: 3))) {
            XCTAssertTrue("\($0)".contains("between 1 and 2"), "\($0)")
        }
        // A truncated base fails on inspection, naming the file.
        let cut = tmp.url.appendingPathComponent("cut.gguf")
        try Data(try Data(contentsOf: TinyBase.gguf).prefix(100_000)).write(to: cut)
        XCTAssertThrowsError(try BaseFiles.inspect(cut, context: 16, lora: LoRAConfiguration())) {
            XCTAssertTrue("\($0)".contains("cut.gguf"), "\($0)")
        }
        var dp = try baseConfig(TinyBase.gguf)
        dp.dp = DPConfig(clip: 1, noise: 1, targetEpsilon: nil, delta: 1e-5)
        let url = tmp.url.appendingPathComponent("dp")
        XCTAssertThrowsError(try createBaseStore(url, TinyBase.gguf, config: dp)) {
            XCTAssertTrue("\($0)".contains("DP-SGD is not available on a base store"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path), "a refused init leaves nothing behind")
        // A configuration read from one base cannot be installed from another.
        let other = tmp.url.appendingPathComponent("other")
        XCTAssertThrowsError(try createBaseStore(other, TinyBase.llamaFolder, config: try baseConfig(TinyBase.gguf)))
    }

    func testQueriesDecodeTextAndTheEnsembleIsTheMixtureOfItsShards() throws {
        let tmp = TempDir()
        let store = try createBaseStore(tmp.url.appendingPathComponent("s"), TinyBase.gguf,
                                        config: try baseConfig(TinyBase.gguf, shards: 3, slices: 2, epochs: 3))
        _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records())], holdout: 0.2)
        _ = try store.train()
        let ens = try Ensemble(store: store)
        XCTAssertEqual(ens.models.count, 3)
        let codec = ens.codec
        XCTAssertFalse(codec.isBytes)
        let texts = [Array("rec 3: alpha bravo".utf8), Array("an unseen text, with ünïcödé".utf8)]
        let mixture = Ensemble.mixture(ens.models.map { $0.model.score(texts, perToken: true) })
        let scores = ens.score(texts)
        XCTAssertEqual(scores.map(\.nll), mixture.map(\.nll))
        // Token counts are the tokenizer's, not bytes: <sep> tokens <sep>, the first not predicted.
        XCTAssertEqual(scores.map(\.tokens), texts.map { codec.encode($0).count + 1 })
        XCTAssertNotEqual(scores[1].tokens, texts[1].count + 1)
        for how in Aggregation.allCases {
            var s1 = Sampler(temperature: 0.8, topK: 20, seed: 4), s2 = Sampler(temperature: 0.8, topK: 20, seed: 4)
            let a = ens.generate(prompt: Array("rec 5".utf8), maxTokens: 12, aggregation: how, sampler: &s1)
            let b = ens.generate(prompt: Array("rec 5".utf8), maxTokens: 12, aggregation: how, sampler: &s2)
            XCTAssertEqual(a, b, "same seed, same text (\(how))")
            XCTAssertFalse(a.isEmpty)
        }
        // The shards decode in lock-step over the one base, and the text is the one
        // each shard's own decoder gives: greedy over the mean of their probabilities.
        XCTAssertEqual(EnsembleDecoder(models: ens.models.map { $0.model.model }, pool: .shared).lockstepMembers, 3)
        // So do the server's per-request copies (`ShardModel.sharing(pool:)`).
        let copies = ens.models.map { $0.model.sharing(pool: WorkerPool(threads: 1)).model }
        XCTAssertEqual(EnsembleDecoder(models: copies, pool: WorkerPool(threads: 1)).lockstepMembers, 3)
        var greedy = Sampler(temperature: 0)
        let lockstep = ens.generate(prompt: Array("rec 2".utf8), maxTokens: 12, aggregation: .mean, sampler: &greedy)
        let alone = ens.models.map { $0.model.model.makeDecoder() }
        func feed(_ t: Int32) -> [[Double]] { alone.map { Sampler.probabilities($0.feed(t)) } }
        var probs = feed(codec.separator), reference: [UInt8] = []
        for t in codec.encode(Array("rec 2".utf8)) { probs = feed(t) }
        for _ in 0..<12 {
            let next = Ensemble.greedy(Ensemble.aggregate(probs, .mean), mean: nil)
            if codec.stops(next) { break }
            reference += codec.bytes(of: next)
            probs = feed(next)
        }
        XCTAssertEqual(lockstep, reference)
        XCTAssertFalse(reference.isEmpty)
        // One shard alone through the ensemble is that shard's model, in scores and in decoded text.
        let one = try Ensemble(store: store, shard: 1)
        var g1 = Sampler(temperature: 0), g2 = Sampler(temperature: 0)
        let viaEnsemble = one.generate(prompt: Array("rec 7".utf8), maxTokens: 10, aggregation: .mean, sampler: &g1)
        let viaShard = try store.model(shard: 1).generate(prompt: Array("rec 7".utf8), maxTokens: 10, sampler: &g2)
        XCTAssertEqual(viaEnsemble, viaShard)
        XCTAssertEqual(one.score(texts).map(\.nll), try store.model(shard: 1).score(texts, perToken: true).map(\.nll))
        // Every shard shares one copy of the base's weights.
        let m0 = try store.model(shard: 0).model, m1 = try store.model(shard: 1).model
        XCTAssertTrue(m0.weights.values === m1.weights.values, "one base in memory for all shards")
        XCTAssertFalse(m0.adapter!.parameters.values === m1.adapter!.parameters.values)
        // ... and so do other store objects of the process (a server's reader and writer).
        let other = try Store.open(at: store.url).model(shard: 2).model
        XCTAssertTrue(other.weights.values === m0.weights.values)
    }

    func testExportWritesTheMergedModelAndThePEFTAdapter() throws {
        let tmp = TempDir()
        let store = try createBaseStore(tmp.url.appendingPathComponent("s"), TinyBase.gguf,
                                        config: try baseConfig(TinyBase.gguf, epochs: 4, learningRate: 1e-2))
        _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", records())])
        _ = try store.train()
        let shard = try store.model(shard: 0)
        let merged = tmp.url.appendingPathComponent("merged")
        _ = try store.export(shard: 0, to: merged, kind: .merged)
        // The engine's Hugging Face loader (checked against transformers) reads the folder back.
        let loaded = try BaseModel.load(merged, context: 32)
        let seq = shard.codec.sequence(Array("rec 2: the merged model scores like the shard".utf8))
        let viaStore = shard.model.score(sequences: [seq], pad: shard.codec.separator)[0].nll
        let viaExport = loaded.model.score(sequences: [seq], pad: shard.codec.separator)[0].nll
        let baseAlone = try BaseModel.load(TinyBase.gguf, context: 32).model.score(sequences: [seq], pad: shard.codec.separator)[0].nll
        XCTAssertEqual(viaExport, viaStore, accuracy: 1e-4)
        XCTAssertGreaterThan(abs(viaStore - baseAlone), 1e-3, "the adapter changed the model (else the check is empty)")
        // The written tokenizer encodes as the base's.
        let text = Array("Ünïcode, digits 12345 and   spaces\n".utf8)
        XCTAssertEqual(loaded.tokenizer.encode(bytes: text), shard.codec.encode(text))

        let adapter = tmp.url.appendingPathComponent("adapter")
        _ = try store.export(shard: 0, to: adapter, kind: .adapter)
        let cfg = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: adapter.appendingPathComponent("adapter_config.json"))) as? [String: Any])
        XCTAssertEqual(cfg["peft_type"] as? String, "LORA")
        XCTAssertEqual(cfg["r"] as? Int, 4)
        XCTAssertEqual(cfg["target_modules"] as? [String], ["q_proj", "v_proj"])
        let st = try Safetensors.decode(Data(contentsOf: adapter.appendingPathComponent("adapter_model.safetensors")))
        XCTAssertEqual(st.tensors["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"]?.shape, [32, 4])
        XCTAssertEqual(st.tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]?.shape, [4, 64])
        XCTAssertEqual(st.tensors.count, 8)
        XCTAssertEqual(st.metadata["sisa.digest"], shard.digest)
        // A full fine-tuning store has no adapter alone.
        let full = try createBaseStore(tmp.url.appendingPathComponent("full"), TinyBase.gguf, config: try baseConfig(TinyBase.gguf, lora: nil))
        _ = try full.ingest(paths: [tmp.jsonl("r2.jsonl", records(12))])
        _ = try full.train()
        XCTAssertThrowsError(try full.export(shard: 0, to: tmp.url.appendingPathComponent("x"), kind: .adapter)) {
            XCTAssertTrue("\($0)".contains("no adapter alone"), "\($0)")
        }
    }

    /// A LoRA shard memorises a repeated canary over a frozen base; exact
    /// unlearning removes it; every approximate method, the audit and the
    /// output filter run on the base store's models (Baluta et al.'s
    /// comparison on the same footing as byte-level stores).
    func testMeasurementsOnABaseStore() throws {
        let tmp = TempDir()
        let config = try baseConfig(TinyBase.gguf, shards: 2, slices: 2, seed: 12,
                                    lora: LoRAConfiguration(rank: 8, alpha: 16, targets: ["q", "k", "v", "o", "gate", "up", "down"]),
                                    epochs: 30, learningRate: 1e-2)
        let store = try createBaseStore(tmp.url.appendingPathComponent("m"), TinyBase.gguf, config: config)
        _ = try store.ingest(paths: [tmp.jsonl("r.jsonl", syntheticRecords(60))], holdout: 0.25)
        let canaryFile = tmp.url.appendingPathComponent("c.jsonl").path
        try Canary.jsonLines(Canary.generate(count: 1, digits: 6, seed: 1), repeats: 6, group: "canary", seed: 1)
            .write(toFile: canaryFile, atomically: true, encoding: .utf8)
        _ = try store.ingest(paths: [canaryFile])
        _ = try store.train()

        var reports: [UnlearningMethod: ComparisonReport] = [:]
        for method in UnlearningMethod.allCases {
            var o = CompareOptions()
            o.forgetGroup = "canary"
            o.count = 6
            o.unlearning.method = method
            o.unlearning.steps = 4
            o.unlearning.learningRate = 1e-3
            o.evalEvery = 2
            o.canaryCandidates = 100
            o.extraction.promptBytes = 24
            o.extraction.continuationBytes = 16
            reports[method] = try store.compare(o)
        }
        let ga = try XCTUnwrap(reports[.ga])
        XCTAssertEqual(ga.verdict, "measurable", ga.verdictReason)
        let c = try XCTUnwrap(ga.canaryExposure)
        XCTAssertGreaterThan(c.original, c.exact + 3, "memorised by the adapter, then exactly forgotten")
        XCTAssertGreaterThan(ga.exact.forgetNLL, ga.original.forgetNLL)
        XCTAssertEqual(ga.approximate.curve.count, 3)
        // Methods that train move the forget NLL; the filter changes no score.
        for m in [UnlearningMethod.ga, .graddiff, .npo] {
            XCTAssertNotEqual(try XCTUnwrap(reports[m]?.approximate.curve.last).forgetNLL, ga.original.forgetNLL, "\(m)")
        }
        let filter = try XCTUnwrap(reports[.filter])
        XCTAssertEqual(filter.approximate.curve.last?.forgetNLL, filter.original.forgetNLL)
        XCTAssertGreaterThan(try XCTUnwrap(filter.original.extraction).exactMatchRate, 0, "the shard reproduces the canary")
        XCTAssertEqual(try XCTUnwrap(filter.approximate.curve.last?.extraction).exactMatchRate, 0, "the filter blocks it")
        // The compare is a what-if: the store's models are as they were.
        XCTAssertEqual(try digests(store), try digests(try Store.open(at: store.url)))

        // The calibrated audit scores each record under its own shard's base + adapter.
        // (The canary's copies sit in both shards, so the other shard is no clean reference here.)
        var a = AuditOptions()
        a.group = "canary"
        let audit = try store.audit(a)
        XCTAssertEqual(audit.records.count, 6)
        for r in audit.records {
            let text = try XCTUnwrap(try store.catalog.text(id: r.id))
            XCTAssertEqual(r.ownNLL, try store.model(shard: r.shard).score([text])[0].nll)
        }
    }
}
