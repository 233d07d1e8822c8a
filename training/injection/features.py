"""The classifier's input, exactly as src/detect/normalize.rs and src/detect/injection_model.rs
compute it: the Rust test `parity` checks both sides agree on training/injection/parity.jsonl.

normalize(text):
  1. map characters: unicode tag characters U+E0020..U+E007E become the ASCII they smuggle;
     zero-width and invisible characters go; fullwidth forms become ASCII; whitespace runs
     become one space; everything is lower-cased (character by character).
  2. fold: leetspeak inside ASCII words that mix letters with 0 1 3 4 5 7 @ $; runs of 4+
     single letters separated by one space, dot, dash, underscore or star are joined.
  3. decode: base64 runs (20+ characters) and hex (16+ bytes) of the text as written that
     decode to text are appended after a newline, mapped and folded (one level); a text
     naming rot13 gets the rot13 of everything so far appended.

features(normalized) -> (block, index) arrays: character n-grams of the orders the model
uses (2 to 4; the top bits of a product hash), words and word bigrams (FNV-1a, mixed), hashed
to 2^BITS, each placed in the 128-byte block of the normalized UTF-8 where its last character
starts (a word's: where the character after it starts, or its last one at the end). A window is two adjacent blocks (one
when the text has one); its logit is bias + scale * sum(w) / sqrt(number of features) over
its distinct features (each counts once per window); the
text's score is the sigmoid of its highest window.
"""

import base64
import math
import re
import struct

import numpy as np

BLOCK = 128
M32 = 0xFFFFFFFF

# Feature kinds: the bits of the weight file's flags byte.
CHAR2, CHAR3, CHAR4, WORDS, WORD_PAIRS = 1, 2, 4, 16, 32
BITS = 17

K0, K1, K2, K3 = 0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F
SEED2, SEED4 = 0x3C6EF372, 0xA54FF53A
WORD_SEED, PAIR_SEED = 0x5BD1E995, 0x27D4EB2F
FNV_BASIS, FNV_PRIME = 0x811C9DC5, 0x01000193

INVISIBLE = {0x00AD, 0x180E, 0x200B, 0x200C, 0x200D, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF}
SPACES = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F,
          0x3000} | set(range(0x2000, 0x200B))
LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
SPACED_SEPS = " .-_*"
B64 = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
HEX = set("0123456789abcdefABCDEF")
MIN_B64 = 20
MIN_HEX_BYTES = 16


def map_chars(text):
    out = []
    space = False
    for c in text:
        cp = ord(c)
        if 0xE0020 <= cp <= 0xE007E:
            c = chr(cp - 0xE0000)
        elif 0xFF01 <= cp <= 0xFF5E:
            c = chr(cp - 0xFEE0)
        elif 0xE0000 <= cp <= 0xE007F or cp in INVISIBLE:
            continue
        if ord(c) in SPACES:
            if not space:
                out.append(" ")
            space = True
            continue
        space = False
        out.append(c.lower())
    return "".join(out)


def printable_text(raw):
    """`raw` as text when it is UTF-8 that reads as text: 90% not control characters, half
    letters (ASCII letters or anything beyond ASCII)."""
    try:
        t = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not t:
        return None
    good = sum(1 for c in t if ord(c) >= 0x20 or c in "\n\t\r")
    letters = sum(1 for c in t if ("a" <= c.lower() <= "z" and c.isascii()) or ord(c) >= 0x80)
    if good * 10 < len(t) * 9 or letters * 2 < len(t):
        return None
    return t


