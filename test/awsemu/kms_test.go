package awsemu_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

func TestCreateAndDescribeKey(t *testing.T) {
	srv, _ := startWithClock(t)
	client := kmsClient(srv, regionB)
	ctx := context.Background()

	out, err := client.CreateKey(ctx, &kms.CreateKeyInput{
		Description: aws.String("workspace ws-1"),
		Tags:        []types.Tag{{TagKey: aws.String("workspace"), TagValue: aws.String("ws-1")}},
	})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	md := out.KeyMetadata
	id := aws.ToString(md.KeyId)
	wantARN := "arn:aws:kms:eu-west-1:000000000000:key/" + id
	if got := aws.ToString(md.Arn); got != wantARN {
		t.Errorf("Arn = %q, want %q", got, wantARN)
	}
	if md.KeyState != types.KeyStateEnabled || !md.Enabled || md.KeySpec != types.KeySpecSymmetricDefault ||
		md.KeyUsage != types.KeyUsageTypeEncryptDecrypt || md.Origin != types.OriginTypeAwsKms ||
		md.KeyManager != types.KeyManagerTypeCustomer || aws.ToString(md.AWSAccountId) != awsemu.DefaultAccountID {
		t.Errorf("unexpected metadata: %+v", md)
	}
	if !aws.ToTime(md.CreationDate).Equal(epoch) {
		t.Errorf("CreationDate = %v, want %v", aws.ToTime(md.CreationDate), epoch)
	}

	// DescribeKey accepts the key ID and the key ARN.
	for _, ref := range []string{id, wantARN} {
		got, err := client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(ref)})
		if err != nil {
			t.Fatalf("DescribeKey(%s): %v", ref, err)
		}
		if aws.ToString(got.KeyMetadata.Description) != "workspace ws-1" {
			t.Errorf("DescribeKey(%s) description = %q", ref, aws.ToString(got.KeyMetadata.Description))
		}
	}

	_, err = client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("00000000-0000-0000-0000-000000000000")})
	var notFound *types.NotFoundException
	if !errors.As(err, &notFound) {
		t.Errorf("DescribeKey(unknown) error = %v, want NotFoundException", err)
	}

	want := []awsemu.KeySnapshot{{
		KeyID: id, ARN: wantARN, Region: regionB, Description: "workspace ws-1", State: "Enabled",
		CreationDate: epoch, Tags: map[string]string{"workspace": "ws-1"}, Origin: "AWS_KMS",
		KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT",
	}}
	if diff := cmp.Diff(want, srv.Keys(regionB), cmpopts.IgnoreFields(awsemu.KeySnapshot{}, "Policy")); diff != "" {
		t.Errorf("Keys() mismatch (-want +got):\n%s", diff)
	}
}

func TestCreateKeyOptions(t *testing.T) {
	srv := startServer(t, awsemu.Options{AccountID: "123456789012"})
	client := kmsClient(srv, regionA)
	ctx := context.Background()

	out, err := client.CreateKey(ctx, &kms.CreateKeyInput{MultiRegion: aws.Bool(true)})
	if err != nil {
		t.Fatalf("CreateKey(MultiRegion): %v", err)
	}
	md := out.KeyMetadata
	if !strings.HasPrefix(aws.ToString(md.KeyId), "mrk-") || !aws.ToBool(md.MultiRegion) ||
		md.MultiRegionConfiguration == nil || md.MultiRegionConfiguration.MultiRegionKeyType != types.MultiRegionKeyTypePrimary {
		t.Errorf("multi-Region key metadata = %+v", md)
	}
	if !strings.Contains(aws.ToString(md.Arn), ":123456789012:") {
		t.Errorf("Arn %q does not use the configured account", aws.ToString(md.Arn))
	}
	if keys := srv.Keys(regionA); len(keys) != 1 || !keys[0].MultiRegion {
		t.Errorf("Keys() = %+v, want one multi-Region key", keys)
	}

	tests := []struct {
		name string
		in   kms.CreateKeyInput
		want string
	}{
		{"external origin", kms.CreateKeyInput{Origin: types.OriginTypeExternal}, "UnsupportedOperationException"},
		{"asymmetric", kms.CreateKeyInput{KeySpec: types.KeySpecRsa2048}, "UnsupportedOperationException"},
		{"sign usage", kms.CreateKeyInput{KeyUsage: types.KeyUsageTypeSignVerify}, "ValidationException"},
		{"custom key store", kms.CreateKeyInput{CustomKeyStoreId: aws.String("cks-1")}, "CustomKeyStoreNotFoundException"},
		{"malformed policy", kms.CreateKeyInput{Policy: aws.String("{not json")}, "MalformedPolicyDocumentException"},
		{"reserved tag", kms.CreateKeyInput{Tags: []types.Tag{{TagKey: aws.String("aws:x"), TagValue: aws.String("")}}}, "TagException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.CreateKey(ctx, &tt.in)
			wantCode(t, err, tt.want)
		})
	}
	if n := len(srv.Keys(regionA)); n != 1 {
		t.Errorf("rejected CreateKey calls created keys: have %d keys, want 1", n)
	}
}

