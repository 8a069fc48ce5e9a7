package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// BenchmarkZstd measures the agent's two zstd levels on the two halves of
// the generated tree, random and text, as one stream per level like the
// agent's (zstd.NewWriter with only the level set). The encoder compresses
// a stream's blocks one at a time on a goroutine of its own, so cpu-ms/MiB
// bounds the agent's throughput on one core:
//
//	go test ./test/bench/backup -run '^$' -bench Zstd
func BenchmarkZstd(b *testing.B) {
	const size = 64 << 20
	rng := rand.New(rand.NewChaCha8([32]byte{}))
	inputs := map[string][]byte{
		"random": randomBytes(make([]byte, 0, size), rng, size),
		"log":    textLines(".log")(make([]byte, 0, size), rng, size),
		"csv":    textLines(".csv")(make([]byte, 0, size), rng, size),
	}
	for _, level := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault} {
		for _, name := range []string{"random", "log", "csv"} {
			data := inputs[name]
			b.Run(fmt.Sprintf("%s/%s", level, name), func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				var out countingWriter
				cpuBefore := selfCPU()
				for b.Loop() {
					out = 0
					zw, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(level))
					if err != nil {
						b.Fatal(err)
					}
					if _, err := zw.Write(data); err != nil {
						b.Fatal(err)
					}
					if err := zw.Close(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(out)/float64(len(data)), "ratio")
				// CPU time per MiB, which other work on the machine
				// distorts less than the wall-clock MB/s.
				cpuPerOp := (selfCPU() - cpuBefore) / time.Duration(b.N)
				b.ReportMetric(float64(cpuPerOp.Microseconds())/1e3/float64(len(data)>>20), "cpu-ms/MiB")
			})
		}
	}
}

// countingWriter counts and discards.
type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

var _ io.Writer = (*countingWriter)(nil)
