#!/usr/bin/env python3
"""Sentence-level recall and clean-sentence precision of the built-in PII detectors.

Every sentence becomes one OpenAI chat request, evaluated by the native CLI
(`policy-gateway simulate`) under a policy that redacts with every detector measured; the
audit record's `redactions` say which detectors fired. A sentence counts as found for an
entity type when a detector of that type fired in it (the measurement of issue 13:
sentence-level), and as a false alarm when a detector fired in a sentence labelled without
that type.

Two sources, neither kept in this repository:

- `--presidio FILE`: a labelled public set, e.g. presidio-research's `synth_dataset_v2.json`
  (1,500 sentences with character spans; MIT licence), read as is.
- `--faker`: sentences generated here with Faker (`pip install faker python-stdnum`): phone
  numbers of 20 locales (the largest economies), each with and without a phone word nearby;
  card numbers of every Faker scheme; IBANs of 12 countries, upper and lower case, compact and
  grouped; SSNs and ITINs; national ids (Faker's where it has them, else random numbers that
  python-stdnum, an independent implementation, validates); and hard negatives (dates, times,
  versions, prices, UUIDs, hashes, ISBN/EAN codes, coordinates, postcodes, order numbers),
  some next to a phone word. Seeded, so reruns give the same sentences.

    python3 bench/pii_eval.py --presidio synth_dataset_v2.json --faker [--cli PATH] [--json OUT]

Prints markdown tables (the ones in BENCHMARKS.md).
"""

import argparse
import collections
import json
import os
import random
import subprocess
import sys
import tempfile

# Entity type -> the detectors that find it.
TYPES = {
    "PHONE_NUMBER": ["phone"],
    "CREDIT_CARD": ["credit_card"],
    "EMAIL_ADDRESS": ["email"],
    "IBAN_CODE": ["iban"],
    "US_SSN": ["us_ssn"],
    "IP_ADDRESS": ["ipv4", "ipv6"],
    "UK_NINO": ["uk_nino"],
    "CA_SIN": ["ca_sin"],
    "IN_AADHAAR": ["in_aadhaar"],
    "IN_PAN": ["in_pan"],
    "FR_NIR": ["fr_nir"],
    "DE_TAX_ID": ["de_tax_id"],
    "ES_DNI_NIE": ["es_dni_nie"],
    "IT_FISCAL_CODE": ["it_fiscal_code"],
    "BR_CPF": ["br_cpf"],
    "AU_TFN": ["au_tfn"],
}
# The six the bar applies to.
CORE = ["PHONE_NUMBER", "CREDIT_CARD", "EMAIL_ADDRESS", "IBAN_CODE", "US_SSN", "IP_ADDRESS"]


def policy(detectors):
    return {
        "id": "pii-eval",
        "version": "1",
        "rules": [
            {
                "id": "measure",
                "category": "eval",
                "reason_code": "EVAL",
                "action": "redact",
                "redact": {"style": "placeholder"},
                "match": {"detectors": detectors, "roles": ["user"]},
            }
        ],
    }


