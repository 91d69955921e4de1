"""local-status: what runs, where, and whether it is healthy."""

from __future__ import annotations

from pathlib import Path

from rap.localcluster import netns, procs, state


def report(runtime: Path | None = None) -> tuple[str, bool]:
    runtime = runtime or state.runtime_dir()
    st = state.load(runtime)
    namespaces = netns.existing_namespaces()
    if st is None:
        if namespaces or procs.marked(runtime):
            return ("no state file, but leftovers exist (namespaces: " + ", ".join(namespaces)
                    + "); run `invoke local-down` to clean up", False)
        return "no local cluster (start one with `invoke local-up`)", True
    lines = [f"local cluster: {st.phase}, proxy {st.proxy}, {len(st.nodes)} nodes, runtime {runtime}",
             f"  API server {st.api_url}  kubeconfig {st.kubeconfig}",
             f"  Service default/web ClusterIP {st.cluster_ip or '-'}:80"]
    healthy = st.phase == "up"
    pids = procs.recorded(runtime)
    for name in sorted(pids):
        alive = procs.alive(pids[name])
        healthy &= alive
        lines.append(f"  {'ok  ' if alive else 'DEAD'} {name:<18} pid {pids[name]:<8} log {procs.log_path(runtime, name)}")
    for pod in st.pods:
        present = pod["netns"] in namespaces
        healthy &= present
        lines.append(f"  {'ok  ' if present else 'GONE'} pod {pod['name']:<14} {pod['ip']:<14} on {pod['node']}")
    lines.append("healthy" if healthy else "NOT healthy: see the logs named above")
    return "\n".join(lines), healthy
