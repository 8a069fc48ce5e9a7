package offsetclock

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestClockFollowsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offset")
	c := New(path)
	const slack = time.Minute // a slow machine between two readings
	for _, step := range []struct {
		name   string
		offset *time.Duration
	}{
		{name: "no file yet"},
		{name: "eight days ahead", offset: new(8 * 24 * time.Hour)},
		{name: "back to real time", offset: new(time.Duration(0))},
		{name: "behind real time", offset: new(-time.Hour)},
	} {
		want := time.Duration(0)
		if step.offset != nil {
			want = *step.offset
			if err := Set(path, want); err != nil {
				t.Fatal(err)
			}
		}
		got := time.Until(c.Now())
		if got < want-slack || got > want+slack {
			t.Errorf("%s: clock is %s ahead, want %s", step.name, got, want)
		}
		if since := c.Since(time.Now().Add(-time.Hour)); since < want+time.Hour-slack || since > want+time.Hour+slack {
			t.Errorf("%s: Since(an hour ago) = %s", step.name, since)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(entries) != 1 {
		t.Errorf("Set left %v (%v), want the offset file alone", entries, err)
	}
}

func TestClockRefusesAnUnreadableOffset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offset")
	if err := os.WriteFile(path, []byte("eight days"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(path).Offset(); err == nil {
		t.Error("Offset read \"eight days\"")
	}
	defer func() {
		if recover() == nil {
			t.Error("Now fell back to real time on an unreadable offset")
		}
	}()
	New(path).Now()
}
