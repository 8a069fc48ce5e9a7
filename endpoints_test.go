package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

// TestMain sends whatever is not for a loopback address to a dead proxy, so that a client
// that misses its endpoint fails here instead of reaching AWS. Go never proxies loopback
// requests, and reads these variables once per process, hence here and not in a test.
func TestMain(m *testing.M) {
	for _, name := range []string{"HTTP_PROXY", "HTTPS_PROXY"} {
		_ = os.Setenv(name, "http://127.0.0.1:9")
	}
	_ = os.Unsetenv("NO_PROXY")
	os.Exit(m.Run())
}

// endpointVariables are every setting of the SDK that moves an endpoint; each test starts
// with none of them set, since even an empty AWS_ENDPOINT_URL changes what the SDK reads.
var endpointVariables = []string{
	"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS",
	"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
}

// awsTestEnv gives the default credential chain the emulator's test credentials, and the
// environment and config file, if any, that a test case configures endpoints with.
func awsTestEnv(t *testing.T, env map[string]string, configFile string) {
	t.Helper()
	for _, name := range endpointVariables {
		t.Setenv(name, "") // restored after the test
		_ = os.Unsetenv(name)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", awsemu.TestAccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", awsemu.TestSecretAccessKey)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	if configFile != "" {
		path := filepath.Join(t.TempDir(), "config")
		if err := os.WriteFile(path, []byte(configFile), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_CONFIG_FILE", path)
	}
	for name, value := range env {
		t.Setenv(name, value)
	}
}

func startEmulator(t *testing.T) *awsemu.Server {
	t.Helper()
	emu, err := awsemu.Start(awsemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	return emu
}

// TestAWSEndpoints builds the operator's clients for both regions with KMS and S3
// endpoints set the ways the SDK reads them, and checks where each client's requests land.
// The settings name a service, not a region: both regions go to the same endpoint.
func TestAWSEndpoints(t *testing.T) {
	kmsServer, s3Server := startEmulator(t), startEmulator(t)
	servers := map[string]*awsemu.Server{"kms server": kmsServer, "s3 server": s3Server}
	kmsURL, s3URL := kmsServer.URL(), s3Server.URL()
	tests := []struct {
		name       string
		env        map[string]string
		configFile string
		// wantKMS and wantS3 name the server each service reaches, "" for AWS's own
		// endpoint, which the test checks without sending anything.
		wantKMS, wantS3 string
	}{{
		name:    "a variable per service",
		env:     map[string]string{"AWS_ENDPOINT_URL_KMS": kmsURL, "AWS_ENDPOINT_URL_S3": s3URL},
		wantKMS: "kms server", wantS3: "s3 server",
	}, {
		name:    "one variable for every service, overridden for S3",
		env:     map[string]string{"AWS_ENDPOINT_URL": kmsURL, "AWS_ENDPOINT_URL_S3": s3URL},
		wantKMS: "kms server", wantS3: "s3 server",
	}, {
		name:       "services section of the shared config file",
		configFile: "[default]\nservices = local\n\n[services local]\nkms =\n  endpoint_url = " + kmsURL + "\ns3 =\n  endpoint_url = " + s3URL + "\n",
		wantKMS:    "kms server", wantS3: "s3 server",
	}, {
		name:       "a variable beats the config file",
		env:        map[string]string{"AWS_ENDPOINT_URL_S3": s3URL},
		configFile: "[default]\nservices = local\n\n[services local]\nkms =\n  endpoint_url = " + kmsURL + "\ns3 =\n  endpoint_url = " + kmsURL + "\n",
		wantKMS:    "kms server", wantS3: "s3 server",
	}, {
		name:    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS turns them all off",
		env:     map[string]string{"AWS_ENDPOINT_URL_KMS": kmsURL, "AWS_ENDPOINT_URL_S3": s3URL, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
		wantKMS: "", wantS3: "",
	}, {
		name: "nothing configured",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			awsTestEnv(t, tt.env, tt.configFile)
			for _, emu := range servers {
				emu.ResetCalls()
			}
			for _, region := range []string{"eu-west-1", "eu-central-1"} {
				kmsClient, s3Client, err := awsClients(context.Background(), region, false)
				if err != nil {
					t.Fatal(err)
				}
				if tt.wantKMS == "" || tt.wantS3 == "" {
					if got := kmsClient.Options().BaseEndpoint; (tt.wantKMS == "") != (got == nil) {
						t.Errorf("%s: KMS endpoint %v, want AWS's: %t", region, aws.ToString(got), tt.wantKMS == "")
					}
					if got := s3Client.Options().BaseEndpoint; (tt.wantS3 == "") != (got == nil) {
						t.Errorf("%s: S3 endpoint %v, want AWS's: %t", region, aws.ToString(got), tt.wantS3 == "")
					}
					continue
				}
				if _, err := kmsClient.ListKeys(context.Background(), &kms.ListKeysInput{}); err != nil {
					t.Errorf("%s: KMS ListKeys: %v", region, err)
				}
				if _, err := s3Client.ListBuckets(context.Background(), &s3.ListBucketsInput{}); err != nil {
					t.Errorf("%s: S3 ListBuckets: %v", region, err)
				}
			}
			if tt.wantKMS == "" || tt.wantS3 == "" {
				return
			}
			for name, emu := range servers {
				calls := emu.Calls()
				if got, want := calls.Count("kms", "ListKeys"), wantCalls(name == tt.wantKMS); got != want {
					t.Errorf("the %s got %d KMS requests, want %d", name, got, want)
				}
				if got, want := calls.Count("s3", "ListBuckets"), wantCalls(name == tt.wantS3); got != want {
					t.Errorf("the %s got %d S3 requests, want %d", name, got, want)
				}
			}
		})
	}
}

// wantCalls is one request per region to the server a service is sent to, none elsewhere.
func wantCalls(sentHere bool) int {
	if sentHere {
		return 2
	}
	return 0
}

// TestS3PathStyle: an S3 endpoint with a host name gets the bucket in the host name unless
// --aws-s3-path-style says otherwise; a server without wildcard DNS needs the path.
func TestS3PathStyle(t *testing.T) {
	emu := startEmulator(t)
	// The emulator by name: a request for <bucket>.localhost goes to the dead proxy of TestMain.
	endpoint := strings.Replace(emu.URL(), "127.0.0.1", "localhost", 1)
	for _, pathStyle := range []bool{true, false} {
		awsTestEnv(t, map[string]string{"AWS_ENDPOINT_URL_S3": endpoint}, "")
		emu.ResetCalls()
		_, s3Client, err := awsClients(context.Background(), "eu-west-1", pathStyle)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s3Client.CreateBucket(context.Background(), &s3.CreateBucketInput{
			Bucket:                    aws.String("wso-path-style"),
			CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraintEuWest1},
		}, func(o *s3.Options) { o.Retryer = aws.NopRetryer{} }) // the refused connection below is not worth retrying
		if got := emu.Calls().Count("s3", "CreateBucket"); pathStyle && (err != nil || got != 1) {
			t.Errorf("with path-style addressing: CreateBucket reached the server %d times, err %v; want once", got, err)
		} else if !pathStyle && (err == nil || !strings.Contains(err.Error(), "wso-path-style.localhost") || got != 0) {
			t.Errorf("without path-style addressing: CreateBucket reached the server %d times, err %v; want it sent to wso-path-style.localhost", got, err)
		}
	}
}
