package backup

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"
)

var benchMiB = flag.Int("backup.bench-mib", 32, "size in MiB of the tree BenchmarkBackup backs up")

// mixedTree writes about mib MiB shaped like a workspace volume: two
// fifths incompressible blobs, two fifths text in 30 KiB documents, one
// fifth 4 KiB files, half text and half random.
func mixedTree(b *testing.B, dir string, mib int) int64 {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	words := make([][]byte, 4096)
	for i := range words {
		w := make([]byte, 2+rng.IntN(8))
		for j := range w {
			w[j] = byte('a' + rng.IntN(26))
		}
		words[i] = w
	}
	var text bytes.Buffer
	for text.Len() < 1<<20 {
		text.Write(words[rng.IntN(len(words))])
		text.WriteByte(" \n"[rng.IntN(2)])
	}
	corpus := text.Bytes()
	random := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		return p
	}
	textual := func(n int) []byte {
		off := rng.IntN(len(corpus) - n)
		return corpus[off : off+n]
	}

	var total int64
	budget := int64(mib) << 20
	put := func(name string, data []byte) {
		writeFile(b, filepath.Join(dir, name), data, 0o644)
		total += int64(len(data))
	}
	for i := 0; total < budget*2/5; i++ {
		put(fmt.Sprintf("media/blob%d.bin", i), random(8<<20))
	}
	for i := 0; total < budget*4/5; i++ {
		put(fmt.Sprintf("docs/d%d/doc%d.txt", i/100, i), textual(30<<10))
	}
	for i := 0; total < budget; i++ {
		data := textual(4 << 10)
		if i%2 == 1 {
			data = random(4 << 10)
		}
		put(fmt.Sprintf("src/p%d/m%d/f%d.dat", i/500, i/50%10, i), data)
	}
	return total
}

// BenchmarkBackup measures a backup of a mixed tree to one and to two
// locations, against in-process emulators (which dominate the time:
// compare the agent's own CPU time with -cpuprofile).
func BenchmarkBackup(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("locations=%d", n), func(b *testing.B) {
			e := newEnv(b)
			e.agent.Log = nil
			e.agent.PartSize = 0
			dir := filepath.Join(b.TempDir(), "tree")
			size := mixedTree(b, dir, *benchMiB)
			b.SetBytes(size)
			b.ResetTimer()
			for i := range b.N {
				opts := Options{Workspace: testWorkspace, BackupID: fmt.Sprintf("bench-%d", i), Sources: []Source{{Name: "tree", Path: dir}}, Locations: e.locations[:n]}
				if _, err := e.agent.Backup(b.Context(), opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var benchFiles = flag.Int("backup.bench-files", 50000, "files in the tree BenchmarkArchiveSmallFiles archives")

// BenchmarkArchiveSmallFiles measures the archiver alone, into a discarded
// tar stream, on many small files: where per-file system calls (stat,
// open, extended attributes) rather than bytes set the pace.
func BenchmarkArchiveSmallFiles(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "tree")
	data := bytes.Repeat([]byte("x"), 512)
	for i := range *benchFiles {
		writeFile(b, filepath.Join(dir, fmt.Sprintf("d%d", i/1000), fmt.Sprintf("f%d", i)), data, 0o644)
	}
	b.ReportMetric(float64(*benchFiles), "files/op")
	b.ResetTimer()
	for range b.N {
		ar := newArchiver(io.Discard, slog.New(slog.DiscardHandler), new(atomic.Int64))
		if _, err := ar.addDirectory(b.Context(), Source{Name: "tree", Path: dir}); err != nil {
			b.Fatal(err)
		}
		if err := ar.close(); err != nil {
			b.Fatal(err)
		}
	}
}
