#!/usr/bin/env python3
"""Experiment, not part of the build: which cheaper feature sets keep issue 14's bars?
Fits each variant as train.py does (same rows, the same validation texts for the operating
point: the held-out split is only scored, never chosen on), and scores the held-out split as
the detector does: a text is flagged when the classifier's score is 0.5 or more, or the
phrase tier alone flags it (one 0/1 per held-out row, in the order tests/injection_held_out.rs
reads them, from `cargo run --release --example phrase_hits`).

    cargo run --release --example phrase_hits > /tmp/phrase_hits.txt
    .venv/bin/python feature_experiment.py /tmp/phrase_hits.txt [variant ...]

Features are computed once per text and family, and combined per variant; a variant with
16 bits keeps the top 16 bits of each 17-bit index (what hashing to 2^16 gives).
"""

import json
import random
import sys
import time

import numpy as np

import features as F
import train as T

NAMED = {"es", "fr", "de", "it", "pt", "nl", "ru", "zh", "ja", "ko"}
FAMILIES = (F.CHAR2, F.CHAR3, F.CHAR4, F.WORDS, F.WORD_PAIRS)
C2, C3, C4, W, P = FAMILIES
VARIANTS = {
    "all": (C2 | C3 | C4 | W | P, 17),
    "no-char2": (C3 | C4 | W | P, 17),
    "char3+words": (C3 | W | P, 17),
    "char4+words": (C4 | W | P, 17),
    "char3+word": (C3 | W, 17),
    "words": (W | P, 17),
    "char2+words": (C2 | W | P, 17),
    "char2+char3+words": (C2 | C3 | W | P, 17),
    "char3+words-16": (C3 | W | P, 16),
    "no-char2-16": (C3 | C4 | W | P, 16),
}


def featurize(rows):
    out = []
    for r in rows:
        norm = F.normalize(r["text"])
        out.append({f: F.features(norm, f) for f in FAMILIES})
    return out


def window_rows(r, feats, flags, bits):
    """T.window_rows for precomputed features."""
    parts = [feats[f] for f in FAMILIES if flags & f]
    blocks = np.concatenate([b for b, _ in parts])
    idxs = np.concatenate([i for _, i in parts]) >> (17 - bits)
    return T.labelled_windows(r, blocks, idxs)


def run(name, flags, bits, fit, val, test, phrase):
    t0 = time.time()
    T.BITS = bits
    X, y = T.matrix([w for r, ft in fit for w in window_rows(r, ft, flags, bits)])
    clf = T.fit(X, y)
    wq, scale = T.quantise(clf.coef_[0])
    bias = float(clf.intercept_[0])
    vw = [(r, window_rows(r, ft, flags, bits)) for r, ft in val]
    benign = sorted(T.text_logit(wq, scale, bias, ws) for r, ws in vw if r["label"] == 0)
    threshold = T.operating_point(benign)
    vatt = [(r, T.text_logit(wq, scale, bias, ws) > threshold) for r, ws in vw if r["label"] == 1]
    bias = F.f32(bias - threshold)
    scored = []
    for (r, ft), ph in zip(test, phrase):
        wins = window_rows(r, ft, flags, bits)
        # As shipped: one window list of the text (labels unused), bias moved, f32 scale.
        logit = max(F.logits(wq, F.f32(scale), bias, [x for x, _ in wins]))
        cls = logit >= 0
        scored.append((r, cls, cls or ph))

    def rate(pick, full=True):
        hits = [(h if full else c) for r, c, h in scored if pick(r)]
        return sum(hits) / max(1, len(hits)), len(hits)

    att = lambda r: r["label"] == 1  # noqa: E731
    res = {
        "variant": name, "flags": flags, "bits": bits,
        "val_recall": sum(h for _, h in vatt) / max(1, len(vatt)),
        "direct_en": rate(lambda r: att(r) and r["lang"] == "en" and r["category"] == "direct"),
        "indirect": rate(lambda r: att(r) and r["category"] == "indirect"),
        "obfuscated": rate(lambda r: att(r) and r["category"] == "obfuscated"),
        "named10": rate(lambda r: att(r) and r["lang"] in NAMED),
        "non_en": rate(lambda r: att(r) and r["lang"] != "en"),
        "all": rate(att),
        "all_cls": rate(att, full=False),
        "fa": rate(lambda r: r["label"] == 0),
        "fa_tool": rate(lambda r: r["label"] == 0 and r["category"] == "tool_output"),
        "fa_hard": rate(lambda r: r["label"] == 0 and r["category"] == "hard_negative"),
        "lang": {lg: rate(lambda r, lg=lg: att(r) and r["lang"] == lg)
                 for lg in sorted({r["lang"] for r, _, _ in scored})},
        "seconds": round(time.time() - t0),
    }
    print(json.dumps(res), flush=True)
    return res


def main():
    phrase = [line.strip() == "1" for line in open(sys.argv[1])]
    names = sys.argv[2:] or list(VARIANTS)
    t0 = time.time()
    rows = T.load()
    fit_rows, val_rows = T.split(rows, random.Random(7))
    # The held-out rows as the Rust test reads them: the data files in name order (T.load
    # reads them so, the planted rows after), rows with split "test".
    test_rows = [r for r in rows if r["split"] == "test"]
    assert len(test_rows) == len(phrase), (len(test_rows), len(phrase))
    fit = list(zip(fit_rows, featurize(fit_rows)))
    val = list(zip(val_rows, featurize(val_rows)))
    test = list(zip(test_rows, featurize(test_rows)))
    print(f"featurized in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    for name in names:
        flags, bits = VARIANTS[name]
        run(name, flags, bits, fit, val, test, phrase)


if __name__ == "__main__":
    main()
