package backup

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"maps"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// Encryption context keys of a backup's data keys.
const (
	ContextWorkspace = "workspace-operator.io/workspace"
	ContextBackupID  = "workspace-operator.io/backup-id"
)

// encryptionContext is the KMS encryption context of a backup's data keys.
func encryptionContext(workspace, backupID string) map[string]string {
	return map[string]string{ContextWorkspace: workspace, ContextBackupID: backupID}
}

// NewWriter asks KMS for a fresh AES-256 data key under keyID, bound to
// encCtx, and returns a Writer that seals into dst. chunkSize 0 means
// DefaultChunkSize. Nothing is written to dst before the first Write or
// Close, so the KMS call can fail early without leaving a partial stream.
func NewWriter(ctx context.Context, client KMS, dst io.Writer, keyID string, encCtx map[string]string, chunkSize int) (*Writer, error) {
	if chunkSize == 0 {
		chunkSize = DefaultChunkSize
	}
	out, err := client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(keyID),
		KeySpec:           kmstypes.DataKeySpecAes256,
		EncryptionContext: encCtx,
	})
	if err != nil {
		return nil, fmt.Errorf("generate data key under %s: %w", keyID, err)
	}
	dataKey := out.Plaintext
	defer clear(dataKey)
	h := &Header{
		KeyARN:            aws.ToString(out.KeyId),
		EncryptedDataKey:  out.CiphertextBlob,
		EncryptionContext: maps.Clone(encCtx),
		ChunkSize:         chunkSize,
	}
	if _, err := rand.Read(h.NoncePrefix[:]); err != nil {
		return nil, fmt.Errorf("nonce prefix: %w", err)
	}
	return newWriter(dst, h, dataKey)
}

// ReaderOptions says what a reader expects of an archive.
type ReaderOptions struct {
	// KeyID, when set, is passed to KMS Decrypt, which then refuses a data
	// key encrypted under any other key. It may be a key ID, key ARN,
	// alias name or alias ARN.
	KeyID string
	// Context, when set, must equal the header's encryption context
	// exactly; it is checked before KMS is called.
	Context map[string]string
}

// NewReader reads the header from src, checks it against opts, has KMS
// decrypt the data key and returns a Reader of the authenticated
// plaintext. The caller should read to io.EOF: only then is the archive
// known to be complete.
func NewReader(ctx context.Context, client KMS, src io.Reader, opts ReaderOptions) (*Reader, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	h, digest, err := readHeader(br)
	if err != nil {
		return nil, err
	}
	if opts.Context != nil && !maps.Equal(opts.Context, h.EncryptionContext) {
		return nil, fmt.Errorf("%w: encryption context %v, want %v", ErrContextMismatch, h.EncryptionContext, opts.Context)
	}
	in := &kms.DecryptInput{CiphertextBlob: h.EncryptedDataKey, EncryptionContext: h.EncryptionContext}
	if opts.KeyID != "" {
		in.KeyId = aws.String(opts.KeyID)
	}
	out, err := client.Decrypt(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("%w (archive key %s): %w", ErrKeyRefused, h.KeyARN, err)
	}
	defer clear(out.Plaintext)
	return newReader(br, h, digest, out.Plaintext)
}
