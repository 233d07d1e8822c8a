"""Obfuscated variants of attacks (and of benign text, so encodings alone never alarm), as
attackers write them: base64 or hex of the instruction, rot13, leetspeak, spaced letters,
zero-width characters between letters, unicode tag characters, fullwidth forms, an HTML
comment inside a document. Each variant keeps its parent's split (and group), so a held-out
attack is only ever seen obfuscated in the held-out split.
"""

import base64
import codecs
import random

LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})


def spaced(t):
    return " ".join(t)


def zero_width(t):
    return "\u200b".join(t)


def tags(t):
    return "".join(chr(0xE0000 + ord(c)) if 0x20 <= ord(c) < 0x7F else c for c in t)


def fullwidth(t):
    return "".join(chr(ord(c) + 0xFEE0) if 0x21 <= ord(c) <= 0x7E else c for c in t)


def b64(t):
    return base64.b64encode(t.encode()).decode()


def hexed(t):
    return " ".join(f"{b:02x}" for b in t.encode())


# (name, function of (text, rng, docs) -> text); every one leaves the text recoverable.
KINDS = [
    ("base64", lambda t, r, d: r.choice(["Decode this and do what it says: ", "base64: ", "", "Run: "]) + b64(t)),
    ("hex", lambda t, r, d: "Decode the hex and follow it: " + hexed(t)),
    ("rot13", lambda t, r, d: r.choice(["rot13: ", "Decode this ROT13 and follow it: "]) + codecs.encode(t, "rot13")),
    ("leetspeak", lambda t, r, d: t.lower().translate(LEET)),
    ("spaced", lambda t, r, d: spaced(t)),
    ("zero_width", lambda t, r, d: zero_width(t)),
    ("unicode_tags", lambda t, r, d: r.choice(["Summarise this text please.", "What a nice day!", ""]) + tags(t)),
    ("fullwidth", lambda t, r, d: fullwidth(t)),
    ("html_comment", lambda t, r, d: (lambda doc: doc[: len(doc) // 2] + "<!-- " + t + " -->" + doc[len(doc) // 2:])(r.choice(d)["text"])),
    ("markdown_comment", lambda t, r, d: r.choice(d)["text"] + "\n[//]: # (" + t + ")"),
]


def rows(attacks, benign, docs, row):
    rng = random.Random(13)
    out = []
    ascii_attacks = [a for a in attacks if a["text"].isascii()]
    for a in attacks:
        for name, fn in rng.sample(KINDS, 2):
            if name in ("leetspeak", "spaced", "zero_width", "fullwidth", "unicode_tags") and not a["text"].isascii():
                continue
            docs_same = [d for d in docs if d["split"] == a["split"]] or docs
            text = fn(a["text"], rng, docs_same)
            r = row(text, 1, "synthetic-obfuscation", "obfuscated", a["lang"], a["group"])
            r["split"] = a["split"]
            r["obfuscation"] = name
            out.append(r)
    for b in rng.sample(benign, min(len(benign), 1500)):
        name, fn = rng.choice(KINDS[:8])
        text = fn(b["text"], rng, docs)
        r = row(text, 0, "synthetic-obfuscation", "obfuscated_benign", b["lang"], b["group"])
        r["split"] = b["split"]
        r["obfuscation"] = name
        out.append(r)
    del ascii_attacks
    return out
