// Package offsetclock is a clock for end-to-end tests: real time plus an offset that the
// test writes to a file and that is read again at every reading. One test moves several
// running processes (the operator, the AWS emulator) days ahead together, so that a 7-day
// purge window passes in a second while every process agrees on the date.
package offsetclock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/utils/clock"
)

// FileEnv names the file that an operator built with the e2eclock tag takes its offset
// from. A production build never reads it.
const FileEnv = "WORKSPACE_OPERATOR_CLOCK_OFFSET_FILE"

// Clock reads real time plus the offset in its file, a Go duration such as "192h". A
// missing file is no offset.
type Clock struct {
	path string
}

var _ clock.PassiveClock = Clock{}

// New returns the clock whose offset is in the file at path.
func New(path string) Clock {
	return Clock{path: path}
}

// Now is real time plus the offset. It panics when the file cannot be read or parsed: a
// test clock that quietly fell back to real time would let a test pass for the wrong reason.
func (c Clock) Now() time.Time {
	offset, err := c.Offset()
	if err != nil {
		panic(err)
	}
	return time.Now().Add(offset)
}

// Since is the time elapsed since t on this clock.
func (c Clock) Since(t time.Time) time.Duration {
	return c.Now().Sub(t)
}

// Offset is how far ahead of real time the clock is.
func (c Clock) Offset() (time.Duration, error) {
	data, err := os.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read clock offset: %w", err)
	}
	offset, err := time.ParseDuration(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("clock offset in %s: %w", c.path, err)
	}
	return offset, nil
}

// Set moves every clock reading the file at path to real time plus offset. The file is
// replaced by a rename, so that no reader ever sees half of it.
func Set(path string, offset time.Duration) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("set clock offset: %w", err)
	}
	_, err = tmp.WriteString(offset.String() + "\n")
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("set clock offset: %w", err)
	}
	return nil
}
