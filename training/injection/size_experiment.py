#!/usr/bin/env python3
"""Experiment, not part of the build: would a smaller weight table (issue 16's size target) keep
the bars? Fits as train.py does (same rows, same validation texts for the operating point)
with 2^BITS buckets, quantises to int8 (127 levels) and to 4 bits (7 levels), and prints the
classifier's held-out recall (phrase tier not included) and false alarms.

    .venv/bin/python size_experiment.py 17    # or 16; ~10 min each on 2 shared cores
"""

import random
import sys

import features as F
import train as T

NAMED = {"es", "fr", "de", "it", "pt", "nl", "ru", "zh", "ja", "ko"}


def run(bits):
    F.BITS = bits  # the feature hashes read the module's BITS at call time
    T.BITS = bits
    rows = T.load()
    fit, val_rows = T.split(rows, random.Random(7))
    val = [(r, T.window_rows(r)) for r in val_rows]
    X, y = T.matrix([w for r in fit for w in T.window_rows(r)])
    clf = T.fit(X, y)
    w, bias = clf.coef_[0], float(clf.intercept_[0])
    test = [(r, T.window_rows(r)) for r in rows if r["split"] == "test"]
    for levels in (127, 7):
        wq, scale = T.quantise(w, levels)
        benign = sorted(T.text_logit(wq, scale, bias, ws) for r, ws in val if r["label"] == 0)
        threshold = T.operating_point(benign)

        def rate(pick):
            hits = [T.text_logit(wq, scale, bias, ws) > threshold for r, ws in test if pick(r)]
            return f"{sum(hits) / max(1, len(hits)):.3f} ({len(hits)})"

        attack = lambda r: r["label"] == 1  # noqa: E731
        print(f"2^{bits} buckets, {levels} levels: "
              f"indirect {rate(lambda r: attack(r) and r['category'] == 'indirect')}, "
              f"ten languages {rate(lambda r: attack(r) and r['lang'] in NAMED)}, "
              f"direct English "
              f"{rate(lambda r: attack(r) and r['lang'] == 'en' and r['category'] == 'direct')}, "
              f"obfuscated {rate(lambda r: attack(r) and r['category'] == 'obfuscated')}, "
              f"all {rate(attack)}, false alarms {rate(lambda r: r['label'] == 0)}", flush=True)


if __name__ == "__main__":
    run(int(sys.argv[1]))