func TestKeyDeletionLifecycle(t *testing.T) {
	srv, clk := startWithClock(t)
	client := kmsClient(srv, regionA)
	ctx := context.Background()
	id := createKey(t, client, "doomed")
	if _, err := client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/doomed"), TargetKeyId: &id}); err != nil {
		t.Fatalf("CreateAlias: %v", err)
	}

	for _, days := range []int32{6, 31} {
		_, err := client.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id, PendingWindowInDays: aws.Int32(days)})
		wantCode(t, err, "ValidationException")
	}

	// The default window is 30 days.
	out, err := client.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id})
	if err != nil {
		t.Fatalf("ScheduleKeyDeletion: %v", err)
	}
	if got, want := aws.ToTime(out.DeletionDate), epoch.Add(30*24*time.Hour); !got.Equal(want) {
		t.Errorf("DeletionDate = %v, want %v", got, want)
	}
	if out.KeyState != types.KeyStatePendingDeletion || aws.ToInt32(out.PendingWindowInDays) != 30 {
		t.Errorf("ScheduleKeyDeletion output = %+v", out)
	}
	_, err = client.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id})
	wantCode(t, err, "KMSInvalidStateException")

	// Cancelling leaves the key disabled, as in AWS.
	if _, err := client.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: &id}); err != nil {
		t.Fatalf("CancelKeyDeletion: %v", err)
	}
	desc, err := client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	if err != nil {
		t.Fatalf("DescribeKey: %v", err)
	}
	if desc.KeyMetadata.KeyState != types.KeyStateDisabled || desc.KeyMetadata.DeletionDate != nil {
		t.Errorf("after cancel: state %s, deletion date %v; want Disabled and none", desc.KeyMetadata.KeyState, desc.KeyMetadata.DeletionDate)
	}
	_, err = client.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: &id})
	wantCode(t, err, "KMSInvalidStateException")

	// Schedule with the minimum window and let the clock run out.
	if _, err := client.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatalf("ScheduleKeyDeletion(7): %v", err)
	}
	clk.Step(7*24*time.Hour - time.Second)
	desc, err = client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/doomed")})
	if err != nil {
		t.Fatalf("DescribeKey one second before deletion: %v", err)
	}
	if desc.KeyMetadata.KeyState != types.KeyStatePendingDeletion {
		t.Errorf("state one second before deletion = %s", desc.KeyMetadata.KeyState)
	}
	clk.Step(time.Second)
	_, err = client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	var notFound *types.NotFoundException
	if !errors.As(err, &notFound) {
		t.Fatalf("DescribeKey after deletion date: error = %v, want NotFoundException", err)
	}
	aliases, err := client.ListAliases(ctx, &kms.ListAliasesInput{})
	if err != nil {
		t.Fatalf("ListAliases: %v", err)
	}
	if len(aliases.Aliases) != 0 {
		t.Errorf("aliases of a deleted key survive: %+v", aliases.Aliases)
	}
	keys, err := client.ListKeys(ctx, &kms.ListKeysInput{})
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	if len(keys.Keys) != 0 || len(srv.Keys(regionA)) != 0 {
		t.Errorf("deleted key still listed: %+v", keys.Keys)
	}
}

