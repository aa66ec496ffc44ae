#!/usr/bin/env bash
# Validate the Kubernetes manifests under deploy/kubernetes/, strictly and offline.
#
# Usage: scripts/validate-manifests.sh [DIR_OR_FILE...]   (default: deploy/kubernetes)
#
# For every *.yaml / *.yml file (kustomization.yaml files excepted, see below):
#   1. kubernetes-validate --strict against each pinned Kubernetes version, using
#      the JSON schemas shipped inside the package (no network): unknown fields,
#      wrong types and missing required fields fail. A kind or apiVersion with
#      no schema (kubernetes-validate only warns) fails too.
#   2. local checks: YAML parses with no duplicate keys; every document has
#      apiVersion, kind and metadata.name; ConfigMap *.json data parses, and
#      proxies.json has the toxi -config (populate) shape; within one folder,
#      Service selectors match a workload, named ports used by probes and
#      Services exist, and referenced ServiceAccounts and ConfigMaps exist.
# kustomization.yaml files are not Kubernetes objects: they are checked to be
# kind Kustomization with every listed resource present.
#
# Environment:
#   KUBERNETES_VALIDATE_VERSION  PyPI version to install (default 1.37.0)
#   KUBE_VERSIONS                Kubernetes versions to validate against
#                                (default "1.29.0 1.37.0")
#   TOXI_KV_VENV                 venv location (default ${TMPDIR:-/tmp}/toxi-kubernetes-validate-<version>)
#
# Exit status: 0 all valid; 1 a manifest is invalid; 2 the validator could not
# be installed or run.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kv_version=${KUBERNETES_VALIDATE_VERSION:-1.37.0}
kube_versions=${KUBE_VERSIONS:-1.29.0 1.37.0}
venv=${TOXI_KV_VENV:-${TMPDIR:-/tmp}/toxi-kubernetes-validate-$kv_version}

err() { echo "validate-manifests: $*" >&2; }

