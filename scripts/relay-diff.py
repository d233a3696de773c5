#!/usr/bin/env python3
"""Differential check against Relay itself.

Events are scrubbed by Relay's own PII engine (PyPI `sentry-relay`, the librelay
bindings Sentry's server calls: `pii_strip_event`, `convert_datascrubbing_config`;
pinned in tests/fixtures/relay-diff/requirements.txt, installed by
scripts/install-relay.sh) and by scrubgate (`scrubgate scrub --jsonl`, coverage
"relay"), and every field is compared, `_meta` included. Four passes: the corpus given
on the command line and 200 generated events (a fixed seed: e-mails, IPs, cards, IBANs,
MACs, UUIDs, IMEIs, SSNs, tokens, keys and user paths, bare or inside text, in the
fields and the shapes SDKs send), each under default data scrubbing and under a
piiConfig with every built-in rule, a pattern, a redact_pair and several methods.

Both outputs (and the original) go through the same normalization first, which removes
what differs only in representation. Relay parses the event into its protocol model
and writes it back: tags, headers, cookies and query strings as [key, value] pairs (a
cookie or query string parsed), `message` as `logentry`, bare lists of breadcrumbs,
threads and exceptions under `values`, hex addresses without leading zeros, a
context's `type` added, empty containers and the `len` of a removed (null) value left
out. scrubgate forwards the event as it was sent. Values and remarks are never
normalized, so a field one side scrubbed and the other kept always shows.

Every difference left must match an entry of tests/fixtures/relay-diff/known.json (a
path pattern, the kind of difference and patterns for the values), which names its
class; each class's `readme` text must be a bullet of README's "Known output
differences".

    scripts/install-relay.sh
    .relay-venv/bin/python scripts/relay-diff.py BINARY CORPUS          # report
    .relay-venv/bin/python scripts/relay-diff.py --check BINARY CORPUS  # CI

Both print, per pass, the leaves that differ before and after normalization and the
differences per class. `--check` exits 1 when a difference matches no entry (printing
its path, the original, Relay's and scrubgate's value and `_meta`) or a class is not
in README, and 0 otherwise; without it, an example of each class is printed as well.
"""
import argparse
import collections
import json
import random
import re
import subprocess
import sys
import tempfile
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

import sentry_relay

REPO = Path(__file__).resolve().parent.parent
KNOWN = REPO / "tests/fixtures/relay-diff/known.json"
README = REPO / "README.md"
SEED = 20240519
GENERATED_EVENTS = 200
ABSENT = "<absent>"

DATA_SCRUBBING = {
    "scrubData": True,
    "scrubDefaults": True,
    "scrubIpAddresses": True,
    "sensitiveFields": ["customer_ref"],
    "excludeFields": [],
}
BUILTINS = ["@ip", "@email", "@creditcard", "@iban", "@mac", "@uuid", "@imei", "@pemkey",
            "@urlauth", "@usssn", "@userpath", "@password", "@bearer"]
PII_CONFIG = {
    "rules": {
        "order": {"type": "pattern", "pattern": "ord_[A-Za-z0-9]{16,}",
                  "redaction": {"method": "replace", "text": "[order]"}},
        "pair": {"type": "redact_pair", "keyPattern": "(?i)session|csrf",
                 "redaction": {"method": "replace", "text": "[session]"}},
    },
    "applications": {
        "$string": BUILTINS + ["order"],
        "$http.headers.*": ["pair"],
        "$user.email || $user.ip_address": ["@anything:hash"],
        "$frame.vars.**": ["@mac:mask", "@uuid:remove"],
        "$breadcrumb.data.**": ["@ip:hash"],
    },
}
CONFIGS = {
    "default data scrubbing": (
        {"datascrubbingSettings": DATA_SCRUBBING},
        sentry_relay.convert_datascrubbing_config(DATA_SCRUBBING),
    ),
    "every built-in, a pattern, a redact_pair, all methods": (
        {"piiConfig": PII_CONFIG},
        PII_CONFIG,
    ),
}


# --- Tree helpers. A path is a tuple of keys; list indices are strings, as in `_meta`.

def get_in(tree, path):
    for key in path:
        if isinstance(tree, dict):
            tree = tree.get(key)
        elif isinstance(tree, list) and key.isdigit() and int(key) < len(tree):
            tree = tree[int(key)]
        else:
            return None
    return tree


