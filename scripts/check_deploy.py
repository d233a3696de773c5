#!/usr/bin/env python3
"""Helpers of scripts/check-deploy.sh (run with the .deploy-venv Python, which has PyYAML).

    check_deploy.py render DIR            print the kustomize build of DIR (see below)
    check_deploy.py same A.yaml B.yaml    exit 1 unless the two renders hold the same objects
    check_deploy.py split RENDER OUTDIR   write each object of RENDER to its own file
    check_deploy.py consistency BASE.yaml OVERLAY.yaml
                                          cross-checks between manifests, config, alerts

`render` is a small kustomize for machines without kubectl or kustomize. It implements
exactly what deploy/kubernetes uses: `resources` (files and directories), `namespace`,
`configMapGenerator` (files, literals; options.labels, options.annotations,
options.disableNameSuffixHash; kustomize's content-hash suffix, with references from pod
templates renamed), and `patches` (inline or path; a strategic-merge patch, including
`$patch: delete`, or a JSON 6902 patch with a target), and `images` (newName, newTag,
digest). Anything else is an error, so it
never renders something kustomize would render differently. When kubectl is there,
check-deploy.sh renders with both and requires the same objects.
"""

import copy
import hashlib
import json
import os
import re
import sys
import tomllib

import yaml

CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
}
# kustomize's default ("legacy") output order.
ORDER_FIRST = [
    "Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition",
    "ServiceAccount", "PodSecurityPolicy", "Role", "ClusterRole", "RoleBinding",
    "ClusterRoleBinding", "ConfigMap", "Secret", "Endpoints", "Service", "LimitRange",
    "PriorityClass", "PersistentVolume", "PersistentVolumeClaim", "Deployment",
    "StatefulSet", "CronJob", "PodDisruptionBudget",
]
ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]
KNOWN_KEYS = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator", "patches", "images"}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def fail(message):
    print(f"check_deploy.py: {message}", file=sys.stderr)
    sys.exit(1)


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# --- kustomize's ConfigMap name hash (api/hasher) ---------------------------------------

