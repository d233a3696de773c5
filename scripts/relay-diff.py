#!/usr/bin/env python3
"""Differential check against Relay itself: the repo's corpus scrubbed by Relay's PII
engine (PyPI `sentry-relay`, the librelay bindings Sentry's server calls:
`pii_strip_event`, `convert_datascrubbing_config`) and by scrubgate (`scrubgate scrub
--jsonl`, coverage "relay"), one config per pass, every leaf compared (`_meta`
included). Prints how many leaves differ and the classes of differences, each with an
example. A development tool, not yet a test: representation differences (Relay's model
writes tags, headers and cookies as pairs, hex addresses zero-padded, `message` as
`logentry`) are not normalized yet.

    python3 -m venv .relay-venv && .relay-venv/bin/pip install sentry-relay==0.10.1
    cargo build && .relay-venv/bin/python scripts/relay-diff.py \\
        target/debug/scrubgate tests/fixtures/corpus/events.jsonl
"""
import json, sys, subprocess, collections, tempfile, os
import sentry_relay
BIN, CORPUS = sys.argv[1], sys.argv[2]
events=[json.loads(l) for l in open(CORPUS)]
def leaves(v, path="", out=None):
    if out is None: out={}
    if isinstance(v, dict):
        for k,x in v.items(): leaves(x, f"{path}.{k}" if path else k, out)
    elif isinstance(v, list):
        for i,x in enumerate(v): leaves(x, f"{path}.{i}", out)
    else: out[path]=v
    return out
def run(config_obj, relay_cfg, name):
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as f:
        json.dump({"config": config_obj}, f); proj=f.name
    r=subprocess.run([BIN,"scrub","--project",proj,"--jsonl",CORPUS],capture_output=True,text=True)
    assert r.returncode==0, r.stderr
    ours=[json.loads(l) for l in r.stdout.splitlines()]
    total=diff=0; classes=collections.Counter(); examples={}
    for ev,o in zip(events, ours):
        rel=sentry_relay.pii_strip_event(relay_cfg, ev)
        a=leaves(rel); b=leaves(o)
        for p in set(a)|set(b):
            total+=1
            if a.get(p,"<absent>")!=b.get(p,"<absent>"):
                diff+=1
                key=(p.split('.')[0], "relay-only" if p not in b else "ours-only" if p not in a else "value")
                classes[key]+=1
                examples.setdefault(key,(p,a.get(p,"<absent>"),b.get(p,"<absent>")))
    print(f"== {name}: {diff} of {total} leaves differ ({100*diff/max(total,1):.2f}%)")
    for k,n in classes.most_common(25):
        print("  ",n,k, str(examples[k])[:220])
ds={"scrubData":True,"scrubDefaults":True,"scrubIpAddresses":True,"sensitiveFields":["customer_ref"],"excludeFields":[]}
run({"datascrubbingSettings":ds}, sentry_relay.convert_datascrubbing_config(ds), "default data scrubbing")
builtins=["@ip","@email","@creditcard","@iban","@mac","@uuid","@imei","@pemkey","@urlauth","@usssn","@userpath","@password","@bearer"]
pii={"rules":{"order":{"type":"pattern","pattern":"ord_[A-Za-z0-9]{16,}","redaction":{"method":"replace","text":"[order]"}},
              "pair":{"type":"redact_pair","keyPattern":"(?i)session|csrf","redaction":{"method":"replace","text":"[session]"}}},
     "applications":{"$string":builtins+["order"],"$http.headers.*":["pair"],"$user.email || $user.ip_address":["@anything:hash"],
                     "$frame.vars.**":["@mac:mask","@uuid:remove"],"$breadcrumb.data.**":["@ip:hash"]}}
run({"piiConfig":pii}, pii, "every built-in, a pattern, a redact_pair, all methods")