def set_in(tree, path, value):
    """Sets a dict entry, creating dicts on the way (only used on `_meta` and dicts)."""
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def pop_in(tree, path):
    parent = get_in(tree, path[:-1])
    if isinstance(parent, dict):
        return parent.pop(path[-1], None)
    return None


def leaves(tree, path=()):
    """Every leaf of a JSON value as {path: value}; empty containers are leaves."""
    if isinstance(tree, dict) and tree:
        items = tree.items()
    elif isinstance(tree, list) and tree:
        items = ((str(index), item) for index, item in enumerate(tree))
    else:
        return {path: tree}
    out = {}
    for key, item in items:
        out.update(leaves(item, path + (key,)))
    return out


def meta_nodes(meta, path=()):
    """Every `_meta` entry as {path of the field it describes: entry}."""
    out = {}
    if isinstance(meta, dict):
        for key, item in meta.items():
            if key == "":
                out[path] = item
            else:
                out.update(meta_nodes(item, path + (key,)))
    return out


def dotted(path):
    return ".".join(path)


# --- Normalization: the same function for Relay's output, scrubgate's and the original.

PAIR_CONTAINERS = [("tags",), ("request", "headers"), ("request", "cookies"),
                   ("request", "query_string"), ("contexts", "response", "headers"),
                   ("contexts", "response", "cookies")]
STRING_PAIRS = {("request", "query_string"): "&", ("request", "cookies"): ";"}
VALUES_CONTAINERS = ["breadcrumbs", "threads", "exception"]
ADDRESS_FIELDS = {"instruction_addr", "symbol_addr", "image_addr", "image_vmaddr"}
HEX = re.compile(r"0x[0-9a-fA-F]+")


def parse_pair_string(text, separator):
    """`a=b&c=d` (percent-decoded) or `a=b; c=d` as [[key, value], ...], as both sides
    parse them (scrubgate writes pairs back only when it changed one)."""
    if separator == "&":
        return [list(pair) for pair in urllib.parse.parse_qsl(text.lstrip("?"),
                                                               keep_blank_values=True)]
    pairs = []
    for part in text.split(separator):
        if part.strip():
            key, _, value = part.strip().partition("=")
            pairs.append([key.strip(), value.strip()])
    return pairs


def pairs_to_map(value, meta):
    """A [[key, value], ...] list as a {key: value} dict, its `_meta` moved along
    (the meta of pair i's value goes to the key; a repeated key gets `#n`)."""
    if not isinstance(value, list):
        return value, meta
    meta = meta if isinstance(meta, dict) else {}
    mapped, mapped_meta = {}, {k: v for k, v in meta.items() if k == ""}
    for index, pair in enumerate(value):
        pair_meta = meta.get(str(index), {})
        if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str):
            key = pair[0]
            count = 1
            while key in mapped:
                count += 1
                key = f"{pair[0]}#{count}"
            mapped[key] = pair[1]
            if "1" in pair_meta:
                mapped_meta[key] = pair_meta["1"]
            rest = {k: v for k, v in pair_meta.items() if k != "1"}
        else:
            key = f"#{index}"
            mapped[key] = pair
            rest = pair_meta
        if rest:
            mapped_meta[f"{key}#pair"] = rest
    return mapped, mapped_meta


def drop_empty(tree):
    """Without empty objects and arrays (Relay leaves them out)."""
    if isinstance(tree, dict):
        return {k: drop_empty(v) for k, v in tree.items() if v != {} and v != []}
    if isinstance(tree, list):
        return [drop_empty(item) for item in tree]
    return tree


def normalize_addresses(tree, in_frame=False):
    """`0x00ff` as `0xff` in frames and debug images (Relay's Addr type)."""
    if isinstance(tree, list):
        for item in tree:
            normalize_addresses(item, in_frame)
    elif isinstance(tree, dict):
        for key, item in tree.items():
            if in_frame and key in ADDRESS_FIELDS and isinstance(item, str) \
                    and HEX.fullmatch(item):
                tree[key] = f"0x{int(item, 16):x}"
            else:
                normalize_addresses(item, key in ("frames", "images"))