def run_cli(cli, sentences, known):
    """Which detectors fired in each sentence (a list of sets, in order)."""
    detectors = sorted({d for t in TYPES.values() for d in t} & known)
    with tempfile.TemporaryDirectory() as tmp:
        pol = os.path.join(tmp, "policy.json")
        with open(pol, "w") as f:
            json.dump(policy(detectors), f)
        traffic = os.path.join(tmp, "traffic.jsonl")
        with open(traffic, "w") as f:
            for i, s in enumerate(sentences):
                body = {"model": "gpt-4o", "messages": [{"role": "user", "content": s}]}
                f.write(json.dumps({"request": body, "headers": {"x-request-id": f"s{i}"}}) + "\n")
        out = subprocess.run(
            [cli, "simulate", "--policy", pol, "--input", traffic],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    fired = [set() for _ in sentences]
    for line in out.splitlines():
        rec = json.loads(line)
        i = int(rec["request_id"][1:])
        fired[i] = set(rec.get("redactions", {}))
    return fired


def known_detectors(cli):
    """The detector names this build knows (older builds lack the national ids)."""
    names = {d for t in TYPES.values() for d in t}
    known = set()
    with tempfile.TemporaryDirectory() as tmp:
        for d in sorted(names):
            p = os.path.join(tmp, "p.json")
            with open(p, "w") as f:
                json.dump(policy([d]), f)
            if subprocess.run([cli, "check", p], capture_output=True).returncode == 0:
                known.add(d)
    return known


def score(rows, fired):
    """rows: (sentence, set of types). Returns per type: found, total, false alarms, clean."""
    out = {}
    clean_core = [i for i, (_, ts) in enumerate(rows) if not ts & set(CORE)]
    for t, dets in TYPES.items():
        have = [i for i, (_, ts) in enumerate(rows) if t in ts]
        without = [i for i, (_, ts) in enumerate(rows) if t not in ts]
        hit = sum(1 for i in have if fired[i] & set(dets))
        fa = sum(1 for i in without if fired[i] & set(dets))
        out[t] = (hit, len(have), fa, len(without))
    any_fa = sum(1 for i in clean_core if fired[i] & {d for t in CORE for d in TYPES[t]})
    return out, (any_fa, len(clean_core))


def presidio_rows(path):
    data = json.load(open(path))
    rows = []
    for s in data:
        rows.append((s["full_text"], {sp["entity_type"] for sp in s["spans"]} & set(TYPES)))
    return rows


# Faker locales of the 20 largest economies (nominal GDP), for phone numbers.
PHONE_LOCALES = [
    "en_US", "zh_CN", "de_DE", "ja_JP", "en_IN", "en_GB", "fr_FR", "it_IT", "en_CA", "pt_BR",
    "ru_RU", "es_MX", "en_AU", "ko_KR", "es_ES", "id_ID", "nl_NL", "tr_TR", "ar_SA", "de_CH",
]
PHONE_WITH_WORD = ["Call me at {}.", "My phone number is {}.", "Phone: {}", "Text me on {} tonight."]
PHONE_BARE = ["{}", "Details: {}.", "See you there, {} it is."]
IBAN_LOCALES = ["en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_PT", "pl_PL", "fi_FI",
                "de_AT", "de_CH", "no_NO"]


def faker_rows(seed, per):
    from faker import Faker
    from stdnum import luhn
    from stdnum.au import tfn
    from stdnum.br import cpf
    from stdnum.ca import sin
    from stdnum.de import idnr
    from stdnum.es import dni, nie
    from stdnum.fr import nir
    from stdnum.in_ import aadhaar, pan
    from stdnum.it import codicefiscale

    rnd = random.Random(seed)
    rows = []  # (sentence, types, group)

    def add(text, types, group):
        rows.append((text, set(types), group))

    for loc in PHONE_LOCALES:
        try:
            f = Faker(loc)
        except AttributeError:
            continue
        f.seed_instance(seed)
        for i in range(per):
            n = f.phone_number()
            add(rnd.choice(PHONE_WITH_WORD).format(n), ["PHONE_NUMBER"], f"phone {loc} (phone word)")
            n = f.phone_number()
            add(rnd.choice(PHONE_BARE).format(n), ["PHONE_NUMBER"], f"phone {loc} (bare)")
    f = Faker("en_US")
    f.seed_instance(seed)
    for scheme in ["visa13", "visa16", "visa19", "mastercard", "amex", "discover", "jcb15",
                   "jcb16", "diners", "maestro"]:
        for i in range(per):
            n = f.credit_card_number(card_type=scheme)
            grouped = " ".join(n[k:k + 4] for k in range(0, len(n), 4)) if i % 2 else n
            add(f"Please charge card {grouped} today.", ["CREDIT_CARD"], f"card {scheme}")
    for loc in IBAN_LOCALES:
        g = Faker(loc)
        g.seed_instance(seed)
        for i in range(per):
            n = g.iban()
            if i % 3 == 1:
                n = n.lower()
            if i % 2:
                n = " ".join(n[k:k + 4] for k in range(0, len(n), 4))
            add(f"Send it to {n}, thanks.", ["IBAN_CODE"], f"iban {loc}")
    for i in range(per):
        add(f"My SSN is {f.ssn()}.", ["US_SSN"], "us_ssn ssn")
        add(f"Taxpayer id {f.ssn(taxpayer_identification_number_type='ITIN')} on file.", ["US_SSN"],
            "us_ssn itin")
        add(f"Write to {f.email()} today.", ["EMAIL_ADDRESS"], "email")
        add(f"The server at {f.ipv4()} is down.", ["IP_ADDRESS"], "ip v4")
        add(f"The server at {f.ipv6()} is down.", ["IP_ADDRESS"], "ip v6")

    def valid_random(make, check, tries=100000):
        for _ in range(tries):
            n = make()
            try:
                if check(n):
                    return n
            except Exception:
                pass
        raise RuntimeError("no valid number generated")

    digits = lambda k: "".join(rnd.choice("0123456789") for _ in range(k))
    ids = {
        "CA_SIN": ("SIN", lambda: Faker("en_CA").ssn(), sin.is_valid),
        "IN_AADHAAR": ("Aadhaar", lambda: Faker("en_IN").aadhaar_id(), aadhaar.is_valid),
        "FR_NIR": ("NIR", lambda: Faker("fr_FR").ssn(), nir.is_valid),
        "ES_DNI_NIE": ("NIF", lambda: rnd.choice([Faker("es_ES").nif, Faker("es_ES").nie])(),
                       lambda n: dni.is_valid(n) or nie.is_valid(n)),
        "IT_FISCAL_CODE": ("Codice fiscale", lambda: Faker("it_IT").ssn(), codicefiscale.is_valid),
        "BR_CPF": ("CPF", lambda: Faker("pt_BR").cpf(), cpf.is_valid),
        "DE_TAX_ID": ("Steuer-ID", lambda: str(rnd.randint(1, 9)) + digits(10), idnr.is_valid),
        "AU_TFN": ("TFN", lambda: digits(9), tfn.is_valid),
        "IN_PAN": ("PAN", lambda: "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3))
                   + rnd.choice("PCHFATBLJG") + rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + digits(4)
                   + rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), pan.is_valid),
        "UK_NINO": ("NI number", lambda: rnd.choice("ABCEGHJKLMNOPRSTWXYZ") + rnd.choice("ABCEGHJKLMNPRSTWXYZ")
                    + digits(6) + rnd.choice("ABCD"), lambda n: n[:2] not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}),
    }
    invalid_from_faker = collections.Counter()
    for t, (label, make, check) in ids.items():
        Faker.seed(seed)
        for i in range(per):
            n = make()
            try:
                ok = check(n)
            except Exception:
                ok = False
            if not ok:
                invalid_from_faker[t] += 1
                n = valid_random(make, check)
            add(f"My {label} is {n}.", [t], f"id {t.lower()}")

    # Hard negatives: no entity at all; some next to a phone word.
    neg = Faker("en_US")
    neg.seed_instance(seed)
    makers = [
        lambda: neg.date(),
        lambda: neg.date_time().strftime("%d.%m.%Y %H:%M"),
        lambda: neg.date_time().strftime("%m/%d/%Y"),
        lambda: neg.date_time().strftime("%d %m %Y"),
        lambda: neg.time(),
        lambda: neg.iso8601(),
        lambda: f"{rnd.randint(0, 20)}.{rnd.randint(0, 30)}.{rnd.randint(0, 200)}",
        lambda: f"v{rnd.randint(0, 9)}.{rnd.randint(0, 9)}.{rnd.randint(0, 9)}.{rnd.randint(0, 99)}",
        lambda: neg.pricetag(),
        lambda: f"{rnd.randint(1, 999)} {rnd.randint(0, 999):03d} {rnd.randint(0, 999):03d} EUR",
        lambda: str(neg.uuid4()),
        lambda: neg.sha1(),
        lambda: neg.md5(),
        lambda: neg.hexify("^^^^^^^^^^^^^^^^^^^^^^^^"),
        lambda: neg.ean13(),
        lambda: neg.isbn13(),
        lambda: neg.isbn10(),
        lambda: f"{neg.latitude()}, {neg.longitude()}",
        lambda: neg.postcode(),
        lambda: neg.zipcode_plus4(),
        lambda: f"#{rnd.randint(10**5, 10**12)}",
        lambda: f"{rnd.randint(100, 999)}-{rnd.randint(100, 999)}-{rnd.randint(100, 999)}",
        lambda: f"SKU {rnd.randint(10, 99)}-{rnd.randint(1000, 9999)}-{rnd.randint(10, 99)}",
        lambda: str(rnd.randint(10**9, 10**13)),
        lambda: f"{rnd.randint(1, 99)}%",
    ]
    for i in range(per * 20):
        v = rnd.choice(makers)()
        tpl = rnd.choice(["The value was {} yesterday.", "Ref: {}", "{} (see the attached file)",
                          "Please call me about {} tomorrow.", "Order {} shipped; contact support."])
        add(tpl.format(v), [], "hard negative")
    return rows, invalid_from_faker


