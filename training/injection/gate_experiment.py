#!/usr/bin/env python3
"""Experiment, not part of the build: can a cheap first stage (a cascade) decide per window
whether the full classifier must score it? Issue 16 item 2; BENCHMARKS.md "Fourth round".

A gate is usable when it passes every window the full model scores high enough to matter
(here: 0.3 or more, below the 0.5 operating point, so windows near it pass too) and rules out
most benign windows. Both are measured on the train split's validation part (the groups
train.py holds out for the operating point; the held-out split is never read here), with
the windows cut as the Rust code cuts them. Gates tried:

  shipped-*:  the shipped model's own weights, only the window's distinct words and word
              pairs (no character n-grams): their sum, sum / sqrt(count), the sum of the
              positive ones, the top five; and counts / sums of strong character trigrams.
  trained:    a logistic regression of its own on words and word pairs (fitted as train.py
              fits, on the same rows), its window logit.

    .venv/bin/python gate_experiment.py
"""

import math
import random
import sys
import time

import numpy as np

import features as F
import train as T

FULL = F.CHAR3 | F.WORDS | F.WORD_PAIRS
WP = F.WORDS | F.WORD_PAIRS
FLOOR = math.log(0.3 / 0.7)


def load_model():
    with open(T.OUT, "rb") as f:
        raw = f.read()
    scale = F.f32(float(np.frombuffer(raw[12:16], dtype="<f4")[0]))
    bias = F.f32(float(np.frombuffer(raw[16:20], dtype="<f4")[0]))
    return np.frombuffer(raw[20:], dtype=np.int8).astype(np.int64), scale, bias


def per_block(blocks, idxs, nb):
    order = np.argsort(blocks, kind="stable")
    b, i = blocks[order], idxs[order]
    bounds = np.searchsorted(b, np.arange(nb + 1))
    return [i[bounds[k]:bounds[k + 1]] for k in range(nb)]


def windows(text, flag_sets):
    """Per window of the normalised text (as src/detect/injection_model.rs cuts them): the
    distinct feature indices of each flag set, and the trigram indices with repeats."""
    norm = F.normalize(text)
    raw = norm.encode("utf-8")
    if not raw:
        return []
    nb = (len(raw) - len(norm[-1].encode("utf-8"))) // F.BLOCK + 1
    per = [per_block(*F.features(norm, fl), nb) for fl in flag_sets]
    ranges = [(0, 1)] if nb == 1 else [(k, k + 2) for k in range(nb - 1)]
    return [[np.concatenate(p[s:e]) for p in per] for s, e in ranges]


def report(name, must, benign):
    """Pass rates at the threshold that loses no window of `must`, and 0.5% / 1% of them."""
    m = sorted(must)
    for loss in (0.0, 0.005, 0.01):
        t = m[int(len(m) * loss)]
        passed = sum(g >= t for g in benign) / max(1, len(benign))
        print(f"{name:24} losing {loss:.1%} of windows >= 0.3: threshold {t:9.2f}, "
              f"benign windows passed {passed:.3f}", file=sys.stderr)


def main():
    t0 = time.time()
    wq, scale, bias = load_model()
    rows = T.load()
    fit, val = T.split(rows, random.Random(7))

    T.FLAGS = WP
    X, y = T.matrix([w for r in fit for w in T.window_rows(r)])
    clf = T.fit(X, y, c=8.0)
    gw, gb = clf.coef_[0], float(clf.intercept_[0])
    print(f"gate model fitted on {X.shape[0]} windows ({time.time() - t0:.0f} s)", file=sys.stderr)

    stats = {}
    must_idx, benign_idx, n = [], [], 0
    for r in val:
        for full, wp, tri in windows(r["text"], (FULL, WP, F.CHAR3)):
            full, wp = np.unique(full), np.unique(wp)
            logit = bias + scale * int(wq[full].sum()) / math.sqrt(len(full)) if len(full) else bias
            w, t = wq[wp], wq[tri]
            pos = w[w > 0]
            for key, v in (
                ("shipped word sum", int(w.sum())),
                ("shipped word sum/sqrt", float(w.sum()) / math.sqrt(max(1, len(w)))),
                ("shipped positive words", int(pos.sum())),
                ("shipped top-5 words", int(np.sort(pos)[-5:].sum()) if len(pos) else 0),
                ("shipped trigrams >= 20", int((t >= 20).sum())),
                ("shipped trigram sum >= 10", int(t[t >= 10].sum())),
                ("trained words+pairs", gb + float(gw[wp].sum()) / math.sqrt(len(wp))
                 if len(wp) else gb),
            ):
                stats.setdefault(key, []).append(v)
            if logit >= FLOOR:
                must_idx.append(n)
            if r["label"] == 0:
                benign_idx.append(n)
            n += 1
    print(f"validation: {len(val)} texts, {n} windows, {len(must_idx)} scored >= 0.3 by the "
          f"full model, {len(benign_idx)} benign", file=sys.stderr)
    for key, v in stats.items():
        report(key, [v[i] for i in must_idx], [v[i] for i in benign_idx])
    print(f"{time.time() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
