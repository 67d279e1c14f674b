import ArgumentParser
import Foundation
import SisaCoordinator
import SisaEngine

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a store: shards, slices, the model (a pretrained base with an adapter per shard, or a byte-level GPT), training schedule and seed.",
        discussion: """
        With --base PATH (a GGUF file or a Hugging Face folder) every shard trains its own adapter over \
        that frozen base (default: LoRA rank 8, alpha 16, on q and v of every layer; --adapter full \
        fine-tunes every weight), records are tokenised by the base's tokenizer, and --ctx (tokens, \
        default min(base's, 256)) is at most the base's context. The base is copied into STORE/base/ \
        and its sha256 recorded: a base that changes later is refused. Without --base, every shard \
        trains a byte-level GPT-2 from scratch (--preset, --layers, ...). \
        The configuration is frozen once `sisa train` has run.
        """)

    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Number of shards (one model each).") var shards: Int
    @Option(help: "Slices per shard (one training stage and checkpoint each).") var slices: Int
    @Option(help: ArgumentHelp("Pretrained base: a GGUF file or a Hugging Face folder (config.json, tokenizer, safetensors).",
                               valueName: "path")) var base: String?
    @OptionGroup var adapterOptions: AdapterOptions
    @OptionGroup var model: ModelOptions
    @Option(help: "Sequences per optimizer step (with DP-SGD: the expected number of records per step).") var batch: Int = 16
    @Option(help: "Peak learning rate (AdamW; linear warm-up, then constant).") var lr: Float?
    @Option(help: "Warm-up steps.") var warmup: Int?
    @Option(help: "Epochs over each shard, spread over its stages by the SISA schedule.") var epochs: Double = 2
    @Option(help: "Seed for placement, initialisation and batches.") var seed: UInt64 = 0
    @Option(help: ArgumentHelp("DP-SGD: noise multiplier sigma (noise std = sigma x clip on the sum of clipped record gradients).",
                               valueName: "sigma")) var dpNoise: Double?
    @Option(help: ArgumentHelp("DP-SGD: instead of --dp-noise, the epsilon every shard must reach at the end of its schedule; the smallest sufficient noise is fitted per shard (then a deletion retrains its whole shard, since the fit changes).",
                               valueName: "epsilon")) var dpEpsilon: Double?
    @Option(help: ArgumentHelp("DP-SGD: clipping norm of each record's whole gradient.", valueName: "C")) var dpClip: Double?
    @Option(help: ArgumentHelp("DP-SGD: delta of the (epsilon, delta) guarantee (default 1e-5).", valueName: "delta")) var dpDelta: Double?

    func run() throws {
        var opt = StoreConfig.defaultOptimizer
        var baseConfig: BaseStoreConfig?
        if let base {
            guard model.preset == nil, model.layers == nil, model.heads == nil, model.dim == nil else {
                throw ValidationError("--preset, --layers, --heads and --dim shape a byte-level model; a base store takes its shape from --base")
            }
            let url = URL(fileURLWithPath: base)
            let shape: BaseModel.Configuration
            do { shape = try BaseModel.configuration(at: url) } catch { throw ValidationError("\(error)") }
            let lora = try adapterOptions.lora(for: shape)
            print("checking \(base) (\(shape.architecture.rawValue), \(shape.layers) layers, context \(shape.context))...")
            baseConfig = try BaseFiles.inspect(url, context: model.ctx, lora: lora)
            opt = BaseStoreConfig.defaultOptimizer(lora: lora != nil)
        } else if adapterOptions.isSet {
            throw ValidationError("--adapter and --lora-* need --base (a byte-level model trains every weight)")
        }
        if let lr { opt.learningRate = lr }
        if let warmup { opt.warmupSteps = warmup }
        var dp: DPConfig?
        if dpNoise != nil || dpEpsilon != nil || dpClip != nil || dpDelta != nil {
            guard let dpClip else { throw ValidationError("DP-SGD needs --dp-clip (the per-record clipping norm)") }
            guard (dpNoise == nil) != (dpEpsilon == nil) else {
                throw ValidationError("DP-SGD needs exactly one of --dp-noise and --dp-epsilon")
            }
            dp = DPConfig(clip: dpClip, noise: dpNoise, targetEpsilon: dpEpsilon, delta: dpDelta ?? DPConfig.defaultDelta)
        }
        let config = StoreConfig(shards: shards, slices: slices, model: baseConfig == nil ? try model.resolve() : nil, optimizer: opt,
                                 batch: batch, epochs: epochs, seed: seed, dp: dp, base: baseConfig)
        let store = try Store.create(at: storeOptions.url, config: config, base: base.map { URL(fileURLWithPath: $0) })
        if let b = config.base {
            let trained = b.lora.map { "\($0), \(try! store.models.trainableParameterCount()) parameters per shard" } ?? "every weight (full fine-tuning)"
            print("created store \(store.url.path): \(shards) shards x \(slices) slices on base \(b.name) (sha256 \(b.sha256.prefix(16))..., \(b.bytes) bytes), \(trained), context \(b.context) tokens, lr \(opt.learningRate), batch \(batch), \(epochs) epochs, seed \(seed)")
        } else if let m = config.model {
            print("created store \(store.url.path): \(shards) shards x \(slices) slices, model \(m) (\(m.parameterCount) parameters), batch \(batch), \(epochs) epochs, seed \(seed)")
        }
        if let dp {
            print("DP-SGD: records sampled at rate batch/records per step, each record's gradient clipped to \(dp.clip), "
                  + (dp.noise.map { "noise multiplier \($0)" } ?? "noise fitted per shard to epsilon \(dp.targetEpsilon!)")
                  + ", delta \(dp.delta); `sisa status` shows each shard's epsilon")
        }
    }
}

