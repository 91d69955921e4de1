"""Build kube-proxy v1.21 with RAP swapped in, and run upstream's tests on it.

The recipe, in order:

1. Source. Kubernetes is pinned to one release (``K8S_VERSION``). It comes as the
   Go module ``k8s.io/kubernetes`` through the Go module proxy, so no git clone
   and no other download is needed. A small generated *build module* under the
   cache dir requires it; see ``render_go_mod`` for why it must repeat the
   ``replace`` block of Kubernetes' own go.mod. With ``--k8s-src PATH`` an
   existing release-1.21 checkout is used instead.
2. Swap. ``go build -overlay`` removes ``pkg/proxy/userspace/roundrobin.go`` and
   adds ``rap_patch/rap.go`` (and, for test runs, ``rap_patch/*_test.go``) to
   that package, without writing to any source tree. Go refuses overlays of
   files under GOMODCACHE ("Files beneath GOMODCACHE must not be replaced"),
   so in module mode the downloaded tree is first copied, as hard links, to a
   scratch dir in the cache; the overlay then applies to that copy.
3. Build ``cmd/kube-proxy`` twice: RAP (``kube-proxy``, version
   ``v1.21.14-rap``) and, on request, stock (``kube-proxy-stock``, ``v1.21.14``).
4. Test: upstream's own ``pkg/proxy/userspace`` tests plus the project's Go
   tests, on the swapped tree.

GOMODCACHE and GOCACHE live under the project cache (``rap.paths.cache_dir()``)
so that a fresh clone on the same machine, as CI makes, reuses both.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rap import paths

# The last patch release of 1.21: userspace mode was deprecated in 1.23, and
# the RAP paper targets 1.21.
K8S_VERSION = "v1.21.14"
RAP_VERSION_SUFFIX = "-rap"
USERSPACE_PKG = "k8s.io/kubernetes/pkg/proxy/userspace"
USERSPACE_DIR = "pkg/proxy/userspace"
SWAPPED_FILE = "roundrobin.go"
KUBE_PROXY_PKG = "k8s.io/kubernetes/cmd/kube-proxy"
KUBE_APISERVER_PKG = "k8s.io/kubernetes/cmd/kube-apiserver"

# Lets a developer prove the pipeline with some other rap.go (for example a
# copy of upstream's roundrobin.go kept outside the repo) before the real one
# exists, or try a variant without touching rap_patch/.
RAP_GO_ENV = "RAP_GO_SOURCE"

# Pins that Go 1.26 needs in order to build the 1.21 tree. Each overrides the
# version Kubernetes itself pins, in the build module's replace block.
GO_FIXES: dict[str, tuple[str, str]] = {
    # reflect2 v1.0.1 reads runtime internals through go:linkname and its
    # unsafe map iteration breaks from Go 1.18 on (json-iterator panics or
    # fails to link); v1.0.2 is the upstream fix, API-identical.
    "github.com/modern-go/reflect2": (
        "v1.0.2",
        "v1.0.1 breaks on Go >= 1.18 (runtime internals changed); v1.0.2 is the fix",
    ),
}

GO_INSTALL_HINT = (
    "install Go (1.21 or newer) from https://go.dev/dl/ and put its bin/ on PATH, "
    "or on Debian: apt-get install golang-go"
)


class BuildError(RuntimeError):
    """A failure with a message that names the thing and the fix."""


def _say(msg: str) -> None:
    # One prefix for every progress line, so the build is easy to follow in CI logs.
    print(f"[proxybuild] {msg}", flush=True)


# --------------------------------------------------------------------------- Go


def find_go() -> str:
    """The go binary: on PATH, else the usual /usr/local/go install."""
    found = shutil.which("go")
    if found:
        return found
    fallback = Path("/usr/local/go/bin/go")
    if fallback.is_file() and os.access(fallback, os.X_OK):
        return str(fallback)
    raise BuildError(f"the Go toolchain ('go') was not found on PATH: {GO_INSTALL_HINT}")


def go_env(cache: Path) -> dict[str, str]:
    """The environment for every go command of the recipe."""
    env = dict(os.environ)
    env.update(
        {
            # Module and build caches under the project cache: one place to
            # keep between CI runs, and nothing left in ~/go.
            "GOMODCACHE": str(cache / "go" / "mod"),
            "GOCACHE": str(cache / "go" / "build"),
            # Never download another toolchain: the machine's Go is the one we test.
            "GOTOOLCHAIN": "local",
            # A go.work somewhere above the cache must not capture the build module.
            "GOWORK": "off",
            # Static binaries, as upstream's release builds of kube-proxy are,
            # so they run on any base image.
            "CGO_ENABLED": "0",
            # Flags are passed explicitly; inherited GOFLAGS (e.g. -mod=vendor)
            # would change what gets built.
            "GOFLAGS": "",
        }
    )
    return env


def run_go(args: list[str], cwd: Path, env: dict[str, str], what: str, capture: bool = False) -> str:
    """Run one go command, streaming its output; raise BuildError naming the step."""
    cmd = [find_go(), *args]
    _say(f"{what}: {' '.join(cmd)}  (in {cwd})")
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, text=True,
            stdout=subprocess.PIPE if capture else None,
        )
    except FileNotFoundError as exc:  # go vanished between find_go and here
        raise BuildError(f"could not run {cmd[0]}: {exc}; {GO_INSTALL_HINT}") from exc
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}")
    return proc.stdout or ""


def go_version(env: dict[str, str]) -> str:
    out = subprocess.run([find_go(), "env", "GOVERSION"], env=env, text=True,
                         capture_output=True)
    return out.stdout.strip() or "unknown"


# ----------------------------------------------------------------------- source


def staging_version(k8s_version: str = K8S_VERSION) -> str:
    """Staging modules (k8s.io/api, ...) are tagged v0.<minor>.<patch> for v1.<minor>.<patch>."""
    m = re.fullmatch(r"v1\.(\d+)\.(\d+)", k8s_version)
    if not m:
        raise BuildError(f"not a Kubernetes release version: {k8s_version!r}")
    return f"v0.{m.group(1)}.{m.group(2)}"


def parse_replace_block(go_mod_text: str) -> list[tuple[str, str]]:
    """The replace directives of a go.mod as (left, right) pairs, in order.

    Handles both the block form and single-line ``replace a => b``.
    """
    pairs: list[tuple[str, str]] = []
    in_block = False
    for raw in go_mod_text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if in_block:
            if line == ")":
                in_block = False
                continue
            body = line
        elif line.startswith("replace"):
            rest = line[len("replace"):].strip()
            if rest == "(":
                in_block = True
                continue
            body = rest
        else:
            continue
        if "=>" in body:
            left, right = (part.strip() for part in body.split("=>", 1))
            pairs.append((left, right))
    return pairs


def render_go_mod(k8s_go_mod: str, k8s_version: str = K8S_VERSION,
                  k8s_src: Path | None = None) -> str:
    """go.mod of the build module.

    When k8s.io/kubernetes is a dependency, Go ignores its go.mod's replace
    directives. Those matter: they point every staging module (k8s.io/api,
    client-go, ...) at ./staging, where the dependency's require block only
    says v0.0.0, and they pin every third-party module to the tested version.
    So the build module repeats them: staging modules go to their published
    v0.21.x tags (or, with k8s_src, to the checkout's staging dirs), the rest
    verbatim, except the Go-1.26 fixes of GO_FIXES.
    """
    stage = staging_version(k8s_version)
    lines = [
        "// Generated by rap/proxybuild.py: builds kube-proxy from the pinned",
        "// Kubernetes release. Do not edit; it is rewritten on every build.",
        "module rap.local/kube-proxy-build",
        "",
        # Kubernetes 1.21 declares go 1.16; matching it keeps the same
        # module-graph rules (no pruning) that the release was built with.
        "go 1.16",
        "",
        f"require k8s.io/kubernetes {k8s_version}",
        "",
        "replace (",
    ]
    if k8s_src is not None:
        lines.append(f"\tk8s.io/kubernetes => {k8s_src}")
    fixed = set()
    for left, right in parse_replace_block(k8s_go_mod):
        mod = left.split()[0]
        if right.startswith("./") or right.startswith("../"):
            # A staging module of this tree.
            target = f"{k8s_src / right}" if k8s_src is not None else f"{mod} {stage}"
        elif mod in GO_FIXES:
            version, why = GO_FIXES[mod]
            lines.append(f"\t// {why}")
            target = f"{mod} {version}"
            fixed.add(mod)
        else:
            target = right
        lines.append(f"\t{left} => {target}")
    for mod, (version, why) in GO_FIXES.items():
        if mod not in fixed:
            lines.append(f"\t// {why}")
            lines.append(f"\t{mod} => {mod} {version}")
    lines.append(")")
    return "\n".join(lines) + "\n"


@dataclass
class Tree:
    """A Kubernetes source tree ready to build, and the build module around it."""

    src: Path  # root of the kubernetes tree (never written to)
    build_dir: Path  # holds go.mod, go.sum, overlays
    version: str  # gitVersion of the stock build
    env: dict[str, str] = field(repr=False, default_factory=dict)
    # A released module never changes, so its binaries can be reused by stamp;
    # a checkout can change under us, so go build (and its cache) always runs.
    immutable: bool = True
    # Staging modules (those Kubernetes' go.mod replaces with ./staging/...):
    # module path -> its directory (checkout) or "module@version" (download).
    staging: dict[str, str] = field(default_factory=dict)

    @property
    def userspace_dir(self) -> Path:
        return self.src / USERSPACE_DIR


def _download_module(env: dict[str, str], cache: Path, version: str) -> dict:
    """Fetch k8s.io/kubernetes@version into GOMODCACHE (a no-op when cached)."""
    scratch = cache / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    # Outside any module, so a go.mod above the cache cannot interfere.
    with tempfile.TemporaryDirectory(dir=scratch) as empty:
        out = run_go(["mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
                     Path(empty), env, "download k8s.io/kubernetes", capture=True)
    info = json.loads(out)
    if info.get("Error"):
        raise BuildError(f"could not download k8s.io/kubernetes@{version}: {info['Error']}")
    return info


def _scratch_copy(module_dir: Path, dest: Path) -> None:
    """Copy the read-only module tree to dest, as hard links where possible.

    Needed because go refuses -overlay entries under GOMODCACHE. Hard links
    make it instant and free of space; the files are never written (the
    overlay does the swap), so sharing inodes with the module cache is safe.
    """
    marker = dest.parent / (dest.name + ".complete")
    if dest.is_dir() and marker.is_file():
        return
    _say(f"scratch copy of {module_dir} -> {dest} (overlays may not touch GOMODCACHE)")
    tmp = dest.parent / (dest.name + ".partial")
    for stale in (tmp, dest):
        if stale.exists():
            _force_rmtree(stale)

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:  # another filesystem: fall back to a real copy
            shutil.copy2(src, dst)

    shutil.copytree(module_dir, tmp, copy_function=link_or_copy, symlinks=True)
    # The module cache's dirs are read-only; make ours deletable.
    for d, _, _ in os.walk(tmp):
        os.chmod(d, 0o755)
    tmp.rename(dest)
    marker.write_text(str(module_dir) + "\n")


def _force_rmtree(path: Path) -> None:
    for d, _, _ in os.walk(path):
        try:
            os.chmod(d, 0o755)
        except OSError:
            pass
    shutil.rmtree(path)


def check_k8s_src(path: Path) -> Path:
    """Validate a --k8s-src checkout; return its absolute path."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise BuildError(f"--k8s-src {path}: no such directory; give the root of a "
                         "Kubernetes release-1.21 checkout (the dir holding go.mod)")
    path = path.resolve()
    go_mod = path / "go.mod"
    if not go_mod.is_file() or not re.search(r"^module k8s\.io/kubernetes\s*$",
                                             go_mod.read_text(), re.M):
        raise BuildError(f"--k8s-src {path}: not a Kubernetes source tree "
                         "(no go.mod declaring 'module k8s.io/kubernetes')")
    if not (path / USERSPACE_DIR / SWAPPED_FILE).is_file():
        raise BuildError(f"--k8s-src {path}: has no {USERSPACE_DIR}/{SWAPPED_FILE}; "
                         "RAP replaces that file, so use a release-1.21 checkout "
                         "(userspace mode is gone from later releases)")
    if not (path / "staging" / "src" / "k8s.io").is_dir():
        raise BuildError(f"--k8s-src {path}: has no staging/src/k8s.io; give the "
                         "root of the kubernetes repository, not a sub-directory")
    gomodcache = go_env(paths.cache_dir())["GOMODCACHE"]
    if str(path).startswith(str(Path(gomodcache).resolve()) + os.sep):
        raise BuildError(f"--k8s-src {path}: is inside GOMODCACHE, where go refuses "
                         "overlays; copy it elsewhere first")
    return path


