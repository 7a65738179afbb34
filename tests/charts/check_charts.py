#!/usr/bin/env python3
"""Static checks of the Helm charts in charts/ (Helm cannot be installed here).

For each chart: Chart.yaml and values.yaml parse and carry the required fields; every
.Values path a template reads exists in values.yaml and every value is read; the chart
is rendered, with its defaults and with each ci/*-values.yaml, by a renderer of exactly
the template subset the charts use (gotemplate.py; anything else is refused with its file
and line, so a construct this script cannot check fails the check instead of passing
unseen); every rendered document parses as YAML and every object has the fields its kind
requires.

Usage: check_charts.py [--show] [CHART_DIR...]   (default: every chart under charts/)
--show prints every rendering, as `helm template` would (with Release.Name "rel",
Release.Namespace "edge", and generated secrets from a fixed seed).
Exit status 0 when every chart passes, 1 with one line per problem otherwise.
"""
import base64
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import yaml

from gotemplate import Renderer, TemplateError, lex, parse  # noqa: F401 (tests use them)

VALUES_REF_RE = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


# ---------------------------------------------------------------- charts

class UniqueKeyLoader(yaml.SafeLoader):
    """Refuses duplicate keys (PyYAML keeps the last one; Kubernetes would complain)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key(s) {sorted(dup)}",
                                                    node.start_mark)
        return super().construct_mapping(node, deep)


def load_yaml(path, problems):
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=UniqueKeyLoader)
    except (OSError, yaml.YAMLError) as e:
        problems.append(f"{path}: does not parse: {e}")
        return None


def merge(base, over):
    """Helm's coalescing: maps merge key by key, null deletes, anything else replaces."""
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def leaf_paths(d, prefix=()):
    """The paths (tuples of keys) to every leaf; an empty map is a leaf."""
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from leaf_paths(v, prefix + (k,))
        else:
            yield prefix + (k,)


def has_path(d, path):
    for part in path.split(".") if isinstance(path, str) else path:
        if not isinstance(d, dict) or part not in d:
            return False
        d = d[part]
    return True


def check_chart_files(chart, problems):
    """Chart.yaml and values.yaml: parse and required fields. Returns (meta, values)."""
    name = os.path.basename(os.path.normpath(chart))
    meta = load_yaml(os.path.join(chart, "Chart.yaml"), problems)
    values = load_yaml(os.path.join(chart, "values.yaml"), problems)
    where = os.path.join(chart, "Chart.yaml")
    if not isinstance(meta, dict):
        problems.append(f"{where}: expected a mapping")
        meta = None
    else:
        if meta.get("apiVersion") != "v2":
            problems.append(f"{where}: apiVersion must be v2 (Helm 3), not {meta.get('apiVersion')!r}")
        if meta.get("name") != name:
            problems.append(f"{where}: name {meta.get('name')!r} must be the directory's, {name!r}")
        if not re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?",
                            str(meta.get("version", ""))):
            problems.append(f"{where}: version {meta.get('version')!r} is not SemVer (e.g. 0.1.0)")
        if not isinstance(meta.get("appVersion"), str) or not meta["appVersion"]:
            problems.append(f"{where}: appVersion is required, as a quoted string "
                            f"(got {meta.get('appVersion')!r})")
        if meta.get("type", "application") not in ("application", "library"):
            problems.append(f"{where}: type must be application or library")
    if not isinstance(values, dict):
        problems.append(f"{os.path.join(chart, 'values.yaml')}: expected a mapping of values")
        values = None
    return meta, values


def load_templates(chart, problems):
    """Parses templates/: returns ({file: nodes}, defines, [(file, line, .Values path)])."""
    tdir = os.path.join(chart, "templates")
    files, defines, refs = {}, {}, []
    for fn in sorted(os.listdir(tdir)) if os.path.isdir(tdir) else []:
        path = os.path.join(tdir, fn)
        if not fn.endswith((".yaml", ".yml", ".tpl")):
            problems.append(f"{path}: not a template this check renders (.yaml, .yml, .tpl)")
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            for kind, body, line in lex(text, path):
                if kind == "action":
                    refs += [(path, line, m.group(1)[1:]) for m in VALUES_REF_RE.finditer(body)]
            nodes = parse(text, path, defines)
        except TemplateError as e:
            problems.append(str(e))
            continue
        if fn.startswith("_"):
            if any(n[0] != "text" or n[1].strip() for n in nodes):
                problems.append(f"{path}: a partial holds only define blocks")
        else:
            files[path] = nodes
    return files, defines, refs


