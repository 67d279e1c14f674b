#!/usr/bin/env python3
"""A small SentencePiece-style BPE tokenizer (Llama 2's and TinyLlama's layout) and its reference ids,
from Hugging Face's `tokenizers`.

Run once in a scratch virtual environment (never a project dependency):
  pip install tokenizers transformers gguf
  python sentencepiece_fixtures.py OUT_DIR

Writes OUT_DIR/spm-bpe/tokenizer.json, OUT_DIR/spm-vocab.gguf and OUT_DIR/tokenizer-spm.json.

The tokenizer is trained here (Llama 2's own tokenizer.json is 3.6 MB): BPE over characters on 3,000
English and 1,000 German fortunes, 1,200 tokens, at most 100 initial characters, laid out as Llama 2's
converted tokenizer.json is: <unk> <s> </s>, then the 256 byte-fallback tokens <0x00>..<0xFF>, then the
learned tokens; normalizer Prepend("▁") then Replace(" ", "▁"), no pre-tokenizer, byte_fallback and
fuse_unk, decoder Replace / ByteFallback / Fuse / Strip. So every Russian and Chinese character,
and most punctuation, goes through byte fallback.

Reference ids for three variants of the same vocabulary and merges:
  legacy     the file as written (Llama 2's layout);
  metaspace  no normalizer, a Metaspace pre-tokenizer (prepend_scheme "first", split false): the
             layout transformers 5 writes for a converted SentencePiece model;
  unk        legacy without byte_fallback: unknown characters become <unk>, a run of them one <unk>.
  gguf       the same tokens as a GGUF vocabulary (tokenizer.ggml.model "llama", as llama.cpp writes
             Llama 2's): scores instead of merges (a learned token's score is minus its merge rank), read
             as llama.cpp reads it: the merges the scores imply (transformers' generate_merges) with the
             legacy layout's normalizer, "▁" before every segment.
For legacy: every record of the corpora (hashed as tokenizer_fixtures.py hashes them) and the hard
cases with their decoded text; for the others the hard cases and the first 30 records of each file.
"""
import hashlib, json, os, sys
from fixture_corpora import corpora, fortune_records, hard, ids_hash
import gguf, tokenizers
from transformers.tokenization_utils_base import generate_merges
from tokenizers import Tokenizer, normalizers, pre_tokenizers, decoders, AddedToken
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

out = sys.argv[1]
specials = ["<unk>", "<s>", "</s>"]
t = Tokenizer(BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
t.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
train = fortune_records(corpora["en"][0])[:3000] + [r for p in corpora["de"] for r in fortune_records(p)][:1000]
t.train_from_iterator(train, BpeTrainer(vocab_size=1200, special_tokens=specials, limit_alphabet=100, show_progress=False))

# Llama 2's layout: specials, byte tokens, then the learned vocabulary in its order.
j = json.loads(t.to_str())
learned = [tok for tok, _ in sorted(j["model"]["vocab"].items(), key=lambda kv: kv[1]) if tok not in specials]
order = specials + [f"<0x{b:02X}>" for b in range(256)] + [x for x in learned if not (len(x) == 6 and x.startswith("<0x"))]
j["model"]["vocab"] = {tok: i for i, tok in enumerate(order)}
j["added_tokens"] = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True} for i, s in enumerate(specials)]
j["pre_tokenizer"] = None
j["post_processor"] = None
j["decoder"] = {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                                                 {"type": "ByteFallback"}, {"type": "Fuse"},
                                                 {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
os.makedirs(f"{out}/spm-bpe", exist_ok=True)
with open(f"{out}/spm-bpe/tokenizer.json", "w") as f:
    json.dump(j, f, ensure_ascii=False, separators=(",", ":"))

# The GGUF: tokens in id order, types (2 unknown, 3 control, 6 byte, 1 normal), scores.
rank = {a + b: i for i, (a, b) in enumerate(tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in j["model"]["merges"])}
types = [2, 3, 3] + [6] * 256 + [1] * (len(order) - 259)
scores = [0.0] * 259 + [-float(rank.get(tok, len(rank) + i)) for i, tok in enumerate(order[259:])]
w = gguf.GGUFWriter(f"{out}/spm-vocab.gguf", "llama")
w.add_tokenizer_model("llama")
w.add_token_list(order)
w.add_token_scores(scores)
w.add_token_types(types)
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_unk_token_id(0)
w.add_add_space_prefix(True)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

def variant(name):
    v = json.loads(json.dumps(j))
    if name == "gguf":
        v["model"]["merges"] = [list(m) for m in generate_merges({t: i for i, t in enumerate(order)},
                                                                  {t: s for t, s, ty in zip(order, scores, types) if ty == 1})]
    if name == "metaspace":
        v["normalizer"] = None
        v["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    if name == "unk":
        v["model"]["byte_fallback"] = False
    return Tokenizer.from_str(json.dumps(v))

legacy = variant("legacy")
assert legacy.encode("你", add_special_tokens=False).tokens[-3:] == ["<0xE4>", "<0xBD>", "<0xA0>"]

def corpus_hashes(tok, limit=None):
    files = []
    for lang, paths in corpora.items():
        for p in paths:
            recs = fortune_records(p)
            enc = [e.ids for e in tok.encode_batch(recs[:limit] if limit else recs, add_special_tokens=False)]
            files.append({"corpus": lang, "path": p, "records": len(recs),
                          "textSHA256": hashlib.sha256("\0".join(recs).encode()).hexdigest(),
                          "ids": "".join(ids_hash(e) for e in enc)})
    return files

# Where an added token meets the text: "▁" goes before a segment's text (legacy), only before the
# text's first segment (metaspace "first"); unknown and byte-fallback runs.
spm_hard = ["<s>Hello</s> world", "Hello</s>", "</s>", " <s> x", "<s><s>", "x<unk>y", "▁already▁marked", "▁ ▁",
            "Größe ÄÖÜ ß", "ŁŽŠ ĦĊ ǅ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟘𝟙", "\u0000\u0001", "tab\tand  two"]

fixture = {"tokenizer": "spm-bpe/tokenizer.json (trained by sentencepiece_fixtures.py)",
           "source": "tokenizers " + tokenizers.__version__, "variants": {}}
for name in ["legacy", "metaspace", "unk", "gguf"]:
    tok = variant(name)
    cases = []
    for text in hard + spm_hard:
        ids = tok.encode(text, add_special_tokens=False).ids
        cases.append({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    fixture["variants"][name] = {"hardCases": cases,
                                 "files": corpus_hashes(tok, None if name == "legacy" else 30),
                                 "recordsPerFile": None if name == "legacy" else 30}
with open(f"{out}/tokenizer-spm.json", "w") as f:
    json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
print("written", len(order), "tokens,", len(j["model"]["merges"]), "merges")
