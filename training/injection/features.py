"""The classifier's input, exactly as src/detect/normalize.rs and src/detect/injection_model.rs
compute it: the Rust test `parity` checks both sides agree on training/injection/parity.jsonl.

normalize(text):
  1. map characters: unicode tag characters U+E0020..U+E007E become the ASCII they smuggle;
     zero-width and invisible characters go; fullwidth forms become ASCII; whitespace runs
     become one space.
  2. decode: base64 runs (20+ characters) and hex runs (16+ bytes) that decode to text are
     appended after the text (one level); "rot13" named in the text appends the rot13 of it.
  3. fold: lower case; leetspeak inside words that mix letters with 0 1 3 4 5 7 @ $; runs of
     4+ single letters separated by one space, dot, dash, underscore or star are joined.

features(normalized) -> [(block, index)]: character trigrams, words and word bigrams, hashed
to 2^BITS, each placed in the 128-byte block of the normalized UTF-8 where it ends. A window
is two adjacent blocks (one when the text has one); its logit is bias + scale * sum(w) /
sqrt(number of features); the text's score is the sigmoid of its highest window.
"""

import base64
import math

BITS = 17
BLOCK = 128
M32 = 0xFFFFFFFF

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
            c, cp = chr(cp - 0xE0000), cp - 0xE0000
        elif 0xE0000 <= cp <= 0xE007F or cp in INVISIBLE:
            continue
        elif 0xFF01 <= cp <= 0xFF5E:
            c, cp = chr(cp - 0xFEE0), cp - 0xFEE0
        if cp in SPACES:
            if not space:
                out.append(" ")
            space = True
            continue
        space = False
        out.append(c)
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


def lower(s):
    return "".join(c.lower() for c in s)


def fold(s):
    s = lower(s)
    # Leetspeak inside ASCII words mixing letters and leet characters.
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
    # Spaced letters: "i g n o r e" -> "ignore" (4+ single letters).
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


def normalize(text):
    pre = map_chars(text)
    out = fold(pre)
    for hidden in decode_runs(pre):
        out += "\n" + fold(map_chars(hidden))
    low = lower(pre)
    if "rot13" in low or "rot-13" in low or "rot 13" in low:
        out += "\n" + rot13(out)
    return out


# ---- features ------------------------------------------------------------------------------

def finalize(x):
    x &= M32
    x = ((x ^ (x >> 15)) * 0x2C1B3C6D) & M32
    return x >> (32 - BITS)


def fnv1a(data, basis=0x811C9DC5):
    h = basis
    for b in data:
        h = ((h ^ b) * 0x01000193) & M32
    return h


def is_word_char(c):
    cp = ord(c)
    if cp < 0x80:
        return c.isalnum()
    if cp in SPACES or 0x80 <= cp <= 0xBF or 0x2000 <= cp <= 0x206F or 0x3000 <= cp <= 0x303F \
            or 0xFF01 <= cp <= 0xFF0F:
        return False
    return True


def features(norm):
    """(block, index) of every feature of a normalized text, in order."""
    out = []
    chars = list(norm)
    offs, o = [], 0
    for c in chars:
        offs.append(o)
        o += len(c.encode("utf-8"))
    # One pass, in the order the Rust scanner emits them: at each character, first the word
    # that ended just before it (and its bigram), then the trigram ending at it. Every
    # feature sits in the block of its last character.
    prev = None
    n = len(chars)
    start = None
    for k in range(n + 1):
        word = k < n and is_word_char(chars[k])
        if word and start is None:
            start = k
        if not word and start is not None:
            h = fnv1a("".join(chars[start:k]).encode("utf-8"))
            block = offs[k - 1] // BLOCK
            out.append((block, finalize(h ^ 0x5BD1E995)))
            if prev is not None:
                out.append((block, finalize(((prev * 0x01000193) ^ h ^ 0x27D4EB2F) & M32)))
            prev = h
            start = None
        if 2 <= k < n:
            a, b, c = ord(chars[k - 2]), ord(chars[k - 1]), ord(chars[k])
            h = ((a * 0x9E3779B1) ^ (b * 0x85EBCA77) ^ (c * 0xC2B2AE3D)) & M32
            out.append((offs[k] // BLOCK, finalize(h)))
    return out


def windows(feats):
    """Per window: {index: count} and the number of features."""
    if not feats:
        return [({}, 0)]
    nblocks = max(b for b, _ in feats) + 1
    per = [dict() for _ in range(nblocks)]
    counts = [0] * nblocks
    for b, idx in feats:
        per[b][idx] = per[b].get(idx, 0) + 1
        counts[b] += 1
    if nblocks == 1:
        return [(per[0], counts[0])]
    out = []
    for k in range(nblocks - 1):
        d = dict(per[k])
        for idx, v in per[k + 1].items():
            d[idx] = d.get(idx, 0) + v
        out.append((d, counts[k] + counts[k + 1]))
    return out


def window_spans(feats):
    """Byte ranges (of the normalized text) of the windows, in order."""
    if not feats:
        return [(0, BLOCK)]
    nblocks = max(b for b, _ in feats) + 1
    if nblocks == 1:
        return [(0, BLOCK)]
    return [(k * BLOCK, (k + 2) * BLOCK) for k in range(nblocks - 1)]


def score(weights, scale, bias, text):
    best = None
    for d, n in windows(features(normalize(text))):
        s = sum(int(weights[i]) * v for i, v in d.items())
        logit = bias + (scale * s / math.sqrt(n) if n else 0.0)
        best = logit if best is None else max(best, logit)
    return 1.0 / (1.0 + math.exp(-best))