def go_json(value):
    """json.Marshal of Go: sorted keys, no spaces, HTML characters escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def configmap_hash(cm):
    # kustomize v5 looks the name up as the single field "metadata/name", which finds
    # nothing: its hash is that of an empty name (as kubectl 1.32's kustomize v5.5 shows).
    encoded = {"kind": "ConfigMap", "name": "", "data": cm.get("data", {})}
    if cm.get("binaryData"):
        encoded["binaryData"] = cm["binaryData"]
    digest = hashlib.sha256(go_json(encoded).encode("utf-8")).hexdigest()[:10]
    return digest.translate(str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"}))


# --- rendering ---------------------------------------------------------------------------

def key_of(obj):
    md = obj.get("metadata", {})
    return (obj.get("kind"), md.get("namespace"), md.get("name"))


def json_pointer(path):
    if not path.startswith("/"):
        fail(f"JSON patch path {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def apply_json6902(obj, ops):
    for op in ops:
        parts = json_pointer(op["path"])
        parent = obj
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, op["value"])
            elif kind == "replace":
                parent[index] = op["value"]
            elif kind == "remove":
                del parent[index]
            else:
                fail(f"unsupported JSON patch op {kind!r}")
        else:
            if kind in ("add", "replace"):
                if kind == "replace" and last not in parent:
                    fail(f"JSON patch replaces a missing path {op['path']!r}")
                parent[last] = op["value"]
            elif kind == "remove":
                del parent[last]
            else:
                fail(f"unsupported JSON patch op {kind!r}")


def merge(target, patch):
    """A strategic-merge patch limited to maps: lists in a patch are an error here."""
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(target.get(k), dict):
            merge(target[k], v)
        elif isinstance(v, list):
            fail(f"strategic-merge patch with a list at {k!r} is not implemented here")
        elif v is None:
            target.pop(k, None)
        else:
            target[k] = v


def matches(obj, target):
    api = obj.get("apiVersion", "")
    group, _, version = api.rpartition("/")
    checks = {
        "group": group, "version": version, "kind": obj.get("kind"),
        "name": obj["metadata"].get("name"), "namespace": obj["metadata"].get("namespace"),
    }
    for k, v in target.items():
        if k not in checks:
            fail(f"patch target field {k!r} is not implemented here")
        if checks[k] != v:
            return False
    return True


def render(directory):
    kfile = os.path.join(directory, "kustomization.yaml")
    with open(kfile, encoding="utf-8") as f:
        k = yaml.safe_load(f)
    unknown = set(k) - KNOWN_KEYS
    if unknown:
        fail(f"{kfile}: {sorted(unknown)} not implemented by this renderer")

    objects = []
    # Generated names a lower layer hashed: references to them are renamed here too.
    renames = {}
    for res in k.get("resources", []):
        path = os.path.normpath(os.path.join(directory, res))
        if os.path.isdir(path):
            sub_objects, sub_renames = render(path)
            objects.extend(sub_objects)
            renames.update(sub_renames)
        else:
            objects.extend(load_docs(path))

    for gen in k.get("configMapGenerator", []):
        extra = set(gen) - {"name", "files", "literals", "options"}
        if extra:
            fail(f"{kfile}: configMapGenerator fields {sorted(extra)} not implemented")
        data = {}
        for item in gen.get("files", []):
            key, _, rel = item.rpartition("=")
            rel = rel or item
            with open(os.path.join(directory, rel), encoding="utf-8") as f:
                data[key or os.path.basename(rel)] = f.read()
        for lit in gen.get("literals", []):
            key, _, value = lit.partition("=")
            data[key] = value
        options = gen.get("options", {})
        extra = set(options) - {"labels", "annotations", "disableNameSuffixHash"}
        if extra:
            fail(f"{kfile}: generator options {sorted(extra)} not implemented")
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]},
              "data": data}
        if options.get("labels"):
            cm["metadata"]["labels"] = dict(options["labels"])
        if options.get("annotations"):
            cm["metadata"]["annotations"] = dict(options["annotations"])
        if not options.get("disableNameSuffixHash"):
            hashed = f"{gen['name']}-{configmap_hash(cm)}"
            renames[gen["name"]] = hashed
            cm["metadata"]["name"] = hashed
        objects.append(cm)

    for obj in objects:
        if obj.get("kind") in POD_TEMPLATE_KINDS:
            rename_configmaps(obj["spec"]["template"]["spec"], renames)

    for patch in k.get("patches", []):
        extra = set(patch) - {"patch", "path", "target"}
        if extra:
            fail(f"{kfile}: patch fields {sorted(extra)} not implemented")
        if "path" in patch:
            with open(os.path.join(directory, patch["path"]), encoding="utf-8") as f:
                body = yaml.safe_load(f)
        else:
            body = yaml.safe_load(patch["patch"])
        if isinstance(body, list):
            targets = [o for o in objects if matches(o, patch.get("target", {}))]
            if "target" not in patch or not targets:
                fail(f"{kfile}: JSON 6902 patch without a matching target")
            for obj in targets:
                apply_json6902(obj, body)
            continue
        delete = body.pop("$patch", None) == "delete"
        target = patch.get("target") or {"kind": body["kind"], "name": body["metadata"]["name"]}
        hits = [o for o in objects if matches(o, target)]
        if not hits:
            fail(f"{kfile}: patch target {target} matches nothing")
        for obj in hits:
            if delete:
                objects.remove(obj)
            else:
                merge(obj, {k2: v for k2, v in body.items() if k2 not in ("apiVersion", "kind")})

    for image in k.get("images", []):
        extra = set(image) - {"name", "newName", "newTag", "digest"}
        if extra:
            fail(f"{kfile}: images fields {sorted(extra)} not implemented")
        for obj in objects:
            if obj.get("kind") in POD_TEMPLATE_KINDS:
                spec = obj["spec"]["template"]["spec"]
                for c in spec.get("containers", []) + spec.get("initContainers", []):
                    c["image"] = set_image(c["image"], image)

    # As kustomize: patches first, then the namespace.
    if "namespace" in k:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = k["namespace"]

    keys = [key_of(o) for o in objects]
    dupes = {x for x in keys if keys.count(x) > 1}
    if dupes:
        fail(f"{kfile}: duplicate objects {sorted(map(str, dupes))}")
    return objects, renames


def set_image(ref, image):
    name, tag, digest = ref, None, None
    if "@" in name:
        name, digest = name.split("@", 1)
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    if name != image["name"]:
        return ref
    name = image.get("newName", name)
    if "digest" in image:
        return f"{name}@{image['digest']}"
    tag = image.get("newTag", tag)
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest and "newTag" not in image else "")


def rename_configmaps(pod_spec, renames):
    for vol in pod_spec.get("volumes", []):
        if "configMap" in vol:
            vol["configMap"]["name"] = renames.get(vol["configMap"]["name"], vol["configMap"]["name"])
        for src in vol.get("projected", {}).get("sources", []):
            if "configMap" in src:
                src["configMap"]["name"] = renames.get(src["configMap"]["name"], src["configMap"]["name"])
    for c in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
        for env in c.get("env", []):
            ref = env.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                ref["name"] = renames.get(ref["name"], ref["name"])
        for env in c.get("envFrom", []):
            ref = env.get("configMapRef")
            if ref:
                ref["name"] = renames.get(ref["name"], ref["name"])


def order(objects):
    def rank(obj):
        kind = obj["kind"]
        if kind in ORDER_FIRST:
            r = ORDER_FIRST.index(kind)
        elif kind in ORDER_LAST:
            r = len(ORDER_FIRST) + 1 + ORDER_LAST.index(kind)
        else:
            r = len(ORDER_FIRST)
        md = obj["metadata"]
        return (r, obj.get("apiVersion", ""), kind, md.get("namespace") or "", md["name"])
    return sorted(objects, key=rank)


# --- checks --------------------------------------------------------------------------------

def same(a, b):
    da = {key_of(o): o for o in load_docs(a)}
    db = {key_of(o): o for o in load_docs(b)}
    if da.keys() != db.keys():
        fail(f"{a} and {b} hold different objects: {sorted(map(str, da.keys() ^ db.keys()))}")
    for k in da:
        if da[k] != db[k]:
            fail(f"{k} differs between {a} and {b}")
    print(f"the Python render matches kubectl kustomize: {len(da)} objects")


def split(render_file, outdir):
    os.makedirs(outdir, exist_ok=True)
    for i, obj in enumerate(load_docs(render_file)):
        kind, _, name = key_of(obj)
        path = os.path.join(outdir, f"{i:02d}-{kind.lower()}-{name}.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(obj, f, sort_keys=False)


def parse_size(text):
    m = re.fullmatch(r"(\d+)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB|Ki|Mi|Gi|Ti|K|M|G|T)?", str(text).strip())
    if not m:
        fail(f"cannot read size {text!r}")
    units = {None: 1, "B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
             "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    return int(m.group(1)) * units[m.group(2)]


def parse_duration_secs(text):
    total = 0.0
    for n, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        total += float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def flatten(table, prefix=""):
    for k, v in table.items():
        if isinstance(v, dict):
            yield from flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def consistency(base_file, overlay_file):
    root = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
    problems = []
    base = {key_of(o)[0::2]: o for o in load_docs(base_file)}
    overlay = {key_of(o)[0::2]: o for o in load_docs(overlay_file)}
    deploy = base[("Deployment", "scrubgate")]
    sts = overlay[("StatefulSet", "scrubgate")]
    if ("Deployment", "scrubgate") in overlay:
        problems.append("the overlay still has the Deployment")

    # The StatefulSet's pod template is the Deployment's, but for the data volume.
    expected = copy.deepcopy(deploy["spec"]["template"])
    expected["spec"]["volumes"] = [v for v in expected["spec"]["volumes"] if v["name"] != "data"]
    if sts["spec"]["template"] != expected:
        problems.append("overlays/statefulset/statefulset.yaml: its pod template differs from "
                        "base/deployment.yaml's (other than the data volume)")
    claims = [c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates", [])]
    if claims != ["data"]:
        problems.append(f"the StatefulSet's volumeClaimTemplates are {claims}, expected [data]")
    hpa = overlay[("HorizontalPodAutoscaler", "scrubgate")]["spec"]["scaleTargetRef"]
    if hpa["kind"] != "StatefulSet":
        problems.append("the overlay's autoscaler does not scale the StatefulSet")

    # Every key of scrubgate.toml is one of the README's configuration keys.
    readme = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", readme, re.M))
    toml_path = os.path.join(root, "deploy/kubernetes/base/scrubgate.toml")
    with open(toml_path, "rb") as f:
        config = tomllib.load(f)
    keys = dict(flatten(config))
    for key in keys:
        if key not in documented:
            problems.append(f"{toml_path}: {key} is not a key of README's configuration table")

    # Sizes and times that depend on each other.
    max_bytes = parse_size(keys.get("spool.max_bytes", "1GiB"))
    data_vol = next(v for v in deploy["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    size_limit = parse_size(data_vol["emptyDir"]["sizeLimit"])
    claim = parse_size(sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"])
    for what, size in (("the data emptyDir's sizeLimit", size_limit), ("the data claim", claim)):
        if max_bytes * 3 > size * 2:
            problems.append(f"spool.max_bytes ({max_bytes}) leaves too little room in {what} "
                            f"({size}): keep it under two thirds")
    grace = deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    pre_stop = deploy["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    needed = parse_duration_secs(keys.get("server.shutdown_grace", "10s")) + float(pre_stop[-1])
    if grace <= needed:
        problems.append(f"terminationGracePeriodSeconds {grace} is not above the preStop sleep "
                        f"plus server.shutdown_grace ({needed:g}s)")

    # The alert's spool threshold is half of spool.max_bytes; every alert is tested.
    with open(os.path.join(root, "config/prometheus/alerts.yml"), encoding="utf-8") as f:
        rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"] if "alert" in r]
    half = next(r for r in rules if r["alert"] == "ScrubgateSpoolHalfFull")
    if str(max_bytes) not in half["expr"]:
        problems.append(f"ScrubgateSpoolHalfFull does not use spool.max_bytes ({max_bytes}): {half['expr']}")
    with open(os.path.join(root, "config/prometheus/alerts_test.yml"), encoding="utf-8") as f:
        tests = yaml.safe_load(f)["tests"]
    cases = [c for t in tests for c in t.get("alert_rule_test", [])]
    for r in rules:
        name = r["alert"]
        for key in ("summary", "runbook"):
            if key not in r.get("annotations", {}):
                problems.append(f"alert {name} has no {key} annotation")
        mine = [c for c in cases if c["alertname"] == name]
        if not any(c.get("exp_alerts") for c in mine):
            problems.append(f"alert {name}: no test where it fires")
        if not any(not c.get("exp_alerts") for c in mine):
            problems.append(f"alert {name}: no test where it does not fire")
        anchor = r["annotations"].get("runbook", "").partition("#")[2]
        if f'<a id="{anchor}"></a>' not in open(os.path.join(root, "deploy/README.md"), encoding="utf-8").read():
            problems.append(f"alert {name}: deploy/README.md has no runbook row with id {anchor!r}")

    if problems:
        for p in problems:
            print(f"consistency: {p}", file=sys.stderr)
        sys.exit(1)
    print(f"consistency: ok ({len(keys)} config keys documented, {len(rules)} alerts tested "
          "firing and not firing, StatefulSet template = Deployment template)")


def main(argv):
    if len(argv) == 3 and argv[1] == "render":
        docs = order(render(argv[2])[0])
        sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
    elif len(argv) == 4 and argv[1] == "same":
        same(argv[2], argv[3])
    elif len(argv) == 4 and argv[1] == "split":
        split(argv[2], argv[3])
    elif len(argv) == 4 and argv[1] == "consistency":
        consistency(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
