// The project's replacement for pkg/proxy/userspace/rlimit.go, used only for
// the local cluster's kube-proxy builds, and only on machines where the
// process cannot raise RLIMIT_NOFILE's hard limit to 64000 (no
// CAP_SYS_RESOURCE, as in unprivileged sandboxes). Upstream v1.21 treats that
// as fatal ("failed to set open file handler limit") and the userspace proxier
// never starts. Here it keeps the highest limit it is allowed and says so; a
// test cluster on one machine never comes near either number. Stock and RAP
// builds get the same change, so comparisons between them stay fair.

package userspace

import (
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

func setRLimit(limit uint64) error {
	wanted := unix.Rlimit{Max: limit, Cur: limit}
	err := unix.Setrlimit(unix.RLIMIT_NOFILE, &wanted)
	if err == nil {
		return nil
	}
	var current unix.Rlimit
	if getErr := unix.Getrlimit(unix.RLIMIT_NOFILE, &current); getErr != nil {
		return err
	}
	capped := unix.Rlimit{Max: current.Max, Cur: current.Max}
	if capErr := unix.Setrlimit(unix.RLIMIT_NOFILE, &capped); capErr != nil {
		return err
	}
	klog.Warningf("open file limit: wanted %d, not permitted (%v); continuing with %d", limit, err, current.Max)
	return nil
}