def normalize(event):
    """Returns (data, meta) with representation-only differences removed."""
    data = json.loads(json.dumps(event))
    meta = data.pop("_meta", {}) or {}
    # `message` is the legacy name of `logentry`; a string is its `formatted`.
    if "message" in data and "logentry" not in data:
        message = data.pop("message")
        data["logentry"] = {"formatted": message} if isinstance(message, str) else message
        message_meta = meta.pop("message", None)
        if message_meta is not None:
            meta["logentry"] = {"formatted": message_meta} \
                if isinstance(message, str) else message_meta
    for name in VALUES_CONTAINERS:
        if isinstance(data.get(name), list):
            data[name] = {"values": data[name]}
            if name in meta:
                meta[name] = {"values": meta[name]}
    for path, separator in STRING_PAIRS.items():
        value = get_in(data, path)
        if isinstance(value, str) and get_in(meta, path) is None:
            set_in(data, path, parse_pair_string(value, separator))
    for path in PAIR_CONTAINERS:
        value = get_in(data, path)
        if isinstance(value, list):
            mapped, mapped_meta = pairs_to_map(value, get_in(meta, path))
            set_in(data, path, mapped)
            if mapped_meta:
                set_in(meta, path, mapped_meta)
            else:
                pop_in(meta, path)
    contexts = data.get("contexts")
    if isinstance(contexts, dict):
        for name, context in contexts.items():
            if isinstance(context, dict):
                context.setdefault("type", name)
    normalize_addresses(data)
    drop_length_of_removed(data, meta)
    return drop_empty(data), meta


def drop_length_of_removed(data, meta, path=()):
    """Relay writes no `len` for a value it removed (null); scrubgate does. The remarks
    stay and are compared."""
    if not isinstance(meta, dict):
        return
    for key, entry in meta.items():
        if key == "":
            if isinstance(entry, dict) and "len" in entry and \
                    value_at(data, path) is None:
                del entry["len"]
        else:
            drop_length_of_removed(data, entry, path + (key,))


# --- Differences

@dataclass
class Difference:
    pass_name: str
    event: int
    path: tuple
    relay: object
    ours: object
    relay_meta: object
    ours_meta: object
    original: object
    parent: str

    @property
    def kind(self):
        """`remark-rule`: same value, the remarks name other rules; `meta`: same value,
        other `_meta`; `ours-scrubbed`: Relay kept the original, scrubgate changed it;
        `relay-scrubbed`: the reverse; `scrubbed-differently`: both changed it."""
        if self.relay == self.ours:
            if strip_rules(self.relay_meta) == strip_rules(self.ours_meta):
                return "remark-rule"
            return "meta"
        if self.relay == self.original:
            return "ours-scrubbed"
        if self.ours == self.original:
            return "relay-scrubbed"
        return "scrubbed-differently"

    def describe(self):
        relay = self.relay if self.relay_meta is None else (self.relay, self.relay_meta)
        ours = self.ours if self.ours_meta is None else (self.ours, self.ours_meta)
        return (f"{self.pass_name}, event {self.event}: {dotted(self.path)}\n"
                f"      original:  {clip(self.original)}\n"
                f"      Relay:     {clip(relay)}\n"
                f"      scrubgate: {clip(ours)}")


def strip_rules(meta):
    if not meta:
        return meta
    return {**meta, "rem": [remark[1:] for remark in meta.get("rem", [])]}


def clip(value, width=160):
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[:width] + "..."


def compare(pass_name, index, original, relay, ours):
    """The fields whose value or `_meta` differ, outermost only (a field one side
    replaced by null and the other kept as an object is one difference). `relay` and
    `ours` are normalized (data, meta); `original` is normalized data."""
    (relay_data, relay_meta), (ours_data, ours_meta) = relay, ours
    relay_notes, ours_notes = meta_nodes(relay_meta), meta_nodes(ours_meta)
    sites = set(leaves(relay_data)) | set(leaves(ours_data)) | set(relay_notes) | \
        set(ours_notes)
    found = []
    covered = []  # fields one side has as a value and the other as a container
    for path in sorted(sites):
        if any(path[:len(outer)] == outer for outer in covered):
            continue
        relay_value, ours_value = value_at(relay_data, path), value_at(ours_data, path)
        containers = [isinstance(v, (dict, list)) for v in (relay_value, ours_value)]
        if (all(containers) or relay_value == ours_value) and \
                relay_notes.get(path) == ours_notes.get(path):
            continue
        if not all(containers):
            covered.append(path)
        found.append(Difference(pass_name, index, path, relay_value, ours_value,
                                relay_notes.get(path), ours_notes.get(path),
                                value_at(original, path),
                                shape(value_at(original, path[:-1]))))
    return found


