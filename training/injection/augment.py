#!/usr/bin/env python3
"""Plants the train split's direct attacks, in every language, into the train split's tool
outputs: more indirect training rows without touching the held-out split.

Called by `train.py` on the rows it loaded (seeded: the same rows on every run); nothing is
written, so the committed corpus stays what `prepare.py` built from the sources.

Why: the held-out indirect attacks the model missed were mostly ordinary direct attacks
planted in an e-mail, a table or code (BIPIA-style task hijacks). `prepare.py` plants each
English train attack once; here every train attack of CyberSecEval (English and translated),
XSafety, our own texts and BIPIA's code attacks is planted twice more, at the start, middle
or end of a BIPIA or AgentDojo document, and non-English attacks are planted too (an English
document carrying an instruction in another language).
Rows keep their attack's group, so the validation part of `train.py` holds an attack and
its plantings together. Every row is in the train split: the held-out split is unchanged.
"""

import random

SOURCES = {"cyberseceval", "cyberseceval-ml", "xsafety", "authored"}
COPIES = 2
MAX_ATTACK = 600


def plant(rng, attack, doc):
    where = rng.choice(("start", "middle", "end"))
    if where == "start":
        text = attack + "\n" + doc
    elif where == "end":
        text = doc + "\n" + attack
    else:
        cut = doc.rfind(" ", 0, len(doc) // 2) + 1
        text = doc[:cut] + attack + " " + doc[cut:]
    start = text.find(attack)
    return text, [start, start + len(attack)]


def planted(rows):
    """The extra planted rows for `rows` (the whole corpus; only its train split is read)."""
    train = [r for r in rows if r["split"] == "train"]
    docs = [r["text"] for r in train if r["label"] == 0 and r["category"] == "tool_output"
            and len(r["text"]) < 4000]
    attacks = [(r["text"], r["lang"], r["group"], r["source"]) for r in train
               if r["label"] == 1 and r["source"] in SOURCES
               and r["category"] in ("direct", "exfiltration") and len(r["text"]) < MAX_ATTACK]
    attacks += [(r["text"][r["span"][0]:r["span"][1]], "en", r["group"], "bipia-code")
                for r in train if r.get("planted_from") == "bipia-code"]
    rng = random.Random(1414)
    out = []
    for attack, lang, group, origin in attacks:
        for _ in range(COPIES):
            text, span = plant(rng, attack, docs[rng.randrange(len(docs))])
            out.append({"id": f"planted-train-{len(out)}", "text": text, "label": 1,
                        "source": "planted-train", "category": "indirect", "lang": lang,
                        "group": group, "split": "train", "span": span,
                        "planted_from": origin})
    return out