func TestKeyStateRules(t *testing.T) {
	srv, _ := startWithClock(t)
	client := kmsClient(srv, regionA)
	ctx := context.Background()

	disabled := createKey(t, client, "disabled")
	if _, err := client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &disabled}); err != nil {
		t.Fatalf("DisableKey: %v", err)
	}
	pending := createKey(t, client, "pending")
	if _, err := client.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &pending}); err != nil {
		t.Fatalf("ScheduleKeyDeletion: %v", err)
	}

	ops := map[string]func(id string) error{
		"Encrypt": func(id string) error {
			_, err := client.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("x")})
			return err
		},
		"GenerateDataKey": func(id string) error {
			_, err := client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &id, KeySpec: types.DataKeySpecAes256})
			return err
		},
		"EnableKeyRotation": func(id string) error {
			_, err := client.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: &id})
			return err
		},
		"TagResource": func(id string) error {
			_, err := client.TagResource(ctx, &kms.TagResourceInput{KeyId: &id, Tags: []types.Tag{{TagKey: aws.String("k"), TagValue: aws.String("v")}}})
			return err
		},
		"CreateAlias": func(id string) error {
			_, err := client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/for-" + id), TargetKeyId: &id})
			return err
		},
		"EnableKey": func(id string) error {
			_, err := client.EnableKey(ctx, &kms.EnableKeyInput{KeyId: &id})
			return err
		},
		"GetKeyPolicy": func(id string) error {
			_, err := client.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: &id})
			return err
		},
		"GetKeyRotationStatus": func(id string) error {
			_, err := client.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: &id})
			return err
		},
	}
	tests := []struct {
		op                  string
		disabled, scheduled string
	}{
		{"Encrypt", "DisabledException", "KMSInvalidStateException"},
		{"GenerateDataKey", "DisabledException", "KMSInvalidStateException"},
		{"EnableKeyRotation", "DisabledException", "KMSInvalidStateException"},
		{"TagResource", "", "KMSInvalidStateException"},
		{"CreateAlias", "", "KMSInvalidStateException"},
		{"GetKeyPolicy", "", ""},
		{"GetKeyRotationStatus", "", ""},
		// Last: it changes the disabled key's state.
		{"EnableKey", "", "KMSInvalidStateException"},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			wantCode(t, ops[tt.op](disabled), tt.disabled)
			wantCode(t, ops[tt.op](pending), tt.scheduled)
		})
	}
}

func TestAliases(t *testing.T) {
	srv, _ := startWithClock(t)
	client := kmsClient(srv, regionA)
	ctx := context.Background()
	first := createKey(t, client, "first")
	second := createKey(t, client, "second")

	if _, err := client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/ws/one"), TargetKeyId: &first}); err != nil {
		t.Fatalf("CreateAlias: %v", err)
	}
	secondARN := "arn:aws:kms:us-east-1:000000000000:key/" + second
	if _, err := client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/ws/two"), TargetKeyId: &secondARN}); err != nil {
		t.Fatalf("CreateAlias by key ARN: %v", err)
	}

	tests := []struct {
		name, alias, target, want string
	}{
		{"duplicate", "alias/ws/one", second, "AlreadyExistsException"},
		{"missing prefix", "ws/three", first, "ValidationException"},
		{"reserved prefix", "alias/aws/s3", first, "NotAuthorizedException"},
		{"invalid character", "alias/ws three", first, "ValidationException"},
		{"alias as target", "alias/ws/three", "alias/ws/one", "NotFoundException"},
		{"unknown target", "alias/ws/three", "11111111-2222-3333-4444-555555555555", "NotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: &tt.alias, TargetKeyId: &tt.target})
			wantCode(t, err, tt.want)
		})
	}
	var exists *types.AlreadyExistsException
	if _, err := client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/ws/one"), TargetKeyId: &second}); !errors.As(err, &exists) {
		t.Errorf("duplicate alias error = %v, want *types.AlreadyExistsException", err)
	}

	// Aliases resolve by name and by alias ARN.
	for _, ref := range []string{"alias/ws/one", "arn:aws:kms:us-east-1:000000000000:alias/ws/one"} {
		out, err := client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &ref})
		if err != nil {
			t.Fatalf("DescribeKey(%s): %v", ref, err)
		}
		if aws.ToString(out.KeyMetadata.KeyId) != first {
			t.Errorf("DescribeKey(%s) = key %s, want %s", ref, aws.ToString(out.KeyMetadata.KeyId), first)
		}
	}

	listed, err := client.ListAliases(ctx, &kms.ListAliasesInput{KeyId: &second})
	if err != nil {
		t.Fatalf("ListAliases(KeyId): %v", err)
	}
	if len(listed.Aliases) != 1 || aws.ToString(listed.Aliases[0].AliasName) != "alias/ws/two" ||
		aws.ToString(listed.Aliases[0].TargetKeyId) != second ||
		aws.ToString(listed.Aliases[0].AliasArn) != "arn:aws:kms:us-east-1:000000000000:alias/ws/two" {
		t.Errorf("ListAliases(KeyId=second) = %+v", listed.Aliases)
	}
	_, err = client.ListAliases(ctx, &kms.ListAliasesInput{KeyId: aws.String("11111111-2222-3333-4444-555555555555")})
	wantCode(t, err, "NotFoundException")

	// UpdateAlias moves an alias; DeleteAlias removes it.
	if _, err := client.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String("alias/ws/one"), TargetKeyId: &second}); err != nil {
		t.Fatalf("UpdateAlias: %v", err)
	}
	_, err = client.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String("alias/ws/none"), TargetKeyId: &second})
	wantCode(t, err, "NotFoundException")
	if _, err := client.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/ws/two")}); err != nil {
		t.Fatalf("DeleteAlias: %v", err)
	}
	_, err = client.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/ws/two")})
	wantCode(t, err, "NotFoundException")

	keys := srv.Keys(regionA)
	got := map[string][]string{}
	for _, k := range keys {
		got[k.KeyID] = k.Aliases
	}
	if diff := cmp.Diff(map[string][]string{first: nil, second: {"alias/ws/one"}}, got); diff != "" {
		t.Errorf("aliases per key (-want +got):\n%s", diff)
	}
}

