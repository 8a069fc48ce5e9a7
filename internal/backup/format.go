package backup

// # Encrypted archive format, version 1
//
// An archive file (archive.tar.zst.enc) is a header followed by a sequence of
// chunks. All integers are big-endian and unsigned.
//
// Header:
//
//	magic        8 bytes   0x89 'W' 'S' 'O' 'B' 'K' '\r' '\n'
//	version      uint16    1
//	body length  uint32    number of bytes of the body that follows, at most 32768
//	body:
//	  key ARN            uint16 length L (1..2048), then L bytes of UTF-8:
//	                     the ARN of the KMS key the data key is encrypted under
//	  encrypted data key uint16 length L (1..6144), then L bytes: the
//	                     CiphertextBlob KMS GenerateDataKey returned
//	  context pairs      uint16 count N (0..64), then N pairs, each a key and a
//	                     value, each as uint16 length and UTF-8 bytes (keys
//	                     1..1024 bytes, values 0..1024 bytes); keys strictly
//	                     increasing in byte order, so the encoding is canonical.
//	                     This is the KMS encryption context of the data key.
//	  chunk size         uint32 S (1..1048576): plaintext bytes per chunk
//	  nonce prefix       4 random bytes
//
// The body must be consumed exactly by its fields. Let D be the SHA-256
// digest of the whole header as stored, from the first magic byte to the
// last nonce prefix byte.
//
// The data key K is the 32-byte Plaintext of KMS GenerateDataKey with
// KeySpec AES_256; a reader recovers it with KMS Decrypt of the encrypted
// data key under the encryption context from the header. The backup agent
// uses the context {workspace-operator.io/workspace: <workspace>,
// workspace-operator.io/backup-id: <backup ID>}, so a data key only decrypts
// for the backup it was made for, and CloudTrail names both on every use.
//
// Chunks: the plaintext (a zstd-compressed tar stream) is cut into chunks of
// exactly S bytes, except the last, which has 0..S bytes and is empty only
// if the whole plaintext is (an exact multiple of S ends with a full final
// chunk, not an empty one). Chunk i (counting from 0) is stored as
//
//	AES-256-GCM-Seal(key K, nonce = prefix || uint64(i),
//	                 plaintext_i, additional data = D || uint64(i) || final)
//
// that is, its ciphertext followed by the 16-byte tag, where final is one
// byte, 0x01 for the last chunk and 0x00 for every other. The stream ends
// right after the last chunk; there is no trailer. A reader therefore knows
// a chunk is the last one only by the end of the stream, and the final flag
// makes that authenticated: a stream cut after a full chunk fails because
// that chunk was sealed as non-final, and bytes appended after the final
// chunk fail because the final chunk is then opened as non-final.
//
// What this protects against: D in every chunk's additional data makes any
// change to the header fail chunk 0 (and every other chunk); the index in
// nonce and additional data detects reordered, dropped or duplicated
// chunks; the final flag detects truncation and extension. The data key is
// fresh for every archive (one GenerateDataKey per archive and location), so
// nonces never repeat under a key; the random prefix guards against a
// reused data key all the same.
//
// Plaintext: one zstd frame (RFC 8878, with content checksum) holding a
// POSIX.1-2001 (PAX) tar stream that ends with the end-of-archive marker.
// Each source is a top-level directory named as in the manifest's sources
// (BucketSourceName for the file bucket); entries are directories, regular
// files and symbolic links, with permission bits (plus setuid, setgid and
// sticky), numeric owner and group, and modification time to the
// nanosecond (PAX mtime).
//
// A reader needs a buffer of S+16 bytes for ciphertext and S for plaintext,
// whatever the archive size, and refuses headers beyond the limits above
// before allocating anything they declare.

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"unicode/utf8"
)