struct Ingest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add records from files (one transaction: all or nothing).",
        discussion: """
        Formats: lines (one record per line), jsonl (objects with "text" and optional "id" and "group"), \
        fortune (records separated by lines holding only %), dir (one record per file, id = file name). \
        Records without an id get one derived from their text. After training has started, each ingest \
        call adds a new slice at the end of every shard, so only that stage trains.
        """)

    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "Input files or folders.") var paths: [String]
    @Option(help: "auto, lines, jsonl, fortune or dir.") var format: String = "auto"
    @Option(help: "Group name for these records (jsonl records may carry their own).") var group: String?
    @Option(help: "Fraction of records kept out of training as the evaluation population.") var holdout: Double = 0
    @Flag(help: "Skip records whose id is already present instead of failing.") var skipDuplicates = false
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        guard let fmt = InputFormat(rawValue: format) else {
            throw ValidationError("unknown --format \(format) (auto, lines, jsonl, fortune, dir)")
        }
        let store = try storeOptions.open(writer: "ingest")
        let t0 = Date()
        let r = try store.ingest(paths: paths, format: fmt, group: group, holdout: holdout, skipDuplicates: skipDuplicates) { p in
            // Progress on long ingests only (every 100,000 records), on stderr: stdout stays the report.
            guard p.inserted >= 100_000 else { return }
            let rate = Double(p.inserted) / max(1e-9, Date().timeIntervalSince(t0))
            let read = p.totalBytes > 0 ? 100 * Double(p.bytesRead) / Double(p.totalBytes) : 100
            FileHandle.standardError.write(Data(String(format: "ingest: %d records inserted, %.0f%% of the input read (%.0f records/s)\n",
                                                       p.inserted, read, rate).utf8))
        }
        if json {
            try printJSONObject(["ingest": r.ingest, "added": r.added, "skipped": r.skipped, "holdout": r.holdout,
                                 "appendedSlice": r.appendedSlice as Any, "perShard": r.perShard])
        } else {
            print("ingest #\(r.ingest): added \(r.added) records (\(r.holdout) holdout)\(r.skipped > 0 ? ", skipped \(r.skipped) duplicates" : "")"
                + (r.appendedSlice.map { ", as new slice \($0) of every shard" } ?? "")
                + "; training records per shard: \(r.perShard.map(String.init).joined(separator: " "))")
        }
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train every stage not yet trained (resumable; completes deferred deletions).")

    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Shards trained in parallel.") var jobs: Int = 1
    @Option(help: "Threads per shard (default: cores / jobs). Results do not depend on it.") var threads: Int?
    @OptionGroup var executorOptions: ExecutorOptions
    @Flag(help: ArgumentHelp("Retrain every stage from scratch under this build's numerics version.",
                             discussion: "Needed once for a store trained by a sisa with other kernels (the store says so); records, deletions and quarantines are kept, old checkpoints are removed."))
    var rebuild = false
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        let store = try storeOptions.open(writer: "train")
        if rebuild {
            let old = store.config.numerics
            if old != Numerics.version {
                note("rebuilding: numerics version \(old) -> \(Numerics.version); every stage is retrained from scratch")
            } else {
                note("the store is already on numerics version \(old): --rebuild has nothing to change")
            }
        }
        let report = try store.train(jobs: jobs, threads: threads, rebuild: rebuild, executor: try executorOptions.make(),
                                     progress: ProgressPrinter().handler())
        for w in report.warnings { note("warning: \(w)") }
        if json {
            try printJSON(report.shards)
            return
        }
        if report.shards.isEmpty { print("nothing to train: every shard is up to date") }
        for s in report.shards {
            print("shard \(s.shard): trained stages \(s.fromStage)...\(s.fromStage + s.stagesTrained - 1) (\(s.steps) steps, \(String(format: "%.1f", s.seconds)) s), digest \(s.digest.prefix(16))")
        }
        if !report.completedDeletions.isEmpty {
            print("completed deferred deletions: \(report.completedDeletions.joined(separator: ", ")); removed \(report.checkpointsRemoved) checkpoints")
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Shards, records, stages, quarantine, checkpoints.")
    @OptionGroup var storeOptions: StoreOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let s = try storeOptions.open().status()
        if json { try printJSON(s); return }
        let c = s.config
        if let b = c.base {
            print("store \(s.store): \(c.shards) shards x \(c.slices) slices, batch \(c.batch), \(c.epochs) epochs, seed \(c.seed)")
            print("base: \(b.name) (\(b.architecture.rawValue), sha256 \(b.sha256), \(s.baseBytes) bytes in the store)")
            print("each shard trains: \(b.lora.map { "\($0)" } ?? "every weight (full fine-tuning)"), \(s.trainableParameters) parameters; context \(b.context) tokens")
        } else {
            print("store \(s.store): \(c.shards) shards x \(c.slices) slices, model \(c.model!), batch \(c.batch), \(c.epochs) epochs, seed \(c.seed)")
        }
        print("numerics: version \(c.numerics)" + (c.numerics == Numerics.version ? " (this sisa's)"
              : s.numericsIsCurrent ? " (nothing trained yet: training adopts this sisa's version \(Numerics.version))"
              : "; this sisa computes with version \(Numerics.version): run `sisa train --rebuild` before training or deleting"))
        print("records: \(s.records) live (\(s.trainingRecords) training, \(s.holdoutRecords) holdout), \(s.deletedRecords) deleted; groups: "
              + s.groups.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        print("pending deletions: \(s.pendingDeletions)")
        if let dp = c.dp {
            print("DP-SGD: clip \(dp.clip), " + (dp.noise.map { "noise \($0)" } ?? "noise fitted to epsilon \(dp.targetEpsilon!)")
                  + ", delta \(dp.delta)")
        }
        for sh in s.shards {
            let privacy = sh.epsilon.map { String(format: ", epsilon %.3f (noise %.3f)", $0, sh.noise ?? 0) } ?? ""
            print("  shard \(sh.index): \(sh.records) records, stages \(sh.stagesTrained)/\(sh.stages)\(sh.quarantined ? ", QUARANTINED" : ""), digest \(sh.digest.map { String($0.prefix(16)) } ?? "-"), checkpoints \(String(format: "%.2f MB", Double(sh.checkpointBytes) / 1e6))\(privacy)")
        }
        print(String(format: "checkpoints: %d, %.1f MB raw, %.1f MB stored (compression %.2fx)", s.checkpoints,
                     Double(s.checkpointRawBytes) / 1e6, Double(s.checkpointStoredBytes) / 1e6, s.compressionRatio))
    }
}