def check_chart(chart):
    """Every check on one chart directory; returns the problems (empty: the chart passes)."""
    problems = []
    meta, values = check_chart_files(chart, problems)
    if problems:
        meta = None  # no rendering with a broken Chart.yaml
    try:
        files, defines, refs = load_templates(chart, problems)
    except TemplateError as e:
        return problems + [str(e)]
    if not files:
        problems.append(f"{chart}/templates: no templates")
    if meta is None or values is None:
        return problems
    for path, line, ref in refs:
        if not has_path(values, ref):
            problems.append(f"{path}:{line}: .Values.{ref} is not in values.yaml")
    read = {ref for _, _, ref in refs}
    for leaf in leaf_paths(values):
        dotted = ".".join(map(str, leaf))
        if not any(dotted == r or dotted.startswith(r + ".") for r in read):
            problems.append(f"{chart}/values.yaml: {dotted} is read by no template")
    runs = [("defaults", values)]
    ci = os.path.join(chart, "ci")
    for fn in sorted(os.listdir(ci)) if os.path.isdir(ci) else []:
        over = load_yaml(os.path.join(ci, fn), problems)
        if not isinstance(over, dict):
            problems.append(f"{ci}/{fn}: expected a mapping of values")
            continue
        for leaf in leaf_paths(over):
            # Under a map that is empty by default (annotations, nodeSelector) any key goes.
            free = any(has_path(values, leaf[:i]) and _get(values, leaf[:i]) == {}
                       for i in range(1, len(leaf)))
            if not has_path(values, leaf) and not free:
                problems.append(f"{ci}/{fn}: {'.'.join(map(str, leaf))} is not in values.yaml "
                                "(a typo renders nothing)")
        runs.append((f"ci/{fn}", merge(values, over)))
    for label, vals in runs:
        problems += render_and_check(meta, vals, files, defines, label)
    return problems


def _get(d, path):
    for part in path:
        d = d[part]
    return d


def render_and_check(meta, vals, files, defines, label):
    problems, objects = [], []
    root = {"Values": vals,
            "Release": {"Name": "rel", "Namespace": "edge", "Service": "Helm",
                        "IsInstall": True, "IsUpgrade": False},
            "Chart": {"Name": meta["name"], "Version": meta["version"],
                      "AppVersion": meta["appVersion"], "Description": meta.get("description")}}
    renderer = Renderer(defines)
    for path, nodes in files.items():
        try:
            text = renderer.render(nodes, root, {"$": root})
        except TemplateError as e:
            problems.append(f"{e} (values: {label})")
            continue
        if SHOW:
            print(f"# Source: {path} (values: {label})\n{text}\n---")
        for i, doc in enumerate(re.split(r"^---[ \t]*$", text, flags=re.M)):
            try:
                obj = yaml.load(doc, Loader=UniqueKeyLoader)
            except yaml.YAMLError as e:
                numbered = "\n".join(f"  {n + 1:3} {l}" for n, l in enumerate(doc.split("\n")))
                problems.append(f"{path} (values: {label}): rendered document {i + 1} is not "
                                f"valid YAML: {e}\n{numbered}")
                continue
            if obj is not None:
                objects.append((f"{path} (values: {label})", obj))
    if not problems:
        external = {v for v in _strings(vals)}  # names of objects the user provides
        try:
            problems += check_objects(objects, root, external)
        except (AttributeError, TypeError, KeyError) as e:  # a field of an unexpected type
            problems.append(f"{meta['name']} (values: {label}): an object has a field of an "
                            f"unexpected type ({type(e).__name__}: {e}); see --show")
    return problems