def shape(container):
    """The container of a field in the original: `object`, `array of 2, first a string`."""
    if isinstance(container, list):
        first = ", first a string" if container and isinstance(container[0], str) else ""
        return f"array of {len(container)}{first}"
    return "object" if isinstance(container, dict) else "none"


def value_at(data, path):
    """The value at a path, ABSENT when there is none (a null value is None)."""
    for key in path:
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return ABSENT
    return data


def leaf_difference_count(relay, ours):
    """(leaves, leaves that differ) of two JSON values, `_meta` included."""
    relay, ours = leaves(relay), leaves(ours)
    paths = set(relay) | set(ours)
    return len(paths), sum(relay.get(p, ABSENT) != ours.get(p, ABSENT) for p in paths)


def with_meta(normalized):
    data, meta = normalized
    return {**data, "_meta": meta} if isinstance(data, dict) else data


# --- Known differences

@dataclass
class KnownClass:
    """A class of known.json's `classes`: whether scrubgate differs on purpose, and the
    bullet of README's Known output differences that explains it."""
    name: str
    deliberate: bool
    readme: str


class KnownDifference:
    """An entry of known.json's `differences`: which differences belong to a class.
    `path` is a pattern over the dotted field path (`*` one segment, `**` one or more);
    `kind` one kind or a list (see Difference.kind). The optional `original`, `relay`,
    `ours` (the values), `relay_meta`, `ours_meta` (the `_meta` entries, as JSON with
    sorted keys) and `parent` (the shape of the field's container in the original, e.g.
    `array of 2, first a string`) are regexes that must be found in them."""

    SIDES = ("original", "relay", "ours", "relay_meta", "ours_meta", "parent")

    def __init__(self, entry, classes):
        self.known_class = classes[entry["class"]]
        kinds = entry["kind"]
        self.kinds = [kinds] if isinstance(kinds, str) else kinds
        self.path = glob_regex(entry["path"])
        self.patterns = {side: re.compile(entry[side], re.S)
                         for side in self.SIDES if side in entry}

    def matches(self, difference):
        if difference.kind not in self.kinds or \
                not self.path.fullmatch(dotted(difference.path)):
            return False
        return all(pattern.search(as_text(getattr(difference, side)))
                   for side, pattern in self.patterns.items())


def as_text(value):
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def glob_regex(pattern):
    parts = []
    for segment in pattern.split("."):
        if segment == "**":
            parts.append(r"[^.]+(?:\.[^.]+)*")
        elif segment == "*":
            parts.append(r"[^.]+")
        else:
            parts.append(re.escape(segment))
    return re.compile(r"\.".join(parts))


def load_known():
    """The classes and the matchers of known.json."""
    document = json.loads(KNOWN.read_text())
    classes = {name: KnownClass(name, entry["deliberate"], entry["readme"])
               for name, entry in document["classes"].items()}
    return classes, [KnownDifference(entry, classes) for entry in document["differences"]]


def readme_bullets():
    """The bullets of README's "Known output differences" list."""
    text = README.read_text()
    start = text.index("Known output differences")
    end = text.index("\n#", start)
    bullets = re.split(r"\n- ", text[start:end])[1:]
    return [bullet.split("\n\n")[0] for bullet in bullets]


# --- Generated events

FIRST = ["alice", "bob", "chen", "dmitri", "eva", "farah", "goran", "hana", "ines", "jonas"]
LAST = ["meyer", "okoye", "sato", "lindqvist", "novak", "reyes", "bauer", "ali"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "gmail.com"]
NEUTRAL_KEYS = ["note", "detail", "info", "value", "comment", "reason", "target", "label"]
SENSITIVE_KEYS = ["password", "secret", "api_key", "auth_token", "passwd", "credentials",
                  "private_key", "session_key", "customer_ref", "csrf_token"]
WORDS = ["order", "payment", "retry", "cache", "queue", "invoice", "worker", "timeout"]


