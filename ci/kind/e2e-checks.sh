#!/usr/bin/env bash
# End-to-end checks against a kind cluster after `invoke deploy`:
#   1. every kube-proxy pod runs the expected image and is ready,
#   2. kube-proxy runs in userspace mode (its ConfigMap and its log say so),
#   3. a Service with endpoints on both workers answers every request made
#      through its ClusterIP from a pod (so traffic passes RAP's balancer).
# Usage: ci/kind/e2e-checks.sh IMAGE
set -euo pipefail
image="${1:?usage: $0 IMAGE}"
ns=rap-e2e
requests=50

say() { printf '\n==> %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

say "kube-proxy pods run ${image}"
kubectl -n kube-system rollout status daemonset/kube-proxy --timeout=180s
images=$(kubectl -n kube-system get pods -l k8s-app=kube-proxy \
    -o jsonpath='{range .items[*]}{.spec.containers[0].image}{"\n"}{end}' | sort -u)
[ "$images" = "$image" ] || fail "kube-proxy pods run: ${images}"

say "kube-proxy is in userspace mode"
kubectl -n kube-system get configmap kube-proxy -o jsonpath='{.data.config\.conf}' \
    | grep -Eq '^mode: "?userspace"?$' || fail "kube-proxy ConfigMap is not in userspace mode"
pod=$(kubectl -n kube-system get pods -l k8s-app=kube-proxy -o jsonpath='{.items[0].metadata.name}')
kubectl -n kube-system logs "$pod" | grep -qi "userspace" || fail "kube-proxy log does not mention the userspace proxier"

say "a Service answers through its ClusterIP"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$ns" create deployment echo --image=registry.k8s.io/e2e-test-images/agnhost:2.39 \
    --replicas=4 --dry-run=client -o yaml -- /agnhost netexec --http-port=8080 | kubectl apply -f -
kubectl -n "$ns" expose deployment echo --port=80 --target-port=8080 --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$ns" rollout status deployment/echo --timeout=180s
kubectl -n "$ns" run client --image=busybox:1.36 --restart=Never \
    --command -- sh -c "ok=0; for i in \$(seq $requests); do wget -qO- -T 5 http://echo/hostname >/dev/null && ok=\$((ok+1)); done; echo ok=\$ok"
# Polled rather than `kubectl wait --for=jsonpath`, which kubectl 1.21 lacks.
for _ in $(seq 90); do
    phase=$(kubectl -n "$ns" get pod client -o jsonpath='{.status.phase}')
    case "$phase" in Succeeded|Failed) break ;; esac
    sleep 2
done
[ "$phase" = Succeeded ] || fail "client pod ended as ${phase:-unknown}"
result=$(kubectl -n "$ns" logs client)
echo "$result"
[ "$result" = "ok=${requests}" ] || fail "only ${result#ok=} of ${requests} requests through the Service succeeded"

kubectl delete namespace "$ns" --wait=false
say "e2e checks passed"
