//go:build !e2eclock

package main

import (
	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

// operatorClock is the clock every controller reads: real time. The e2e suite builds the
// operator with the e2eclock tag instead (clock_e2e.go).
func operatorClock(_ logr.Logger) clock.PassiveClock {
	return clock.RealClock{}
}