def decode_runs(text):
    """Texts hidden in `text` as base64 or hex, in order: runs of the base64 alphabet first
    (a run of hex digits is read as hex), then space-separated hex pairs."""
    found = []
    i, n = 0, len(text)
    while i < n:
        if text[i] not in B64:
            i += 1
            continue
        j = i
        while j < n and text[j] in B64:
            j += 1
        run = text[i:j]
        i = j
        if len(run) < MIN_B64:
            continue
        if all(c in HEX for c in run):
            if len(run) >= 2 * MIN_HEX_BYTES:
                t = printable_text(bytes.fromhex(run[: len(run) - len(run) % 2]))
                if t is not None:
                    found.append(t)
            continue
        pads = 0
        while j + pads < n and pads < 2 and text[j + pads] == "=":
            pads += 1
        if (len(run) + pads) % 4 == 0:
            data = run + "=" * pads
        else:
            data = run[: len(run) - len(run) % 4]
        try:
            raw = base64.b64decode(data, validate=True)
        except ValueError:
            continue
        t = printable_text(raw)
        if t is not None:
            found.append(t)
    i = 0
    while i < n:
        if i > 0 and text[i - 1] != " ":
            i += 1
            continue
        j, pairs = i, []
        while j + 1 < n and text[j] in HEX and text[j + 1] in HEX and (j + 2 == n or text[j + 2] == " "):
            pairs.append(text[j:j + 2])
            j += 3
        if len(pairs) >= MIN_HEX_BYTES:
            t = printable_text(bytes.fromhex("".join(pairs)))
            if t is not None:
                found.append(t)
            i = j
        else:
            i += 1
    return found


def fold(s):
    """Leetspeak, then spaced letters, on mapped (lower-case) text."""
    out, i, n = [], 0, len(s)
    while i < n:
        if s[i].isascii() and (s[i].isalnum() or s[i] in "@$"):
            j = i
            while j < n and s[j].isascii() and (s[j].isalnum() or s[j] in "@$"):
                j += 1
            w = s[i:j]
            if any("a" <= c <= "z" for c in w) and any(c in LEET for c in w) and len(w) <= 32:
                w = "".join(LEET.get(c, c) for c in w)
            out.append(w)
            i = j
        else:
            out.append(s[i])
            i += 1
    s = "".join(out)
    out, i, n = [], 0, len(s)
    while i < n:
        if is_letter(s, i) and (i == 0 or not alnum(s[i - 1])):
            j, letters = i, [s[i]]
            while j + 2 < n and s[j + 1] in SPACED_SEPS and is_letter(s, j + 2) and \
                    (j + 3 >= n or not alnum(s[j + 3])):
                letters.append(s[j + 2])
                j += 2
            if len(letters) >= 4:
                out.append("".join(letters))
                i = j + 1
                continue
        out.append(s[i])
        i += 1
    return "".join(out)


def is_letter(s, i):
    return "a" <= s[i] <= "z"


def alnum(c):
    """ASCII letters and digits, and anything beyond ASCII (the Rust side tests bytes)."""
    return (c.isascii() and c.isalnum()) or ord(c) >= 0x80


def rot13(s):
    return "".join(chr((ord(c) - 97 + 13) % 26 + 97) if "a" <= c <= "z" else c for c in s)


def names_rot13(mapped):
    return "rot13" in mapped or "rot-13" in mapped or "rot 13" in mapped


def normalize(text):
    mapped = map_chars(text)
    rot = names_rot13(mapped)
    out = fold(mapped)
    for hidden in decode_runs(text):
        out += "\n" + fold(map_chars(hidden))
    if rot:
        out += "\n" + rot13(out)
    return out


def fold_prefix_len(text, end):
    """Bytes of the normalized text that the first `end` characters of `text` become
    (approximately: a planted attack's start and end, for labelling windows)."""
    return len(fold(map_chars(text[:end])).encode("utf-8"))


# ---- features ------------------------------------------------------------------------------

WORD_RE = re.compile("[0-9A-Za-z\u00c0-\u167f\u1681-\u1fff\u2070-\u2fff\u3040-\uff00\uff10-\U0010ffff]+")


def _top(h):
    """An n-gram's index: the top bits of its hash."""
    return ((h & np.uint64(M32)) >> np.uint64(32 - BITS)).astype(np.int64)