class Generator:
    """Personal data of every kind the built-in rules know, placed in fields, bare or
    inside text, in the shapes SDKs send (objects or pair lists, strings)."""

    def __init__(self, seed):
        self.rng = random.Random(seed)

    def pick(self, items):
        return self.rng.choice(items)

    def digits(self, count):
        return "".join(self.pick("0123456789") for _ in range(count))

    def email(self):
        return f"{self.pick(FIRST)}.{self.pick(LAST)}{self.rng.randint(1, 999)}@" \
               f"{self.pick(DOMAINS)}"

    def ipv4(self):
        return ".".join(str(self.rng.randint(1, 254)) for _ in range(4))

    def ipv6(self):
        groups = [f"{self.rng.randint(0, 0xffff):x}" for _ in range(8)]
        if self.rng.random() < 0.5:
            return ":".join(groups)
        return ":".join(groups[:3]) + "::" + ":".join(groups[6:])

    def luhn(self, body):
        total = 0
        for position, digit in enumerate(reversed(body)):
            value = int(digit) * (2 if position % 2 == 0 else 1)
            total += value - 9 if value > 9 else value
        return body + str((10 - total % 10) % 10)

    def card(self):
        number = self.luhn(self.pick(["4", "51", "37"]) + self.digits(13))
        separator = self.pick(["", " ", "-"])
        return separator.join(number[i:i + 4] for i in range(0, len(number), 4))

    def iban(self):
        return "DE" + self.digits(2) + " " + " ".join(self.digits(4) for _ in range(4)) + \
               " " + self.digits(2)

    def mac(self):
        return ":".join(f"{self.rng.randint(0, 255):02x}" for _ in range(6))

    def uuid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def imei(self):
        return self.luhn("35" + self.digits(12))

    def ssn(self):
        return f"{self.rng.randint(100, 665)}-{self.rng.randint(10, 99)}-" \
               f"{self.rng.randint(1000, 9999)}"

    def token(self, length=24):
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(self.pick(alphabet) for _ in range(length))

    def bearer(self):
        return f"Bearer {self.token(32)}"

    def url_auth(self):
        return f"https://{self.pick(FIRST)}:{self.token(10)}@api.example.com/v1/" \
               f"{self.pick(WORDS)}"

    def user_path(self):
        user = self.pick(FIRST)
        return self.pick([f"/home/{user}/app/config.yaml", f"/Users/{user}/src/main.py",
                          f"C:\\Users\\{user}\\AppData\\app.log"])

    def pem(self):
        return "-----BEGIN PRIVATE KEY-----\n" + self.token(64) + "\n-----END PRIVATE KEY-----"

    def order(self):
        return "ord_" + self.token(20)

    def secret(self):
        maker = self.pick([self.email, self.ipv4, self.ipv6, self.card, self.iban, self.mac,
                           self.uuid, self.imei, self.ssn, self.bearer, self.url_auth,
                           self.user_path, self.pem, self.order, self.token])
        return maker()

    def text(self):
        """A value: bare personal data, or personal data inside a sentence."""
        secret = self.secret()
        return self.pick([
            secret,
            f"{self.pick(WORDS)} failed for {secret}",
            f"{self.pick(WORDS)} {secret} {self.pick(WORDS)} {self.rng.randint(1, 99)}",
            " ".join(self.pick(WORDS) for _ in range(4)),
        ])

    def mapping(self, size, depth=0):
        out = {}
        for _ in range(size):
            key = self.pick(NEUTRAL_KEYS + SENSITIVE_KEYS)
            roll = self.rng.random()
            if roll < 0.15 and depth < 2:
                out[key] = self.mapping(self.rng.randint(1, 3), depth + 1)
            elif roll < 0.25:
                out[key] = [self.text() for _ in range(self.rng.randint(1, 3))]
            elif roll < 0.3:
                out[key] = self.rng.randint(0, 10**6)
            else:
                out[key] = self.text()
        return out

    def maybe_pairs(self, mapping):
        return [[k, v] for k, v in mapping.items()] if self.rng.random() < 0.5 else mapping

    def headers(self):
        headers = {"Host": "api.example.com", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"}
        for name, value in [("Authorization", self.bearer()),
                            ("Cookie", f"sessionid={self.token()}; theme=dark"),
                            ("X-Forwarded-For", f"{self.ipv4()}, {self.ipv4()}"),
                            ("Referer", f"https://shop.example.com/?email={self.email()}"),
                            ("X-Session-Token", self.token()), ("X-Note", self.text())]:
            if self.rng.random() < 0.6:
                headers[name] = value
        return self.maybe_pairs(headers)

    def cookies(self):
        cookies = {"sessionid": self.token(), "theme": "dark", "csrftoken": self.token(),
                   self.pick(NEUTRAL_KEYS): self.text()}
        shape = self.rng.random()
        if shape < 0.3:
            return "; ".join(f"{k}={v}" for k, v in cookies.items() if ";" not in v)
        return self.maybe_pairs(cookies)

    def query(self):
        query = {"q": self.pick(WORDS), "email": self.email(), "token": self.token(),
                 self.pick(NEUTRAL_KEYS): self.secret()}
        if self.rng.random() < 0.4:
            return "&".join(f"{k}={v}" for k, v in query.items() if not set(v) & set("&=#+%"))
        return self.maybe_pairs(query)

    def frame(self):
        frame = {"function": f"handle_{self.pick(WORDS)}",
                 "filename": f"app/{self.pick(WORDS)}.py",
                 "abs_path": self.user_path(), "lineno": self.rng.randint(1, 900),
                 "in_app": True, "vars": self.mapping(self.rng.randint(1, 5))}
        if self.rng.random() < 0.3:
            frame["instruction_addr"] = f"0x{self.rng.getrandbits(40):012x}"
        return frame

    def breadcrumb(self, timestamp):
        crumb = {"timestamp": timestamp, "category": self.pick(["http", "query", "ui.click"]),
                 "message": self.text()}
        if self.rng.random() < 0.5:
            crumb["data"] = {"url": self.pick([self.url_auth(), "https://api.example.com/x"]),
                             "client": self.pick([self.ipv4(), self.ipv6()]),
                             self.pick(NEUTRAL_KEYS + SENSITIVE_KEYS): self.text()}
        return crumb

    def event(self, index):
        timestamp = 1717000000.0 + index
        event = {
            "event_id": f"{self.rng.getrandbits(128):032x}",
            "timestamp": timestamp,
            "platform": self.pick(["python", "node", "java", "cocoa"]),
            "level": self.pick(["error", "warning", "fatal"]),
            "user": {"id": str(self.rng.randint(1, 10**6)), "email": self.email(),
                     "ip_address": self.pick([self.ipv4(), self.ipv6()]),
                     "username": self.pick(FIRST), "data": self.mapping(2)},
            "tags": self.maybe_pairs({"region": "eu-west-1", "customer": self.email(),
                                      "client_ip": self.ipv4(),
                                      self.pick(NEUTRAL_KEYS): self.text()}),
            "request": {"url": f"https://api.example.com/{self.pick(WORDS)}/{index}",
                        "method": "POST", "headers": self.headers(),
                        "query_string": self.query(), "cookies": self.cookies(),
                        "data": self.mapping(self.rng.randint(2, 5)),
                        "env": {"REMOTE_ADDR": self.ipv4(), "SERVER_NAME": "web-1"}},
            "contexts": {"device": {"name": f"{self.pick(FIRST)}'s phone",
                                    "device_unique_identifier": self.uuid()},
                         "os": {"type": "os", "name": "Android"},
                         "support": {"agent_email": self.email(), "ticket": self.text()}},
            "extra": self.mapping(self.rng.randint(2, 6)),
            "breadcrumbs": {"values": [self.breadcrumb(timestamp - 10 + i)
                                       for i in range(self.rng.randint(1, 5))]},
            "exception": {"values": [{"type": "ValueError", "value": self.text(),
                                      "stacktrace": {"frames": [
                                          self.frame()
                                          for _ in range(self.rng.randint(1, 4))]}}]},
        }
        if self.rng.random() < 0.3:
            event["message"] = self.pick([
                self.text(),
                {"message": "lookup %s failed", "params": [self.secret()],
                 "formatted": f"lookup {self.secret()} failed"},
            ])
        if self.rng.random() < 0.2:
            event["sdk"] = {"name": "sentry.python", "version": "2.0.0",
                            "client_ip": self.ipv4()}
        return event


def generated_events(seed=SEED, count=GENERATED_EVENTS):
    generator = Generator(seed)
    return [generator.event(index) for index in range(count)]


# --- Running both sides

def scrub_with_scrubgate(binary, project_config, events):
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch, "project.json")
        project.write_text(json.dumps({"config": project_config}))
        corpus = Path(scratch, "events.jsonl")
        corpus.write_text("".join(json.dumps(event) + "\n" for event in events))
        result = subprocess.run([binary, "scrub", "--project", str(project), "--jsonl",
                                 str(corpus)], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"relay-diff: {binary} scrub failed:\n{result.stderr}")
    scrubbed = [json.loads(line) for line in result.stdout.splitlines()]
    if len(scrubbed) != len(events):
        sys.exit(f"relay-diff: {len(events)} events in, {len(scrubbed)} out")
    return scrubbed