func TestEncryptDecrypt(t *testing.T) {
	srv, clk := startWithClock(t)
	client := kmsClient(srv, regionA)
	ctx := context.Background()
	keyA := createKey(t, client, "a")
	keyB := createKey(t, client, "b")
	encCtx := map[string]string{"workspace": "ws-1"}

	dk, err := client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &keyA, KeySpec: types.DataKeySpecAes256, EncryptionContext: encCtx})
	if err != nil {
		t.Fatalf("GenerateDataKey: %v", err)
	}
	if len(dk.Plaintext) != 32 || bytes.Contains(dk.CiphertextBlob, dk.Plaintext) {
		t.Fatalf("GenerateDataKey returned a %d-byte key, or a blob that contains it", len(dk.Plaintext))
	}
	dec, err := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: encCtx})
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if !bytes.Equal(dec.Plaintext, dk.Plaintext) || aws.ToString(dec.KeyId) != aws.ToString(dk.KeyId) {
		t.Errorf("Decrypt = %x under %s, want %x under %s", dec.Plaintext, aws.ToString(dec.KeyId), dk.Plaintext, aws.ToString(dk.KeyId))
	}

	sized, err := client.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(keyA), NumberOfBytes: aws.Int32(64)})
	if err != nil {
		t.Fatalf("GenerateDataKeyWithoutPlaintext: %v", err)
	}
	if dec, err := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: sized.CiphertextBlob}); err != nil || len(dec.Plaintext) != 64 {
		t.Errorf("Decrypt of a 64-byte data key: %d bytes, %v", len(dec.Plaintext), err)
	}

	enc, err := client.Encrypt(ctx, &kms.EncryptInput{KeyId: &keyB, Plaintext: []byte("secret")})
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	tampered := bytes.Clone(enc.CiphertextBlob)
	tampered[len(tampered)-1] ^= 1
	// A blob claiming to come from key A but sealed under key B.
	forged := bytes.Replace(bytes.Clone(enc.CiphertextBlob), []byte(keyB), []byte(keyA), 1)

	failures := []struct {
		name string
		in   kms.DecryptInput
		want string
	}{
		{"wrong encryption context", kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: map[string]string{"workspace": "ws-2"}}, "InvalidCiphertextException"},
		{"missing encryption context", kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob}, "InvalidCiphertextException"},
		{"tampered", kms.DecryptInput{CiphertextBlob: tampered}, "InvalidCiphertextException"},
		{"other key's material", kms.DecryptInput{CiphertextBlob: forged}, "InvalidCiphertextException"},
		{"garbage", kms.DecryptInput{CiphertextBlob: []byte("not a ciphertext")}, "InvalidCiphertextException"},
		{"wrong KeyId", kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, KeyId: &keyA}, "IncorrectKeyException"},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.Decrypt(ctx, &tt.in)
			wantCode(t, err, tt.want)
		})
	}
	var invalid *types.InvalidCiphertextException
	if _, err := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: tampered}); !errors.As(err, &invalid) {
		t.Errorf("tampered blob error = %v, want *types.InvalidCiphertextException", err)
	}

	_, err = client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &keyA, KeySpec: types.DataKeySpecAes256, NumberOfBytes: aws.Int32(32)})
	wantCode(t, err, "ValidationException")
	_, err = client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &keyA, NumberOfBytes: aws.Int32(1025)})
	wantCode(t, err, "ValidationException")

	// Crypto-shredding: the same blob fails as key B is disabled, scheduled
	// for deletion and finally deleted.
	decryptB := func() error {
		_, err := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
		return err
	}
	wantCode(t, decryptB(), "")
	if _, err := client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &keyB}); err != nil {
		t.Fatalf("DisableKey: %v", err)
	}
	var disabled *types.DisabledException
	if err := decryptB(); !errors.As(err, &disabled) {
		t.Errorf("Decrypt under a disabled key: %v, want *types.DisabledException", err)
	}
	if _, err := client.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &keyB, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatalf("ScheduleKeyDeletion: %v", err)
	}
	var invalidState *types.KMSInvalidStateException
	if err := decryptB(); !errors.As(err, &invalidState) {
		t.Errorf("Decrypt under a key pending deletion: %v, want *types.KMSInvalidStateException", err)
	}
	clk.Step(7 * 24 * time.Hour)
	var notFound *types.NotFoundException
	if err := decryptB(); !errors.As(err, &notFound) {
		t.Errorf("Decrypt under a deleted key: %v, want *types.NotFoundException", err)
	}
	// Key A is unaffected.
	if _, err := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: encCtx}); err != nil {
		t.Errorf("Decrypt under key A after key B was deleted: %v", err)
	}
}