const (
	// FormatVersion is the version of the archive format this package
	// writes and the only one it reads.
	FormatVersion = 1
	// DefaultChunkSize is the plaintext size of a chunk unless the writer
	// is told otherwise: large enough that the 16-byte tag per chunk is
	// noise, small enough that buffers stay small.
	DefaultChunkSize = 256 << 10
	// MaxChunkSize bounds the chunk size a reader accepts, and with it
	// the memory a hostile header can make a reader allocate.
	MaxChunkSize = 1 << 20

	dataKeySize      = 32
	noncePrefixSize  = 4
	tagSize          = 16
	digestSize       = sha256.Size
	fixedHeaderSize  = len(magic) + 2 + 4
	maxHeaderBody    = 32 << 10
	maxKeyARNSize    = 2048
	maxDataKeyBlob   = 6144
	maxContextPairs  = 64
	maxContextString = 1024
)

// magic starts every archive. The high first byte and the CR LF catch
// transfers that strip the eighth bit or translate line endings.
var magic = [8]byte{0x89, 'W', 'S', 'O', 'B', 'K', '\r', '\n'}

// Errors the reader returns, wrapped with details. Every failure to read an
// archive matches exactly one of them (or is an I/O error of the
// underlying reader, or of KMS, wrapped in ErrKeyRefused).
var (
	// ErrNotArchive: the stream does not start with the archive magic.
	ErrNotArchive = errors.New("not an encrypted backup archive")
	// ErrUnsupportedVersion: the archive has a format version this reader
	// does not know.
	ErrUnsupportedVersion = errors.New("unsupported archive format version")
	// ErrMalformedHeader: the header violates the format.
	ErrMalformedHeader = errors.New("malformed archive header")
	// ErrContextMismatch: the header's encryption context is not the one
	// the caller expects, so the archive belongs to another backup.
	ErrContextMismatch = errors.New("archive belongs to another backup")
	// ErrKeyRefused: KMS did not decrypt the data key, typically because
	// the archive was sealed under another key or the key is disabled.
	ErrKeyRefused = errors.New("KMS refused to decrypt the data key")
	// ErrTampered: a chunk failed authentication; the archive or its
	// header was altered, or the data key is not the archive's.
	ErrTampered = errors.New("archive failed authentication")
	// ErrTruncated: the archive ends before its final chunk.
	ErrTruncated = errors.New("archive is truncated")
)

// Header is the clear-text header of an archive.
type Header struct {
	// KeyARN is the KMS key the data key is encrypted under.
	KeyARN string
	// EncryptedDataKey is KMS's CiphertextBlob of the data key.
	EncryptedDataKey []byte
	// EncryptionContext binds the data key; KMS Decrypt needs it verbatim.
	EncryptionContext map[string]string
	// ChunkSize is the plaintext size of every chunk but the last.
	ChunkSize int
	// NoncePrefix is the random first part of every chunk nonce.
	NoncePrefix [noncePrefixSize]byte
}

// marshal encodes the header, refusing values a reader would reject.
func (h *Header) marshal() ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	body := make([]byte, 0, 256)
	body = appendString(body, h.KeyARN)
	body = appendString(body, string(h.EncryptedDataKey))
	keys := slices.Sorted(maps.Keys(h.EncryptionContext))
	body = binary.BigEndian.AppendUint16(body, uint16(len(keys)))
	for _, k := range keys {
		body = appendString(body, k)
		body = appendString(body, h.EncryptionContext[k])
	}
	body = binary.BigEndian.AppendUint32(body, uint32(h.ChunkSize))
	body = append(body, h.NoncePrefix[:]...)
	if len(body) > maxHeaderBody {
		return nil, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrMalformedHeader, len(body), maxHeaderBody)
	}
	out := make([]byte, 0, fixedHeaderSize+len(body))
	out = append(out, magic[:]...)
	out = binary.BigEndian.AppendUint16(out, FormatVersion)
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
	return append(out, body...), nil
}

