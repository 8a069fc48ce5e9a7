package main

import "testing"

func TestSoftMemoryLimit(t *testing.T) {
	tests := []struct {
		cgroupMax string
		want      int64
		wantOK    bool
	}{
		{cgroupMax: "268435456\n", want: 241591905, wantOK: true},
		{cgroupMax: "max\n", wantOK: false},
		{cgroupMax: "", wantOK: false},
		{cgroupMax: "0\n", wantOK: false},
	}
	for _, tt := range tests {
		got, ok := softMemoryLimit(tt.cgroupMax)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("softMemoryLimit(%q) = %d, %t; want %d, %t", tt.cgroupMax, got, ok, tt.want, tt.wantOK)
		}
	}
}
