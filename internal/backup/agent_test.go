package backup

import "testing"

func TestPartSizeFor(t *testing.T) {
	const mib, gib = int64(1 << 20), int64(1 << 30)
	tests := []struct {
		source int64
		want   int64
	}{
		{source: 0, want: 8 * mib},
		{source: gib, want: 8 * mib},
		{source: 60 * gib, want: 8 * mib},
		{source: 100 * gib, want: 12 * mib},
		{source: 1000 * gib, want: 120 * mib},
		{source: 1 << 50, want: 5 * gib},
	}
	for _, tt := range tests {
		got := partSizeFor(tt.source)
		if got != tt.want {
			t.Errorf("partSizeFor(%d GiB) = %d MiB, want %d MiB", tt.source/gib, got/mib, tt.want/mib)
		}
		if tt.source < 5000*gib && got*maxUploadParts < tt.source {
			t.Errorf("partSizeFor(%d GiB) = %d MiB cannot hold the source in %d parts", tt.source/gib, got/mib, maxUploadParts)
		}
	}
}
