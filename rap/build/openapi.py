"""kube-apiserver's generated OpenAPI (zz_generated.openapi.go), made as upstream's make does.

kube-apiserver needs pkg/generated/openapi/zz_generated.openapi.go, which
upstream generates during ``make`` and never commits, so the module lacks it.
We generate it the way build/root/Makefile.generated_files does (same
openapi-gen, same input packages, same boilerplate), into the build dir;
rap.build.binaries adds it by overlay. Not needed for kube-proxy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

from rap.build import BuildError, status
from rap.build.source import Tree
from rap.build.toolchain import go_version, run_go

OPENAPI_PKG = "k8s.io/kubernetes/pkg/generated/openapi"
OPENAPI_GEN_PKG = "k8s.io/kube-openapi/cmd/openapi-gen"
OPENAPI_FILE = "zz_generated.openapi.go"
# The Makefile's KUBE target leaves code-generator and sample-apiserver out.
# sample-controller and sample-cli-plugin are examples with no openapi-gen tag;
# leaving them out spares a download outside kube-apiserver's module graph
# (which the checksum database does not serve for sample-controller here).
# With this set the generated API-rule report equals upstream's
# api/api-rules/violation_exceptions.list line for line (checked for v1.21.14).
OPENAPI_EXCLUDED = {"k8s.io/code-generator", "k8s.io/sample-apiserver",
                    "k8s.io/sample-controller", "k8s.io/sample-cli-plugin"}
_K8S_TAG = re.compile(r"^// *\+k8s:", re.M)


def openapi_packages(root: Path, module_path: str) -> list[str]:
    """Import paths of the packages under root that carry a +k8s:openapi-gen= tag.

    Mirrors the Makefile: every dir except those named _* or .* (and the
    top-level vendor/ and staging/), a .go file with a `// +k8s:` tag line
    that mentions openapi-gen.
    """
    found = []
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        dirs[:] = sorted(x for x in dirs if not (
            x.startswith(("_", ".")) or (rel == "." and x in ("vendor", "staging"))))
        for name in files:
            if not name.endswith(".go"):
                continue
            text = (Path(d) / name).read_text(errors="replace")
            if _K8S_TAG.search(text) and "+k8s:openapi-gen=" in text:
                found.append(module_path if rel == "." else f"{module_path}/{rel}")
                break
    return found


def _json_stream(text: str) -> list[dict]:
    """`go mod download -json a b` prints one JSON object after another, not a list."""
    decoder, items, pos = json.JSONDecoder(), [], 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        item, pos = decoder.raw_decode(text, pos)
        items.append(item)
    return items


def _staging_dirs(tree: Tree) -> dict[str, Path]:
    """Where each staging module's source is: the checkout's staging dir, or the download."""
    wanted = {m: where for m, where in tree.staging.items() if m not in OPENAPI_EXCLUDED}
    dirs = {m: Path(where) for m, where in wanted.items() if "@" not in where}
    pending = [where for where in wanted.values() if "@" in where]
    if pending:
        # mod@version: some (sample-controller, ...) are not in kube-apiserver's graph.
        out = run_go(["mod", "download", "-json", *pending], tree.build_dir, tree.env,
                     "download staging modules for openapi-gen", capture=True)
        for info in _json_stream(out):
            if info.get("Error"):
                raise BuildError(f"could not download {info['Path']}: {info['Error']}")
            dirs[info["Path"]] = Path(info["Dir"])
    return dirs


def generate_openapi(tree: Tree) -> Path:
    """Generate zz_generated.openapi.go for the tree into its build dir (cached)."""
    packages = openapi_packages(tree.src, "k8s.io/kubernetes")
    for mod, path in sorted(_staging_dirs(tree).items()):
        packages += openapi_packages(path, mod)
    packages = sorted(set(packages))
    gen_root = tree.build_dir / "openapi"
    out = gen_root / OPENAPI_PKG / OPENAPI_FILE
    key = hashlib.sha256("\n".join(packages + [str(tree.src), go_version(tree.env),
                         (tree.build_dir / "go.mod").read_text()]).encode()).hexdigest()
    stamp = gen_root / "inputs.sha256"
    if tree.immutable and out.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
        status.say(f"openapi: up to date ({out})")
        return out
    tool = tree.build_dir / "bin" / "openapi-gen"
    run_go(["build", "-mod=mod", "-buildvcs=false", "-o", str(tool), OPENAPI_GEN_PKG],
           tree.build_dir, tree.env, "build openapi-gen")
    stamp.unlink(missing_ok=True)
    env = dict(tree.env, GOFLAGS="-mod=mod")  # gengo runs `go list` inside the build module
    cmd = [str(tool), "--logtostderr", "-i", ",".join(packages), "-p", OPENAPI_PKG,
           "-O", OPENAPI_FILE[:-3], "-h", str(tree.src / "hack/boilerplate/boilerplate.generatego.txt"),
           "-o", str(gen_root), "-r", str(gen_root / "api-rule-violations.report")]
    status.say(f"openapi: generating {OPENAPI_FILE} from {len(packages)} packages (about a minute)")
    proc = subprocess.run(cmd, cwd=tree.build_dir, env=env, text=True, capture_output=True)
    if proc.returncode != 0 or not out.is_file():
        raise BuildError(f"openapi-gen failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    # As upstream's make does: the API-rule report must equal the tree's known
    # list. A difference means we fed openapi-gen other packages than upstream.
    known = tree.src / "api/api-rules/violation_exceptions.list"
    report = gen_root / "api-rule-violations.report"
    if known.is_file() and sorted(report.read_text().splitlines()) != sorted(known.read_text().splitlines()):
        raise BuildError(f"openapi-gen's API rule report {report} differs from {known}: "
                         "the generated OpenAPI would not match upstream's")
    stamp.write_text(key + "\n")
    return out
