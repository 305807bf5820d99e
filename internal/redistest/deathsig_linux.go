package redistest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill cmd when the test binary dies before
// its cleanup runs (a panic, a timeout, a SIGKILL), so no redis-server
// outlives it.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