func (h *Header) validate() error {
	switch {
	case h.KeyARN == "" || len(h.KeyARN) > maxKeyARNSize || !utf8.ValidString(h.KeyARN):
		return fmt.Errorf("%w: key ARN must be 1..%d bytes of UTF-8", ErrMalformedHeader, maxKeyARNSize)
	case len(h.EncryptedDataKey) == 0 || len(h.EncryptedDataKey) > maxDataKeyBlob:
		return fmt.Errorf("%w: encrypted data key must be 1..%d bytes", ErrMalformedHeader, maxDataKeyBlob)
	case len(h.EncryptionContext) > maxContextPairs:
		return fmt.Errorf("%w: more than %d encryption context pairs", ErrMalformedHeader, maxContextPairs)
	case h.ChunkSize < 1 || h.ChunkSize > MaxChunkSize:
		return fmt.Errorf("%w: chunk size %d outside 1..%d", ErrMalformedHeader, h.ChunkSize, MaxChunkSize)
	}
	for k, v := range h.EncryptionContext {
		if k == "" || len(k) > maxContextString || len(v) > maxContextString || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("%w: encryption context entry %q", ErrMalformedHeader, k)
		}
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// readHeader reads and validates a header, returning it with its digest D.
// It allocates at most maxHeaderBody bytes whatever the input claims.
func readHeader(r io.Reader) (*Header, [digestSize]byte, error) {
	var digest [digestSize]byte
	fixed := make([]byte, fixedHeaderSize)
	if n, err := io.ReadFull(r, fixed); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if n == 0 {
				return nil, digest, fmt.Errorf("%w: the stream is empty", ErrNotArchive)
			}
			if !bytes.HasPrefix(magic[:], fixed[:min(n, len(magic))]) {
				return nil, digest, ErrNotArchive
			}
			return nil, digest, fmt.Errorf("%w: the stream ends inside the header", ErrTruncated)
		}
		return nil, digest, fmt.Errorf("read archive header: %w", err)
	}
	if !bytes.Equal(fixed[:len(magic)], magic[:]) {
		return nil, digest, ErrNotArchive
	}
	if v := binary.BigEndian.Uint16(fixed[len(magic):]); v != FormatVersion {
		return nil, digest, fmt.Errorf("%w: %d (this reader knows %d)", ErrUnsupportedVersion, v, FormatVersion)
	}
	size := binary.BigEndian.Uint32(fixed[len(magic)+2:])
	if size > maxHeaderBody {
		return nil, digest, fmt.Errorf("%w: body length %d exceeds %d", ErrMalformedHeader, size, maxHeaderBody)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, digest, fmt.Errorf("%w: the stream ends inside the header", ErrTruncated)
		}
		return nil, digest, fmt.Errorf("read archive header: %w", err)
	}
	h, err := parseHeaderBody(body)
	if err != nil {
		return nil, digest, err
	}
	d := sha256.New()
	d.Write(fixed)
	d.Write(body)
	d.Sum(digest[:0])
	return h, digest, nil
}

// headerCursor decodes the header body; the first overrun sticks.
type headerCursor struct {
	b   []byte
	bad bool
}

func (c *headerCursor) take(n int) []byte {
	if c.bad || n > len(c.b) {
		c.bad = true
		return nil
	}
	out := c.b[:n]
	c.b = c.b[n:]
	return out
}

func (c *headerCursor) uint16() int {
	b := c.take(2)
	if b == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(b))
}

