#!/usr/bin/env python3
"""Benign text about passwords, secrets, credentials and security policy: the paragraphs of
the manual pages of Debian's shadow-utils packages `passwd` and `login` (BSD-3-Clause) and of
Linux-PAM's `libpam-modules` and `libpam-runtime` (BSD-3-Clause, the licence chosen of their
"BSD-3-clause or GPL"), in English and the translations those packages ship in the
eleven languages. The rest of the corpus had little benign text of this kind, so password
and secret words scored as attack evidence ("Your password: … The secret: …").

Run once by a maintainer, like prepare.py (not by `make train-injection`), on a Debian or
Ubuntu system with those packages and `man` installed; writes data/manpages.jsonl:

    python manpages.py

A page's paragraphs, in every language, share a group, so one page falls on one side of the
held-out split.
"""

import os
import re
import subprocess
import sys

import prepare

PACKAGES = ("passwd", "login", "libpam-modules", "libpam-runtime")
# Manual directories by the corpus's language codes (the eleven languages it covers).
LANGS = {"": "en", "de": "de", "fr": "fr", "es": "es", "it": "it", "pt": "pt", "pt_BR": "pt",
         "nl": "nl", "ru": "ru", "zh_CN": "zh", "zh_TW": "zh", "ja": "ja", "ko": "ko"}
MIN_CHARS, MAX_CHARS = 40, 700


def pages():
    out = subprocess.run(["dpkg", "-L", *PACKAGES], check=True, capture_output=True,
                         text=True).stdout.split()
    for path in sorted(out):
        m = re.match(r"/usr/share/man/(?:([A-Za-z_]+)/)?man\d/([^/]+)\.gz$", path)
        if m and (m.group(1) or "") in LANGS and os.path.isfile(path):
            yield path, LANGS[m.group(1) or ""], m.group(2)


def render(path):
    env = dict(os.environ, MANWIDTH="2000", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="0")
    text = subprocess.run(["man", "--nh", "--nj", "-l", path], check=True,
                          capture_output=True, env=env).stdout.decode("utf-8", "replace")
    return re.sub(r".\x08", "", text)


def paragraphs(text):
    for block in re.split(r"\n\s*\n", text):
        para = re.sub(r"\s+", " ", block).strip()
        # Headings, option names and synopsis lines are not prose.
        if MIN_CHARS <= len(para) <= MAX_CHARS and not para.isupper():
            yield para


def main():
    rows = []
    for path, lang, page in pages():
        for para in paragraphs(render(path)):
            rows.append(prepare.row(para, 0, "manpages", "security_docs", lang,
                                    f"manpages:{page}"))
    rows = prepare.dedupe(rows)
    prepare.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                               "manpages.jsonl"), rows)
    print(f"{len(rows)} paragraphs", file=sys.stderr)


if __name__ == "__main__":
    main()
