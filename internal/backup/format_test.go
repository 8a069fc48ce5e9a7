package backup

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// formatErrors are the sentinel errors every archive failure must match.
var formatErrors = []error{ErrNotArchive, ErrUnsupportedVersion, ErrMalformedHeader, ErrContextMismatch, ErrKeyRefused, ErrTampered, ErrTruncated}

func isFormatError(err error) bool {
	for _, want := range formatErrors {
		if errors.Is(err, want) {
			return true
		}
	}
	return false
}

// testKey is the data key of archives sealed without KMS.
var testKey = bytes.Repeat([]byte{0x42}, dataKeySize)

func testHeader(chunkSize int) *Header {
	return &Header{
		KeyARN:            "arn:aws:kms:eu-west-1:000000000000:key/11111111-2222-3333-4444-555555555555",
		EncryptedDataKey:  []byte("not really a KMS blob"),
		EncryptionContext: encryptionContext("acme", "20300301T020000Z"),
		ChunkSize:         chunkSize,
		NoncePrefix:       [noncePrefixSize]byte{1, 2, 3, 4},
	}
}

// seal builds an archive of plaintext with testKey, writing it in pieces
// of varying size to exercise the writer's buffering.
func seal(t testing.TB, plaintext []byte, chunkSize int) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := newWriter(&out, testHeader(chunkSize), testKey)
	if err != nil {
		t.Fatalf("newWriter: %v", err)
	}
	for i, rest := 0, plaintext; len(rest) > 0; i++ {
		n := min((i*7919)%(3*chunkSize+5)+1, len(rest))
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatalf("Write: %v", err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out.Bytes()
}

// open reads an archive sealed with key, without KMS.
func open(archive, key []byte) ([]byte, error) {
	br := bufio.NewReader(bytes.NewReader(archive))
	h, digest, err := readHeader(br)
	if err != nil {
		return nil, err
	}
	r, err := newReader(br, h, digest, key)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// chunkOffsets returns where each chunk of a sealed archive starts, and
// the archive's length as the last element.
func chunkOffsets(t *testing.T, archive []byte, chunkSize int) []int {
	t.Helper()
	raw, err := testHeader(chunkSize).marshal()
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int
	for off := len(raw); off < len(archive); off += chunkSize + tagSize {
		offsets = append(offsets, off)
	}
	return append(offsets, len(archive))
}

func TestFormatRoundTrip(t *testing.T) {
	const cs = 64
	sizes := []int{0, 1, cs - 1, cs, cs + 1, 2 * cs, 2*cs + 1, 10*cs + 7, 100 * cs}
	for _, size := range sizes {
		plaintext := randomBytes(t, size)
		archive := seal(t, plaintext, cs)
		raw, _ := testHeader(cs).marshal()
		chunks := max(1, (size+cs-1)/cs)
		if want := len(raw) + size + chunks*tagSize; len(archive) != want {
			t.Errorf("size %d: archive has %d bytes, want %d (%d chunks)", size, len(archive), want, chunks)
		}
		got, err := open(archive, testKey)
		if err != nil {
			t.Errorf("size %d: open: %v", size, err)
			continue
		}
		if !bytes.Equal(got, plaintext) {
			t.Errorf("size %d: plaintext differs", size)
		}
	}
}

func TestFormatRoundTripDefaultChunks(t *testing.T) {
	for _, size := range []int{DefaultChunkSize, DefaultChunkSize + 1, 3*DefaultChunkSize - 1} {
		plaintext := randomBytes(t, size)
		got, err := open(seal(t, plaintext, DefaultChunkSize), testKey)
		if err != nil || !bytes.Equal(got, plaintext) {
			t.Errorf("size %d: open = %d bytes, %v", size, len(got), err)
		}
	}
}

func TestFormatHeaderRoundTrip(t *testing.T) {
	want := testHeader(1000)
	raw, err := want.marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := readHeader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("readHeader: %v", err)
	}
	if got.KeyARN != want.KeyARN || !bytes.Equal(got.EncryptedDataKey, want.EncryptedDataKey) ||
		!maps.Equal(got.EncryptionContext, want.EncryptionContext) || got.ChunkSize != want.ChunkSize || got.NoncePrefix != want.NoncePrefix {
		t.Errorf("header = %+v, want %+v", got, want)
	}
}

func TestFormatRejectsInvalidHeaders(t *testing.T) {
	for name, mutate := range map[string]func(*Header){
		"no key":            func(h *Header) { h.KeyARN = "" },
		"no data key":       func(h *Header) { h.EncryptedDataKey = nil },
		"huge chunks":       func(h *Header) { h.ChunkSize = MaxChunkSize + 1 },
		"zero chunks":       func(h *Header) { h.ChunkSize = 0 },
		"empty context key": func(h *Header) { h.EncryptionContext = map[string]string{"": "x"} },
	} {
		h := testHeader(64)
		mutate(h)
		if _, err := newWriter(io.Discard, h, testKey); !errors.Is(err, ErrMalformedHeader) {
			t.Errorf("%s: newWriter error = %v, want ErrMalformedHeader", name, err)
		}
	}
}

func TestFormatDetectsTampering(t *testing.T) {
	const cs = 64
	plaintext := randomBytes(t, 5*cs+10)
	archive := seal(t, plaintext, cs)
	offsets := chunkOffsets(t, archive, cs) // 6 chunks
	chunk := func(i int) []byte { return archive[offsets[i]:offsets[i+1]] }
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	header := archive[:offsets[0]]
	flip := func(at int) []byte {
		b := bytes.Clone(archive)
		b[at] ^= 0x01
		return b
	}

	for _, tc := range []struct {
		name    string
		archive []byte
		want    error
	}{
		{"flipped magic", flip(0), ErrNotArchive},
		{"other version", flip(len(magic) + 1), ErrUnsupportedVersion},
		{"flipped key ARN", flip(fixedHeaderSize + 5), ErrTampered},
		{"flipped nonce prefix", flip(offsets[0] - 1), ErrTampered},
		{"flipped byte in chunk 0", flip(offsets[0] + 3), ErrTampered},
		{"flipped byte in chunk 3", flip(offsets[3] + 3), ErrTampered},
		{"flipped tag of the final chunk", flip(len(archive) - 1), ErrTampered},
		{"final chunk dropped", archive[:offsets[5]], ErrTruncated},
		{"all chunks dropped", header, ErrTruncated},
		{"cut inside the header", archive[:offsets[0]-3], ErrTruncated},
		{"chunks 1 and 2 swapped", join(header, chunk(0), chunk(2), chunk(1), chunk(3), chunk(4), chunk(5)), ErrTampered},
		{"chunk 2 duplicated", join(header, chunk(0), chunk(1), chunk(2), chunk(2), chunk(3), chunk(4), chunk(5)), ErrTampered},
		{"chunk 1 dropped", join(header, chunk(0), chunk(2), chunk(3), chunk(4), chunk(5)), ErrTampered},
		{"data appended", join(archive, []byte("x")), ErrTampered},
		{"chunk appended", join(archive, chunk(1)), ErrTampered},
		{"empty", nil, ErrNotArchive},
	} {
		got, err := open(tc.archive, testKey)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: error = %v, want %v", tc.name, err, tc.want)
		}
		if err == nil && !bytes.Equal(got, plaintext) {
			t.Errorf("%s: returned wrong plaintext without error", tc.name)
		}
	}
}