func (c *headerCursor) uint32() uint32 {
	b := c.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (c *headerCursor) bytes() []byte { return c.take(c.uint16()) }

func parseHeaderBody(body []byte) (*Header, error) {
	c := &headerCursor{b: body}
	h := &Header{KeyARN: string(c.bytes())}
	h.EncryptedDataKey = bytes.Clone(c.bytes())
	n := c.uint16()
	if n > maxContextPairs {
		return nil, fmt.Errorf("%w: %d encryption context pairs exceed %d", ErrMalformedHeader, n, maxContextPairs)
	}
	h.EncryptionContext = make(map[string]string, n)
	previous := ""
	for i := 0; i < n && !c.bad; i++ {
		k, v := string(c.bytes()), string(c.bytes())
		if i > 0 && k <= previous {
			return nil, fmt.Errorf("%w: encryption context keys are not strictly increasing", ErrMalformedHeader)
		}
		previous = k
		h.EncryptionContext[k] = v
	}
	chunkSize := c.uint32()
	copy(h.NoncePrefix[:], c.take(noncePrefixSize))
	if c.bad {
		return nil, fmt.Errorf("%w: fields overrun the header body", ErrMalformedHeader)
	}
	if len(c.b) != 0 {
		return nil, fmt.Errorf("%w: %d unused bytes at the end of the header body", ErrMalformedHeader, len(c.b))
	}
	if chunkSize > MaxChunkSize {
		return nil, fmt.Errorf("%w: chunk size %d exceeds %d", ErrMalformedHeader, chunkSize, MaxChunkSize)
	}
	h.ChunkSize = int(chunkSize)
	if err := h.validate(); err != nil {
		return nil, err
	}
	return h, nil
}

// chunkCipher seals and opens the chunks of one archive.
type chunkCipher struct {
	aead   cipher.AEAD
	digest [digestSize]byte
	prefix [noncePrefixSize]byte
	nonce  [12]byte
	ad     [digestSize + 8 + 1]byte
}

func newChunkCipher(dataKey []byte, digest [digestSize]byte, prefix [noncePrefixSize]byte) (*chunkCipher, error) {
	if len(dataKey) != dataKeySize {
		return nil, fmt.Errorf("data key is %d bytes, want %d", len(dataKey), dataKeySize)
	}
	block, err := aes.NewCipher(dataKey)
	if err != nil {
		return nil, fmt.Errorf("AES: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("GCM: %w", err)
	}
	c := &chunkCipher{aead: aead, digest: digest, prefix: prefix}
	copy(c.nonce[:], prefix[:])
	copy(c.ad[:], digest[:])
	return c, nil
}

// setChunk prepares nonce and additional data for chunk index.
func (c *chunkCipher) setChunk(index uint64, final bool) {
	binary.BigEndian.PutUint64(c.nonce[noncePrefixSize:], index)
	binary.BigEndian.PutUint64(c.ad[digestSize:], index)
	c.ad[digestSize+8] = 0
	if final {
		c.ad[digestSize+8] = 1
	}
}

func (c *chunkCipher) seal(dst, plaintext []byte, index uint64, final bool) []byte {
	c.setChunk(index, final)
	return c.aead.Seal(dst, c.nonce[:], plaintext, c.ad[:])
}

func (c *chunkCipher) open(dst, ciphertext []byte, index uint64, final bool) ([]byte, error) {
	c.setChunk(index, final)
	return c.aead.Open(dst, c.nonce[:], ciphertext, c.ad[:])
}

// Writer seals a plaintext stream into an archive. It holds one chunk of
// plaintext and one of ciphertext, whatever the stream's length.
type Writer struct {
	dst         io.Writer
	header      *Header
	headerBytes []byte // written before the first chunk, then nil
	cipher      *chunkCipher
	plain       []byte // buffered plaintext, len <= ChunkSize
	sealed      []byte
	index       uint64
	closed      bool
	err         error
}

// newWriter seals with a data key the caller already has: NewWriter's
// second half, and what tests and the fuzzer use to build archives without
// KMS. It writes nothing until the first Write or Close.
func newWriter(dst io.Writer, h *Header, dataKey []byte) (*Writer, error) {
	raw, err := h.marshal()
	if err != nil {
		return nil, err
	}
	c, err := newChunkCipher(dataKey, sha256.Sum256(raw), h.NoncePrefix)
	if err != nil {
		return nil, err
	}
	return &Writer{
		dst:         dst,
		header:      h,
		headerBytes: raw,
		cipher:      c,
		plain:       make([]byte, 0, h.ChunkSize),
		sealed:      make([]byte, 0, h.ChunkSize+tagSize),
	}, nil
}

// Header returns the archive's header.
func (w *Writer) Header() *Header { return w.header }

// Write buffers p and seals every chunk that is known not to be the last.
// A full chunk is held back until more data arrives, because only Close
// can tell whether it is final.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errors.New("write to closed archive writer")
	}
	written := 0
	for len(p) > 0 {
		if len(w.plain) == cap(w.plain) {
			if err := w.flush(false); err != nil {
				return written, err
			}
		}
		n := copy(w.plain[len(w.plain):cap(w.plain)], p)
		w.plain = w.plain[:len(w.plain)+n]
		p = p[n:]
		written += n
	}
	return written, nil
}

// Close seals the final chunk. It does not close the destination.
func (w *Writer) Close() error {
	if w.err != nil || w.closed {
		return w.err
	}
	w.closed = true
	return w.flush(true)
}

