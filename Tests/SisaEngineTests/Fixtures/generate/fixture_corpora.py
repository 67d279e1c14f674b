"""What the tokenizer fixtures are made of: Debian's fortunes cut as sisa's fortune format cuts
them, and hand-made hard cases (shared by tokenizer_fixtures.py and sentencepiece_fixtures.py)."""
import glob, hashlib, os

def fortune_records(path):
    """sisa's fortune format: lines without \\n (and a \\r before it), records between lines holding
    only %, joined with \\n; records of empty lines only are skipped."""
    data = open(path, "rb").read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines = lines[:-1]
    lines = [l[:-1] if l.endswith(b"\r") else l for l in lines]
    recs, cur = [], []
    for l in lines + [b"%"]:
        if l == b"%":
            if any(x for x in cur):
                recs.append(b"\n".join(cur).decode("utf-8"))
            cur = []
        else:
            cur.append(l)
    return recs

F = "/usr/share/games/fortunes"
def plain(paths):
    return [p for p in sorted(paths) if not p.endswith((".dat", ".u8")) and os.path.isfile(p) and not os.path.islink(p)]
corpora = {
    "en": [f"{F}/fortunes"],
    "de": plain(glob.glob(f"{F}/de/*")),
    "ru": plain(glob.glob(f"{F}/ru/*")),
    "zh": [f"{F}/chinese", f"{F}/song100", f"{F}/tang300"],
}

def ids_hash(ids):
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:8]

hard = [
    "Hello world", " Hello world", "Hello  world", "   leading and trailing   ", "\ttabs\tand\t\ttabs\t",
    "runs     of      spaces", "a\n\nb\n\n\nc", "line\r\nbreaks\r\n", "\n", " ", "  ", "\t",
    "don't I'll we've they're She'd you'RE IT'S", "'s 's' ''", "1234567890", "3.14159 2,718 1,000,000 007",
    "v1.2.3-rc4 x86_64 0x1F", "12ab34cd 5½ ٣٤٥ ²³ Ⅻ", "😀👍🏽👨‍👩‍👧‍👦🇩🇪🏳️‍🌈", "emoji🙂in🙃words",
    "Ünïcödé café naïve e\u0301 Å", "Привет, мир! Ёлка", "你好，世界。「引用」", "こんにちは カタカナ", "안녕하세요",
    "مرحبا بالعالم", "नमस्ते दुनिया", "สวัสดีครับ", "∑∫√∞ ≤≥≠ →←", "non\u00a0breaking\u2009thin\u3000ideographic",
    "vertical\u000btab form\u000cfeed next\u0085line", "nul\u0000bell\u0007esc\u001b[31mred\u001b[0m",
    "a" * 300, "9" * 100, "x" + " " * 50 + "y", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>",
    "<|im_start|><|im_start|>", "<|im_start", "<|endoftext|>", "text<|endoftext|>more", "<repo_name>sisa<file_sep>x",
    "https://example.com/a?b=c&d=e#f", "user@example.org", "C:\\path\\to\\file.txt", "def f(x):\n    return x**2\n",
    "{\"json\": [1, 2, 3]}", "ALL CAPS SHOUTING", "MiXeD cAsE", "--- *** ___ ...", "¡¿?! «»", "",
]