// TestFormatEveryByteMatters flips every bit of a small archive, one at a
// time: every variant must fail with one of the format errors.
func TestFormatEveryByteMatters(t *testing.T) {
	archive := seal(t, randomBytes(t, 150), 64)
	for i := range archive {
		for bit := range 8 {
			b := bytes.Clone(archive)
			b[i] ^= 1 << bit
			if _, err := open(b, testKey); !isFormatError(err) {
				t.Fatalf("bit %d of byte %d flipped: error = %v, want a format error", bit, i, err)
			}
		}
	}
}

// TestFormatReaderReturnsNothingUnauthenticated checks that plaintext is
// only released chunk by authenticated chunk: a flip in chunk 2 still
// lets chunks 0 and 1 through, and nothing of chunk 2.
func TestFormatReaderReturnsNothingUnauthenticated(t *testing.T) {
	const cs = 64
	plaintext := randomBytes(t, 4*cs)
	archive := seal(t, plaintext, cs)
	archive[chunkOffsets(t, archive, cs)[2]] ^= 0xff
	got, err := open(archive, testKey)
	if !errors.Is(err, ErrTampered) {
		t.Fatalf("error = %v, want ErrTampered", err)
	}
	if !bytes.Equal(got, plaintext[:2*cs]) {
		t.Errorf("released %d bytes before the failure, want exactly the %d of chunks 0 and 1", len(got), 2*cs)
	}
}

func TestFormatWrongDataKey(t *testing.T) {
	archive := seal(t, []byte("secret"), 64)
	other := bytes.Repeat([]byte{0x43}, dataKeySize)
	if _, err := open(archive, other); !errors.Is(err, ErrTampered) {
		t.Errorf("error = %v, want ErrTampered", err)
	}
}