struct Records: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List record ids (to pick what to delete).")
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Only this group.") var group: String?
    @Option(help: "Skip this many records (with --limit: one page, read as such from the catalog).") var offset: Int = 0
    @Option(help: "Start after this record id (the last one of the previous page): a page costs its own rows wherever it starts, unlike --offset.") var after: String?
    @Option(help: "At most this many records (default: all).") var limit: Int?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard offset >= 0 else { throw ValidationError("--offset must be at least 0") }
        guard after == nil || offset == 0 else { throw ValidationError("give --after or --offset, not both") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        let catalog = try storeOptions.open().catalog
        let rs = after != nil ? try catalog.records(group: group, after: after, limit: limit ?? Int(Int32.max))
            : limit == nil && offset == 0 ? try catalog.records(group: group)
            : try catalog.records(group: group, offset: offset, limit: limit ?? Int(Int32.max))
        if json {
            try printJSONObject(rs.map { ["id": $0.id, "group": $0.group, "shard": $0.shard, "slice": $0.slice,
                                          "holdout": $0.holdout, "ingest": $0.ingest] as [String: Any] })
        } else {
            for r in rs { print("\(r.id)\t\(r.group)\tshard \(r.shard)\tslice \(r.slice)\(r.holdout ? "\tholdout" : "")") }
        }
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Holdout perplexity per group, for the ensemble and for each shard alone.",
        discussion: "Perplexity is exp of the mean NLL per token (bytes on a byte store, the base's tokens on a base store). On a base store the base alone, zero-shot, is reported too.")
    @OptionGroup var storeOptions: StoreOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try storeOptions.open()
        let ens = try Ensemble(store: store)
        for e in ens.excluded { note("note: shard \(e.shard) left out: \(e.reason)") }
        let evals = try ens.evaluate(store: store)
        if json { try printJSON(evals); return }
        for g in evals {
            print(String(format: "group %@: %d holdout records, %d tokens: ensemble perplexity %.3f (NLL %.4f)",
                         g.group as NSString, g.records, g.tokens, g.ensemblePerplexity, g.ensembleNLL))
            for s in g.shards { print(String(format: "    shard %d alone: perplexity %.3f (NLL %.4f)", s.shard, s.perplexity, s.nll)) }
            if let nll = g.baseNLL { print(String(format: "    the base alone (zero-shot): perplexity %.3f (NLL %.4f)", exp(nll), nll)) }
        }
    }
}

struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Forget records exactly: retrain the affected shards without them, purge their bytes.",
        discussion: """
        In one transaction the records are marked deleted, their text and hash erased and the affected \
        shards quarantined (queries leave them out); secure_delete zeroes the text in place and the write-ahead \
        log is truncated at once, so the text's bytes leave the files. Each affected shard is retrained once, from the checkpoint before its \
        earliest affected stage, and every checkpoint trained on a deleted record is removed. With \
        --defer the retraining waits for the next `sisa train`.
        """)
    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "Record ids.") var ids: [String]
    @Flag(name: .customLong("defer"), help: "Queue the retraining for the next `sisa train`.") var deferRetrain = false
    @Option(help: "Shards retrained in parallel.") var jobs: Int = 1
    @OptionGroup var executorOptions: ExecutorOptions
    @Flag(help: "Print the receipt as JSON.") var json = false

    func run() throws {
        let store = try storeOptions.open(writer: "delete")
        let receipt = try store.delete(ids: ids, deferRetrain: deferRetrain, jobs: jobs, executor: try executorOptions.make(),
                                       progress: ProgressPrinter(quiet: false).handler())
        if json { try printJSON(receipt); return }
        print("deletion receipt")
        print("  records: \(receipt.records.joined(separator: ", "))")
        if let already = receipt.alreadyDeleted {
            print("  already deleted by an earlier request (its receipt below): \(already.joined(separator: ", "))")
        }
        if receipt.pending {
            print("  deferred: affected shards are quarantined until `sisa train` retrains them; the records' text is already purged")
            return
        }
        for s in receipt.shards {
            print("  shard \(s.shard): retrained stages \(s.fromStage)...\(s.fromStage + s.stagesTrained - 1) (\(s.steps) steps, \(String(format: "%.1f", s.seconds)) s)")
            print("    digest \(s.previousDigest ?? "-") -> \(s.digest)")
        }
        if receipt.shards.isEmpty { print("  no shard retrained (holdout records only)") }
        print("  checkpoints removed: \(receipt.checkpointsRemoved); text purged from the catalog")
        print(String(format: "  time: %.1f s", receipt.seconds))
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Retrain shards from scratch on their live records and compare digests with the stored models.",
        discussion: """
        --plans checks instead, without training, the stage chains that `sisa train` records in the \
        catalog for `status` (stage keys, steps): each one that is current is recomputed from the \
        records' texts and compared.
        """)
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Only this shard.") var shard: Int?
    @Flag(help: "Check the recorded stage chains against the records instead of retraining.") var plans = false

    func run() throws {
        let store = try storeOptions.open()
        if plans {
            let problems = try store.verifyPlans().filter { shard == nil || $0.shard == shard }
            for s in shard.map({ [$0] }) ?? Array(0..<store.config.shards) {
                let recorded = try store.chainIsRecorded(shard: s)
                if let p = problems.first(where: { $0.shard == s }) {
                    print("shard \(s): MISMATCH \(p.problem)")
                } else {
                    print("shard \(s): OK " + (recorded ? "recorded chain equals the plan" : "no current recorded chain (status computes it)"))
                }
            }
            if !problems.isEmpty { throw ExitCode(1) }
            return
        }
        var failed = false
        for s in shard.map({ [$0] }) ?? Array(0..<store.config.shards) {
            // A shard behind its records is named, and the others are still verified.
            if let behind = try store.behind(shard: s) {
                FileHandle.standardError.write(Data("\(behind)\n".utf8))
                print("shard \(s): BEHIND (not trained up to its records)")
                failed = true
                continue
            }
            let r = try store.verify(shard: s, progress: ProgressPrinter().handler())
            print("shard \(s): \(r.matches ? "OK" : "MISMATCH") retrained \(r.retrainedDigest.prefix(16)) stored \((r.storedDigest ?? "-").prefix(16)) (\(String(format: "%.1f", r.seconds)) s)")
            failed = failed || !r.matches
        }
        if failed { throw ExitCode(1) }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a shard's model as a Hugging Face folder (or, on a LoRA base store, its adapter as a PEFT folder).",
        discussion: """
        --kind merged (default): config.json, model.safetensors and, on a base store, the tokenizer: \
        a byte-level store's GPT-2, or the base with the shard's adapter merged into its weights; \
        transformers' AutoModelForCausalLM loads it. --kind adapter: adapter_config.json and \
        adapter_model.safetensors, which peft's PeftModel.from_pretrained loads over the base. \
        A shard quarantined by a pending deletion is refused.
        """)
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Shard index.") var shard: Int
    @Option(help: "merged or adapter.") var kind: String = "merged"
    @Argument(help: "Output folder.") var dir: String

    func run() throws {
        guard let k = ExportKind(rawValue: kind) else { throw ValidationError("--kind must be merged or adapter") }
        let r = try storeOptions.open().export(shard: shard, to: URL(fileURLWithPath: dir), kind: k)
        print("exported shard \(shard) (\(r.description), digest \(r.digest.prefix(16))) to \(dir)")
    }
}