def _src_version(path: Path) -> str:
    """gitVersion for a checkout: its nearest tag, else the pinned version."""
    try:
        out = subprocess.run(["git", "-C", str(path), "describe", "--tags", "--abbrev=0"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return K8S_VERSION
    tag = out.stdout.strip()
    if out.returncode == 0 and tag.startswith("v1."):
        if not tag.startswith("v1.21."):
            _say(f"warning: {path} is at {tag}, not a 1.21 release; RAP targets 1.21")
        return tag
    return K8S_VERSION


def prepare_tree(k8s_src: Path | str | None = None) -> Tree:
    """Get the source (download or checkout) and write the build module for it."""
    cache = paths.cache_dir()
    env = go_env(cache)
    find_go()
    if k8s_src is None:
        version = K8S_VERSION
        build_dir = cache / f"k8s-{version}"
        build_dir.mkdir(parents=True, exist_ok=True)
        _say(f"step 1/4 source: k8s.io/kubernetes@{version} via the Go module proxy "
             f"(GOMODCACHE {env['GOMODCACHE']})")
        info = _download_module(env, cache, version)
        k8s_go_mod = Path(info["GoMod"]).read_text()
        src = build_dir / "src"
        _scratch_copy(Path(info["Dir"]), src)
        go_mod = render_go_mod(k8s_go_mod, version)
        # A directory replace keeps the scratch copy as k8s.io/kubernetes, so
        # the overlay (which go only allows outside GOMODCACHE) applies to it.
        go_mod += "\nreplace k8s.io/kubernetes => ./src\n"
    else:
        src = check_k8s_src(Path(k8s_src))
        version = _src_version(src)
        k8s_go_mod = (src / "go.mod").read_text()
        key = hashlib.sha256(str(src).encode()).hexdigest()[:12]
        build_dir = cache / f"k8s-src-{key}"
        build_dir.mkdir(parents=True, exist_ok=True)
        _say(f"step 1/4 source: checkout {src} ({version})")
        go_mod = render_go_mod(k8s_go_mod, K8S_VERSION, k8s_src=src)
    _write_if_changed(build_dir / "go.mod", go_mod)
    # go.sum is filled in by -mod=mod on the first build and reused after.
    (build_dir / "go.sum").touch()
    return Tree(src=src, build_dir=build_dir, version=version, env=env,
                immutable=k8s_src is None, staging=staging_modules(k8s_go_mod, src if k8s_src else None))


def staging_modules(k8s_go_mod: str, k8s_src: Path | None = None) -> dict[str, str]:
    """Kubernetes' staging modules: module -> checkout dir, or module@v0.x.y to download."""
    stage = staging_version(K8S_VERSION)
    found = {}
    for left, right in parse_replace_block(k8s_go_mod):
        if right.startswith(("./", "../")):
            mod = left.split()[0]
            found[mod] = str(k8s_src / right) if k8s_src is not None else f"{mod}@{stage}"
    return found


def _write_if_changed(path: Path, text: str) -> None:
    # Unchanged files keep their mtime, so nothing downstream sees a change.
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


# ------------------------------------------------------------------------- swap


def rap_go_path(rap_go: Path | str | None = None) -> Path:
    """The rap.go to swap in: the argument, else $RAP_GO_SOURCE, else rap_patch/rap.go."""
    if rap_go is None:
        rap_go = os.environ.get(RAP_GO_ENV) or (paths.RAP_PATCH_DIR / "rap.go")
    path = Path(rap_go).expanduser()
    if not path.is_file():
        raise BuildError(
            f"{path} not found: it is the RAP balancer that replaces upstream's "
            f"{SWAPPED_FILE}. Write it (rap_patch/rap.go), or point ${RAP_GO_ENV} at "
            "another file to try the pipeline, or build only the stock kube-proxy "
            "(python3 -m rap.proxybuild --stock-only).")
    text = path.read_text()
    if not re.search(r"^package userspace\b", text, re.M):
        raise BuildError(f"{path}: must be 'package userspace' to replace "
                         f"{USERSPACE_DIR}/{SWAPPED_FILE}")
    return path.resolve()


def project_test_files(patch_dir: Path | None = None) -> list[Path]:
    """The project's Go tests for the swapped package: rap_patch/*_test.go."""
    patch_dir = patch_dir or paths.RAP_PATCH_DIR
    return sorted(p.resolve() for p in Path(patch_dir).glob("*_test.go"))


def added_files(rap_go: Path) -> list[Path]:
    """The patch's added files: every other non-test .go file beside the swapped one.

    rap.go mirrors upstream's roundrobin.go; configuration, snapshot, decision
    and monitor live in sibling files of the same package, overlaid with it.
    A lone file elsewhere (e.g. $RAP_GO_SOURCE in a scratch folder) has none.
    """
    return sorted(p.resolve() for p in rap_go.parent.glob("*.go")
                  if not p.name.endswith("_test.go") and p.resolve() != rap_go.resolve())


def overlay_map(package_dir: Path, rap_go: Path, test_files: list[Path] = (),
                extra_files: list[Path] = ()) -> dict[str, str]:
    """The -overlay "Replace" map that swaps rap.go into package_dir.

    roundrobin.go is deleted (empty target) and rap.go added under its own
    name, so compiler errors name rap.go. The patch's added files and the
    test files go beside it. A file named like an upstream file would
    silently replace that file, so that is an error.
    """
    replace = {str(package_dir / SWAPPED_FILE): "", str(package_dir / "rap.go"): str(rap_go)}
    for kind, files in (("added", extra_files), ("test", test_files)):
        for added in files:
            target = package_dir / added.name
            if target.exists() or str(target) in replace:
                raise BuildError(f"{added}: upstream {USERSPACE_DIR} already has a file "
                                 f"named {added.name}; rename the project's {kind} file")
            replace[str(target)] = str(added)
    return replace


def write_overlay(tree: Tree, name: str, rap_go: Path, test_files: list[Path] = ()) -> Path:
    """The overlay of the whole patch: rap.go, its added files, and ``test_files``."""
    replace = overlay_map(tree.userspace_dir, rap_go, list(test_files), added_files(rap_go))
    return write_replace_overlay(tree, name, replace)


def write_replace_overlay(tree: Tree, name: str, replace: dict[str, str]) -> Path:
    """Write build_dir/overlay-<name>.json, go's -overlay file for the ``replace`` map."""
    path = tree.build_dir / f"overlay-{name}.json"
    _write_if_changed(path, json.dumps({"Replace": replace}, indent=2, sort_keys=True) + "\n")
    return path


# ------------------------------------------------------------------------ build


def version_ldflags(git_version: str) -> str:
    """-X flags naming the version, as hack/lib/version.sh sets them.

    Both packages carry the version (client-go's goes into the User-Agent).
    buildDate is left at its default so identical inputs give identical binaries.
    """
    m = re.match(r"v(\d+)\.(\d+)", git_version)
    major, minor = (m.group(1), m.group(2)) if m else ("1", "21")
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        for key, val in (("gitVersion", git_version), ("gitMajor", major),
                         ("gitMinor", minor), ("gitTreeState", "clean")):
            flags.append(f"-X '{pkg}.{key}={val}'")
    return " ".join(flags)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _stamp(tree: Tree, pkg: str, ldflags: str, overlay: Path | None) -> str:
    """What a binary was built from; same stamp, same binary, so skip the build."""
    parts = [go_version(tree.env), pkg, ldflags, str(tree.src),
             (tree.build_dir / "go.mod").read_text()]
    if overlay is not None:
        replace = json.loads(overlay.read_text())["Replace"]
        parts += [f"{k}={_file_digest(v) if v else ''}" for k, v in sorted(replace.items())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def build_binary(tree: Tree, pkg: str, out_name: str, git_version: str,
                 overlay: Path | None = None, force: bool = False) -> Path:
    """go build one command of the tree into build_out_dir()/out_name."""
    out = paths.build_out_dir() / out_name
    ldflags = version_ldflags(git_version)
    stamp_file = out.parent / f".{out_name}.stamp"
    stamp = _stamp(tree, pkg, ldflags, overlay)
    if (not force and tree.immutable and out.is_file() and stamp_file.is_file()
            and stamp_file.read_text().strip() == stamp):
        _say(f"{out_name}: up to date ({out}), inputs unchanged")
        return out
    args = ["build", "-mod=mod", "-buildvcs=false", "-trimpath", "-ldflags", ldflags,
            "-o", str(out) + ".tmp"]
    if overlay is not None:
        args += ["-overlay", str(overlay)]
    started = time.monotonic()
    stamp_file.unlink(missing_ok=True)
    run_go([*args, pkg], tree.build_dir, tree.env, f"build {out_name} ({git_version})")
    os.replace(str(out) + ".tmp", out)
    stamp_file.write_text(stamp + "\n")
    _say(f"{out_name}: built in {time.monotonic() - started:.0f}s -> {out}")
    return out


def build_kube_proxy(k8s_src: Path | str | None = None, rap: bool = True,
                     stock: bool = False, rap_go: Path | str | None = None,
                     force: bool = False) -> dict[str, Path]:
    """Build kube-proxy with RAP (``kube-proxy``) and/or stock (``kube-proxy-stock``).

    Returns {"kube-proxy": path, "kube-proxy-stock": path} for what was built.
    """
    if not (rap or stock):
        raise BuildError("nothing to build: ask for the RAP kube-proxy, the stock one, or both")
    rap_file = rap_go_path(rap_go) if rap else None  # fail before any download
    tree = prepare_tree(k8s_src)
    built: dict[str, Path] = {}
    if rap_file is not None:
        _say(f"step 2/4 swap: {tree.userspace_dir / SWAPPED_FILE} -> {rap_file} (overlay)")
        overlay = write_overlay(tree, "build", rap_file)
        _say("step 3/4 build: kube-proxy (RAP)")
        built["kube-proxy"] = build_binary(tree, KUBE_PROXY_PKG, "kube-proxy",
                                           tree.version + RAP_VERSION_SUFFIX, overlay, force)
    if stock:
        _say("step 3/4 build: kube-proxy-stock (upstream round robin, no swap)")
        built["kube-proxy-stock"] = build_binary(tree, KUBE_PROXY_PKG, "kube-proxy-stock",
                                                 tree.version, None, force)
    for name, path in built.items():
        _say(f"done: {name} at {path}")
    return built


# kube-apiserver needs pkg/generated/openapi/zz_generated.openapi.go, which
# upstream generates during `make` and never commits, so the module lacks it.
# We generate it the way build/root/Makefile.generated_files does (same
# openapi-gen, same input packages, same boilerplate) and add it by overlay.
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
        _say(f"openapi: up to date ({out})")
        return out
    tool = tree.build_dir / "bin" / "openapi-gen"
    run_go(["build", "-mod=mod", "-buildvcs=false", "-o", str(tool), OPENAPI_GEN_PKG],
           tree.build_dir, tree.env, "build openapi-gen")
    stamp.unlink(missing_ok=True)
    env = dict(tree.env, GOFLAGS="-mod=mod")  # gengo runs `go list` inside the build module
    cmd = [str(tool), "--logtostderr", "-i", ",".join(packages), "-p", OPENAPI_PKG,
           "-O", OPENAPI_FILE[:-3], "-h", str(tree.src / "hack/boilerplate/boilerplate.generatego.txt"),
           "-o", str(gen_root), "-r", str(gen_root / "api-rule-violations.report")]
    _say(f"openapi: generating {OPENAPI_FILE} from {len(packages)} packages (about a minute)")
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


def build_apiserver(k8s_src: Path | str | None = None, force: bool = False) -> Path:
    """kube-apiserver from the same pinned source, for the local cluster (no swap)."""
    tree = prepare_tree(k8s_src)
    generated = generate_openapi(tree)
    target = tree.src / "pkg/generated/openapi" / OPENAPI_FILE
    overlay = write_replace_overlay(tree, "apiserver", {str(target): str(generated)})
    _say("build: kube-apiserver (same source, stock, generated openapi added by overlay)")
    path = build_binary(tree, KUBE_APISERVER_PKG, "kube-apiserver", tree.version, overlay, force)
    _say(f"done: kube-apiserver at {path}")
    return path


def check_version(binary: Path, expected: str) -> str:
    """Run ``binary --version`` and check that it names the expected version."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    text = (out.stdout + out.stderr).strip()
    if out.returncode != 0 or expected not in text.split():
        raise BuildError(f"{binary} --version said {text!r} (exit {out.returncode}), "
                         f"expected it to name {expected}")
    return text


# ------------------------------------------------------------------------- test


def test_proxy(k8s_src: Path | str | None = None, rap_go: Path | str | None = None,
               extra_test_files: list[Path] = (), verbose: bool = False,
               run: str | None = None, project_tests: bool = True) -> None:
    """Upstream's pkg/proxy/userspace tests plus rap_patch/*_test.go, with rap.go swapped in.

    project_tests=False leaves out rap_patch/*_test.go: they test rap.go's own
    internals, so they cannot compile against another file swapped in (e.g.
    upstream's roundrobin.go, to check the pipeline itself).
    Raises BuildError (so the task exits non-zero) when any test fails.
    """
    rap_file = rap_go_path(rap_go)
    tree = prepare_tree(k8s_src)
    tests = project_test_files() if project_tests else []
    tests += [Path(p).resolve() for p in extra_test_files]
    _say(f"step 2/4 swap: {tree.userspace_dir / SWAPPED_FILE} -> {rap_file} (overlay), "
         f"plus {len(tests)} project test file(s): {', '.join(p.name for p in tests) or 'none'}")
    overlay = write_overlay(tree, "test", rap_file, tests)
    env = dict(tree.env)
    # The project's tests run with the package dir as cwd (inside the source
    # tree), so tell them where the repo's conformance vectors are.
    env["RAP_VECTORS_DIR"] = str(paths.VECTORS_DIR)
    env["RAP_REPO"] = str(paths.REPO)
    # go test runs a subset of go vet first. Under Go 1.26 it passes on
    # upstream's 1.21 userspace package, so vet stays on: it also checks rap.go.
    # -count=1: always really run (about 10 s), never report a cached pass.
    args = ["test", "-mod=mod", "-buildvcs=false", "-overlay", str(overlay),
            "-count=1", "-timeout", "10m"]
    if verbose:
        args.append("-v")
    if run:
        args += ["-run", run]
    _say(f"step 4/4 test: upstream {USERSPACE_PKG} tests on the swapped tree")
    started = time.monotonic()
    run_go([*args, USERSPACE_PKG], tree.build_dir, env, "go test userspace")
    _say(f"tests passed in {time.monotonic() - started:.0f}s")


# Not a pytest test, whatever its name says.
test_proxy.__test__ = False


def main(argv: list[str] | None = None) -> int:
    """``python -m rap.proxybuild [--stock] [--test] [--k8s-src PATH]`` for use without invoke."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k8s-src", help="existing Kubernetes release-1.21 checkout to use")
    ap.add_argument("--stock", action="store_true", help="also build kube-proxy-stock")
    ap.add_argument("--stock-only", action="store_true", help="build only kube-proxy-stock")
    ap.add_argument("--apiserver", action="store_true", help="also build kube-apiserver")
    ap.add_argument("--test", action="store_true", help="run the userspace tests too")
    ns = ap.parse_args(argv)
    try:
        build_kube_proxy(ns.k8s_src, rap=not ns.stock_only, stock=ns.stock or ns.stock_only)
        if ns.apiserver:
            build_apiserver(ns.k8s_src)
        if ns.test:
            test_proxy(ns.k8s_src)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
