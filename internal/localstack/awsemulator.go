package localstack

import (
	"context"
	"os"
	"strings"
)

// awsemuURLPrefix starts the line on which the emulator announces its endpoint.
const awsemuURLPrefix = "AWSEMU_URL="

// AWSEmulator is the AWS KMS and S3 emulator of test/awsemu, running as a child of a Stack.
type AWSEmulator struct {
	*Process
	url string
}

// StartAWSEmulator runs the emulator binary, built from test/awsemu/cmd/awsemu, on a free
// loopback port and waits until it announces its endpoint. args are added to its command
// line. Its log is <Dir>/awsemu.log. With a node, it listens on the node address (an alias
// on lo), where the node's pods reach it too.
func (s *Stack) StartAWSEmulator(ctx context.Context, binary string, args ...string) (*AWSEmulator, error) {
	if s.node != nil {
		args = append([]string{"--listen=" + NodeIP + ":0"}, args...)
	}
	p, err := s.StartProcess(ProcessOptions{Name: "awsemu", Path: binary, Args: args})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	line, err := p.WaitForLine(ctx, awsemuURLPrefix)
	if err != nil {
		s.abandon(p)
		return nil, err
	}
	s.logf("AWS emulator is serving at %s", strings.TrimPrefix(line, awsemuURLPrefix))
	return &AWSEmulator{Process: p, url: strings.TrimPrefix(line, awsemuURLPrefix)}, nil
}

// URL is the endpoint of every emulated service. S3 clients address buckets in the path
// there, which the SDK does by itself for an IP address such as 127.0.0.1.
func (e *AWSEmulator) URL() string {
	return e.url
}

// EndpointEnv sends the AWS SDK's KMS and S3 clients to the emulator. See EndpointEnv.
func (e *AWSEmulator) EndpointEnv() []string {
	return EndpointEnv(e.url)
}

// EndpointEnv is the environment that sends the AWS SDK's KMS and S3 clients to the
// emulator at url through the SDK's own per-service endpoint settings, as the chart's
// aws.endpoints values do in a cluster. The operator passes them on to the backup agent's
// pods.
func EndpointEnv(url string) []string {
	return []string{"AWS_ENDPOINT_URL_KMS=" + url, "AWS_ENDPOINT_URL_S3=" + url}
}

// ClientEnv is the environment under which the AWS SDK's default credential chain uses
// credentials the emulator accepts, and never the user's AWS configuration or the
// instance metadata service.
func (e *AWSEmulator) ClientEnv() []string {
	return ClientEnvAs("AKIALOCALSTACK000000", "localstack-emulated-not-a-secret")
}

// ClientEnvAs is ClientEnv signing with another access key, such as one of the emulator's
// principals (test/awsemu's BackupAccessKeyID signs as the backup role).
func ClientEnvAs(accessKeyID, secretAccessKey string) []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + accessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + secretAccessKey,
		"AWS_SESSION_TOKEN=",
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}