func TestTags(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	client := kmsClient(srv, regionA)
	ctx := context.Background()
	out, err := client.CreateKey(ctx, &kms.CreateKeyInput{Tags: []types.Tag{
		{TagKey: aws.String("workspace"), TagValue: aws.String("ws-1")},
		{TagKey: aws.String("tier"), TagValue: aws.String("gold")},
	}})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	id := aws.ToString(out.KeyMetadata.KeyId)

	tag := func(k, v string) types.Tag { return types.Tag{TagKey: aws.String(k), TagValue: aws.String(v)} }
	if _, err := client.TagResource(ctx, &kms.TagResourceInput{KeyId: &id, Tags: []types.Tag{tag("tier", "silver"), tag("owner", "team-a")}}); err != nil {
		t.Fatalf("TagResource: %v", err)
	}
	if _, err := client.UntagResource(ctx, &kms.UntagResourceInput{KeyId: &id, TagKeys: []string{"workspace", "absent"}}); err != nil {
		t.Fatalf("UntagResource: %v", err)
	}

	// Page through the tags one at a time; they come sorted by key.
	var got []types.Tag
	pages := kms.NewListResourceTagsPaginator(client, &kms.ListResourceTagsInput{KeyId: &id, Limit: aws.Int32(1)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListResourceTags: %v", err)
		}
		got = append(got, page.Tags...)
	}
	want := []types.Tag{tag("owner", "team-a"), tag("tier", "silver")}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(types.Tag{})); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}

	_, err = client.TagResource(ctx, &kms.TagResourceInput{KeyId: &id, Tags: []types.Tag{tag("a", "1"), tag("a", "2")}})
	wantCode(t, err, "TagException")
	_, err = client.TagResource(ctx, &kms.TagResourceInput{KeyId: &id, Tags: []types.Tag{tag("aws:reserved", "1")}})
	wantCode(t, err, "TagException")
	if diff := cmp.Diff(map[string]string{"owner": "team-a", "tier": "silver"}, srv.Keys(regionA)[0].Tags); diff != "" {
		t.Errorf("rejected TagResource changed tags (-want +got):\n%s", diff)
	}
}

