package cloud_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/workspace-operator/workspace-operator/internal/cloud"
	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

const (
	primary = "eu-west-1"
	replica = "eu-central-1"
)

var owner = cloud.Owner{Cluster: "prod", Workspace: "acme"}

// env is an emulator and the operator's real SDK clients pointed at it, built the way
// main.go builds them (cloud.LoadConfig: default credential chain, adaptive retries,
// the SDK's endpoint configuration, metrics).
type env struct {
	emu     *awsemu.Server
	kms     map[string]*kms.Client
	s3      map[string]*s3.Client
	keys    *cloud.Keys
	buckets *cloud.Buckets
}

func newEnv(t *testing.T, keyPolicy string) *env {
	t.Helper()
	emu, err := awsemu.Start(awsemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	t.Setenv("AWS_ACCESS_KEY_ID", awsemu.TestAccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", awsemu.TestSecretAccessKey)
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_ENDPOINT_URL", emu.URL())

	e := &env{emu: emu, kms: map[string]*kms.Client{}, s3: map[string]*s3.Client{}}
	kmsClients, s3Clients := map[string]cloud.KMS{}, map[string]cloud.S3{}
	for _, region := range []string{primary, replica} {
		cfg, err := cloud.LoadConfig(context.Background(), region)
		if err != nil {
			t.Fatal(err)
		}
		e.kms[region] = kms.NewFromConfig(cfg)
		e.s3[region] = s3.NewFromConfig(cfg, awsemu.UsePathStyle)
		kmsClients[region], s3Clients[region] = e.kms[region], e.s3[region]
	}
	e.keys = cloud.NewKeys(kmsClients, "workspace-operator", keyPolicy)
	e.buckets = cloud.NewBuckets(s3Clients, "wso")
	return e
}

func (e *env) keysIn(region string) []awsemu.KeySnapshot {
	return e.emu.Keys(region)
}

func ensureKey(t *testing.T, e *env, req cloud.KeyRequest) cloud.Key {
	t.Helper()
	key, err := e.keys.Ensure(context.Background(), req)
	if err != nil {
		t.Fatalf("ensure key: %v", err)
	}
	return key
}

func aliasOf(e *env, region string) string {
	out, err := e.kms[region].DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String("alias/workspace-operator/prod/acme")})
	if err != nil {
		return ""
	}
	return aws.ToString(out.KeyMetadata.Arn)
}