def table(title, scores, clean=None):
    lines = [f"### {title}", "", "| entity | sentences | recall | false alarms | precision on sentences without it |",
             "|---|---:|---:|---:|---:|"]
    for t, (hit, n, fa, m) in scores.items():
        if n == 0 and fa == 0:
            continue
        rec = f"{hit / n:.3f}" if n else "n/a"
        lines.append(f"| {t} | {n} | {rec} ({hit}/{n}) | {fa} | {1 - fa / m:.4f} |" if m else
                     f"| {t} | {n} | {rec} | {fa} | n/a |")
    if clean:
        fa, n = clean
        lines.append("")
        lines.append(f"Clean sentences (none of the six core types): {n}, with a false alarm of a "
                     f"core detector: {fa} (precision {1 - fa / n:.4f}).")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cli", default="target/release/policy-gateway")
    ap.add_argument("--presidio")
    ap.add_argument("--faker", action="store_true")
    ap.add_argument("--per", type=int, default=50, help="Faker sentences per group")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--json")
    args = ap.parse_args()
    known = known_detectors(args.cli)
    report = {}
    if args.presidio:
        rows = presidio_rows(args.presidio)
        fired = run_cli(args.cli, [s for s, _ in rows], known)
        scores, clean = score(rows, fired)
        print(table(f"presidio-research synth_dataset_v2 ({len(rows)} sentences)",
                    {t: scores[t] for t in CORE}, clean))
        print()
        report["presidio"] = {"scores": scores, "clean": clean}
        missed = collections.defaultdict(list)
        for (s, ts), f in zip(rows, fired):
            for t in ts & set(CORE):
                if not f & set(TYPES[t]):
                    missed[t].append(s)
        report["presidio_missed"] = missed
    if args.faker:
        rows, invalid = faker_rows(args.seed, args.per)
        fired = run_cli(args.cli, [s for s, _, _ in rows], known)
        groups = collections.OrderedDict()
        for (s, ts, g), f in zip(rows, fired):
            groups.setdefault(g, []).append((s, ts, f))
        lines = ["### Faker-generated sentences, by group", "", "| group | sentences | found | false alarms (other detectors) |", "|---|---:|---:|---:|"]
        for g, items in groups.items():
            if g == "hard negative":
                continue
            t = next(iter(items[0][1]))
            found = sum(1 for _, _, f in items if f & set(TYPES[t]))
            other = sum(1 for _, ts, f in items if f - {d for x in ts for d in TYPES[x]})
            lines.append(f"| {g} | {len(items)} | {found / len(items):.2f} | {other} |")
        neg = groups.get("hard negative", [])
        fa = collections.Counter(d for _, _, f in neg for d in f)
        lines.append("")
        lines.append(f"Hard negatives: {len(neg)} sentences, {sum(1 for _, _, f in neg if f)} with a "
                     f"finding ({dict(fa) or 'none'}).")
        if invalid:
            lines.append(f"Faker values that python-stdnum rejects (replaced by valid random ones): {dict(invalid)}.")
        print("\n".join(lines))
        report["faker"] = {g: [(s, sorted(ts), sorted(f)) for s, ts, f in items] for g, items in groups.items()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=list)


if __name__ == "__main__":
    sys.exit(main())
