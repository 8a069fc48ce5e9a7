package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/workspace-operator/workspace-operator/internal/cloud"
	"github.com/workspace-operator/workspace-operator/internal/offsetclock"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

// start runs the command until the test ends and returns the URL it
// announces on its first line.
func start(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, args, stdoutW, io.Discard)
		_ = stdoutW.CloseWithError(io.EOF)
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v after cancellation", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not return after cancellation")
		}
	})
	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil {
		t.Fatalf("read first line: %v", err)
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "AWSEMU_URL=")
	if !ok {
		t.Fatalf("first line = %q, want AWSEMU_URL=...", line)
	}
	return url
}

func TestRunServesUntilCanceled(t *testing.T) {
	url := start(t, "--listen", "127.0.0.1:0", "--account-id", "123456789012")
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("URL = %q", url)
	}
	client := kms.NewFromConfig(awsemu.NewAWSConfig(url, "eu-west-1"))
	out, err := client.CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		t.Fatalf("CreateKey against the binary: %v", err)
	}
	if arn := aws.ToString(out.KeyMetadata.Arn); !strings.HasPrefix(arn, "arn:aws:kms:eu-west-1:123456789012:key/") {
		t.Errorf("Arn = %q", arn)
	}
}

func TestRunFollowsTheClockOffsetFile(t *testing.T) {
	offsetFile := filepath.Join(t.TempDir(), "offset")
	url := start(t, "--clock-offset-file", offsetFile)
	ctx := context.Background()
	client := kms.NewFromConfig(awsemu.NewAWSConfig(url, "eu-west-1"))
	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: key.KeyMetadata.KeyId, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: key.KeyMetadata.KeyId}); err != nil {
		t.Fatalf("the key is gone before its deletion date: %v", err)
	}
	if err := offsetclock.Set(offsetFile, 8*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	_, err = client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: key.KeyMetadata.KeyId})
	if cloud.ErrorCode(err) != "NotFoundException" {
		t.Errorf("DescribeKey eight days on = %v, want NotFoundException: the key is deleted", err)
	}
}

func TestRunWritesTLSCertificate(t *testing.T) {
	certFile := filepath.Join(t.TempDir(), "awsemu.pem")
	url := start(t, "--tls", "--tls-cert-file", certFile)
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Errorf("URL = %q, want https", url)
	}
	pem, err := os.ReadFile(certFile)
	if err != nil || !strings.Contains(string(pem), "BEGIN CERTIFICATE") {
		t.Errorf("certificate file: %v, %q", err, pem)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--listen", "0.0.0.0:0"},
		{"--tls-cert-file", "x.pem"},
		{"--account-id", "abc"},
		{"--no-such-flag"},
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
