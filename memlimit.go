package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
)

// cgroupMemoryMax is where cgroup v2 shows the container's memory limit.
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// softMemoryLimit is the Go runtime's soft memory limit for a container whose cgroup
// allows cgroupMax bytes: 90 %, leaving the rest for what the runtime does not count,
// such as the binary's own pages. ok is false when the container has no limit.
func softMemoryLimit(cgroupMax string) (limit int64, ok bool) {
	bytes, err := strconv.ParseInt(strings.TrimSpace(cgroupMax), 10, 64)
	if err != nil || bytes <= 0 { // "max": no limit
		return 0, false
	}
	return bytes / 10 * 9, true
}

// limitMemoryToContainer makes the garbage collector work harder as the heap nears the
// container's memory limit, instead of letting the kernel kill the operator: with Go's
// default GOGC the heap may grow to twice what is live, and a thousand workspaces
// arriving at once make garbage fast (docs/performance.md). An explicit GOMEMLIMIT wins.
func limitMemoryToContainer(log logr.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	data, err := os.ReadFile(cgroupMemoryMax)
	if err != nil {
		return // not in a cgroup v2 container: nothing to stay under
	}
	if limit, ok := softMemoryLimit(string(data)); ok {
		debug.SetMemoryLimit(limit)
		log.Info("soft memory limit set from the container's memory limit", "bytes", limit)
	}
}