func TestRegionIsolation(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	ctx := context.Background()
	east, west := kmsClient(srv, regionA), kmsClient(srv, regionB)
	eastKey := createKey(t, east, "east")
	westKey := createKey(t, west, "west")
	eastARN := "arn:aws:kms:us-east-1:000000000000:key/" + eastKey

	for _, ref := range []string{eastKey, eastARN} {
		_, err := west.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(ref)})
		wantCode(t, err, "NotFoundException")
	}
	// The same alias name may exist in each region.
	for client, key := range map[*kms.Client]string{east: eastKey, west: westKey} {
		if _, err := client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/workspace"), TargetKeyId: aws.String(key)}); err != nil {
			t.Fatalf("CreateAlias: %v", err)
		}
	}
	out, err := west.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/workspace")})
	if err != nil || aws.ToString(out.KeyMetadata.KeyId) != westKey {
		t.Errorf("alias/workspace in %s resolves to %v (%v), want %s", regionB, out, err, westKey)
	}

	enc, err := east.Encrypt(ctx, &kms.EncryptInput{KeyId: &eastKey, Plaintext: []byte("x")})
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	_, err = west.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	wantCode(t, err, "InvalidCiphertextException")

	listed, err := west.ListKeys(ctx, &kms.ListKeysInput{})
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	if len(listed.Keys) != 1 || aws.ToString(listed.Keys[0].KeyId) != westKey {
		t.Errorf("ListKeys in %s = %+v, want only %s", regionB, listed.Keys, westKey)
	}
	if len(srv.Keys(regionA)) != 1 || len(srv.Keys(regionB)) != 1 || len(srv.Keys("ap-south-1")) != 0 {
		t.Errorf("Keys per region: %d, %d, %d; want 1, 1, 0", len(srv.Keys(regionA)), len(srv.Keys(regionB)), len(srv.Keys("ap-south-1")))
	}
}

func TestKeyPolicyAndRotation(t *testing.T) {
	srv, clk := startWithClock(t)
	client := kmsClient(srv, regionA)
	ctx := context.Background()
	id := createKey(t, client, "policy")

	got, err := client.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: &id})
	if err != nil {
		t.Fatalf("GetKeyPolicy: %v", err)
	}
	if !strings.Contains(aws.ToString(got.Policy), "arn:aws:iam::000000000000:root") || aws.ToString(got.PolicyName) != "default" {
		t.Errorf("default policy = %q (%q)", aws.ToString(got.Policy), aws.ToString(got.PolicyName))
	}
	// KMS's lockout safety check refuses a policy that would keep the caller from ever
	// changing it again, unless asked to bypass the check.
	lockout, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"}}})
	_, err = client.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: &id, Policy: aws.String(string(lockout))})
	wantCode(t, err, "MalformedPolicyDocumentException")
	_, err = client.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(string(lockout))})
	wantCode(t, err, "MalformedPolicyDocumentException")
	onlyBackup, _ := json.Marshal(map[string]any{"Statement": []any{map[string]any{"Effect": "Allow", "Principal": map[string]any{"AWS": srv.PrincipalARN(awsemu.BackupAccessKeyID)}, "Action": "kms:*", "Resource": "*"}}})
	_, err = client.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: &id, Policy: aws.String(string(onlyBackup))})
	wantCode(t, err, "MalformedPolicyDocumentException")
	if _, err := client.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: &id, Policy: aws.String(string(lockout)), BypassPolicyLockoutSafetyCheck: true}); err != nil {
		t.Fatalf("PutKeyPolicy bypassing the lockout check: %v", err)
	}
	policy, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{"Effect": "Allow", "Principal": map[string]any{"AWS": srv.PrincipalARN(awsemu.OperatorAccessKeyID)}, "Action": []string{"kms:PutKeyPolicy", "kms:Describe*"}, "Resource": "*"}}})
	if _, err := client.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: &id, Policy: aws.String(string(policy))}); err != nil {
		t.Fatalf("PutKeyPolicy: %v", err)
	}
	if got, err := client.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: &id, PolicyName: aws.String("default")}); err != nil || aws.ToString(got.Policy) != string(policy) {
		t.Errorf("GetKeyPolicy after put = %v, %v", got, err)
	}
	_, err = client.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: &id, Policy: aws.String(`{"Version":"2012-10-17"}`)})
	wantCode(t, err, "MalformedPolicyDocumentException")

	status, err := client.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: &id})
	if err != nil || status.KeyRotationEnabled {
		t.Fatalf("GetKeyRotationStatus of a new key = %+v, %v", status, err)
	}
	_, err = client.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: &id, RotationPeriodInDays: aws.Int32(30)})
	wantCode(t, err, "ValidationException")
	if _, err := client.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: &id}); err != nil {
		t.Fatalf("EnableKeyRotation: %v", err)
	}
	clk.Step(time.Hour)
	status, err = client.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: &id})
	if err != nil {
		t.Fatalf("GetKeyRotationStatus: %v", err)
	}
	if !status.KeyRotationEnabled || aws.ToInt32(status.RotationPeriodInDays) != 365 ||
		!aws.ToTime(status.NextRotationDate).Equal(epoch.Add(365*24*time.Hour)) {
		t.Errorf("rotation status = enabled %v, period %d, next %v", status.KeyRotationEnabled, aws.ToInt32(status.RotationPeriodInDays), aws.ToTime(status.NextRotationDate))
	}
	if !srv.Keys(regionA)[0].RotationEnabled {
		t.Error("Keys() does not report rotation")
	}
	if _, err := client.DisableKeyRotation(ctx, &kms.DisableKeyRotationInput{KeyId: &id}); err != nil {
		t.Fatalf("DisableKeyRotation: %v", err)
	}
	if status, err := client.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: &id}); err != nil || status.KeyRotationEnabled {
		t.Errorf("rotation after disable = %+v, %v", status, err)
	}
}

