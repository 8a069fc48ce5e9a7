//go:build e2eclock

package main

import (
	"os"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/workspace-operator/workspace-operator/internal/offsetclock"
)

// operatorClock, in the e2e suite's build only, runs the controllers ahead of real time by
// the offset the suite writes to the file named by offsetclock.FileEnv, so that a purge
// window passes while the operator runs. Without that variable (the same binary in the
// chart specs' image) it is real time.
func operatorClock(log logr.Logger) clock.PassiveClock {
	path := os.Getenv(offsetclock.FileEnv)
	if path == "" {
		return clock.RealClock{}
	}
	log.Info("test build: the controllers' clock is real time plus the offset in a file", "file", path)
	return offsetclock.New(path)
}