// TestFormatWithKMS seals and opens through the emulated KMS, and checks
// that the reader refuses keys, contexts and states that must not open it.
func TestFormatWithKMS(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	client := e.kms(primary)
	encCtx := encryptionContext(testWorkspace, "ctx-test-1")
	plaintext := randomBytes(t, 3*DefaultChunkSize+11)

	var archive bytes.Buffer
	w, err := NewWriter(ctx, client, &archive, testAlias, encCtx, 0)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	if got := w.Header().KeyARN; got != e.keyARNs[primary] {
		t.Errorf("header key = %s, want %s", got, e.keyARNs[primary])
	}
	if _, err := w.Write(plaintext); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(archive.Bytes(), plaintext[:64]) {
		t.Fatal("archive contains plaintext")
	}

	read := func(client KMS, opts ReaderOptions) ([]byte, error) {
		r, err := NewReader(ctx, client, bytes.NewReader(archive.Bytes()), opts)
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	}
	got, err := read(client, ReaderOptions{KeyID: testAlias, Context: encCtx})
	if err != nil || !bytes.Equal(got, plaintext) {
		t.Fatalf("read back: %d bytes, %v", len(got), err)
	}

	_, otherARN := e.createKey(t, primary, "alias/other")
	for _, tc := range []struct {
		name   string
		client KMS
		opts   ReaderOptions
		want   error
	}{
		{"another key", client, ReaderOptions{KeyID: otherARN}, ErrKeyRefused},
		{"another backup's context", client, ReaderOptions{Context: encryptionContext(testWorkspace, "ctx-test-2")}, ErrContextMismatch},
		{"another region", e.kms(secondary), ReaderOptions{}, ErrKeyRefused},
	} {
		if _, err := read(tc.client, tc.opts); !errors.Is(err, tc.want) {
			t.Errorf("%s: error = %v, want %v", tc.name, err, tc.want)
		}
	}

	// A context altered in the header (and the header digest with it) is
	// refused by KMS before any chunk is read.
	tampered := bytes.Clone(archive.Bytes())
	i := bytes.Index(tampered, []byte("ctx-test-1"))
	tampered[i+len("ctx-test-1")-1] = '2'
	if _, err := NewReader(ctx, client, bytes.NewReader(tampered), ReaderOptions{}); !errors.Is(err, ErrKeyRefused) {
		t.Errorf("altered context: error = %v, want ErrKeyRefused", err)
	}

	if _, err := client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(e.keyIDs[primary])}); err != nil {
		t.Fatal(err)
	}
	if _, err := read(client, ReaderOptions{}); !errors.Is(err, ErrKeyRefused) {
		t.Errorf("disabled key: error = %v, want ErrKeyRefused", err)
	}
}

// FuzzReader feeds the reader arbitrary archives. It must never panic,
// must fail with one of the format errors, and whatever it accepts must be
// exactly what the writer produces for that plaintext: no second encoding
// of the same content gets through.
func FuzzReader(f *testing.F) {
	for _, size := range []int{0, 1, 63, 64, 65, 200, 1000} {
		f.Add(seal(f, bytes.Repeat([]byte("fuzz"), size/4+1)[:size], 64))
	}
	f.Add(seal(f, []byte("tiny chunks"), 1))
	f.Add(seal(f, make([]byte, 3000), 1024))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		h, digest, err := readHeader(br)
		if err != nil {
			if !isFormatError(err) {
				t.Fatalf("readHeader error %v is not a format error", err)
			}
			return
		}
		r, err := newReader(br, h, digest, testKey)
		if err != nil {
			t.Fatalf("newReader: %v", err)
		}
		plaintext, err := io.ReadAll(r)
		if err != nil {
			if !isFormatError(err) {
				t.Fatalf("read error %v is not a format error", err)
			}
			return
		}
		var again bytes.Buffer
		w, err := newWriter(&again, h, testKey)
		if err != nil {
			t.Fatalf("accepted header does not re-encode: %v", err)
		}
		_, _ = w.Write(plaintext)
		_ = w.Close()
		if !bytes.Equal(again.Bytes(), data) {
			t.Fatalf("accepted an archive the writer would not produce (%d bytes, re-sealed %d)", len(data), again.Len())
		}
	})
}

func TestFormatHeaderLimits(t *testing.T) {
	// A header claiming a huge body is refused before anything is
	// allocated for it.
	raw, _ := testHeader(64).marshal()
	binary.BigEndian.PutUint32(raw[len(magic)+2:], 1<<31)
	if _, _, err := readHeader(bytes.NewReader(raw)); !errors.Is(err, ErrMalformedHeader) {
		t.Errorf("huge body: error = %v, want ErrMalformedHeader", err)
	}
}