func (w *Writer) flush(final bool) error {
	if w.headerBytes != nil {
		if _, err := w.dst.Write(w.headerBytes); err != nil {
			w.err = fmt.Errorf("write archive header: %w", err)
			return w.err
		}
		w.headerBytes = nil
	}
	if w.index == ^uint64(0) {
		w.err = errors.New("archive exceeds the maximum number of chunks")
		return w.err
	}
	w.sealed = w.cipher.seal(w.sealed[:0], w.plain, w.index, final)
	if _, err := w.dst.Write(w.sealed); err != nil {
		w.err = fmt.Errorf("write archive chunk %d: %w", w.index, err)
		return w.err
	}
	w.index++
	w.plain = w.plain[:0]
	return nil
}

// Reader opens an archive: it authenticates every chunk before returning
// any of its plaintext, and returns io.EOF only after the final chunk.
type Reader struct {
	src       *bufio.Reader
	header    *Header
	cipher    *chunkCipher
	sealed    []byte
	plainBuf  []byte
	plain     []byte // authenticated plaintext not yet returned
	index     uint64
	done      bool
	err       error
	chunkSize int
}

// newReader opens the chunks that follow a header read from src with
// readHeader, under a data key the caller already has.
func newReader(src *bufio.Reader, h *Header, digest [digestSize]byte, dataKey []byte) (*Reader, error) {
	c, err := newChunkCipher(dataKey, digest, h.NoncePrefix)
	if err != nil {
		return nil, err
	}
	return &Reader{
		src:       src,
		header:    h,
		cipher:    c,
		sealed:    make([]byte, h.ChunkSize+tagSize),
		plainBuf:  make([]byte, 0, h.ChunkSize),
		chunkSize: h.ChunkSize,
	}, nil
}

// Header returns the archive's header.
func (r *Reader) Header() *Header { return r.header }

// Read returns authenticated plaintext. Errors are sticky.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		switch {
		case r.err != nil:
			return 0, r.err
		case r.done:
			return 0, io.EOF
		}
		r.err = r.next()
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// next reads and opens one chunk. A chunk is final when the stream ends
// right after it, which the final flag then has to confirm.
func (r *Reader) next() error {
	n, err := io.ReadFull(r.src, r.sealed)
	final := false
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: the stream ends after chunk %d without a final chunk", ErrTruncated, int64(r.index)-1)
	case errors.Is(err, io.ErrUnexpectedEOF):
		final = true
	case err != nil:
		return fmt.Errorf("read archive chunk %d: %w", r.index, err)
	default:
		if _, err := r.src.Peek(1); errors.Is(err, io.EOF) {
			final = true
		} else if err != nil {
			return fmt.Errorf("read archive chunk %d: %w", r.index+1, err)
		}
	}
	if n < tagSize {
		return fmt.Errorf("%w: chunk %d has %d bytes, fewer than its %d-byte tag", ErrTruncated, r.index, n, tagSize)
	}
	if r.index == ^uint64(0) {
		return fmt.Errorf("%w: too many chunks", ErrTampered)
	}
	sealed := r.sealed[:n]
	plain, err := r.cipher.open(r.plainBuf[:0], sealed, r.index, final)
	if err != nil {
		return r.explain(sealed, final)
	}
	r.plain = plain
	r.done = final
	r.index++
	return nil
}

// explain turns a chunk that failed to open into a precise error, by
// checking whether it opens with the opposite final flag.
func (r *Reader) explain(sealed []byte, final bool) error {
	if _, err := r.cipher.open(r.plainBuf[:0], sealed, r.index, !final); err == nil {
		if final {
			return fmt.Errorf("%w: the stream ends after chunk %d, which is not the final chunk", ErrTruncated, r.index)
		}
		return fmt.Errorf("%w: data follows the final chunk %d", ErrTampered, r.index)
	}
	if r.index == 0 {
		return fmt.Errorf("%w: chunk 0 does not open with the data key: the header or chunk was altered, or the data key is not this archive's", ErrTampered)
	}
	return fmt.Errorf("%w: chunk %d was altered, reordered or replaced", ErrTampered, r.index)
}