func TestListKeysPagination(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	client := kmsClient(srv, regionA)
	ctx := context.Background()
	var want []string
	for i := range 5 {
		want = append(want, createKey(t, client, strings.Repeat("k", i+1)))
	}

	var got []string
	pages := kms.NewListKeysPaginator(client, &kms.ListKeysInput{Limit: aws.Int32(2)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListKeys: %v", err)
		}
		if len(page.Keys) > 2 {
			t.Errorf("page of %d keys exceeds the limit of 2", len(page.Keys))
		}
		for _, k := range page.Keys {
			got = append(got, aws.ToString(k.KeyId))
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("keys in creation order (-want +got):\n%s", diff)
	}

	_, err := client.ListKeys(ctx, &kms.ListKeysInput{Marker: aws.String("!!!")})
	wantCode(t, err, "InvalidMarkerException")
	_, err = client.ListKeys(ctx, &kms.ListKeysInput{Limit: aws.Int32(1001)})
	wantCode(t, err, "ValidationException")
}

// The volume driver's requests are evaluated against the key policy, as KMS evaluates
// every request: the default policy (the account root, then IAM, which the emulator
// grants) lets it in, a policy naming neither it nor the root does not, a Deny wins.
func TestKeyPolicyGovernsTheVolumeDriver(t *testing.T) {
	srv := startServer(t, awsemu.Options{})
	operator := kmsClient(srv, regionA)
	driver := kms.NewFromConfig(srv.AWSConfigAs(regionA, awsemu.VolumeDriverAccessKeyID), noKMSRetries)
	ctx := context.Background()
	id := createKey(t, operator, "volumes")
	use := func() error {
		_, err := driver.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: &id, KeySpec: "AES_256"})
		return err
	}
	if err := use(); err != nil {
		t.Errorf("under the default policy: %v", err)
	}
	put := func(statements ...map[string]any) {
		t.Helper()
		doc, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": statements})
		if _, err := operator.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: &id, Policy: aws.String(string(doc)), BypassPolicyLockoutSafetyCheck: true}); err != nil {
			t.Fatal(err)
		}
	}
	operatorOnly := map[string]any{"Effect": "Allow", "Principal": map[string]any{"AWS": srv.PrincipalARN(awsemu.OperatorAccessKeyID)}, "Action": "kms:*", "Resource": "*"}
	put(operatorOnly)
	wantCode(t, use(), "AccessDeniedException")
	forDriver := map[string]any{"Effect": "Allow", "Principal": map[string]any{"AWS": srv.PrincipalARN(awsemu.VolumeDriverAccessKeyID)}, "Action": "kms:GenerateDataKey*", "Resource": "*"}
	put(operatorOnly, forDriver)
	if err := use(); err != nil {
		t.Errorf("with a statement for the driver: %v", err)
	}
	put(operatorOnly, forDriver, map[string]any{"Effect": "Deny", "Principal": "*", "Action": "kms:GenerateDataKeyWithoutPlaintext", "Resource": "*"})
	wantCode(t, use(), "AccessDeniedException")
	// The operator's own requests are not evaluated (see authorizeByKeyPolicy).
	if _, err := operator.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: &id, KeySpec: "AES_256"}); err != nil {
		t.Errorf("operator: %v", err)
	}
}