def run_pass(binary, pass_name, events, project_config, relay_config):
    """Scrubs `events` both ways; returns the leaf counts and the differences."""
    ours_out = scrub_with_scrubgate(binary, project_config, events)
    stats = collections.Counter()
    differences = []
    for index, (event, ours) in enumerate(zip(events, ours_out)):
        relay = sentry_relay.pii_strip_event(relay_config, event)
        total, differing = leaf_difference_count(relay, ours)
        stats.update(leaves=total, differing=differing)
        relay, ours = normalize(relay), normalize(ours)
        total, differing = leaf_difference_count(with_meta(relay), with_meta(ours))
        stats.update(normalized_leaves=total, normalized_differing=differing)
        differences += compare(pass_name, index, normalize(event)[0], relay, ours)
    return stats, differences


def percent(part, whole):
    return f"{100 * part / max(whole, 1):.2f}%"


def readme_problems(classes):
    """Classes whose `readme` text is not a bullet of README's list."""
    bullets = {fold(bullet) for bullet in readme_bullets()}
    return [f"{KNOWN.relative_to(REPO)}: the readme text of class {name!r} is not a bullet "
            f"of README's Known output differences" for name, known_class in classes.items()
            if fold(known_class.readme) not in bullets]


def fold(text):
    return " ".join(text.split()).rstrip(";.")


