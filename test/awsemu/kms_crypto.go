package awsemu

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

const (
	maxPlaintextLen    = 4096
	maxDataKeyBytes    = 1024
	symmetricAlgorithm = "SYMMETRIC_DEFAULT"
)

// ciphertextMagic opens every ciphertext blob the emulator produces. Like a
// real KMS blob, ours names the key that produced it, so Decrypt needs no
// KeyId:
//
//	magic(4) | arnLen(2, big endian) | key ARN | nonce(12) | AES-256-GCM(plaintext)
//
// The header and the canonical encryption context are the GCM additional
// data, so swapping the ARN or the context makes decryption fail.
var ciphertextMagic = []byte{0x01, 0x02, 0x02, 0x00}

func newGCM(material []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(material)
	if err != nil {
		return nil, fmt.Errorf("init AES: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("init GCM: %w", err)
	}
	return gcm, nil
}

func (key *kmsKey) seal(plaintext []byte, encryptionContext map[string]string) ([]byte, error) {
	gcm, err := newGCM(key.material)
	if err != nil {
		return nil, err
	}
	header := make([]byte, 0, len(ciphertextMagic)+2+len(key.arn))
	header = append(header, ciphertextMagic...)
	header = binary.BigEndian.AppendUint16(header, uint16(len(key.arn)))
	header = append(header, key.arn...)
	nonce := make([]byte, gcm.NonceSize())
	_, _ = rand.Read(nonce)
	blob := append(slices.Clone(header), nonce...)
	return gcm.Seal(blob, nonce, plaintext, additionalData(header, encryptionContext)), nil
}

// parsedCiphertext is a blob split into its parts, not yet authenticated.
type parsedCiphertext struct {
	keyARN string
	header []byte
	nonce  []byte
	sealed []byte
}

func parseCiphertext(blob []byte) (parsedCiphertext, bool) {
	const nonceLen = 12
	if !bytes.HasPrefix(blob, ciphertextMagic) || len(blob) < len(ciphertextMagic)+2 {
		return parsedCiphertext{}, false
	}
	arnEnd := len(ciphertextMagic) + 2 + int(binary.BigEndian.Uint16(blob[len(ciphertextMagic):]))
	if len(blob) < arnEnd+nonceLen {
		return parsedCiphertext{}, false
	}
	return parsedCiphertext{
		keyARN: string(blob[len(ciphertextMagic)+2 : arnEnd]),
		header: blob[:arnEnd],
		nonce:  blob[arnEnd : arnEnd+nonceLen],
		sealed: blob[arnEnd+nonceLen:],
	}, true
}

func (key *kmsKey) open(ct parsedCiphertext, encryptionContext map[string]string) ([]byte, error) {
	gcm, err := newGCM(key.material)
	if err != nil {
		return nil, err
	}
	return gcm.Open(nil, ct.nonce, ct.sealed, additionalData(ct.header, encryptionContext))
}

// additionalData binds the blob header and the encryption context, encoded
// canonically (sorted, length-prefixed) so map order does not matter.
func additionalData(header []byte, encryptionContext map[string]string) []byte {
	aad := slices.Clone(header)
	for _, k := range slices.Sorted(maps.Keys(encryptionContext)) {
		for _, s := range []string{k, encryptionContext[k]} {
			aad = binary.BigEndian.AppendUint32(aad, uint32(len(s)))
			aad = append(aad, s...)
		}
	}
	return aad
}

func invalidCiphertext() error {
	return newError(http.StatusBadRequest, "InvalidCiphertextException",
		"The ciphertext is invalid, or was not encrypted under this KMS key with this encryption context")
}

func checkAlgorithm(alg string) error {
	if alg != "" && alg != symmetricAlgorithm {
		return newError(http.StatusBadRequest, "InvalidKeyUsageException",
			"EncryptionAlgorithm %s is not compatible with a SYMMETRIC_DEFAULT key", alg)
	}
	return nil
}

func dryRunSucceeded() error {
	return newError(http.StatusBadRequest, "DryRunOperationException",
		"The request would have succeeded, but the DryRun option is set.")
}

type encryptInput struct {
	KeyId               string
	Plaintext           []byte
	EncryptionContext   map[string]string
	EncryptionAlgorithm string
	GrantTokens         []string
	DryRun              bool
}

type encryptOutput struct {
	CiphertextBlob      []byte
	KeyId               string
	EncryptionAlgorithm string
}

func (k *kmsService) encrypt(region string, in *encryptInput) (any, error) {
	if len(in.Plaintext) == 0 || len(in.Plaintext) > maxPlaintextLen {
		return nil, kmsValidationError("1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and %d", maxPlaintextLen)
	}
	if err := checkAlgorithm(in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	key, err := k.resolveKey(region, in.KeyId, true)
	if err != nil {
		return nil, err
	}
	if err := key.requireUsable(); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, dryRunSucceeded()
	}
	blob, err := key.seal(in.Plaintext, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	return encryptOutput{CiphertextBlob: blob, KeyId: key.arn, EncryptionAlgorithm: symmetricAlgorithm}, nil
}

type decryptInput struct {
	CiphertextBlob      []byte
	EncryptionContext   map[string]string
	KeyId               string
	EncryptionAlgorithm string
	GrantTokens         []string
	DryRun              bool
}

type decryptOutput struct {
	KeyId               string
	Plaintext           []byte
	EncryptionAlgorithm string
}

func (k *kmsService) decrypt(region string, in *decryptInput) (any, error) {
	if err := checkAlgorithm(in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	ct, ok := parseCiphertext(in.CiphertextBlob)
	if !ok {
		return nil, invalidCiphertext()
	}
	// The blob names its key by ARN; a blob from another region or account
	// cannot be decrypted here.
	if !strings.HasPrefix(ct.keyARN, k.keyARN(region, "")) {
		return nil, invalidCiphertext()
	}
	if in.KeyId != "" {
		want, err := k.resolveKey(region, in.KeyId, true)
		if err != nil {
			return nil, err
		}
		if want.arn != ct.keyARN {
			return nil, newError(http.StatusBadRequest, "IncorrectKeyException",
				"The key ID in the request does not identify a KMS key that can perform this operation.")
		}
	}
	key, err := k.resolveKey(region, ct.keyARN, false)
	if err != nil {
		return nil, err
	}
	if err := key.requireUsable(); err != nil {
		return nil, err
	}
	if err := k.authorizeByKeyPolicy(key, "kms:Decrypt"); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, dryRunSucceeded()
	}
	plaintext, err := key.open(ct, in.EncryptionContext)
	if err != nil {
		return nil, invalidCiphertext()
	}
	return decryptOutput{KeyId: key.arn, Plaintext: plaintext, EncryptionAlgorithm: symmetricAlgorithm}, nil
}

type generateDataKeyInput struct {
	KeyId             string
	EncryptionContext map[string]string
	NumberOfBytes     *int32
	KeySpec           string
	GrantTokens       []string
	DryRun            bool
}

type generateDataKeyOutput struct {
	CiphertextBlob []byte
	Plaintext      []byte `json:",omitempty"`
	KeyId          string
}

func (k *kmsService) generateDataKey(region string, in *generateDataKeyInput) (any, error) {
	return k.newDataKey(region, in, true)
}

func (k *kmsService) generateDataKeyWithoutPlaintext(region string, in *generateDataKeyInput) (any, error) {
	return k.newDataKey(region, in, false)
}

func (k *kmsService) newDataKey(region string, in *generateDataKeyInput, withPlaintext bool) (any, error) {
	var size int
	switch {
	case (in.NumberOfBytes == nil) == (in.KeySpec == ""):
		return nil, kmsValidationError("Please specify either number of bytes or key spec, not both.")
	case in.NumberOfBytes != nil:
		size = int(*in.NumberOfBytes)
		if size < 1 || size > maxDataKeyBytes {
			return nil, kmsValidationError("1 validation error detected: Value '%d' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and %d", size, maxDataKeyBytes)
		}
	case in.KeySpec == "AES_256":
		size = 32
	case in.KeySpec == "AES_128":
		size = 16
	default:
		return nil, kmsValidationError("1 validation error detected: Value '%s' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]", in.KeySpec)
	}
	key, err := k.resolveKey(region, in.KeyId, true)
	if err != nil {
		return nil, err
	}
	if err := key.requireUsable(); err != nil {
		return nil, err
	}
	action := "kms:GenerateDataKeyWithoutPlaintext"
	if withPlaintext {
		action = "kms:GenerateDataKey"
	}
	if err := k.authorizeByKeyPolicy(key, action); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, dryRunSucceeded()
	}
	dataKey := make([]byte, size)
	_, _ = rand.Read(dataKey)
	blob, err := key.seal(dataKey, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	out := generateDataKeyOutput{CiphertextBlob: blob, KeyId: key.arn}
	if withPlaintext {
		out.Plaintext = dataKey
	}
	return out, nil
}
