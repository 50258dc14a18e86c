#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""validate_json.py [--schema FILE] [--as DEF] [--allow-empty] [FILE...]: checks ctbpf's JSON against
docs/schema/ctbpf.schema.json (JSON Schema 2020-12).

Each FILE (or stdin, or "-") holds one JSON document (a snapshot, `doctor --json`, ...) or JSON lines
(`trace --json`, `top --json`). Each record is checked against the definition its "type" names
(interval, event, summary, top, doctor, report, diff, snapshot; a record without "type" is `features
--json`), or against $defs/DEF with --as (e.g. --as interval_body for an interval of a snapshot file).

Prints one line per violation, `FILE[:LINE]: /json/pointer: reason`, and exits 1 when there is one,
or when no record was read at all (an empty output proves nothing; --allow-empty to accept it).
Exit 2: bad usage, an unreadable file or an invalid schema. Runs on Debian's python3-jsonschema.
"""
import argparse
import json
import os
import sys

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCHEMA = os.path.join(HERE, "..", "..", "docs", "schema", "ctbpf.schema.json")

# "type" -> the $defs entry for a record printed on its own.
BY_TYPE = {
    "interval": "trace_interval",
    "event": "event",
    "summary": "trace_summary",
    "top": "top",
    "doctor": "doctor",
    "report": "report",
    "diff": "diff",
    "snapshot": "snapshot",
}


def pointer(path):
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def short(value, limit=60):
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def leaves(error):
    """The errors that say what is wrong: for oneOf/anyOf, the branch that got furthest."""
    if not error.context:
        return [error]
    branches = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    def wrong_kind(errs):
        # A branch that failed only on the value's type ("not of type 'null'") was the other shape.
        return all(e.validator in ("type", "const", "enum") and not e.relative_path for e in errs)
    candidates = [errs for errs in branches.values() if not wrong_kind(errs)] or list(branches.values())
    best = max(candidates, key=lambda errs: max(len(e.absolute_path) for e in errs))
    out = []
    for e in best:
        out.extend(leaves(e))
    return out


def reason(error):
    v = error.validator
    if v == "required":
        return None  # said by the caller, at the missing key's pointer
    if v == "type":
        want = error.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return f"expected {want}, got {short(error.instance)}"
    if v == "const":
        return f"expected {short(error.validator_value)}, got {short(error.instance)}"
    if v == "enum":
        return f"expected one of {short(error.validator_value, 120)}, got {short(error.instance)}"
    return f"{error.message} (schema {v})"


def path_key(item):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in item[0].split("/")[1:]], item[1]


def violations(validator, doc):
    out = set()
    for top in validator.iter_errors(doc):
        for e in leaves(top):
            if e.validator == "required":
                for key in e.validator_value:
                    if isinstance(e.instance, dict) and key not in e.instance:
                        out.add((pointer(list(e.absolute_path) + [key]), "missing (the contract says present, null when unobserved)"))
            else:
                out.add((pointer(e.absolute_path), reason(e)))
    return sorted(out, key=path_key)


def records(text):
    """(line number or None, parsed or exception) for a whole document or for JSON lines."""
    stripped = text.strip()
    if not stripped:
        return
    try:
        doc = json.loads(stripped)
        if isinstance(doc, dict):
            yield None, doc
            return
    except ValueError:
        pass
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except ValueError as e:
            yield n, e


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", default=["-"])
    ap.add_argument("--schema", default=DEFAULT_SCHEMA)
    ap.add_argument("--as", dest="as_def", help="validate every record against $defs/AS")
    ap.add_argument("--allow-empty", action="store_true")
    ap.add_argument("-q", "--quiet", action="store_true", help="no summary line on success")
    args = ap.parse_args()

    try:
        with open(args.schema) as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
    except (OSError, ValueError, jsonschema.SchemaError) as e:
        print(f"validate_json: {args.schema}: {e}", file=sys.stderr)
        return 2
    defs = schema["$defs"]
    if args.as_def and args.as_def not in defs:
        print(f"validate_json: no $defs/{args.as_def} in {args.schema}", file=sys.stderr)
        return 2
    validators = {}

    def validator_for(name):
        if name not in validators:
            sub = {"$schema": schema["$schema"], "$defs": defs, "$ref": f"#/$defs/{name}"}
            validators[name] = jsonschema.Draft202012Validator(sub)
        return validators[name]

    bad = 0
    count = 0
    kinds = {}
    for name in args.files:
        try:
            text = sys.stdin.read() if name == "-" else open(name, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError) as e:
            print(f"validate_json: {name}: {e}", file=sys.stderr)
            return 2
        label = "<stdin>" if name == "-" else name
        for line, doc in records(text):
            where = label if line is None else f"{label}:{line}"
            count += 1
            if isinstance(doc, Exception):
                print(f"{where}: : not JSON ({doc})")
                bad += 1
                continue
            if args.as_def:
                definition = args.as_def
            elif not isinstance(doc, dict):
                print(f"{where}: : expected a JSON object, got {short(doc)}")
                bad += 1
                continue
            elif "type" in doc:
                definition = BY_TYPE.get(doc["type"]) if isinstance(doc["type"], str) else None
                if definition is None:
                    print(f"{where}: /type: not a record type ctbpf writes: {short(doc['type'])}")
                    bad += 1
                    continue
            else:
                definition = "features"
            kinds[definition] = kinds.get(definition, 0) + 1
            for at, why in violations(validator_for(definition), doc):
                print(f"{where}: {at or '/'}: {why} [{definition}]")
                bad += 1
    if count == 0 and not args.allow_empty:
        print(f"validate_json: no JSON records in {' '.join(args.files)}", file=sys.stderr)
        return 1
    if bad:
        print(f"validate_json: {bad} violation(s) in {count} record(s)", file=sys.stderr)
        return 1
    if not args.quiet:
        seen = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        print(f"validate_json: {count} record(s) valid ({seen})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
