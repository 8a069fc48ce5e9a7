package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// treeFormat versions the generator: bump it whenever the content changes,
// so that cached trees from an older generator are not reused.
const treeFormat = 2

// File sizes span 4 KiB to 16 MiB, skewed to small files as on a real
// volume: log2(size/4 KiB) is 12u² for u uniform in [0, 1), so the median
// file has 32 KiB, the mean about 1 MiB (about 1000 files per GiB), and
// most bytes are in files over 1 MiB.
const (
	minFileSize = 4 << 10
	maxFileSize = 16 << 20
)

// tree describes a generated tree; tree.json next to the tree holds it and
// marks the tree complete.
type tree struct {
	Dir         string `json:"-"`
	Seed        uint64 `json:"seed"`
	Format      int    `json:"format"`
	Files       int    `json:"files"`
	Dirs        int    `json:"dirs"`
	Bytes       int64  `json:"bytes"`
	RandomBytes int64  `json:"random_bytes"`
	TextBytes   int64  `json:"text_bytes"`
}

// fileSpec is one file of the tree to generate.
type fileSpec struct {
	path string
	size int64
	text bool
}

// cachedTree returns the tree of size bytes for seed, generating it into
// the user cache directory unless an earlier run did.
func cachedTree(size int64, seed uint64) (*tree, error) {
	root, err := cacheRoot()
	if err != nil {
		return nil, err
	}
	base := filepath.Join(root, "bench-backup", fmt.Sprintf("tree-v%d-%d-seed%d", treeFormat, size, seed))
	if t, err := loadTree(base); err == nil {
		log.Printf("reusing the cached tree %s (%d files, %d MiB)", t.Dir, t.Files, t.Bytes>>20)
		return t, nil
	}
	if err := os.RemoveAll(base); err != nil {
		return nil, err
	}
	started := time.Now()
	t, err := generateTree(filepath.Join(base, "tree"), size, seed)
	if err != nil {
		return nil, err
	}
	meta, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(base, "tree.json"), meta, 0o644); err != nil {
		return nil, err
	}
	log.Printf("generated %s in %s (%d files, %d MiB)", t.Dir, time.Since(started).Round(time.Millisecond), t.Files, t.Bytes>>20)
	return t, nil
}

// cacheRoot is where hack/controlplane.sh caches too.
func cacheRoot() (string, error) {
	if dir := os.Getenv("WORKSPACE_OPERATOR_CACHE"); dir != "" {
		return dir, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "workspace-operator"), nil
}

func loadTree(base string) (*tree, error) {
	data, err := os.ReadFile(filepath.Join(base, "tree.json"))
	if err != nil {
		return nil, err
	}
	t := &tree{}
	if err := json.Unmarshal(data, t); err != nil {
		return nil, err
	}
	t.Dir = filepath.Join(base, "tree")
	return t, nil
}

// generateTree writes the tree: it plans every file from the seed, then
// fills each from its own generator, so that a file's content depends only
// on the seed and its index.
func generateTree(dir string, size int64, seed uint64) (*tree, error) {
	specs := planTree(size, seed)
	t := &tree{Dir: dir, Seed: seed, Format: treeFormat}
	dirs := map[string]bool{}
	for i, s := range specs {
		path := filepath.Join(dir, s.path)
		if parent := filepath.Dir(path); !dirs[parent] {
			if err := os.MkdirAll(parent, 0o755); err != nil {
				return nil, err
			}
			dirs[parent] = true
		}
		rng := rand.New(rand.NewChaCha8(chachaSeed(seed, uint64(i))))
		if err := writeFile(path, s, rng); err != nil {
			return nil, err
		}
		t.Files++
		t.Bytes += s.size
		if s.text {
			t.TextBytes += s.size
		} else {
			t.RandomBytes += s.size
		}
	}
	t.Dirs = len(dirs)
	return t, nil
}

// planTree draws file sizes until they add up to size, making each file
// random or text so that the two kinds stay at half the bytes each, and
// places the files in a few levels of directories.
func planTree(size int64, seed uint64) []fileSpec {
	rng := rand.New(rand.NewPCG(seed, 0x6261636b7570)) // "backup"
	dirs := planDirs(rng)
	var specs []fileSpec
	var total, text int64
	for i := 0; total < size; i++ {
		u := rng.Float64()
		n := int64(minFileSize * math.Pow(2, u*u*math.Log2(maxFileSize/minFileSize)))
		n = min(n, size-total)
		if n < minFileSize && total > 0 {
			// The remainder goes to the previous file rather than
			// making one smaller than the smallest.
			specs[len(specs)-1].size += n
			break
		}
		isText := text*2 < total+n
		dir := dirs[rng.IntN(len(dirs))]
		var name string
		if isText {
			name = fmt.Sprintf("%s/%s-%04d.%s", dir, []string{"events", "export"}[i%2], i, []string{"log", "csv"}[i%2])
			text += n
		} else {
			name = fmt.Sprintf("%s/blob-%04d.%s", dir, i, []string{"bin", "jpg", "parquet", "gz"}[rng.IntN(4)])
		}
		specs = append(specs, fileSpec{path: name, size: n, text: isText})
		total += n
	}
	return specs
}