def _strings(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from _strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from _strings(x)
    elif isinstance(v, str):
        yield v


# ---------------------------------------------------------------- object checks

DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def check_objects(objects, root, external):
    problems = []
    by_kind = {}
    for where, obj in objects:
        if not isinstance(obj, dict):
            problems.append(f"{where}: a document is a {type(obj).__name__}, not an object")
            continue
        for field in ("apiVersion", "kind"):
            if not isinstance(obj.get(field), str) or not obj.get(field):
                problems.append(f"{where}: no {field}")
        name = (obj.get("metadata") or {}).get("name")
        kind = obj.get("kind")
        if not isinstance(name, str) or not DNS_SUBDOMAIN.fullmatch(name) or len(name) > 253:
            problems.append(f"{where}: {kind} metadata.name {name!r} is not a DNS-1123 name")
            continue
        if kind == "Service" and (len(name) > 63 or not DNS_LABEL.fullmatch(name)):
            problems.append(f"{where}: Service name {name!r}: at most 63 characters, no dots")
        if name in by_kind.setdefault(kind, {}):
            problems.append(f"{where}: a second {kind} named {name!r}")
        by_kind[kind][name] = (where, obj)
    chart = f"{root['Chart']['Name']}-{root['Chart']['Version']}"
    want = {"app.kubernetes.io/instance": root["Release"]["Name"], "helm.sh/chart": chart,
            "app.kubernetes.io/managed-by": "Helm"}
    names = set()
    for kind, objs in by_kind.items():
        for name, (where, obj) in objs.items():
            labels = obj["metadata"].get("labels") or {}
            problems += check_labels(f"{where}: {kind} {name}", labels, want)
            names.add(labels.get("app.kubernetes.io/name"))
            check = {"Service": check_service, "ConfigMap": check_data,
                     "Secret": check_data}.get(kind)
            if kind in WORKLOADS:
                problems += check_workload(f"{where}: {kind} {name}", obj, by_kind, external, want)
            elif check:
                problems += check(f"{where}: {kind} {name}", obj, by_kind)
    if len(names) > 1:
        problems.append(f"{root['Chart']['Name']}: objects disagree on app.kubernetes.io/name: "
                        f"{sorted(map(str, names))}")
    return problems


def check_labels(what, labels, want):
    problems = []
    if not isinstance(labels, dict) or "app.kubernetes.io/name" not in labels:
        return [f"{what}: no app.kubernetes.io/name label"]
    for k, v in want.items():
        if labels.get(k) != v:
            problems.append(f"{what}: label {k} is {labels.get(k)!r}, expected {v!r}")
    for k, v in labels.items():
        if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.fullmatch(v):
            problems.append(f"{what}: label {k}: {v!r} is not a label value (a string of at most "
                            "63 alphanumerics, '-', '_', '.')")
    return problems


def pod_templates(by_kind):
    for kind in WORKLOADS:
        for name, (_, obj) in by_kind.get(kind, {}).items():
            tpl = (obj.get("spec") or {}).get("template") or {}
            yield f"{kind} {name}", (tpl.get("metadata") or {}).get("labels") or {}, tpl.get("spec") or {}


def check_workload(what, obj, by_kind, external, want):
    problems = []
    spec = obj.get("spec") or {}
    sel = (spec.get("selector") or {}).get("matchLabels")
    tpl = spec.get("template") or {}
    labels = (tpl.get("metadata") or {}).get("labels") or {}
    if not isinstance(sel, dict) or not sel:
        problems.append(f"{what}: spec.selector.matchLabels is empty")
    elif any(labels.get(k) != v for k, v in sel.items()):
        problems.append(f"{what}: selector {sel} does not match the pod template's labels {labels}")
    problems += check_labels(f"{what} pod template", labels, want)
    if "replicas" in spec and (not isinstance(spec["replicas"], int) or spec["replicas"] < 0):
        problems.append(f"{what}: replicas {spec['replicas']!r} is not a count")
    pod = tpl.get("spec") or {}
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        return problems + [f"{what}: no containers"]
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    claims = {c.get("metadata", {}).get("name") for c in spec.get("volumeClaimTemplates") or []}
    if obj["kind"] == "StatefulSet":
        svc = by_kind.get("Service", {}).get(spec.get("serviceName"))
        if not svc or (svc[1].get("spec") or {}).get("clusterIP") != "None":
            problems.append(f"{what}: serviceName {spec.get('serviceName')!r} is not a headless "
                            "Service of the chart")
        for c in spec.get("volumeClaimTemplates") or []:
            cs = c.get("spec") or {}
            if not cs.get("accessModes") or not cs.get("resources", {}).get("requests", {}).get("storage"):
                problems.append(f"{what}: volumeClaimTemplate {c.get('metadata', {}).get('name')!r} "
                                "needs accessModes and resources.requests.storage")

    def resolves(kind, ref):
        if ref in by_kind.get(kind, {}) or ref in external:
            return True
        problems.append(f"{what}: refers to {kind} {ref!r}, which the chart does not render")
        return False

    for v in volumes.values():
        if "configMap" in v:
            resolves("ConfigMap", v["configMap"].get("name"))
        if "secret" in v:
            resolves("Secret", v["secret"].get("secretName"))
        for src in (v.get("projected") or {}).get("sources") or []:
            for kind, key in (("configMap", "ConfigMap"), ("secret", "Secret")):
                if kind in src:
                    resolves(key, src[kind].get("name"))
    seen = set()
    for c in containers:
        cname = c.get("name")
        if not isinstance(cname, str) or not DNS_LABEL.fullmatch(cname) or cname in seen:
            problems.append(f"{what}: container name {cname!r} missing, invalid or repeated")
        seen.add(cname)
        image = c.get("image")
        if not isinstance(image, str) or not image or " " in image or image.endswith(":"):
            problems.append(f"{what}: container {cname}: image {image!r} is not an image reference")
        ports = c.get("ports") or []
        pnames = {p.get("name") for p in ports if p.get("name")}
        pnums = {p.get("containerPort") for p in ports}
        for p in ports:
            if not isinstance(p.get("containerPort"), int) or not 0 < p["containerPort"] < 65536:
                problems.append(f"{what}: container {cname}: containerPort {p.get('containerPort')!r}")
            if p.get("name") and len(p["name"]) > 15:
                problems.append(f"{what}: container {cname}: port name {p['name']!r} over 15 characters")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            pr = c.get(probe)
            if pr is None:
                continue
            handlers = [h for h in ("httpGet", "tcpSocket", "exec", "grpc") if h in pr]
            if len(handlers) != 1:
                problems.append(f"{what}: container {cname}: {probe} needs exactly one handler")
                continue
            port = pr[handlers[0]].get("port") if handlers[0] in ("httpGet", "tcpSocket") else None
            if port is not None and port not in (pnames if isinstance(port, str) else pnums):
                problems.append(f"{what}: container {cname}: {probe} port {port!r} is not one of "
                                f"its ports {sorted(map(str, pnames | pnums))}")
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes and m.get("name") not in claims:
                problems.append(f"{what}: container {cname}: volumeMount {m.get('name')!r} has no volume")
        env = {e.get("name") for e in c.get("env") or []}
        checkable = True
        for ef in c.get("envFrom") or []:
            ref = (ef.get("configMapRef") or {}).get("name")
            if ref and resolves("ConfigMap", ref) and ref in by_kind.get("ConfigMap", {}):
                env |= set((by_kind["ConfigMap"][ref][1].get("data") or {}).keys())
            else:
                checkable = False
        for arg in (c.get("command") or []) + (c.get("args") or []):
            for var in VAR_REF.findall(str(arg)):
                if checkable and var not in env:
                    problems.append(f"{what}: container {cname}: $({var}) in its command line "
                                    "is no environment variable of the container")
    return problems


def check_service(what, obj, by_kind):
    problems = []
    spec = obj.get("spec") or {}
    ports = spec.get("ports")
    if not isinstance(ports, list) or not ports:
        return [f"{what}: spec.ports is empty"]
    sel = spec.get("selector") or {}
    pods = [(n, spec_) for n, labels, spec_ in pod_templates(by_kind)
            if sel and all(labels.get(k) == v for k, v in sel.items())]
    if not pods:
        problems.append(f"{what}: selector {sel} selects no pod of the chart")
    names = [p.get("name") for p in ports]
    if len(ports) > 1 and (None in names or len(set(names)) != len(names)):
        problems.append(f"{what}: several ports need distinct names")
    for p in ports:
        if not isinstance(p.get("port"), int) or not 0 < p["port"] < 65536:
            problems.append(f"{what}: port {p.get('port')!r} is not a port number")
        if "nodePort" in p and spec.get("type") not in ("NodePort", "LoadBalancer"):
            problems.append(f"{what}: nodePort on a Service of type {spec.get('type', 'ClusterIP')}")
        target = p.get("targetPort", p.get("port"))
        for pod, pspec in pods:
            declared = {(q.get("name") if isinstance(target, str) else q.get("containerPort"))
                        for c in pspec.get("containers") or [] for q in c.get("ports") or []}
            if target not in declared:
                problems.append(f"{what}: targetPort {target!r} is no container port of {pod}")
    return problems


def check_data(what, obj, by_kind):
    data = obj.get("data")
    if obj["kind"] == "Secret" and data is None:
        data = obj.get("stringData")
    if not isinstance(data, dict) or not data:
        return [f"{what}: no data"]
    problems = []
    for k, v in data.items():
        if not isinstance(v, str):
            problems.append(f"{what}: data.{k} is a {type(v).__name__}; quote it")
        elif k.endswith((".yaml", ".yml")) and obj["kind"] == "ConfigMap":
            try:  # a config file for the program the pod runs
                yaml.load(v, Loader=UniqueKeyLoader)
            except yaml.YAMLError as e:
                problems.append(f"{what}: data.{k} is not valid YAML: {e}")
        elif obj["kind"] == "Secret" and "data" in obj:
            try:
                base64.b64decode(v, validate=True)
            except ValueError:
                problems.append(f"{what}: data.{k} is not base64")
    return problems


SHOW = False  # --show: print what is rendered


def main(argv):
    global SHOW
    SHOW = "--show" in argv
    argv = [a for a in argv if a != "--show"]
    here = os.path.dirname(os.path.abspath(__file__))
    charts_dir = os.path.join(here, "..", "..", "charts")
    charts = argv or sorted(os.path.join(charts_dir, d) for d in os.listdir(charts_dir)
                            if os.path.isfile(os.path.join(charts_dir, d, "Chart.yaml")))
    if not charts:
        print(f"check_charts: no charts under {charts_dir}", file=sys.stderr)
        return 1
    failed = False
    for chart in charts:
        problems = check_chart(os.path.normpath(chart))
        for p in problems:
            print(p, file=sys.stderr)
        print(f"{'FAIL' if problems else 'ok'} {os.path.normpath(chart)}"
              f"{f' ({len(problems)} problem(s))' if problems else ''}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