def _fin(h):
    """A word's index: its hash mixed, then the top bits."""
    h = h & np.uint64(M32)
    x = ((h ^ (h >> np.uint64(15))) * np.uint64(0x2C1B3C6D)) & np.uint64(M32)
    return (x >> np.uint64(32 - BITS)).astype(np.int64)


def word_hash(word):
    h = FNV_BASIS
    for b in word.encode("utf-8"):
        h = ((h ^ b) * FNV_PRIME) & M32
    return h


def features(norm, flags):
    """(block, index) arrays of every feature of a normalized text."""
    cps = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n = len(cps)
    blen = np.where(cps < 0x80, 1, np.where(cps < 0x800, 2, np.where(cps < 0x10000, 3, 4)))
    offs = np.zeros(n, dtype=np.int64)
    if n:
        offs[1:] = np.cumsum(blen)[:-1]
    blk = offs // BLOCK
    m = np.uint64(M32)

    def mul(a, k):
        return (a * np.uint64(k)) & m

    blocks, idxs = [], []
    if n >= 2 and flags & CHAR2:
        h = mul(cps[:-1], K1) ^ mul(cps[1:], K2) ^ np.uint64(SEED2)
        blocks.append(blk[1:])
        idxs.append(_top(h))
    if n >= 3:
        h3 = mul(cps[:-2], K0) ^ mul(cps[1:-1], K1) ^ mul(cps[2:], K2)
        if flags & CHAR3:
            blocks.append(blk[2:])
            idxs.append(_top(h3))
        if n >= 4 and flags & CHAR4:
            h4 = mul(cps[:-3], K3) ^ h3[1:] ^ np.uint64(SEED4)
            blocks.append(blk[3:])
            idxs.append(_top(h4))
    if flags & (WORDS | WORD_PAIRS):
        wb, wi = [], []
        prev = None
        for mt in WORD_RE.finditer(norm):
            h = word_hash(mt.group(0))
            b = int(blk[mt.end()] if mt.end() < n else blk[n - 1])
            if flags & WORDS:
                wb.append(b)
                wi.append(h ^ WORD_SEED)
            if prev is not None and flags & WORD_PAIRS:
                wb.append(b)
                wi.append(((prev * FNV_PRIME) & M32) ^ h ^ PAIR_SEED)
            prev = h
        if wi:
            blocks.append(np.array(wb, dtype=np.int64))
            idxs.append(_fin(np.array(wi, dtype=np.uint64)))
    if not idxs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(blocks), np.concatenate(idxs)


def windows(blocks, idxs):
    """Distinct feature indices of the windows of one text (two adjacent blocks; one when it
    has one)."""
    if len(idxs) == 0:
        return [idxs]
    nb = int(blocks.max()) + 1
    order = np.argsort(blocks, kind="stable")
    b, i = blocks[order], idxs[order]
    bounds = np.searchsorted(b, np.arange(nb + 1))
    per = [i[bounds[k]:bounds[k + 1]] for k in range(nb)]
    if nb == 1:
        return [np.unique(per[0])]
    # Each feature counts once per window: repeating a sentence adds no evidence.
    return [np.unique(np.concatenate(per[k:k + 2])) for k in range(nb - 1)]


def window_spans(blocks):
    """Byte ranges (of the normalized text) of the windows, in order."""
    nb = int(blocks.max()) + 1 if len(blocks) else 1
    if nb == 1:
        return [(0, BLOCK)]
    return [(k * BLOCK, (k + 2) * BLOCK) for k in range(nb - 1)]


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def logits(weights, scale, bias, wins):
    out = []
    for w in wins:
        s = int(weights[w].astype(np.int64).sum()) if len(w) else 0
        out.append(bias + scale * s / math.sqrt(len(w)) if len(w) else bias)
    return out


def score(weights, flags, scale, bias, text):
    """The score the Rust detector's classifier gives `text` (scale and bias as stored)."""
    blocks, idxs = features(normalize(text), flags)
    best = max(logits(weights, f32(scale), f32(bias), windows(blocks, idxs)))
    return 1.0 / (1.0 + math.exp(-best))