// planDirs makes a directory layout one to four levels deep.
func planDirs(rng *rand.Rand) []string {
	tops := []string{"projects", "data", "home/dev", "logs", "models"}
	subs := []string{"alpha", "beta", "gamma", "raw", "processed", "2025", "archive", "tmp", "out", "src"}
	var dirs []string
	for range 48 {
		dir := tops[rng.IntN(len(tops))]
		for range rng.IntN(3) + 1 {
			dir += "/" + subs[rng.IntN(len(subs))]
		}
		dirs = append(dirs, dir)
	}
	return dirs
}

func chachaSeed(seed, index uint64) [32]byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
		s[8+i] = byte(index >> (8 * i))
	}
	return s
}

// writeFile writes one file of the tree in 1 MiB pieces.
func writeFile(path string, s fileSpec, rng *rand.Rand) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	gen := randomBytes
	if s.text {
		gen = textLines(filepath.Ext(path))
	}
	buf := make([]byte, 0, 1<<20+4<<10)
	for left := s.size; left > 0; {
		buf = gen(buf[:0], rng, 1<<20)
		chunk := buf[:min(int64(len(buf)), left)]
		if _, err := f.Write(chunk); err != nil {
			return err
		}
		left -= int64(len(chunk))
	}
	return nil
}

// randomBytes appends n incompressible bytes.
func randomBytes(buf []byte, rng *rand.Rand, n int) []byte {
	buf = buf[:n]
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := i; j < min(i+8, n); j++ {
			buf[j] = byte(v)
			v >>= 8
		}
	}
	return buf
}

// textLines returns the generator of log lines (.log) or CSV rows (.csv):
// structured, repetitive text of the kind zstd compresses several times.
func textLines(ext string) func([]byte, *rand.Rand, int) []byte {
	line := logLine
	if ext == ".csv" {
		line = csvRow
	}
	return func(buf []byte, rng *rand.Rand, n int) []byte {
		for len(buf) < n {
			buf = line(buf, rng)
		}
		return buf
	}
}

var (
	logLevels  = []string{"INFO", "INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR"}
	logMethods = []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	logPaths   = []string{"/v1/workspaces/", "/v1/files/", "/v1/users/", "/healthz", "/v1/jobs/", "/metrics"}
	logStatus  = []string{"200", "200", "200", "200", "201", "204", "304", "404", "500"}
	csvRegions = []string{"eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-1"}
	csvStates  = []string{"completed", "completed", "completed", "pending", "failed", "refunded"}
	epoch      = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
)

func logLine(buf []byte, rng *rand.Rand) []byte {
	ts := time.Unix(epoch+rng.Int64N(365*86400), rng.Int64N(1e9)).UTC()
	buf = ts.AppendFormat(buf, "2006-01-02T15:04:05.000Z")
	buf = append(buf, ' ')
	buf = append(buf, logLevels[rng.IntN(len(logLevels))]...)
	buf = append(buf, " api-"...)
	buf = strconv.AppendInt(buf, int64(rng.IntN(12)), 10)
	buf = append(buf, ' ')
	buf = append(buf, logMethods[rng.IntN(len(logMethods))]...)
	buf = append(buf, ' ')
	buf = append(buf, logPaths[rng.IntN(len(logPaths))]...)
	buf = strconv.AppendInt(buf, int64(rng.IntN(5000)), 10)
	buf = append(buf, " status="...)
	buf = append(buf, logStatus[rng.IntN(len(logStatus))]...)
	buf = append(buf, " duration_ms="...)
	buf = strconv.AppendInt(buf, int64(rng.ExpFloat64()*40), 10)
	buf = append(buf, " bytes="...)
	buf = strconv.AppendInt(buf, int64(rng.ExpFloat64()*8000), 10)
	buf = append(buf, " request_id="...)
	buf = strconv.AppendUint(buf, rng.Uint64(), 16)
	return append(buf, '\n')
}

func csvRow(buf []byte, rng *rand.Rand) []byte {
	buf = strconv.AppendInt(buf, int64(rng.IntN(10_000_000)), 10)
	buf = append(buf, ',')
	buf = time.Unix(epoch+rng.Int64N(365*86400), 0).UTC().AppendFormat(buf, time.RFC3339)
	buf = append(buf, ",user"...)
	buf = strconv.AppendInt(buf, int64(rng.IntN(20000)), 10)
	buf = append(buf, ',')
	buf = append(buf, csvRegions[rng.IntN(len(csvRegions))]...)
	buf = append(buf, ',')
	buf = strconv.AppendFloat(buf, math.Round(rng.ExpFloat64()*5000)/100, 'f', 2, 64)
	buf = append(buf, ',')
	buf = append(buf, csvStates[rng.IntN(len(csvStates))]...)
	return append(buf, '\n')
}

// warmCache reads every file of the tree once, so that all variants read
// it from the page cache.
func warmCache(dir string) error {
	started := time.Now()
	var total int64
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(io.Discard, f, buf)
		total += n
		_ = f.Close() // read-only
		return err
	})
	log.Printf("warmed the page cache: read %d MiB in %s", total>>20, time.Since(started).Round(time.Millisecond))
	return err
}