def classify(differences, matchers):
    """(class name or None, difference) for each difference."""
    for difference in differences:
        match = next((m for m in matchers if m.matches(difference)), None)
        yield (match.known_class.name if match else None), difference


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a difference matches no known class")
    parser.add_argument("binary", help="the scrubgate binary")
    parser.add_argument("corpus", help="events, one JSON object a line")
    args = parser.parse_args()

    classes, matchers = load_known()
    problems = readme_problems(classes)
    corpus = [json.loads(line) for line in Path(args.corpus).read_text().splitlines()
              if line.strip()]
    inputs = {"corpus": corpus, f"generated (seed {SEED})": generated_events()}
    seen = collections.Counter()
    examples = {}
    unexplained = []
    for input_name, events in inputs.items():
        for config_name, (project_config, relay_config) in CONFIGS.items():
            pass_name = f"{input_name}, {config_name}"
            stats, differences = run_pass(args.binary, pass_name, events, project_config,
                                          relay_config)
            print(f"== {pass_name}: {len(events)} events\n"
                  f"   leaves that differ as written:  {stats['differing']:6} of "
                  f"{stats['leaves']:6} ({percent(stats['differing'], stats['leaves'])})\n"
                  f"   after normalization:            {stats['normalized_differing']:6} of "
                  f"{stats['normalized_leaves']:6} "
                  f"({percent(stats['normalized_differing'], stats['normalized_leaves'])})"
                  f"\n   fields that differ: {len(differences)}")
            in_pass = collections.Counter()
            for name, difference in classify(differences, matchers):
                if name is None:
                    unexplained.append(difference)
                    name = "UNEXPLAINED"
                examples.setdefault(name, difference)
                in_pass[name] += 1
            for name, count in in_pass.most_common():
                note = "" if name not in classes else \
                    " (deliberate)" if classes[name].deliberate else " (not deliberate)"
                print(f"   {count:6} {name}{note}")
            seen.update(in_pass)

    unseen = [name for name in classes if name not in seen]
    if unseen:
        print(f"\nnote: no pass showed the known classes {', '.join(unseen)}")
    if not args.check:
        print("\nAn example of each class:")
        for name, difference in examples.items():
            if name != "UNEXPLAINED":
                print(f"  [{name}] {difference.kind}: {difference.describe()}")
    if unexplained:
        print(f"\n{len(unexplained)} differences match no class of "
              f"{KNOWN.relative_to(REPO)}:")
        for difference in unexplained[:50]:
            print(f"  {difference.kind}: {difference.describe()}")
        if len(unexplained) > 50:
            print(f"  ... and {len(unexplained) - 50} more")
    for problem in problems:
        print(problem)
    if unexplained or problems:
        if args.check:
            sys.exit(1)
    elif args.check:
        print("\nrelay-diff: every difference is of a known class that README lists")


if __name__ == "__main__":
    main()