if [ $# -eq 0 ]; then set -- "$root/deploy/kubernetes"; fi

# --- install kubernetes-validate into a venv (once) ---------------------------
if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qxF "$kv_version"; then
  command -v python3 >/dev/null || { err "python3 is required"; exit 2; }
  echo "validate-manifests: installing kubernetes-validate==$kv_version into $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null ||
     ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
         "kubernetes-validate==$kv_version"; then
    err "could not install kubernetes-validate==$kv_version (PyPI needed once)"
    exit 2
  fi
fi

# --- collect files --------------------------------------------------------------
files=()
for arg in "$@"; do
  if [ -d "$arg" ]; then
    while IFS= read -r f; do files+=("$f"); done < <(find "$arg" -type f \( -name '*.yaml' -o -name '*.yml' \) | LC_ALL=C sort)
  elif [ -f "$arg" ]; then
    files+=("$arg")
  else
    err "no such file or directory: $arg"; exit 2
  fi
done
[ ${#files[@]} -gt 0 ] || { err "no manifests found in: $*"; exit 1; }

manifests=() kustomizations=()
for f in "${files[@]}"; do
  case "$(basename "$f")" in
    kustomization.yaml|kustomization.yml|Kustomization) kustomizations+=("$f") ;;
    *) manifests+=("$f") ;;
  esac
done

failed=0

# --- 1. schemas (strict) ---------------------------------------------------------
kv_out=$(mktemp)
trap 'rm -f "$kv_out"' EXIT
if [ ${#manifests[@]} -gt 0 ]; then
  kargs=()
  for v in $kube_versions; do kargs+=(-k "$v"); done
  set +e
  "$venv/bin/kubernetes-validate" --strict --quiet "${kargs[@]}" "${manifests[@]}" >"$kv_out" 2>&1
  rc=$?
  set -e
  if [ $rc -ne 0 ]; then
    err "kubernetes-validate exited with status $rc"; failed=1
  fi
  if grep -Eq '^(WARN|ERROR|FATAL)' "$kv_out"; then
    failed=1   # a WARN means no schema: an unknown kind or apiVersion
  fi
fi

# --- 2. local checks -------------------------------------------------------------
"$venv/bin/python" - "$root" "$kv_out" "${#manifests[@]}" "${manifests[@]}" "${kustomizations[@]}" <<'PY' || failed=1
import json, os, sys, collections
import yaml

root, kv_out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
manifests, kustomizations = sys.argv[4:4 + n], sys.argv[4 + n:]
kv_lines = open(kv_out).read().splitlines()
documents = []                          # "file Kind/name", in order
problems = collections.defaultdict(list)  # document -> messages

class StrictLoader(yaml.SafeLoader):
    pass

def no_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, "duplicate key %r" % (key,), key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)

StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, no_duplicates)

def rel(p):
    p = os.path.abspath(p)
    return os.path.relpath(p, root) if p.startswith(root + os.sep) else p

def load(path):
    with open(path) as f:
        return [d for d in yaml.load_all(f, Loader=StrictLoader) if d is not None]

TOXIC_KEYS = {"name", "type", "stream", "toxicity", "attributes", "schedule"}
SCHEDULE_KEYS = {"start_after", "duration", "every"}

def check_toxics(toxics, where):
    # toxi's declared toxics (README "Timed chaos"): null or an array of toxic objects.
    if toxics is None:
        return []
    if not isinstance(toxics, list):
        return ["%s must be an array" % where]
    out, names = [], set()
    for j, t in enumerate(toxics):
        at = "%s[%d]" % (where, j)
        if not isinstance(t, dict):
            out.append("%s is not an object" % at); continue
        if not isinstance(t.get("type"), str) or not t.get("type"):
            out.append("%s.type must be a non-empty string" % at)
        extra = set(t) - TOXIC_KEYS
        if extra:
            out.append("%s has unknown keys %s" % (at, sorted(extra)))
        if t.get("stream", "downstream") not in ("upstream", "downstream"):
            out.append("%s.stream must be upstream or downstream" % at)
        if "attributes" in t and not isinstance(t["attributes"], dict):
            out.append("%s.attributes must be an object" % at)
        sched = t.get("schedule")
        if sched is not None:
            if not isinstance(sched, dict) or set(sched) - SCHEDULE_KEYS:
                out.append("%s.schedule must be an object of %s" % (at, sorted(SCHEDULE_KEYS)))
            else:
                for k, v in sched.items():
                    if isinstance(v, bool) or not isinstance(v, (int, str)) or (isinstance(v, int) and v < 0):
                        out.append("%s.schedule.%s must be milliseconds or a duration string" % (at, k))
        name = t.get("name") or "%s_%s" % (t.get("type"), t.get("stream", "downstream"))
        if name in names:
            out.append("%s: toxic name %r twice" % (at, name))
        names.add(name)
    return out

def check_proxies_json(text):
    try:
        proxies = json.loads(text)
    except ValueError as e:
        return ["proxies.json is not JSON: %s" % e]
    if not isinstance(proxies, list):
        return ["proxies.json must be a JSON array"]
    out, names = [], set()
    for i, p in enumerate(proxies):
        if not isinstance(p, dict):
            out.append("proxies.json[%d] is not an object" % i); continue
        for k in ("name", "listen", "upstream"):
            if not isinstance(p.get(k), str) or not p.get(k):
                out.append("proxies.json[%d].%s must be a non-empty string" % (i, k))
        if "enabled" in p and not isinstance(p["enabled"], bool):
            out.append("proxies.json[%d].enabled must be a boolean" % i)
        extra = set(p) - {"name", "listen", "upstream", "enabled", "toxics"}
        if extra:
            out.append("proxies.json[%d] has unknown keys %s" % (i, sorted(extra)))
        out.extend(check_toxics(p.get("toxics"), "proxies.json[%d].toxics" % i))
        for k in ("listen", "upstream"):
            v = p.get(k)
            if isinstance(v, str) and (":" not in v or not v.rsplit(":", 1)[1].isdigit()):
                out.append("proxies.json[%d].%s %r is not host:port" % (i, k, v))
        if p.get("name") in names:
            out.append("proxies.json has the name %r twice" % p.get("name"))
        names.add(p.get("name"))
    return out

def pod_spec(doc):
    kind = doc.get("kind")
    if kind == "Pod":
        return doc.get("spec") or {}, (doc.get("metadata") or {}).get("labels") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        t = (doc.get("spec") or {}).get("template") or {}
        return t.get("spec") or {}, (t.get("metadata") or {}).get("labels") or {}
    return None, None

by_dir = collections.defaultdict(list)
for path in manifests:
    try:
        docs = load(path)
    except yaml.YAMLError as e:
        documents.append(rel(path)); problems[rel(path)].append(str(e)); continue
    if not docs:
        documents.append(rel(path)); problems[rel(path)].append("no documents")
    for i, d in enumerate(docs):
        if not isinstance(d, dict) or not d.get("apiVersion") or not d.get("kind") \
                or not isinstance(d.get("metadata"), dict) or not d["metadata"].get("name"):
            doc = "%s#%d" % (rel(path), i)
            documents.append(doc); problems[doc].append("needs apiVersion, kind and metadata.name")
            continue
        kn = "%s/%s" % (d["kind"].lower(), d["metadata"]["name"])
        doc = "%s %s/%s" % (rel(path), d["kind"], d["metadata"]["name"])
        documents.append(doc)
        by_dir[os.path.dirname(path)].append((doc, d))
        # kubernetes-validate's verdicts for this document
        for line in kv_lines:
            if line.startswith("ERROR %s did not validate for resource %s " % (path, kn)):
                problems[doc].append("schema: " + line.split(": ", 1)[-1])
            elif line.startswith("WARN %s " % path) and ("kind %s " % d["kind"]) in line:
                problems[doc].append("schema: " + line.split(" ", 2)[-1])
            elif line.startswith(("FATAL", "ERROR %s could not" % path)):
                problems[doc].append(line)
        if d["kind"] == "ConfigMap":
            for key, text in (d.get("data") or {}).items():
                if key == "proxies.json":
                    problems[doc].extend(check_proxies_json(text))
                elif key.endswith(".json"):
                    try:
                        json.loads(text)
                    except ValueError as e:
                        problems[doc].append("%s is not JSON: %s" % (key, e))

for d_name, docs in by_dir.items():
    names = collections.defaultdict(set)
    workloads = []
    for doc, d in docs:
        names[d["kind"]].add(d["metadata"]["name"])
        spec, labels = pod_spec(d)
        if spec is not None:
            workloads.append((doc, d, spec, labels))
    for doc, d, spec, labels in workloads:
        sa = spec.get("serviceAccountName")
        if sa and sa not in names["ServiceAccount"]:
            problems[doc].append("serviceAccountName %r is not defined in %s" % (sa, rel(d_name)))
        for v in spec.get("volumes") or []:
            cm = (v.get("configMap") or {}).get("name")
            if cm and cm not in names["ConfigMap"]:
                problems[doc].append("ConfigMap %r is not defined in %s" % (cm, rel(d_name)))
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            port_names = {p.get("name") for p in c.get("ports") or [] if p.get("name")}
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                pr = c.get(probe) or {}
                for h in ("httpGet", "tcpSocket", "grpc"):
                    port = (pr.get(h) or {}).get("port")
                    if isinstance(port, str) and port not in port_names:
                        problems[doc].append("container %s: %s uses port name %r, not declared"
                                             % (c.get("name"), probe, port))
    for doc, d in docs:
        if d["kind"] != "Service":
            continue
        sel = (d.get("spec") or {}).get("selector") or {}
        if not sel:
            continue
        matches = [w for w in workloads if all(w[3].get(k) == v for k, v in sel.items())]
        if not matches:
            problems[doc].append("selector %r matches no workload in %s" % (sel, rel(d_name)))
        for p in (d.get("spec") or {}).get("ports") or []:
            tp = p.get("targetPort", p.get("port"))
            for w in matches:
                ports = [cp for c in w[2].get("containers") or [] for cp in c.get("ports") or []]
                key = "name" if isinstance(tp, str) else "containerPort"
                if not any(cp.get(key) == tp for cp in ports):
                    problems[doc].append("targetPort %r is not a container port of %s" % (tp, w[0]))

for path in kustomizations:
    doc = rel(path)
    documents.append(doc)
    try:
        docs = load(path)
    except yaml.YAMLError as e:
        problems[doc].append(str(e)); continue
    k = docs[0] if len(docs) == 1 else None
    if not isinstance(k, dict) or k.get("kind") != "Kustomization" \
            or not str(k.get("apiVersion", "")).startswith("kustomize.config.k8s.io/"):
        problems[doc].append("not a single kustomize.config.k8s.io Kustomization"); continue
    for r in k.get("resources") or []:
        if "://" not in r and not os.path.exists(os.path.join(os.path.dirname(path), r)):
            problems[doc].append("resource %r does not exist" % r)

# kubernetes-validate output that no document claimed (e.g. a FATAL) still fails.
claimed = any(m.startswith("schema: ") for ms in problems.values() for m in ms)
if any(l.startswith(("WARN", "ERROR", "FATAL")) for l in kv_lines) and not claimed:
    documents.append("kubernetes-validate")
    problems["kubernetes-validate"].extend(l for l in kv_lines if l.strip())

for doc in documents:
    if problems.get(doc):
        for msg in dict.fromkeys(problems[doc]):
            print("  FAIL %s: %s" % (doc, msg))
    else:
        print("  ok   %s" % doc)
bad = sum(1 for doc in documents if problems.get(doc))
print("manifests: %d passed, %d failed" % (len(documents) - bad, bad))
sys.exit(1 if bad else 0)
PY

if [ "$failed" -ne 0 ]; then
  err "FAILED"
  exit 1
fi
echo "validate-manifests: OK (${#manifests[@]} manifest files, ${#kustomizations[@]} kustomizations; Kubernetes $kube_versions; --strict)"
